//! `POST /api/sales/{id}/cancel` over HTTP: owner or admin, the reason checked (400 naming
//! `reason`), a sale SUNAT never received cancelled here with its stock back, the same answer
//! twice, an accepted boleta queued for a Resumen Diario; a sale SUNAT accepted, past the voiding
//! window, cancelled with a whole credit note that a real worker sends to sunat-sim, its stock
//! back once and the note in `GET /api/sales/{id}`; `GET /api/sunat/summaries` and its query
//! errors.

mod common;

use std::time::Duration;

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
    common::sql(
        &app.db,
        &format!("UPDATE sales SET sunat_status = 'ACCEPTED' WHERE id = {accepted}"),
    )
    .await?;
    let (s, b) = cancel(ana.clone(), accepted, reason.clone()).await?;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["sunat_action"].clone(), b["sunat_state"].clone()),
        (json!("RESUMEN"), json!("QUEUED"))
    );
    assert_eq!(stock().await?, 10, "its 3 units are back");

    // Credit notes gave units back already: a cancellation gives back only what is left, and
    // one past the window of a sale credited in full has nothing left to cancel (409).
    let note = |id: i64, body: Value| {
        let app = &app;
        async move {
            app.post(&format!("/api/sales/{id}/credit-notes"), &body.to_string())
                .await
        }
    };
    let partial = make().await?;
    let full = make().await?;
    common::sql(
        &app.db,
        &format!("UPDATE sales SET sunat_status = 'ACCEPTED' WHERE id IN ({partial}, {full})"),
    )
    .await?;
    common::sql(
        &app.db,
        &format!("UPDATE sales SET issue_date = issue_date - 10 WHERE id = {full}"),
    )
    .await?;
    assert_eq!(stock().await?, 4);
    let (s, b) = note(
        partial,
        json!({"reason_code": "07", "description": "Devolvió una",
               "items": [{"product_id": pid, "quantity": 1}]}),
    )
    .await?;
    assert_eq!(s, 201, "{b}");
    let (s, b) = note(
        full,
        json!({"reason_code": "06", "description": "Devolvió todo"}),
    )
    .await?;
    assert_eq!(s, 201, "{b}");
    assert_eq!(stock().await?, 4 + 1 + 3);
    let (s, b) = cancel(ana.clone(), partial, reason.clone()).await?;
    assert_eq!((s, &b["sunat_action"]), (200, &json!("RESUMEN")), "{b}");
    assert_eq!(stock().await?, 10, "the 2 units its note left");
    let (s, b) = cancel(ana.clone(), full, reason.clone()).await?;
    assert_eq!(
        (
            s,
            &b["error"]["details"]["reason"],
            &b["error"]["details"]["status"]
        ),
        (409, &json!("credited_in_full"), &json!("ACCEPTED")),
        "{b}"
    );
    assert_eq!(stock().await?, 10, "nothing changed");
    let (_, v) = app.get(&format!("/api/sales/{full}")).await?;
    assert_eq!(
        (
            &v["is_cancelled"],
            &v["credit_notes"].as_array().map(Vec::len)
        ),
        (&json!(false), &Some(1)),
        "{v}"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_past_the_window_is_cancelled_with_a_credit_note_sunat_accepts() -> anyhow::Result<()>
{
    let app = spawn_app("cancel_note").await?;
    let sunat = app.sunat_worker().await?;
    let ana = app.user_token("ana", Role::Seller).await?;
    let (s, p) = app
        .post(
            "/api/products",
            r#"{"sku":"CN-2","name":"Leche","unit_price":"2.50","stock":10}"#,
        )
        .await?;
    assert_eq!(s, 201, "{p}");
    let pid = p["id"].as_i64().unwrap_or_default();
    let stock = || async {
        let (_, p) = app.get(&format!("/api/products/{pid}")).await?;
        Ok::<Value, anyhow::Error>(p["stock"].clone())
    };
    let body = json!({"items": [{"product_id": pid, "quantity": 4}], "send": true}).to_string();
    let (s, sale) = app
        .send_as(Some(&ana), Method::POST, "/api/sales", Some(&body))
        .await?;
    assert_eq!(s, 201, "{sale}");
    let id = sale["id"].as_i64().unwrap_or_default();
    let path = format!("/api/sales/{id}");
    let status = |v: &Value| v["sunat"]["status"].as_str().map(str::to_owned);
    let sent = faena_testkit::wait_for(
        "the sale to be decided",
        Duration::from_secs(60),
        || async {
            let (_, v) = app.get(&path).await?;
            Ok(matches!(
                status(&v).as_deref(),
                Some("ACCEPTED" | "REJECTED" | "ERROR" | "CONFLICT")
            )
            .then_some(v))
        },
    )
    .await?;
    assert_eq!(status(&sent).as_deref(), Some("ACCEPTED"), "{sent}");
    assert_eq!(stock().await?, 6);
    // Issued 10 days ago: past the 6th day, a baja or an RC line would reach SUNAT too late.
    common::sql(
        &app.db,
        &format!("UPDATE sales SET issue_date = issue_date - 10 WHERE id = {id}"),
    )
    .await?;

    let cancel = |token: String, reason: &'static str| {
        let (app, path) = (&app, &path);
        async move {
            app.send_as(
                Some(&token),
                Method::POST,
                &format!("{path}/cancel"),
                Some(&json!({ "reason": reason }).to_string()),
            )
            .await
        }
    };
    let (s, first) = cancel(ana.clone(), "Cliente devolvió la leche").await?;
    assert_eq!(s, 200, "{first}");
    assert_eq!(
        (
            &first["sunat_action"],
            &first["sunat_state"],
            &first["credit_note"]["number"],
        ),
        (&json!("CREDIT_NOTE"), &json!("NONE"), &json!("BC01-1")),
        "{first}"
    );
    // The note is queued with the cancellation, so the worker may already be sending it (or have
    // it accepted) when the answer is read: each state the note can be in, with its own words.
    let label = match first["credit_note"]["status"].as_str() {
        Some("PENDING" | "SENDING") => {
            "Anulada con una nota de crédito; su envío a SUNAT está en curso"
        }
        Some("ACCEPTED") => "Anulada con una nota de crédito aceptada por SUNAT",
        other => anyhow::bail!(
            "a fresh credit note is PENDING, SENDING or ACCEPTED, not {other:?}: {first}"
        ),
    };
    assert_eq!(first["sunat_label"], json!(label), "{first}");
    assert_eq!(stock().await?, 10, "the 4 units back, by the note alone");

    // The note, queued with the cancellation, is sent by the worker and accepted by sunat-sim.
    let done = faena_testkit::wait_for(
        "the note to be decided",
        Duration::from_secs(60),
        || async {
            let (_, v) = app.get(&path).await?;
            Ok(matches!(
                v["credit_notes"][0]["sunat"]["status"].as_str(),
                Some("ACCEPTED" | "REJECTED" | "ERROR" | "CONFLICT")
            )
            .then_some(v))
        },
    )
    .await?;
    let note = &done["credit_notes"][0];
    assert_eq!(
        (
            &note["sunat"]["status"],
            &note["number"],
            &note["reason_code"],
            &note["description"],
            &note["total"],
            &note["items"][0]["quantity"],
        ),
        (
            &json!("ACCEPTED"),
            &json!("BC01-1"),
            &json!("01"),
            &json!("Cliente devolvió la leche"),
            &json!("10.00"),
            &json!("4"),
        ),
        "{done}"
    );
    assert_eq!(done["credit_notes"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        (
            &done["is_cancelled"],
            &done["sunat"]["status"],
            &done["credited"],
            &done["remaining"]
        ),
        (
            &json!(true),
            &json!("ACCEPTED"),
            &json!("10.00"),
            &json!("0.00")
        ),
        "the receipt stays accepted, credited in full: {done}"
    );
    assert_eq!(sunat.sim.state.calls_for("20100066603-07-BC01-1.zip"), 1);

    // Twice: the same cancellation, its note's state as it is now; no second note, no stock.
    let mut expected = first.clone();
    expected["credit_note"]["status"] = json!("ACCEPTED");
    expected["sunat_label"] = json!("Anulada con una nota de crédito aceptada por SUNAT");
    assert_eq!(done["cancellation"], expected);
    let (s, again) = cancel(app.admin_token.clone(), "Otro motivo").await?;
    assert_eq!((s, &again), (200, &expected));
    assert_eq!(stock().await?, 10, "given back once");
    let (_, after) = app.get(&path).await?;
    assert_eq!(after["credit_notes"].as_array().map(Vec::len), Some(1));
    sunat.stop().await;
    Ok(())
}
