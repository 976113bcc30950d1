//! `/api/sales`: IGV with exact decimals, 100 concurrent sales on one series get 100 distinct
//! consecutive correlatives, sales from a CONFIRMED reservation, owner rules, and the answers of
//! `send-to-sunat`.

mod common;

use std::collections::BTreeSet;

use common::spawn_app;
use faena_shop::auth::Role;
use reqwest::Method;
use serde_json::{json, Value};

async fn product(app: &common::TestApp, sku: &str, price: &str, stock: i32) -> anyhow::Result<i64> {
    let (s, p) = app
        .post(
            "/api/products",
            &json!({"sku": sku, "name": sku, "unit_price": price, "stock": stock}).to_string(),
        )
        .await?;
    anyhow::ensure!(s == 201, "product: {s} {p}");
    Ok(p["id"].as_i64().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_sales_get_consecutive_correlatives() -> anyhow::Result<()> {
    let app = spawn_app("sales_corr").await?;
    let seller = app.user_token("caja", Role::Seller).await?;
    let pid = product(&app, "AGUA", "1.50", 1000).await?;
    let body = json!({"items": [{"product_id": pid, "quantity": 1}]}).to_string();
    let mut calls = Vec::new();
    for _ in 0..100 {
        let (app, seller, body) = (&app, seller.clone(), body.clone());
        calls.push(async move {
            app.send_as(Some(&seller), Method::POST, "/api/sales", Some(&body))
                .await
        });
    }
    let answers = futures::future::join_all(calls).await;
    let mut correlatives = BTreeSet::new();
    for a in answers {
        let (s, b) = a?;
        assert_eq!(s, 201, "{b}");
        assert_eq!(b["series"], "B001");
        correlatives.insert(b["correlative"].as_i64().unwrap_or_default());
    }
    assert_eq!(
        correlatives,
        (1..=100).collect::<BTreeSet<i64>>(),
        "no gaps, no duplicates"
    );
    let (_, p) = app.get(&format!("/api/products/{pid}")).await?;
    assert_eq!(p["stock"], 900, "each sale took its unit");
    Ok(())
}

#[tokio::test]
async fn sales_compute_igv_and_follow_owner_rules() -> anyhow::Result<()> {
    let app = spawn_app("sales_rules").await?;
    let ana = app.user_token("ana", Role::Seller).await?;
    let beto = app.user_token("beto", Role::Seller).await?;
    let a = product(&app, "MATE", "10.00", 50).await?;
    let b = product(&app, "PAN", "0.10", 50).await?;
    let tv = product(&app, "TV", "800.00", 5).await?;
    let body = json!({
        "items": [{"product_id": a, "quantity": 3}, {"product_id": b, "quantity": 7}],
        "customer": {"doc_type": "dni", "doc_number": "46027897", "name": "José Pérez"}
    })
    .to_string();
    let (s, sale) = app
        .send_as(Some(&ana), Method::POST, "/api/sales", Some(&body))
        .await?;
    assert_eq!(s, 201, "{sale}");
    // 30.00 + 0.70 = 30.70 with IGV; per line 25.42 + 0.59 = 26.01 without; IGV 4.69.
    assert_eq!(
        (
            sale["subtotal"].clone(),
            sale["igv"].clone(),
            sale["total"].clone()
        ),
        (json!("26.01"), json!("4.69"), json!("30.70"))
    );
    assert_eq!(sale["doc_type"], "03");
    assert_eq!(sale["number"], "B001-1");
    assert_eq!(sale["sunat"]["status"], "PENDING");
    assert_eq!(sale["sunat"]["status_label"], "Pendiente de envío a SUNAT");
    let path = format!("/api/sales/{}", sale["id"]);
    let (s, _) = app.send_as(Some(&beto), Method::GET, &path, None).await?;
    assert_eq!(s, 403, "another seller's sale");
    let (s, _) = app
        .send_as(
            Some(&beto),
            Method::POST,
            &format!("{path}/send-to-sunat"),
            None,
        )
        .await?;
    assert_eq!(s, 403);
    let (s, q) = app
        .send_as(
            Some(&ana),
            Method::POST,
            &format!("{path}/send-to-sunat"),
            None,
        )
        .await?;
    assert_eq!(s, 202, "{q}");
    assert_eq!(
        (q["sale_id"].clone(), q["correlative"].clone()),
        (sale["id"].clone(), json!(1))
    );
    let task = q["task_id"].as_str().unwrap_or_default().to_owned();
    let (s, t) = app
        .send_as(Some(&ana), Method::GET, &format!("/api/tasks/{task}"), None)
        .await?;
    assert_eq!(s, 200, "a seller sees the task enqueued for her: {t}");
    assert_eq!(
        (t["kind"].clone(), t["queue"].clone()),
        (json!("send_sale_to_sunat"), json!("sunat"))
    );
    let (s, _) = app
        .send(Method::POST, "/api/sales/999999/send-to-sunat", None)
        .await?;
    assert_eq!(s, 404);

    // 409 when SUNAT has decided, a worker is sending it, or its number is in conflict.
    let pool = faena_core::db::create_pool(&app.db.url, 1)?;
    for status in ["ACCEPTED", "SENDING", "REJECTED", "CONFLICT"] {
        diesel_async::RunQueryDsl::execute(
            diesel::sql_query(format!(
                "UPDATE sales SET sunat_status = '{status}' WHERE id = {}",
                sale["id"]
            )),
            &mut *pool.get().await?,
        )
        .await?;
        let (s, b) = app
            .send_as(
                Some(&ana),
                Method::POST,
                &format!("{path}/send-to-sunat"),
                None,
            )
            .await?;
        assert_eq!(
            (s, b["error"]["details"]["status"].clone()),
            (409, json!(status)),
            "{b}"
        );
    }

    // Validation: each answer names the field.
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "items"),
        (
            json!({"items": [{"product_id": a, "quantity": 0}]}),
            "items[0].quantity",
        ),
        (
            json!({"items": [{"product_id": a, "quantity": 1}, {"product_id": a, "quantity": 1}]}),
            "items[1].product_id",
        ),
        (
            json!({"items": [{"product_id": a, "quantity": 1}], "doc_type": "factura"}),
            "customer.doc_type",
        ),
        (
            json!({"items": [{"product_id": a, "quantity": 1}], "series": "F001"}),
            "series",
        ),
        (
            json!({"items": [{"product_id": a, "quantity": 1}], "customer": {"doc_type": "dni", "doc_number": "12", "name": "x"}}),
            "customer.doc_number",
        ),
        // SUNAT rejects a buyer name under 3 characters (2022): caught now.
        (
            json!({"items": [{"product_id": a, "quantity": 1}], "customer": {"doc_type": "dni", "doc_number": "46027897", "name": "Al"}}),
            "customer.name",
        ),
        (
            json!({"items": [{"product_id": a, "quantity": 1}], "customer": {"doc_type": "dni", "doc_number": "46027897", "name": "Ana\nMaría"}}),
            "customer.name",
        ),
        (
            json!({"items": [{"product_id": tv, "quantity": 1}], "customer": null}),
            "customer",
        ),
        (
            json!({"items": [{"product_id": a, "quantity": 1}], "bogus": 1}),
            "bogus",
        ),
    ];
    for (body, field) in cases {
        let (s, b) = app.post("/api/sales", &body.to_string()).await?;
        assert_eq!(s, 400, "{body} -> {b}");
        assert_eq!(b["error"]["field"], field, "{body} -> {b}");
    }
    let (s, b) = app
        .post(
            "/api/sales",
            &json!({"items": [{"product_id": 424242, "quantity": 1}]}).to_string(),
        )
        .await?;
    assert_eq!(s, 404, "{b}");
    Ok(())
}

