//! `POST /api/sales/{id}/credit-notes` and the notes in `GET /api/sales/{id}`: a bad reason
//! code is a 400 naming `reason_code`, a sale SUNAT has not accepted is a 409 with its status, a
//! partial note answers 201 and returns its units to stock, a note above what is left is a 409
//! with the amount left and changes nothing, another seller's sale is a 403.

mod common;

use common::spawn_app;
use faena_shop::auth::Role;
use reqwest::Method;
use serde_json::{json, Value};

async fn product(app: &common::TestApp, sku: &str, price: &str) -> anyhow::Result<i64> {
    let (s, p) = app
        .post(
            "/api/products",
            &json!({"sku": sku, "name": sku, "unit_price": price, "stock": 50}).to_string(),
        )
        .await?;
    anyhow::ensure!(s == 201, "product: {s} {p}");
    Ok(p["id"].as_i64().unwrap_or_default())
}

async fn stock(app: &common::TestApp, id: i64) -> anyhow::Result<Value> {
    Ok(app.get(&format!("/api/products/{id}")).await?.1["stock"].clone())
}

#[tokio::test]
async fn credit_notes_check_the_sale_and_never_exceed_what_is_left() -> anyhow::Result<()> {
    let app = spawn_app("api_credit_notes").await?;
    let ana = app.user_token("ana", Role::Seller).await?;
    let beto = app.user_token("beto", Role::Seller).await?;
    let inka = product(&app, "INKA", "2.50").await?;
    let pan = product(&app, "PAN", "1.20").await?;
    let body = json!({
        "items": [{"product_id": inka, "quantity": 4}, {"product_id": pan, "quantity": 3}],
        "send": false,
    })
    .to_string();
    let (s, sale) = app
        .send_as(Some(&ana), Method::POST, "/api/sales", Some(&body))
        .await?;
    assert_eq!(s, 201, "{sale}");
    assert_eq!(sale["total"], "13.60");
    let id = sale["id"].as_i64().unwrap_or_default();
    let path = format!("/api/sales/{id}/credit-notes");
    let partial = json!({
        "reason_code": "07", "description": "Devolvió 2 gaseosas",
        "items": [{"product_id": inka, "quantity": 2}],
    })
    .to_string();

    // A reason that is not catálogo 09: 400 naming the field.
    let bad = json!({"reason_code": "99", "description": "x"}).to_string();
    let (s, b) = app
        .send_as(Some(&ana), Method::POST, &path, Some(&bad))
        .await?;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["code"], "invalid_field");
    assert_eq!(b["error"]["field"], "reason_code");
    // A description with a line break: 400 naming it.
    let bad = json!({"reason_code": "06", "description": "a\nb"}).to_string();
    let (s, b) = app.post(&path, &bad).await?;
    assert_eq!(
        (s, b["error"]["field"].clone()),
        (400, json!("description"))
    );

    // Not accepted by SUNAT yet: 409 with the status.
    let (s, b) = app
        .send_as(Some(&ana), Method::POST, &path, Some(&partial))
        .await?;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"]["code"], "conflict");
    assert_eq!(b["error"]["details"]["status"], "PENDING");
    assert_eq!(stock(&app, inka).await?, 46);

    // SUNAT accepted it (as the worker would record).
    common::sql(
        &app.db,
        &format!("UPDATE sales SET sunat_status = 'ACCEPTED' WHERE id = {id}"),
    )
    .await?;
    // Another seller's sale: 403, nothing made.
    let (s, b) = app
        .send_as(Some(&beto), Method::POST, &path, Some(&partial))
        .await?;
    assert_eq!(s, 403, "{b}");

    let (s, n) = app
        .send_as(Some(&ana), Method::POST, &path, Some(&partial))
        .await?;
    assert_eq!(s, 201, "{n}");
    assert_eq!(n["number"], "BC01-1");
    assert_eq!(n["reason_code"], "07");
    assert_eq!(n["reason_label"], "Devolución por ítem");
    assert_eq!(
        (n["subtotal"].clone(), n["igv"].clone(), n["total"].clone()),
        (json!("4.24"), json!("0.76"), json!("5.00"))
    );
    assert_eq!(n["sunat"]["status"], "PENDING");
    assert_eq!(n["items"][0]["quantity"], "2");
    assert_eq!(n["items"][0]["line_total"], "5.00");
    assert_eq!(stock(&app, inka).await?, 48, "its 2 units came back");

    // 2 INKA and 3 PAN are left (8.60): 3 INKA is above it.
    let above = json!({
        "reason_code": "07", "description": "Otra devolución",
        "items": [{"product_id": inka, "quantity": 3}],
    })
    .to_string();
    let (s, b) = app.post(&path, &above).await?;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"]["details"]["remaining"], "8.60");
    assert_eq!(stock(&app, inka).await?, 48, "nothing changed");

    // The sale lists its note with its state, and what is left.
    let (s, v) = app
        .send_as(Some(&ana), Method::GET, &format!("/api/sales/{id}"), None)
        .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["number"], sale["number"], "the sale's own fields stay");
    let notes = v["credit_notes"].as_array().cloned().unwrap_or_default();
    assert_eq!(notes.len(), 1, "{v}");
    assert_eq!(notes[0]["number"], "BC01-1");
    assert_eq!(notes[0]["sunat"]["status"], "PENDING");
    assert_eq!(
        notes[0]["sunat"]["status_label"],
        n["sunat"]["status_label"]
    );
    assert_eq!(
        (v["credited"].clone(), v["remaining"].clone()),
        (json!("5.00"), json!("8.60"))
    );

    // The rest, whole: 8.60, and then nothing is left.
    let (s, w) = app
        .post(
            &path,
            &json!({"reason_code": "06", "description": "Devolución total"}).to_string(),
        )
        .await?;
    assert_eq!(s, 201, "{w}");
    assert_eq!(
        (w["number"].clone(), w["total"].clone()),
        (json!("BC01-2"), json!("8.60"))
    );
    assert_eq!(
        (stock(&app, inka).await?, stock(&app, pan).await?),
        (json!(50), json!(50))
    );
    let (s, b) = app
        .post(
            &path,
            &json!({"reason_code": "01", "description": "Anulación"}).to_string(),
        )
        .await?;
    assert_eq!(
        (s, b["error"]["details"]["remaining"].clone()),
        (409, json!("0.00"))
    );
    common::assert_no_database_text(&b);

    // An unknown sale: 404.
    let (s, _) = app.post("/api/sales/999999/credit-notes", &partial).await?;
    assert_eq!(s, 404);
    Ok(())
}
