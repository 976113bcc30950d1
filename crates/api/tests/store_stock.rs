//! Stock per store through the api, over real PostgreSQL and Redis: a checkout or a sale takes
//! stock from its store only (a seller's store, or the one an admin names), so a checkout in one
//! store cannot take another store's stock (409 naming the product and the store, the other
//! store's stock unchanged); a release, an expiry and a cancellation give back to the store the
//! stock came from; products show their stock per store and in all, or one store's (`?store=`);
//! `PATCH` and `POST .../stock` set or change one store's stock, exact decimals included.

mod common;

use common::{spawn_app, TestApp};
use diesel_async::RunQueryDsl;
use faena_shop::auth::Role;
use faena_shop::stores::{self, StoreKey};
use reqwest::Method;
use serde_json::{json, Value};

async fn add_store(app: &TestApp, code: &str, establishment: &str, n: u32) -> anyhow::Result<i64> {
    let body = json!({
        "code": code, "name": format!("Tienda {code}"), "establishment_code": establishment,
        "boleta_series": format!("B{n:03}"), "factura_series": format!("F{n:03}"),
        "boleta_note_series": format!("BC{n:02}"), "factura_note_series": format!("FC{n:02}"),
    });
    let (s, b) = app.post("/api/stores", &body.to_string()).await?;
    anyhow::ensure!(s == 201, "store {code}: {s} {b}");
    b["id"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no store id in {b}"))
}

async fn add_product(app: &TestApp, body: Value) -> anyhow::Result<i64> {
    let (s, p) = app.post("/api/products", &body.to_string()).await?;
    anyhow::ensure!(s == 201, "product: {s} {p}");
    p["id"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no product id in {p}"))
}

/// Puts user `name` in store `code` (what `faena users set-store` does).
async fn move_user(app: &TestApp, name: &str, code: &str) -> anyhow::Result<()> {
    let pool = faena_core::db::create_pool(&app.db.url, 1)?;
    stores::set_user_store(&mut *pool.get().await?, name, &StoreKey::Code(code.into())).await?;
    Ok(())
}

/// The product's stock in store `store` (id or code), as `GET /api/products?store=` shows it.
async fn stock_in(app: &TestApp, product: i64, store: &str) -> anyhow::Result<Value> {
    let (s, list) = app.get(&format!("/api/products?store={store}")).await?;
    anyhow::ensure!(s == 200, "products of {store}: {s} {list}");
    let p = list
        .as_array()
        .and_then(|l| l.iter().find(|p| p["id"] == product))
        .ok_or_else(|| anyhow::anyhow!("product {product} not listed: {list}"))?;
    anyhow::ensure!(
        p["by_store"].as_array().map(Vec::len) == Some(1)
            && p["by_store"][0]["stock"] == p["stock"],
        "one store's stock: {p}"
    );
    Ok(p["stock"].clone())
}

#[tokio::test]
async fn a_checkout_in_one_store_cannot_take_another_stores_stock() -> anyhow::Result<()> {
    let app = spawn_app("stock_per_store").await?;
    let lima = add_store(&app, "lima", "0001", 2).await?;
    let cusco = add_store(&app, "cusco", "0002", 3).await?;
    let pid = add_product(
        &app,
        json!({"sku": "AGUA", "name": "Agua 625 ml", "unit_price": "1.50", "stock": 100}),
    )
    .await?;
    // Cusco gets 5 (PATCH, a store's stock from now on); lima has none.
    let (s, p) = app
        .send(
            Method::PATCH,
            &format!("/api/products/{pid}"),
            Some(&json!({"stock": 5, "store_id": cusco}).to_string()),
        )
        .await?;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["stock"], 105, "the total of every store: {p}");
    assert_eq!(
        p["by_store"],
        json!([
            {"store_id": 1, "store_code": "principal", "stock": 100},
            {"store_id": cusco, "store_code": "cusco", "stock": 5}
        ]),
        "{p}"
    );
    let ana = app.user_token("ana", Role::Seller).await?;
    move_user(&app, "ana", "lima").await?;
    let checkout = |token: String, body: Value| {
        let app = &app;
        async move {
            app.send_as(
                Some(&token),
                Method::POST,
                "/api/checkout",
                Some(&body.to_string()),
            )
            .await
        }
    };
    let one = json!({"items": [{"product_id": pid, "quantity": 1}]});

    // Ana checks out in lima: lima has none, whatever cusco and the main store hold.
    let (s, b) = checkout(ana.clone(), one.clone()).await?;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("insufficient_stock")),
        "{b}"
    );
    assert_eq!(
        b["error"]["details"]["shortages"],
        json!([{"product_id": pid, "sku": "AGUA", "store_id": lima, "requested": 1, "available": 0}]),
        "{b}"
    );
    let message = b["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("product {pid} (AGUA)")),
        "names the product: {message}"
    );
    // ...and she cannot name cusco: 403.
    let (s, b) = checkout(
        ana.clone(),
        json!({"items": [{"product_id": pid, "quantity": 1}], "store_id": cusco}),
    )
    .await?;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{b}"
    );
    assert_eq!(
        stock_in(&app, pid, "cusco").await?,
        5,
        "cusco's stock unchanged"
    );
    assert_eq!(stock_in(&app, pid, "lima").await?, 0);
    assert_eq!(stock_in(&app, pid, "principal").await?, 100);

    // An admin naming cusco takes cusco's: 2 of its 5, and more than it has is refused.
    let admin = app.admin_token.clone();
    let (s, b) = checkout(
        admin.clone(),
        json!({"items": [{"product_id": pid, "quantity": 6}], "store_id": cusco}),
    )
    .await?;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"]["details"]["shortages"][0]["available"], 5, "{b}");
    let (s, r) = checkout(
        admin.clone(),
        json!({"items": [{"product_id": pid, "quantity": 2}], "store_id": cusco}),
    )
    .await?;
    assert_eq!((s, r["store_id"].as_i64()), (201, Some(cusco)), "{r}");
    assert_eq!(stock_in(&app, pid, "cusco").await?, 3);
    assert_eq!(stock_in(&app, pid, "principal").await?, 100);
    // Released, the 2 go back to cusco, not to the main store.
    let rid = r["reservation_id"].as_i64().unwrap_or_default();
    let (s, b) = app
        .send(Method::DELETE, &format!("/api/reservations/{rid}"), None)
        .await?;
    assert_eq!(s, 200, "{b}");
    assert_eq!(stock_in(&app, pid, "cusco").await?, 5);
    assert_eq!(stock_in(&app, pid, "principal").await?, 100);

    // Expired, too: a checkout of 4 in cusco, past its expiry, released by the job's code.
    let (s, r) = checkout(
        admin.clone(),
        json!({"items": [{"product_id": pid, "quantity": 4}], "store_id": cusco}),
    )
    .await?;
    assert_eq!(s, 201, "{r}");
    assert_eq!(stock_in(&app, pid, "cusco").await?, 1);
    let pool = faena_core::db::create_pool(&app.db.url, 1)?;
    let mut conn = pool.get().await?;
    diesel::sql_query("UPDATE reservations SET expires_at = now() - interval '1 minute'")
        .execute(&mut *conn)
        .await?;
    let report = faena_shop::shop::release_expired(&mut conn, 100).await?;
    assert_eq!(
        (report.released, report.units),
        (1, bigdecimal::BigDecimal::from(4))
    );
    assert_eq!(stock_in(&app, pid, "cusco").await?, 5);
    assert_eq!(stock_in(&app, pid, "principal").await?, 100);

    // A reservation of cusco's stock becomes a sale in cusco only.
    let (s, r) = checkout(
        admin.clone(),
        json!({"items": [{"product_id": pid, "quantity": 1}], "store_id": cusco}),
    )
    .await?;
    assert_eq!(s, 201, "{r}");
    let rid = r["reservation_id"].as_i64().unwrap_or_default();
    let (s, b) = app
        .post(&format!("/api/reservations/{rid}/confirm"), "")
        .await?;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app
        .post(
            "/api/sales",
            &json!({"reservation_id": rid, "send": false}).to_string(),
        )
        .await?;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("conflict")),
        "the admin sells in the main store by default: {b}"
    );
    let (s, b) = app
        .post(
            "/api/sales",
            &json!({"reservation_id": rid, "store_id": cusco, "send": false}).to_string(),
        )
        .await?;
    assert_eq!((s, b["store_id"].as_i64()), (201, Some(cusco)), "{b}");
    assert_eq!(stock_in(&app, pid, "cusco").await?, 4);

    // Unknown stores are named as such.
    let (s, b) = app.get("/api/products?store=nowhere").await?;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{b}"
    );
    let (s, b) = app
        .send(
            Method::PATCH,
            &format!("/api/products/{pid}"),
            Some(&json!({"stock": 1, "store_id": 999}).to_string()),
        )
        .await?;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (400, Some("store_id")),
        "{b}"
    );
    let (s, b) = app
        .send(
            Method::PATCH,
            &format!("/api/products/{pid}"),
            Some(&json!({"store_id": cusco}).to_string()),
        )
        .await?;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (400, Some("store_id")),
        "{b}"
    );
    let (_, p) = app.get(&format!("/api/products/{pid}")).await?;
    assert_eq!(p["stock"], 104, "{p}");
    Ok(())
}

