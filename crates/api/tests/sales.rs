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

    // 409 when SUNAT has decided, an attempt is sending it (it holds the sale's send lock), or its
    // number is in conflict.
    let pool = faena_core::db::create_pool(&app.db.url, 1)?;
    let sale_id = sale["id"].as_i64().unwrap_or_default();
    let lock = faena_shop::sales::send_lock(sale_id);
    assert!(
        app.redis
            .broker
            .acquire_lock(&lock, "an-attempt:1", std::time::Duration::from_secs(60))
            .await?
    );
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

    // SENDING with nobody holding the lock: its send stopped without an outcome; it may be sent.
    app.redis.broker.release_lock(&lock, "an-attempt:1").await?;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE sales SET sunat_status = 'SENDING' WHERE id = {sale_id}"
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
    assert_eq!(s, 202, "{b}");

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_made_with_send_reaches_the_queue_through_the_outbox() -> anyhow::Result<()> {
    let app = spawn_app("sales_outbox").await?;
    let pid = product(&app, "PAN", "0.50", 10).await?;
    let mut ids = Vec::new();
    for send in [true, false] {
        let body = json!({"items": [{"product_id": pid, "quantity": 1}], "send": send});
        let (s, b) = app.post("/api/sales", &body.to_string()).await?;
        assert_eq!(s, 201, "{b}");
        ids.push(b["id"].as_i64().unwrap_or_default());
    }
    let sunat = faena_core::QueueName::parse("sunat")?;
    let pool = faena_core::db::create_pool(&app.db.url, 1)?;
    // The api's own relay moves the committed send job; nothing waits in the outbox after it.
    let jobs = faena_testkit::wait_for(
        "the send job in Redis and the outbox empty",
        std::time::Duration::from_secs(10),
        || async {
            let backlog = faena_core::outbox::backlog(&mut *pool.get().await?).await?;
            let jobs = app
                .redis
                .broker
                .list(&sunat, faena_broker::TaskState::Pending, 100)
                .await?;
            Ok((backlog == (0, 0) && !jobs.is_empty()).then_some(jobs))
        },
    )
    .await?;
    let for_sales: Vec<i64> = jobs
        .iter()
        .filter(|j| j.kind == "send_sale_to_sunat")
        .filter_map(|j| j.args["sale_id"].as_i64())
        .collect();
    assert_eq!(for_sales, vec![ids[0]], "only the sale made with send");
    Ok(())
}

/// The id of the product with `sku`.
async fn product_id(app: &common::TestApp, sku: &str) -> anyhow::Result<i64> {
    let (_, list) = app.get("/api/products").await?;
    list.as_array()
        .into_iter()
        .flatten()
        .find(|p| p["sku"] == sku)
        .and_then(|p| p["id"].as_i64())
        .ok_or_else(|| anyhow::anyhow!("no product {sku} in {list}"))
}

async fn stock_of(app: &common::TestApp, id: i64) -> anyhow::Result<i64> {
    let (_, p) = app.get(&format!("/api/products/{id}")).await?;
    p["stock"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no stock in {p}"))
}

#[tokio::test]
async fn a_sale_of_a_product_without_a_price_is_refused_in_our_words() -> anyhow::Result<()> {
    let app = spawn_app("sales_free").await?;
    let ana = app.user_token("ana", Role::Seller).await?;
    let mate = product(&app, "MATE", "10.00", 5).await?;
    // Stored before prices had to be above zero (its sale answered 503 with PostgreSQL's text).
    common::sql(
        &app.db,
        "WITH p AS (INSERT INTO products (sku, name, unit_price) VALUES ('REGALO', 'Regalo', 0.00) \
         RETURNING id, decimal_quantity) \
         INSERT INTO product_stock (product_id, store_id, decimal_quantity, quantity) \
         SELECT p.id, s.id, p.decimal_quantity, 5 FROM p, stores s WHERE s.establishment_code = '0000'",
    )
    .await?;
    let free = product_id(&app, "REGALO").await?;
    let body = json!({"items": [{"product_id": mate, "quantity": 1}, {"product_id": free, "quantity": 1}]});
    let (s, b) = app
        .send_as(
            Some(&ana),
            Method::POST,
            "/api/sales",
            Some(&body.to_string()),
        )
        .await?;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["code"], "invalid_field", "{b}");
    assert_eq!(b["error"]["field"], "items[1].product_id", "{b}");
    let message = b["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("REGALO") && message.contains("has no price"),
        "{b}"
    );
    common::assert_no_database_text(&b);
    assert_eq!(
        (stock_of(&app, mate).await?, stock_of(&app, free).await?),
        (5, 5)
    );

    // From a reservation: the checkout holds it, the sale refuses it.
    let (s, r) = app
        .send_as(
            Some(&ana),
            Method::POST,
            "/api/checkout",
            Some(&json!({"items": [{"product_id": free, "quantity": 2}]}).to_string()),
        )
        .await?;
    assert_eq!(s, 201, "{r}");
    let rid = r["reservation_id"].clone();
    let (s, _) = app
        .send_as(
            Some(&ana),
            Method::POST,
            &format!("/api/reservations/{rid}/confirm"),
            None,
        )
        .await?;
    assert_eq!(s, 200);
    let by_reservation = json!({ "reservation_id": rid }).to_string();
    let (s, b) = app
        .send_as(
            Some(&ana),
            Method::POST,
            "/api/sales",
            Some(&by_reservation),
        )
        .await?;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["field"], "reservation_id", "{b}");
    common::assert_no_database_text(&b);

    // Priced, it sells.
    let (s, b) = app
        .send(
            Method::PATCH,
            &format!("/api/products/{free}"),
            Some(r#"{"unit_price":"2.00"}"#),
        )
        .await?;
    assert_eq!(s, 200, "{b}");
    let (s, sale) = app
        .send_as(
            Some(&ana),
            Method::POST,
            "/api/sales",
            Some(&by_reservation),
        )
        .await?;
    assert_eq!(s, 201, "{sale}");
    assert_eq!(sale["total"], "4.00");
    Ok(())
}

