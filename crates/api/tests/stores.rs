//! `/api/stores` and stores in sales over real PostgreSQL and Redis: a store's fields are checked
//! with 400s naming the field and 409s for what another store holds; a seller sells in their own
//! store and cannot sell as another (403), an admin may name any active store, a disabled store
//! cannot sell (409); `GET /api/insights?store=` and `POST /api/insights/refresh`, whose
//! fan-out a production worker completes.

mod common;

use std::time::Duration;

use common::{spawn_app, TestApp};
use faena_shop::auth::Role;
use faena_shop::stores::{self, StoreKey};
use faena_testkit::wait_for;
use reqwest::Method;
use serde_json::{json, Value};

fn store_body(code: &str, establishment: &str, n: u32) -> Value {
    json!({
        "code": code, "name": format!("Tienda {code}"), "establishment_code": establishment,
        "boleta_series": format!("B{n:03}"), "factura_series": format!("F{n:03}"),
        "boleta_note_series": format!("BC{n:02}"), "factura_note_series": format!("FC{n:02}"),
    })
}

async fn add_store(app: &TestApp, code: &str, establishment: &str, n: u32) -> anyhow::Result<i64> {
    let (s, b) = app
        .post(
            "/api/stores",
            &store_body(code, establishment, n).to_string(),
        )
        .await?;
    anyhow::ensure!(s == 201, "store {code}: {s} {b}");
    Ok(b["id"].as_i64().unwrap_or_default())
}

async fn product(app: &TestApp) -> anyhow::Result<i64> {
    let (s, p) = app
        .post(
            "/api/products",
            r#"{"sku": "AGUA", "name": "Agua 625 ml", "unit_price": "1.50", "stock": 100}"#,
        )
        .await?;
    anyhow::ensure!(s == 201, "product: {s} {p}");
    Ok(p["id"].as_i64().unwrap_or_default())
}

/// Puts user `name` in store `code` (what `faena users set-store` does).
async fn move_user(app: &TestApp, name: &str, code: &str) -> anyhow::Result<()> {
    let pool = faena_core::db::create_pool(&app.db.url, 1)?;
    stores::set_user_store(&mut *pool.get().await?, name, &StoreKey::Code(code.into())).await?;
    Ok(())
}