#[tokio::test]
async fn a_sale_in_store_b_takes_bs_stock_and_its_cancellation_gives_it_back() -> anyhow::Result<()>
{
    let app = spawn_app("stock_sale_store").await?;
    let cusco = add_store(&app, "cusco", "0002", 3).await?;
    let pid = add_product(
        &app,
        json!({"sku": "ARR-G", "name": "Arroz a granel", "unit_price": "4.20",
               "stock": "10.000", "unit_code": "KGM", "decimal_quantity": true}),
    )
    .await?;
    // Cusco: 2.5 kg added to nothing (POST .../stock with its store).
    let (s, p) = app
        .post(
            &format!("/api/products/{pid}/stock"),
            &json!({"delta": "2.5", "store_id": cusco}).to_string(),
        )
        .await?;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        (p["stock"].clone(), p["by_store"][1]["stock"].clone()),
        (json!(12.5), json!(2.5)),
        "{p}"
    );
    let bea = app.user_token("bea", Role::Seller).await?;
    move_user(&app, "bea", "cusco").await?;
    let sell = |quantity: &str| {
        let body = json!({"items": [{"product_id": pid, "quantity": quantity}], "send": false});
        let (app, bea) = (&app, bea.clone());
        async move {
            app.send_as(
                Some(&bea),
                Method::POST,
                "/api/sales",
                Some(&body.to_string()),
            )
            .await
        }
    };

    let (s, sale) = sell("1.25").await?;
    assert_eq!((s, sale["store_id"].as_i64()), (201, Some(cusco)), "{sale}");
    assert_eq!(stock_in(&app, pid, "cusco").await?, 1.25);
    assert_eq!(stock_in(&app, pid, "principal").await?, 10);
    // More than cusco has left: 409 naming the product, in cusco, nothing taken.
    let (s, b) = sell("1.5").await?;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("insufficient_stock")),
        "{b}"
    );
    assert_eq!(
        b["error"]["details"]["shortages"],
        json!([{"product_id": pid, "sku": "ARR-G", "store_id": cusco, "requested": 1.5, "available": 1.25}]),
        "{b}"
    );
    assert_eq!(stock_in(&app, pid, "cusco").await?, 1.25);

    // Cancelled (never sent: cancelled here), the 1.25 kg go back to cusco.
    let id = sale["id"].as_i64().unwrap_or_default();
    let (s, b) = app
        .post(
            &format!("/api/sales/{id}/cancel"),
            r#"{"reason": "Cliente devolvió el arroz"}"#,
        )
        .await?;
    assert_eq!(s, 200, "{b}");
    assert_eq!(stock_in(&app, pid, "cusco").await?, 2.5);
    assert_eq!(stock_in(&app, pid, "principal").await?, 10);

    // Whole units from now on is refused while any store's stock has decimals (cusco's here).
    let (s, b) = app
        .send(
            Method::PATCH,
            &format!("/api/products/{pid}"),
            Some(r#"{"decimal_quantity": false}"#),
        )
        .await?;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("decimal_stock")),
        "{b}"
    );
    let message = b["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("in store {cusco}")), "{message}");
    // With cusco's stock set whole in the same request, it is accepted.
    let (s, p) = app
        .send(
            Method::PATCH,
            &format!("/api/products/{pid}"),
            Some(&json!({"decimal_quantity": false, "stock": 2, "store_id": cusco}).to_string()),
        )
        .await?;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        (p["decimal_quantity"].clone(), p["stock"].clone()),
        (json!(false), json!(12)),
        "{p}"
    );
    Ok(())
}