#[tokio::test]
async fn a_confirmed_reservation_becomes_one_sale() -> anyhow::Result<()> {
    let app = spawn_app("sales_resv").await?;
    let ana = app.user_token("ana", Role::Seller).await?;
    let pid = product(&app, "QUESO", "12.00", 5).await?;
    let (_, r) = app
        .send_as(
            Some(&ana),
            Method::POST,
            "/api/checkout",
            Some(&json!({"items": [{"product_id": pid, "quantity": 2}]}).to_string()),
        )
        .await?;
    let rid = r["reservation_id"].clone();
    let body = json!({ "reservation_id": rid }).to_string();
    let (s, b) = app
        .send_as(Some(&ana), Method::POST, "/api/sales", Some(&body))
        .await?;
    assert_eq!(s, 409, "an ACTIVE reservation is not a sale yet: {b}");
    let (s, _) = app
        .send_as(
            Some(&ana),
            Method::POST,
            &format!("/api/reservations/{rid}/confirm"),
            None,
        )
        .await?;
    assert_eq!(s, 200);
    let (s, sale) = app
        .send_as(Some(&ana), Method::POST, "/api/sales", Some(&body))
        .await?;
    assert_eq!(s, 201, "{sale}");
    assert_eq!(sale["total"], "24.00");
    assert_eq!(sale["reservation_id"], rid);
    let (_, p) = app.get(&format!("/api/products/{pid}")).await?;
    assert_eq!(p["stock"], 3, "the reservation's stock, not more");
    let (s, _) = app
        .send_as(Some(&ana), Method::POST, "/api/sales", Some(&body))
        .await?;
    assert_eq!(s, 409, "a reservation becomes one sale");
    Ok(())
}