#[tokio::test]
async fn stores_are_checked_field_by_field() -> anyhow::Result<()> {
    let app = spawn_app("stores_fields").await?;
    let (s, list) = app.get("/api/stores").await?;
    assert_eq!(s, 200, "{list}");
    assert_eq!(
        list.as_array().map(|l| l
            .iter()
            .map(|st| (
                st["code"].clone(),
                st["establishment_code"].clone(),
                st["boleta_series"].clone(),
                st["factura_series"].clone(),
                st["boleta_note_series"].clone(),
                st["factura_note_series"].clone(),
                st["active"].clone()
            ))
            .collect::<Vec<_>>()),
        Some(vec![(
            json!("principal"),
            json!("0000"),
            json!("B001"),
            json!("F001"),
            json!("BC01"),
            json!("FC01"),
            json!(true)
        )]),
        "the migration's main store"
    );

    let with = |field: &str, value: Value| {
        let mut b = store_body("lima", "0001", 2);
        b[field] = value;
        b.to_string()
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (
            with("establishment_code", json!("001")),
            "invalid_field",
            "establishment_code",
        ),
        (
            with("establishment_code", json!("00012")),
            "invalid_field",
            "establishment_code",
        ),
        (
            with("establishment_code", json!("00A1")),
            "invalid_field",
            "establishment_code",
        ),
        (
            with("establishment_code", json!(1)),
            "invalid_field",
            "establishment_code",
        ),
        (
            with("boleta_series", json!("b002")),
            "invalid_field",
            "boleta_series",
        ),
        (
            with("boleta_series", json!("F002")),
            "invalid_field",
            "boleta_series",
        ),
        (
            with("boleta_series", json!("B02")),
            "invalid_field",
            "boleta_series",
        ),
        (
            with("boleta_series", json!("B0-2")),
            "invalid_field",
            "boleta_series",
        ),
        (
            with("factura_series", json!("B002")),
            "invalid_field",
            "factura_series",
        ),
        (
            with("factura_note_series", json!("F002")),
            "invalid_field",
            "factura_note_series",
        ),
        (
            with("boleta_note_series", json!("FC02")),
            "invalid_field",
            "boleta_note_series",
        ),
        (with("code", json!("Lima")), "invalid_field", "code"),
        (with("code", json!("l")), "invalid_field", "code"),
        (with("name", json!("  ")), "invalid_field", "name"),
        (with("name", json!("Lima\nCentro")), "invalid_field", "name"),
        (with("ruc", json!("20100066603")), "unknown_field", "ruc"),
        (
            json!({"code": "lima", "name": "Lima", "establishment_code": "0001"}).to_string(),
            "missing_field",
            "boleta_series",
        ),
    ];
    for (body, code, field) in &cases {
        let (s, b) = app.post("/api/stores", body).await?;
        assert_eq!(
            (s, b["error"]["code"].as_str(), b["error"]["field"].as_str()),
            (400, Some(*code), Some(*field)),
            "{body} -> {b}"
        );
    }

    // What another store holds is a 409 naming the field.
    let conflicts: Vec<(String, &str)> = vec![
        (with("boleta_series", json!("B001")), "boleta_series"),
        (
            with("factura_note_series", json!("FC01")),
            "factura_note_series",
        ),
        (
            with("establishment_code", json!("0000")),
            "establishment_code",
        ),
        (with("code", json!("principal")), "code"),
    ];
    for (body, field) in &conflicts {
        let (s, b) = app.post("/api/stores", body).await?;
        assert_eq!(s, 409, "{body} -> {b}");
        let message = b["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("`{field}`")), "{b}");
    }
    // A store's boleta series cannot be another store's note series either.
    let (s, b) = app
        .post("/api/stores", &with("boleta_series", json!("BC01")))
        .await?;
    assert_eq!(s, 409, "{b}");

    let lima = add_store(&app, "lima", "0001", 2).await?;
    let (s, b) = app.get("/api/stores/lima").await?;
    assert_eq!((s, b["id"].as_i64()), (200, Some(lima)), "{b}");
    let (s, b) = app.get("/api/stores/Lima!").await?;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (400, Some("store")),
        "{b}"
    );
    let (s, _) = app.get("/api/stores/cusco").await?;
    assert_eq!(s, 404);

    // PATCH: only the fields given; the same checks; the main store keeps 0000.
    let (s, b) = app
        .send(
            Method::PATCH,
            &format!("/api/stores/{lima}"),
            Some(r#"{"name": "Lima Centro", "boleta_series": "B012"}"#),
        )
        .await?;
    assert_eq!(
        (
            s,
            b["name"].as_str(),
            b["boleta_series"].as_str(),
            b["factura_series"].as_str()
        ),
        (200, Some("Lima Centro"), Some("B012"), Some("F002")),
        "{b}"
    );
    let patches: Vec<(&str, &str, u16, Option<&str>)> = vec![
        (
            "lima",
            r#"{"factura_series": "F01"}"#,
            400,
            Some("factura_series"),
        ),
        (
            "lima",
            r#"{"establishment_code": "1"}"#,
            400,
            Some("establishment_code"),
        ),
        ("lima", r#"{"code": "lima2"}"#, 400, Some("code")),
        ("lima", r#"{"active": "no"}"#, 400, Some("active")),
        ("lima", r#"{"factura_series": "F001"}"#, 409, None),
        ("principal", r#"{"establishment_code": "0009"}"#, 409, None),
    ];
    for (store, body, status, field) in patches {
        let (s, b) = app
            .send(Method::PATCH, &format!("/api/stores/{store}"), Some(body))
            .await?;
        assert_eq!(
            (s, b["error"]["field"].as_str()),
            (status, field),
            "{store} {body} -> {b}"
        );
        common::assert_no_database_text(&b);
    }

    // Sellers may not manage stores.
    let seller = app.user_token("caja", Role::Seller).await?;
    let (s, _) = app
        .send_as(Some(&seller), Method::GET, "/api/stores", None)
        .await?;
    assert_eq!(s, 403);
    let (s, _) = app
        .send_as(
            Some(&seller),
            Method::POST,
            "/api/stores",
            Some(&store_body("cusco", "0002", 3).to_string()),
        )
        .await?;
    assert_eq!(s, 403);
    Ok(())
}

#[tokio::test]
async fn a_seller_sells_in_their_store_and_cannot_sell_as_another() -> anyhow::Result<()> {
    let app = spawn_app("stores_sell").await?;
    let lima = add_store(&app, "lima", "0001", 2).await?;
    let cusco = add_store(&app, "cusco", "0002", 3).await?;
    let pid = product(&app).await?;
    // Each store sells its own stock: lima and cusco get 10 each.
    for store in [lima, cusco] {
        let (s, b) = app
            .send(
                Method::PATCH,
                &format!("/api/products/{pid}"),
                Some(&json!({"stock": 10, "store_id": store}).to_string()),
            )
            .await?;
        assert_eq!(s, 200, "{b}");
    }
    let ana = app.user_token("ana", Role::Seller).await?;
    move_user(&app, "ana", "lima").await?;
    let sell = |token: Option<&str>, extra: Value| {
        let mut body = json!({"items": [{"product_id": pid, "quantity": 1}], "send": false});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let token = token.map(str::to_owned);
        let app = &app;
        async move {
            app.send_as(
                token.as_deref(),
                Method::POST,
                "/api/sales",
                Some(&body.to_string()),
            )
            .await
        }
    };

    // Ana sells in her store, on its series, and may name it.
    let (s, b) = sell(Some(&ana), json!({})).await?;
    assert_eq!(
        (s, b["store_id"].as_i64(), b["number"].as_str()),
        (201, Some(lima), Some("B002-1")),
        "{b}"
    );
    let (s, b) = sell(Some(&ana), json!({"store_id": lima})).await?;
    assert_eq!((s, b["number"].as_str()), (201, Some("B002-2")), "{b}");
    // ...but not as another store, whichever: 403, and nothing sold.
    for other in [cusco, 1] {
        let (s, b) = sell(Some(&ana), json!({"store_id": other})).await?;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{b}"
        );
    }
    // A series that is not her store's: 400 naming `series`.
    let (s, b) = sell(Some(&ana), json!({"series": "B003"})).await?;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (400, Some("series")),
        "{b}"
    );

    // The admin (of the main store) sells there by default, and anywhere by naming it.
    let admin = app.admin_token.clone();
    let (s, b) = sell(Some(&admin), json!({})).await?;
    assert_eq!((s, b["number"].as_str()), (201, Some("B001-1")), "{b}");
    let (s, b) = sell(
        Some(&admin),
        json!({"store_id": cusco, "doc_type": "factura",
        "customer": {"doc_type": "ruc", "doc_number": "20131312955", "name": "SUNAT"}}),
    )
    .await?;
    assert_eq!(
        (s, b["store_id"].as_i64(), b["number"].as_str()),
        (201, Some(cusco), Some("F003-1")),
        "{b}"
    );
    let cusco_sale = b["id"].as_i64().unwrap_or_default();
    let (s, b) = sell(Some(&admin), json!({"store_id": 999})).await?;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (400, Some("store_id")),
        "{b}"
    );
    let (s, b) = sell(Some(&admin), json!({"store_id": "lima"})).await?;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (400, Some("store_id")),
        "{b}"
    );

    // A disabled store cannot sell: 409 for its seller and for an admin naming it.
    let (s, _) = app
        .send(
            Method::PATCH,
            "/api/stores/lima",
            Some(r#"{"active": false}"#),
        )
        .await?;
    assert_eq!(s, 200);
    let (s, b) = sell(Some(&ana), json!({})).await?;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{b}"
    );
    let (s, b) = sell(Some(&admin), json!({"store_id": lima})).await?;
    assert_eq!(s, 409, "{b}");
    let (_, p) = app.get(&format!("/api/products/{pid}")).await?;
    assert_eq!(p["stock"], 116, "only the 4 sales made took stock: {p}");
    assert_eq!(
        p["by_store"],
        json!([
            {"store_id": 1, "store_code": "principal", "stock": 99},
            {"store_id": lima, "store_code": "lima", "stock": 8},
            {"store_id": cusco, "store_code": "cusco", "stock": 9}
        ]),
        "each sale took its own store's stock"
    );

    // The sale says its store when read back.
    let (s, b) = app.get(&format!("/api/sales/{cusco_sale}")).await?;
    assert_eq!(
        (s, b["store_id"].as_i64(), b["number"].as_str()),
        (200, Some(cusco), Some("F003-1")),
        "{b}"
    );
    // A store's series that its sales used cannot go to another store.
    let (s, b) = app
        .send(
            Method::PATCH,
            "/api/stores/lima",
            Some(r#"{"boleta_series": "B022"}"#),
        )
        .await?;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app
        .send(
            Method::PATCH,
            "/api/stores/cusco",
            Some(r#"{"boleta_series": "B002"}"#),
        )
        .await?;
    assert_eq!(s, 409, "B002 was lima's: {b}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_starts_the_fan_out_and_a_worker_completes_it() -> anyhow::Result<()> {
    let app = spawn_app("stores_refresh").await?;
    let lima = add_store(&app, "lima", "0001", 2).await?;
    let pid = product(&app).await?;
    // Stock is per store: Lima gets its own.
    common::sql(
        &app.db,
        &format!(
            "INSERT INTO product_stock (product_id, store_id, decimal_quantity, quantity) \
             SELECT id, {lima}, decimal_quantity, 10 FROM products WHERE id = {pid}"
        ),
    )
    .await?;
    let (s, b) = app
        .post(
            "/api/sales",
            &json!({"items": [{"product_id": pid, "quantity": 2}], "store_id": lima, "send": false})
                .to_string(),
        )
        .await?;
    assert_eq!(s, 201, "{b}");

    let (s, started) = app.post("/api/insights/refresh", "").await?;
    assert_eq!(s, 202, "{started}");
    let wf = started["workflow_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        started["task_ids"].as_array().map(Vec::len),
        Some(3),
        "two stores and the summary: {started}"
    );
    let seller = app.user_token("caja", Role::Seller).await?;
    let (s, _) = app
        .send_as(Some(&seller), Method::POST, "/api/insights/refresh", None)
        .await?;
    assert_eq!(s, 403);

    let settings = common::settings(&app.db, &app.redis.url, &app.redis.prefix)?;
    let pool = faena_core::db::create_pool(&app.db.url, 4)?;
    let broker = app.redis.broker.clone();
    let worker = faena_worker::spawn(
        broker.clone(),
        faena_worker::Handlers::production(pool, broker, &settings),
        faena_worker::WorkerConfig {
            queues: vec![faena_core::QueueName::default_queue()],
            concurrency: 4,
            stop_timeout: Duration::from_secs(10),
            upkeep_interval: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(1),
            unknown_kind_grace: Duration::from_secs(900),
        },
    );
    let done = wait_for("the fan-out to end", Duration::from_secs(30), || async {
        let (_, rec) = app.get(&format!("/api/workflows/{wf}")).await?;
        Ok((rec["state"] != "RUNNING").then_some(rec))
    })
    .await?;
    worker.shutdown().await;
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    assert_eq!(done["callback"]["state"], "SUCCEEDED", "{done}");

    let (s, list) = app.get("/api/insights?kind=insights_summary").await?;
    assert_eq!(s, 200, "{list}");
    let data = &list[0]["data"];
    assert_eq!(
        (
            data["stores"].clone(),
            data["failed"].clone(),
            data["sales"].clone(),
            data["revenue"].clone()
        ),
        (json!(2), json!([]), json!(1), json!("3.00")),
        "{list}"
    );
    let (s, lima_list) = app.get("/api/insights?store=lima").await?;
    assert_eq!(s, 200);
    let kinds: Vec<(&str, i64, i64)> = lima_list
        .as_array()
        .map(|l| {
            l.iter()
                .map(|i| {
                    (
                        i["kind"].as_str().unwrap_or_default(),
                        i["store_id"].as_i64().unwrap_or_default(),
                        i["data"]["summary"]["sales"].as_i64().unwrap_or(-1),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(kinds, vec![("store_insights", lima, 1)], "{lima_list}");
    let (s, main_list) = app.get("/api/insights?store=1").await?;
    assert_eq!(
        (s, main_list[0]["data"]["summary"]["sales"].as_i64()),
        (200, Some(0))
    );
    let (s, b) = app.get("/api/insights?store=nowhere").await?;
    assert_eq!(s, 404, "{b}");
    let (s, b) = app.get("/api/insights?store=Lima%20Centro").await?;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (400, Some("store")),
        "{b}"
    );
    Ok(())
}

#[tokio::test]
async fn the_series_settings_set_the_main_store_only_until_it_issues() -> anyhow::Result<()> {
    let db = faena_testkit::TestDb::new("stores_settings").await?;
    let redis = faena_testkit::TestRedis::new("stores_settings")?;
    let first = common::settings_with(
        &db,
        &redis.url,
        &redis.prefix,
        &[("FAENA_BOLETA_SERIES", "B007")],
    )?;
    let restarted = common::settings_with(
        &db,
        &redis.url,
        &redis.prefix,
        &[
            ("FAENA_BOLETA_SERIES", "B009"),
            ("FAENA_FACTURA_SERIES", "F009"),
        ],
    )?;
    let app = TestApp::start(db, redis, &first).await?;
    let (_, main) = app.get("/api/stores/principal").await?;
    assert_eq!(
        (
            main["boleta_series"].as_str(),
            main["factura_series"].as_str()
        ),
        (Some("B007"), Some("F001")),
        "nothing issued: the main store takes the setting"
    );
    let pid = product(&app).await?;
    let (s, b) = app
        .post(
            "/api/sales",
            &json!({"items": [{"product_id": pid, "quantity": 1}], "send": false}).to_string(),
        )
        .await?;
    assert_eq!((s, b["number"].as_str()), (201, Some("B007-1")), "{b}");

    // Another start with other settings: the boleta series was used and stays; the factura
    // series, unused, follows the setting.
    let again = faena_api::Application::build(&restarted).await?;
    drop(again);
    let (_, main) = app.get("/api/stores/principal").await?;
    assert_eq!(
        (
            main["boleta_series"].as_str(),
            main["factura_series"].as_str()
        ),
        (Some("B007"), Some("F009")),
        "{main}"
    );
    Ok(())
}
