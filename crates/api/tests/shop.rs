//! Checkout reservations over real PostgreSQL: stock never oversells, multi-item checkouts keep
//! `stock + held` constant, parallel release jobs return each unit once, confirm racing release.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bigdecimal::BigDecimal;
use common::spawn_app;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use faena_shop::schema::{product_stock, reservation_items, reservations};
use faena_shop::shop;
use serde_json::{json, Value};

async fn product(app: &common::TestApp, sku: &str, stock: i32) -> anyhow::Result<i64> {
    let (s, b) = app
        .post(
            "/api/products",
            &json!({"sku": sku, "name": sku, "unit_price": "12.50", "stock": stock}).to_string(),
        )
        .await?;
    anyhow::ensure!(s == 201, "create product: {s} {b}");
    b["id"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no id in {b}"))
}

async fn stock_of(app: &common::TestApp, id: i64) -> anyhow::Result<i64> {
    let (_, b) = app.get(&format!("/api/products/{id}")).await?;
    b["stock"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no stock in {b}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_checkouts_against_stock_ten() -> anyhow::Result<()> {
    let app = Arc::new(spawn_app("hot").await?);
    let id = product(&app, "HOT-1", 10).await?;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let app = Arc::clone(&app);
        set.spawn(async move {
            app.post(
                "/api/checkout",
                &json!({"items": [{"product_id": id, "quantity": 1}]}).to_string(),
            )
            .await
        });
    }
    let mut created = 0;
    let mut refused = 0;
    while let Some(r) = set.join_next().await {
        let (s, b) = r??;
        match s {
            201 => created += 1,
            409 => {
                assert_eq!(b["error"]["code"], json!("insufficient_stock"), "{b}");
                let available = b["error"]["details"]["shortages"][0]["available"].as_i64();
                assert!(available.is_some_and(|a| a < 1), "{b}");
                refused += 1;
            }
            other => anyhow::bail!("unexpected {other}: {b}"),
        }
    }
    assert_eq!((created, refused), (10, 190));
    assert_eq!(stock_of(&app, id).await?, 0);
    Ok(())
}

#[tokio::test]
async fn checkout_validation() -> anyhow::Result<()> {
    let app = spawn_app("checkoutval").await?;
    let a = product(&app, "A", 3).await?;
    let b = product(&app, "B", 1).await?;
    let cases: &[(Value, u16, &str)] = &[
        (json!({"items": []}), 400, "invalid_field"),
        (
            json!({"items": [{"product_id": a, "quantity": 0}]}),
            400,
            "invalid_field",
        ),
        (
            json!({"items": [{"product_id": a, "quantity": 1}, {"product_id": a, "quantity": 2}]}),
            400,
            "invalid_field",
        ),
        (
            json!({"items": [{"product_id": 999_999, "quantity": 1}]}),
            404,
            "not_found",
        ),
        (
            json!({"items": [{"product_id": a, "quantity": 1, "extra": 1}]}),
            400,
            "unknown_field",
        ),
        (
            json!({"items": [{"product_id": a, "quantity": "x"}]}),
            400,
            "invalid_field",
        ),
    ];
    for (body, status, code) in cases {
        let (s, r) = app.post("/api/checkout", &body.to_string()).await?;
        assert_eq!(
            (s, r["error"]["code"].clone()),
            (*status, json!(code)),
            "{body} -> {r}"
        );
    }
    let (_, r) = app
        .post(
            "/api/checkout",
            &json!({"items": [{"product_id": a, "quantity": -1}]}).to_string(),
        )
        .await?;
    assert_eq!(r["error"]["field"], json!("items[0].quantity"));
    // All or nothing: B lacks stock, so A is not reserved either; both shortages are listed.
    let (s, r) = app
        .post(
            "/api/checkout",
            &json!({"items": [{"product_id": a, "quantity": 4}, {"product_id": b, "quantity": 2}]})
                .to_string(),
        )
        .await?;
    assert_eq!(
        s, 409,
        "not enough stock is a conflict with the store's stock: {r}"
    );
    assert_eq!(
        r["error"]["details"]["shortages"].as_array().map(Vec::len),
        Some(2),
        "{r}"
    );
    assert_eq!((stock_of(&app, a).await?, stock_of(&app, b).await?), (3, 1));
    // A good one, then confirm and the states that follow.
    let (s, r) = app
        .post(
            "/api/checkout",
            &json!({"items": [{"product_id": a, "quantity": 2}]}).to_string(),
        )
        .await?;
    assert_eq!(s, 201, "{r}");
    let rid = r["reservation_id"].as_i64().unwrap_or_default();
    assert_eq!(r["items"][0]["sku"], json!("A"));
    let (s, r) = app
        .post(&format!("/api/reservations/{rid}/confirm"), "")
        .await?;
    assert_eq!((s, r["status"].clone()), (200, json!("CONFIRMED")), "{r}");
    let (s, r) = app
        .post(&format!("/api/reservations/{rid}/confirm"), "")
        .await?;
    assert_eq!(
        (s, r["error"]["details"]["status"].clone()),
        (409, json!("CONFIRMED")),
        "{r}"
    );
    let (s, _) = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/reservations/{rid}"),
            None,
        )
        .await?;
    assert_eq!(s, 409, "a confirmed reservation is not released");
    assert_eq!(stock_of(&app, a).await?, 1);
    let (s, r) = app
        .post(
            "/api/checkout",
            &json!({"items": [{"product_id": a, "quantity": 1}]}).to_string(),
        )
        .await?;
    assert_eq!(s, 201);
    let rid = r["reservation_id"].as_i64().unwrap_or_default();
    let (s, r) = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/reservations/{rid}"),
            None,
        )
        .await?;
    assert_eq!((s, r["status"].clone()), (200, json!("RELEASED")), "{r}");
    assert_eq!(stock_of(&app, a).await?, 1);
    let (s, r) = app
        .post(
            "/api/products",
            &json!({"sku": "A", "name": "dup", "unit_price": "1", "stock": 1}).to_string(),
        )
        .await?;
    assert_eq!(
        (s, r["error"]["code"].clone()),
        (409, json!("already_exists"))
    );
    let (s, r) = app
        .post(
            "/api/products",
            &json!({"sku": "C", "name": "c", "unit_price": "1.005", "stock": 1}).to_string(),
        )
        .await?;
    assert_eq!(
        (s, r["error"]["field"].clone()),
        (400, json!("unit_price")),
        "{r}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_multi_item_checkouts_keep_stock_plus_held_constant() -> anyhow::Result<()> {
    let app = Arc::new(spawn_app("multi").await?);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(product(&app, &format!("M-{i}"), 40).await?);
    }
    let ids = Arc::new(ids);
    let mut set = tokio::task::JoinSet::new();
    for n in 0..120usize {
        let app = Arc::clone(&app);
        let ids = Arc::clone(&ids);
        set.spawn(async move {
            // Items in varying orders so lock ordering matters.
            let items: Vec<Value> = (0..3)
                .map(|k| json!({"product_id": ids[(n + k * 2) % 5], "quantity": 1 + (n + k) % 3}))
                .collect();
            let (s, r) = app
                .post("/api/checkout", &json!({"items": items}).to_string())
                .await?;
            if s == 201 && n % 3 == 0 {
                let rid = r["reservation_id"].as_i64().unwrap_or_default();
                let (s2, r2) = app
                    .send(
                        reqwest::Method::DELETE,
                        &format!("/api/reservations/{rid}"),
                        None,
                    )
                    .await?;
                anyhow::ensure!(s2 == 200, "release: {s2} {r2}");
            }
            anyhow::ensure!(
                s == 201 || (s == 409 && r["error"]["code"] == json!("insufficient_stock")),
                "checkout: {s} {r}"
            );
            Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let pool = faena_core::db::create_pool(&app.db.url, 1)?;
    let mut conn = pool.get().await?;
    for id in ids.iter() {
        let held: Option<bigdecimal::BigDecimal> = reservation_items::table
            .inner_join(reservations::table)
            .filter(reservation_items::product_id.eq(id))
            .filter(reservations::status.eq("ACTIVE"))
            .select(diesel::dsl::sum(reservation_items::quantity))
            .first(&mut conn)
            .await?;
        let stock = stock_of(&app, *id).await?;
        assert!(stock >= 0);
        assert_eq!(
            bigdecimal::BigDecimal::from(stock) + held.clone().unwrap_or_default(),
            bigdecimal::BigDecimal::from(40),
            "product {id}: stock {stock} + held {held:?}"
        );
    }
    Ok(())
}

/// Inserts `n` reservations of one unit each of `product`, expiring at `expires_at`, taking the stock.
async fn reserve_directly(
    conn: &mut diesel_async::AsyncPgConnection,
    product: i64,
    n: usize,
    expires_at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<i64>> {
    let rows: Vec<_> = (0..n)
        .map(|_| reservations::expires_at.eq(expires_at))
        .collect();
    let ids: Vec<i64> = diesel::insert_into(reservations::table)
        .values(rows)
        .returning(reservations::id)
        .get_results(conn)
        .await?;
    let items: Vec<_> = ids
        .iter()
        .map(|r| {
            (
                reservation_items::reservation_id.eq(r),
                reservation_items::product_id.eq(product),
                reservation_items::quantity.eq(bigdecimal::BigDecimal::from(1)),
            )
        })
        .collect();
    diesel::insert_into(reservation_items::table)
        .values(items)
        .execute(conn)
        .await?;
    // The main store's stock, which the reservations hold.
    diesel::update(product_stock::table.filter(product_stock::product_id.eq(product)))
        .set(product_stock::quantity.eq(product_stock::quantity - BigDecimal::from(n as i64)))
        .execute(conn)
        .await?;
    Ok(ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_release_jobs_in_parallel_return_each_unit_once() -> anyhow::Result<()> {
    let app = spawn_app("release").await?;
    let pool = faena_core::db::create_pool(&app.db.url, 4)?;
    let mut conn = pool.get().await?;
    let p = shop::create_product(
        &mut conn,
        shop::NewProduct {
            sku: "R".into(),
            name: "r".into(),
            unit_price: BigDecimal::from(1),
            stock: 1500.into(),
            low_stock_threshold: 5.into(),
            igv_affectation: "10".into(),
            unit_code: "NIU".into(),
            icbper: false,
            decimal_quantity: false,
        },
    )
    .await?;
    reserve_directly(
        &mut conn,
        p.id,
        1000,
        chrono::Utc::now() - chrono::Duration::minutes(1),
    )
    .await?;
    assert_eq!(shop::get_product(&mut conn, p.id).await?.stock, 500);
    let (p1, p2) = (pool.clone(), pool.clone());
    let j1 = tokio::spawn(async move {
        shop::release_expired(&mut *p1.get().await?, 50)
            .await
            .map_err(anyhow::Error::from)
    });
    let j2 = tokio::spawn(async move {
        shop::release_expired(&mut *p2.get().await?, 50)
            .await
            .map_err(anyhow::Error::from)
    });
    let (r1, r2) = (j1.await??, j2.await??);
    assert_eq!(r1.released + r2.released, 1000, "{r1:?} {r2:?}");
    assert_eq!(r1.units + r2.units, 1000);
    assert_eq!(shop::get_product(&mut conn, p.id).await?.stock, 1500);
    let again = shop::release_expired(&mut conn, 50).await?;
    assert_eq!(
        again,
        shop::ReleaseReport::default(),
        "a second run changes nothing"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_racing_release_ends_in_one_state_and_stock_adds_up() -> anyhow::Result<()> {
    let app = Arc::new(spawn_app("race").await?);
    let pool = faena_core::db::create_pool(&app.db.url, 6)?;
    let mut conn = pool.get().await?;
    let p = shop::create_product(
        &mut conn,
        shop::NewProduct {
            sku: "Q".into(),
            name: "q".into(),
            unit_price: BigDecimal::from(1),
            stock: 300.into(),
            low_stock_threshold: 5.into(),
            igv_affectation: "10".into(),
            unit_code: "NIU".into(),
            icbper: false,
            decimal_quantity: false,
        },
    )
    .await?;
    let ids = reserve_directly(
        &mut conn,
        p.id,
        200,
        chrono::Utc::now() + chrono::Duration::hours(1),
    )
    .await?;
    // All expire 300 ms from now; confirms are spread from 150 ms before to 50 ms after that moment,
    // while two release jobs run, so some confirms win and some lose.
    let expiry = chrono::Utc::now() + chrono::Duration::milliseconds(300);
    diesel::update(reservations::table.filter(reservations::id.eq_any(&ids)))
        .set(reservations::expires_at.eq(expiry))
        .execute(&mut conn)
        .await?;
    let until = (expiry - chrono::Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
    tokio::time::sleep(until.saturating_sub(Duration::from_millis(150))).await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let pool = pool.clone();
        set.spawn(async move {
            let mut total = shop::ReleaseReport::default();
            for _ in 0..20 {
                let r = shop::release_expired(&mut *pool.get().await?, 10).await?;
                total.released += r.released;
                total.units += r.units;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok::<_, anyhow::Error>(total.released)
        });
    }
    let mut confirms = tokio::task::JoinSet::new();
    for (i, id) in ids.clone().into_iter().enumerate() {
        let app = Arc::clone(&app);
        confirms.spawn(async move {
            tokio::time::sleep(Duration::from_millis(i as u64)).await;
            app.post(&format!("/api/reservations/{id}/confirm"), "")
                .await
        });
    }
    let mut confirmed_ok = 0;
    while let Some(r) = confirms.join_next().await {
        let (s, b) = r??;
        match s {
            200 => confirmed_ok += 1,
            410 => assert_eq!(b["error"]["code"], json!("expired"), "{b}"),
            other => anyhow::bail!("confirm answered {other}: {b}"),
        }
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    // Anything still ACTIVE and expired is released by a last run.
    shop::release_expired(&mut conn, 100).await?;
    let states: Vec<String> = reservations::table
        .filter(reservations::id.eq_any(&ids))
        .select(reservations::status)
        .load(&mut conn)
        .await?;
    let confirmed = states.iter().filter(|s| *s == "CONFIRMED").count();
    let expired = states.iter().filter(|s| *s == "EXPIRED").count();
    assert_eq!(confirmed + expired, 200, "{states:?}");
    assert_eq!(
        confirmed, confirmed_ok,
        "every 200 answer is a CONFIRMED row and nothing else"
    );
    assert_eq!(
        shop::get_product(&mut conn, p.id).await?.stock,
        bigdecimal::BigDecimal::from(300 - confirmed as i64)
    );
    Ok(())
}

#[tokio::test]
async fn a_product_cannot_be_free() -> anyhow::Result<()> {
    let app = spawn_app("free_product").await?;
    for (i, price) in [json!("0.00"), json!("0"), json!(0), json!("-1.00")]
        .into_iter()
        .enumerate()
    {
        let body =
            json!({"sku": format!("FREE-{i}"), "name": "Gratis", "unit_price": price, "stock": 1});
        let (s, b) = app.post("/api/products", &body.to_string()).await?;
        assert_eq!(s, 400, "{price}: {b}");
        assert_eq!(b["error"]["code"], "invalid_field", "{b}");
        assert_eq!(b["error"]["field"], "unit_price", "{b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("0.01")),
            "{b}"
        );
    }
    let (_, list) = app.get("/api/products").await?;
    assert_eq!(list, json!([]), "nothing was stored");
    let (s, p) = app
        .post(
            "/api/products",
            r#"{"sku":"CENT","name":"Caramelo","unit_price":"0.01","stock":1}"#,
        )
        .await?;
    assert_eq!(s, 201, "{p}");
    let cent = p["id"].as_i64().unwrap_or_default();
    let (s, b) = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/products/{cent}"),
            Some(r#"{"unit_price":"0.00"}"#),
        )
        .await?;
    assert_eq!(
        (s, b["error"]["field"].clone()),
        (400, json!("unit_price")),
        "{b}"
    );
    let (_, p) = app.get(&format!("/api/products/{cent}")).await?;
    assert_eq!(p["unit_price"], "0.01");

    // One stored before the rule can be renamed, and priced.
    common::sql(
        &app.db,
        "WITH p AS (INSERT INTO products (sku, name, unit_price) VALUES ('OLD', 'old', 0.00) \
         RETURNING id, decimal_quantity) \
         INSERT INTO product_stock (product_id, store_id, decimal_quantity, quantity) \
         SELECT p.id, s.id, p.decimal_quantity, 1 FROM p, stores s WHERE s.establishment_code = '0000'",
    )
    .await?;
    let (_, list) = app.get("/api/products").await?;
    let old = list[1]["id"].as_i64().unwrap_or_default();
    for patch in [r#"{"name":"Viejo"}"#, r#"{"unit_price":"1.50"}"#] {
        let (s, b) = app
            .send(
                reqwest::Method::PATCH,
                &format!("/api/products/{old}"),
                Some(patch),
            )
            .await?;
        assert_eq!(s, 200, "{patch}: {b}");
    }
    Ok(())
}

#[tokio::test]
async fn database_refusals_answer_4xx_and_its_failures_503_in_our_words() -> anyhow::Result<()> {
    let app = spawn_app("db_refusals_api").await?;
    // Rules only the database knows (as a later migration could add): the api's checks let the
    // requests through, PostgreSQL refuses them.
    common::sql(
        &app.db,
        "ALTER TABLE products DROP CONSTRAINT products_low_stock_threshold_check, \
         ADD CONSTRAINT products_low_stock_threshold_check \
         CHECK (low_stock_threshold BETWEEN 0 AND 1000)",
    )
    .await?;
    common::sql(
        &app.db,
        "CREATE UNIQUE INDEX products_name_key ON products (name)",
    )
    .await?;
    let (s, b) = app
        .post(
            "/api/products",
            r#"{"sku":"T-1","name":"Té","unit_price":"3.00","stock":1,"low_stock_threshold":5000}"#,
        )
        .await?;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["code"], "invalid_value", "{b}");
    assert_eq!(b["error"]["field"], "low_stock_threshold", "{b}");
    common::assert_no_database_text(&b);
    let id = product(&app, "T-1", 1).await?;
    let (s, b) = app
        .post(
            "/api/products",
            r#"{"sku":"T-2","name":"T-1","unit_price":"3.00","stock":1}"#,
        )
        .await?;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"]["code"], "conflict", "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`name`")),
        "not the sku's message: {b}"
    );
    common::assert_no_database_text(&b);

    // The database's own failure: the product's row held past adjust_stock's lock_timeout (2 s).
    use diesel_async::AsyncConnection;
    let mut conn = diesel_async::AsyncPgConnection::establish(&app.db.url).await?;
    diesel::sql_query("BEGIN").execute(&mut conn).await?;
    diesel::sql_query(format!(
        "SELECT id FROM products WHERE id = {id} FOR UPDATE"
    ))
    .execute(&mut conn)
    .await?;
    let (s, b) = app
        .post(&format!("/api/products/{id}/stock"), r#"{"delta":1}"#)
        .await?;
    diesel::sql_query("ROLLBACK").execute(&mut conn).await?;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["error"]["code"], "database_error", "{b}");
    common::assert_no_database_text(&b);
    let (s, b) = app
        .post(&format!("/api/products/{id}/stock"), r#"{"delta":1}"#)
        .await?;
    assert_eq!((s, b["stock"].clone()), (200, json!(2)), "{b}");
    Ok(())
}

/// A request with the admin's token and optional `If-Match`; answers status, ETag and body.
async fn versioned(
    app: &common::TestApp,
    method: reqwest::Method,
    path: &str,
    if_match: Option<&str>,
    body: Option<Value>,
) -> anyhow::Result<(u16, Option<String>, Value)> {
    let mut r = app.client.request(method, format!("{}{path}", app.base));
    if let Some(tag) = if_match {
        r = r.header("if-match", tag);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await?;
    let status = r.status().as_u16();
    let etag = r
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((status, etag, r.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_writes_answer_409_on_a_stale_version_and_change_nothing() -> anyhow::Result<()> {
    use reqwest::Method;
    let app = Arc::new(spawn_app("versioned").await?);
    let (s, tag, p) = versioned(
        &app,
        Method::POST,
        "/api/products",
        None,
        Some(json!({"sku": "V-1", "name": "Inca Kola", "unit_price": "3.50", "stock": 10})),
    )
    .await?;
    assert_eq!(
        (s, tag.as_deref(), p["version"].clone()),
        (201, Some("\"0\""), json!(0))
    );
    let id = p["id"].as_i64().unwrap_or_default();
    let path = format!("/api/products/{id}");
    let stock_path = format!("/api/products/{id}/stock");
    let (s, tag, _) = versioned(&app, Method::GET, &path, None, None).await?;
    assert_eq!((s, tag.as_deref()), (200, Some("\"0\"")));
    let (s, tag, _) = versioned(&app, Method::HEAD, &path, None, None).await?;
    assert_eq!((s, tag.as_deref()), (200, Some("\"0\"")));

    // The version read: the write goes through and answers the next one.
    let (s, tag, p) = versioned(
        &app,
        Method::PATCH,
        &path,
        Some("\"0\""),
        Some(json!({"name": "Inca Kola 500 ml"})),
    )
    .await?;
    assert_eq!(
        (s, tag.as_deref(), p["version"].clone()),
        (200, Some("\"1\""), json!(1)),
        "{p}"
    );

    // A stale one, by header or by body: 409, nothing changed.
    let stale = [
        (
            Method::PATCH,
            &path,
            Some("\"0\""),
            json!({"unit_price": "9.00"}),
        ),
        (
            Method::PATCH,
            &path,
            None,
            json!({"unit_price": "9.00", "expected_version": 0}),
        ),
        (
            Method::POST,
            &stock_path,
            Some("\"0\""),
            json!({"delta": 5}),
        ),
        (
            Method::POST,
            &stock_path,
            None,
            json!({"delta": -3, "expected_version": 0}),
        ),
        // Checked before the delta: a stale write is told so, not that the stock is short.
        (
            Method::POST,
            &stock_path,
            Some("\"0\""),
            json!({"delta": -1000}),
        ),
        // A write that changes nothing is still checked.
        (Method::PATCH, &path, Some("\"7\""), json!({})),
    ];
    for (method, p, tag, body) in stale {
        let (s, etag, b) = versioned(&app, method.clone(), p, tag, Some(body.clone())).await?;
        assert_eq!(
            (
                s,
                etag,
                b["error"]["code"].clone(),
                b["error"]["details"].clone()
            ),
            (
                409,
                None,
                json!("version_conflict"),
                json!({"current_version": 1})
            ),
            "{method} {p} {tag:?} {body}: {b}"
        );
        assert!(
            b["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("is at version 1") && m.contains("Nothing was changed")),
            "{b}"
        );
    }
    let (_, _, now) = versioned(&app, Method::GET, &path, None, None).await?;
    assert_eq!(
        (
            now["name"].clone(),
            now["unit_price"].clone(),
            now["stock"].clone(),
            now["version"].clone()
        ),
        (
            json!("Inca Kola 500 ml"),
            json!("3.50"),
            json!(10),
            json!(1)
        )
    );

    // The current version by body, by header, both agreeing, or `*`; and none at all, as before.
    let (s, tag, p) = versioned(
        &app,
        Method::POST,
        &stock_path,
        None,
        Some(json!({"delta": 5, "expected_version": 1})),
    )
    .await?;
    assert_eq!(
        (s, tag.as_deref(), p["stock"].clone()),
        (200, Some("\"2\""), json!(15)),
        "{p}"
    );
    let (s, _, p) = versioned(
        &app,
        Method::POST,
        &stock_path,
        Some("\"2\""),
        Some(json!({"delta": -1000, "expected_version": 2})),
    )
    .await?;
    assert_eq!(
        (s, p["error"]["field"].clone()),
        (400, json!("delta")),
        "{p}"
    );
    let (s, tag, _) = versioned(
        &app,
        Method::PATCH,
        &path,
        Some("\"2\""),
        Some(json!({"low_stock_threshold": 3, "expected_version": 2})),
    )
    .await?;
    assert_eq!((s, tag.as_deref()), (200, Some("\"3\"")));
    let (s, tag, _) = versioned(
        &app,
        Method::PATCH,
        &path,
        Some("*"),
        Some(json!({"name": "IK"})),
    )
    .await?;
    assert_eq!((s, tag.as_deref()), (200, Some("\"4\"")));
    let (s, tag, _) = versioned(
        &app,
        Method::POST,
        &stock_path,
        None,
        Some(json!({"delta": 1})),
    )
    .await?;
    assert_eq!((s, tag.as_deref()), (200, Some("\"5\"")));

    // An If-Match that is no ETag of ours, or that disagrees with the body: 400 naming it.
    for (tag, body, field) in [
        ("W/\"5\"", json!({"delta": 1}), "If-Match"),
        ("\"abc\"", json!({"delta": 1}), "If-Match"),
        ("5", json!({"delta": 1}), "If-Match"),
        ("\"5\", \"6\"", json!({"delta": 1}), "If-Match"),
        (
            "\"5\"",
            json!({"delta": 1, "expected_version": 4}),
            "expected_version",
        ),
    ] {
        let (s, _, b) = versioned(&app, Method::POST, &stock_path, Some(tag), Some(body)).await?;
        assert_eq!(
            (s, b["error"]["field"].clone()),
            (400, json!(field)),
            "{tag}: {b}"
        );
    }
    let (s, _, b) = versioned(
        &app,
        Method::PATCH,
        "/api/products/999999",
        Some("\"0\""),
        Some(json!({"name": "x"})),
    )
    .await?;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (404, json!("not_found")),
        "{b}"
    );

    // Atomic: of 20 writes at once from the same version, exactly one goes through.
    for (method, p, body) in [
        (Method::PATCH, &path, json!({"unit_price": "4.00"})),
        (Method::POST, &stock_path, json!({"delta": 1})),
    ] {
        let (_, tag, before) = versioned(&app, Method::GET, &path, None, None).await?;
        let tag = tag.ok_or_else(|| anyhow::anyhow!("no etag"))?;
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (app, method, p, tag, body) = (
                Arc::clone(&app),
                method.clone(),
                p.clone(),
                tag.clone(),
                body.clone(),
            );
            set.spawn(async move { versioned(&app, method, &p, Some(&tag), Some(body)).await });
        }
        let mut statuses = Vec::new();
        while let Some(r) = set.join_next().await {
            statuses.push(r??.0);
        }
        statuses.sort_unstable();
        let mut expected = vec![409; 19];
        expected.insert(0, 200);
        assert_eq!(statuses, expected, "{method} {p}");
        let (_, _, after) = versioned(&app, Method::GET, &path, None, None).await?;
        assert_eq!(
            after["version"],
            before["version"].as_i64().unwrap_or_default() + 1
        );
        if method == Method::POST {
            assert_eq!(
                after["stock"],
                before["stock"].as_i64().unwrap_or_default() + 1
            );
        }
    }

    // Documented: the header, the ETag and the 409 of each versioned route.
    let (_, doc) = app.get("/api/openapi.json").await?;
    for (route, method, body) in [
        ("/api/products/{id}", "patch", "ProductPatch"),
        ("/api/products/{id}/stock", "post", "StockAdjustment"),
    ] {
        let op = &doc["paths"][route][method];
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        assert!(
            params
                .iter()
                .any(|p| p["name"] == "If-Match" && p["in"] == "header"),
            "{route}: {op}"
        );
        assert!(
            op["responses"]["200"]["headers"]["ETag"].is_object(),
            "{op}"
        );
        assert!(
            op["responses"]["409"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("version_conflict")),
            "{op}"
        );
        assert!(
            doc["components"]["schemas"][body]["properties"]["expected_version"].is_object(),
            "{route}"
        );
    }
    let get = &doc["paths"]["/api/products/{id}"]["get"];
    assert!(
        get["responses"]["200"]["headers"]["ETag"].is_object(),
        "{get}"
    );
    Ok(())
}