#[tokio::test]
async fn sales_are_listed_by_sunat_deadline_and_bad_filters_name_their_field() -> anyhow::Result<()>
{
    let app = spawn_app("sales_list").await?;
    let ana = app.user_token("ana", Role::Seller).await?;
    let pid = product(&app, "LECHE", "3.80", 10).await?;
    let body = json!({"items": [{"product_id": pid, "quantity": 1}], "send": false}).to_string();
    let (s, mine) = app
        .send_as(Some(&ana), Method::POST, "/api/sales", Some(&body))
        .await?;
    assert_eq!(s, 201, "{mine}");
    let (s, other) = app.post("/api/sales", &body).await?;
    assert_eq!(s, 201, "{other}");

    let (s, all) = app.get("/api/sales?sunat_status=PENDING").await?;
    assert_eq!(s, 200, "{all}");
    assert_eq!(all.as_array().map(Vec::len), Some(2));
    // A boleta issued today is due at the end of the 5th day after it, Lima time.
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::America::Lima)
        .date_naive();
    let due = (today + chrono::Days::new(6))
        .and_hms_opt(5, 0, 0)
        .map(|t| {
            t.and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        });
    assert_eq!(all[0]["sunat_deadline"].as_str().map(str::to_owned), due);
    let (s, none) = app
        .get(&format!(
            "/api/sales?due_before={}",
            today + chrono::Days::new(6)
        ))
        .await?;
    assert_eq!(
        (s, none),
        (200, json!([])),
        "not due before that day starts"
    );
    let (s, some) = app
        .get(&format!(
            "/api/sales?due_before={}",
            today + chrono::Days::new(7)
        ))
        .await?;
    assert_eq!((s, some.as_array().map(Vec::len)), (200, Some(2)));

    let (s, seen) = app
        .send_as(Some(&ana), Method::GET, "/api/sales", None)
        .await?;
    assert_eq!(s, 200);
    let ids: Vec<i64> = seen
        .as_array()
        .map(|a| a.iter().filter_map(|v| v["sale_id"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(
        ids,
        vec![mine["id"].as_i64().unwrap_or_default()],
        "a seller sees her own"
    );

    for (query, field) in [
        ("sunat_status=DONE", "sunat_status"),
        ("due_before=tomorrow", "due_before"),
        ("limit=0", "limit"),
    ] {
        let (s, b) = app.get(&format!("/api/sales?{query}")).await?;
        assert_eq!(
            (s, b["error"]["field"].clone()),
            (400, json!(field)),
            "{query}: {b}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_amount_too_large_for_the_database_is_400_in_our_words() -> anyhow::Result<()> {
    let app = spawn_app("sales_overflow").await?;
    let gold = product(&app, "ORO", "9999999999.99", 1000).await?;
    // 200 x 9999999999.99 does not fit the sale's NUMERIC(14, 2) total: a data exception (22003).
    let body = json!({
        "items": [{"product_id": gold, "quantity": 200}],
        "customer": {"doc_type": "dni", "doc_number": "46027897", "name": "José Pérez"}
    });
    let (s, b) = app.post("/api/sales", &body.to_string()).await?;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["code"], "invalid_value", "{b}");
    assert!(b["error"].get("field").is_none(), "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot store")),
        "{b}"
    );
    common::assert_no_database_text(&b);
    assert_eq!(
        stock_of(&app, gold).await?,
        1000,
        "the sale's transaction took nothing"
    );
    Ok(())
}
