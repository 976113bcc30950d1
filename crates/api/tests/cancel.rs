//! `POST /api/sales/{id}/cancel` over HTTP: owner or admin, the reason checked (400 naming
//! `reason`), a sale SUNAT never received cancelled here with its stock back, the same answer
//! twice, an accepted boleta queued for a Resumen Diario, 409 `credit_note_needed` past the
//! window with nothing changed; `GET /api/sunat/summaries` and its query errors.

mod common;

use common::spawn_app;
use faena_shop::auth::Role;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn cancel_a_sale_over_http() -> anyhow::Result<()> {
    let app = spawn_app("cancel_http").await?;
    let ana = app.user_token("ana", Role::Seller).await?;
    let beto = app.user_token("beto", Role::Seller).await?;
    let (s, p) = app
        .post(
            "/api/products",
            r#"{"sku":"CN-1","name":"Galletas","unit_price":"1.50","stock":10}"#,
        )
        .await?;
    assert_eq!(s, 201, "{p}");
    let pid = p["id"].as_i64().unwrap_or_default();
    let make = || async {
        let body =
            json!({"items": [{"product_id": pid, "quantity": 3}], "send": false}).to_string();
        let (s, sale) = app
            .send_as(Some(&ana), Method::POST, "/api/sales", Some(&body))
            .await?;
        anyhow::ensure!(s == 201, "{sale}");
        Ok::<i64, anyhow::Error>(sale["id"].as_i64().unwrap_or_default())
    };
    let stock = || async {
        let (_, p) = app.get(&format!("/api/products/{pid}")).await?;
        Ok::<Value, anyhow::Error>(p["stock"].clone())
    };
    let cancel = |token: String, id: i64, body: Value| {
        let app = &app;
        async move {
            app.send_as(
                Some(&token),
                Method::POST,
                &format!("/api/sales/{id}/cancel"),
                Some(&body.to_string()),
            )
            .await
        }
    };
    let never = make().await?;
    assert_eq!(stock().await?, 7);
    let reason = json!({"reason": "Cliente se arrepintió"});

    let (s, b) = cancel(beto.clone(), never, reason.clone()).await?;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (403, json!("forbidden")),
        "{b}"
    );
    let (s, b) = cancel(ana.clone(), never, json!({"reason": "no"})).await?;
    assert_eq!(
        (s, b["error"]["field"].clone()),
        (400, json!("reason")),
        "{b}"
    );
    let (s, b) = cancel(ana.clone(), never, json!({"reason": "ok ok", "extra": 1})).await?;
    assert_eq!(s, 400, "{b}");
    let (s, b) = cancel(ana.clone(), 999_999, reason.clone()).await?;
    assert_eq!(s, 404, "{b}");
    assert_eq!(stock().await?, 7, "nothing refused changed the stock");

    let (s, first) = cancel(ana.clone(), never, reason.clone()).await?;
    assert_eq!(s, 200, "{first}");
    assert_eq!(
        (
            first["sunat_action"].clone(),
            first["sunat_state"].clone(),
            first["reason"].clone()
        ),
        (json!("NONE"), json!("NONE"), json!("Cliente se arrepintió"))
    );
    assert_eq!(stock().await?, 10, "its 3 units are back");
    let (s, again) = cancel(app.admin_token.clone(), never, json!({"reason": "otra"})).await?;
    assert_eq!(
        (s, &again),
        (200, &first),
        "the same answer, the first reason"
    );
    assert_eq!(stock().await?, 10, "given back once");
    let (_, v) = app.get(&format!("/api/sales/{never}")).await?;
    assert_eq!(v["is_cancelled"], true);
    assert_eq!(v["cancellation"], first);
    assert_eq!(v["summaries"], json!([]));

    // Accepted by SUNAT (set here; the worker's tests send for real): a Resumen Diario line.
    let accepted = make().await?;
    let late = make().await?;
    common::sql(
        &app.db,
        &format!("UPDATE sales SET sunat_status = 'ACCEPTED' WHERE id IN ({accepted}, {late})"),
    )
    .await?;
    common::sql(
        &app.db,
        &format!("UPDATE sales SET issue_date = issue_date - 10 WHERE id = {late}"),
    )
    .await?;
    let (s, b) = cancel(ana.clone(), accepted, reason.clone()).await?;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["sunat_action"].clone(), b["sunat_state"].clone()),
        (json!("RESUMEN"), json!("QUEUED"))
    );
    let (s, b) = cancel(ana.clone(), late, reason.clone()).await?;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"]["code"], "conflict");
    assert_eq!(b["error"]["details"]["reason"], "credit_note_needed");
    assert_eq!(b["error"]["details"]["status"], "ACCEPTED");
    assert!(
        b["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nota de crédito")),
        "{b}"
    );
    assert_eq!(
        stock().await?,
        10 - 3 - 3 + 3,
        "the late sale kept its units"
    );

    let (s, list) = app.get("/api/sunat/summaries").await?;
    assert_eq!((s, list), (200, json!([])), "nothing built yet");
    let (s, b) = app.get("/api/sunat/summaries?kind=RX").await?;
    assert_eq!(
        (s, b["error"]["field"].clone()),
        (400, json!("kind")),
        "{b}"
    );
    let (s, b) = app.get("/api/sunat/summaries?state=DONE").await?;
    assert_eq!(
        (s, b["error"]["field"].clone()),
        (400, json!("state")),
        "{b}"
    );
    Ok(())
}
