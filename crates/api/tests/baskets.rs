//! Real shop baskets (issue 16) through the api: products with their IGV affectation, unit,
//! ICBPER and decimal quantities, strict validation naming the field, checkout lines with their
//! terms, and a mixed basket (gravado, exonerado, inafecto, a free gift, a discounted line,
//! 1.250 kg of a weighed product, plastic bags) sold as a boleta and a factura, sent by a real
//! worker to sunat-sim: totals equal a computation by hand, the XML validates and its signature
//! verifies, the PDF shows every line, and the weighed product's stock goes down exactly.

mod common;
// The schema and signature checks the SUNAT tests use (xmllint, xmlsec1), one copy.
#[path = "../../sunat/tests/common/mod.rs"]
mod sunat_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::spawn_app;
use faena_testkit::wait_for;
use serde_json::{json, Value};

async fn product(app: &common::TestApp, body: Value) -> anyhow::Result<Value> {
    let (s, p) = app.post("/api/products", &body.to_string()).await?;
    anyhow::ensure!(s == 201, "product: {s} {p}");
    Ok(p)
}

#[tokio::test]
async fn product_taxation_fields_are_validated_and_default_to_gravado_niu() -> anyhow::Result<()> {
    let app = spawn_app("basket_products").await?;
    let p = product(
        &app,
        json!({"sku": "ACE", "name": "Aceite", "unit_price": "10.50", "stock": 5}),
    )
    .await?;
    assert_eq!(
        (&p["igv_affectation"], &p["unit_code"], &p["icbper"]),
        (&json!("10"), &json!("NIU"), &json!(false))
    );
    let p = product(
        &app,
        json!({"sku": "PAP", "name": "Papaya", "unit_price": "3.00", "stock": 5,
               "igv_affectation": "20", "unit_code": "KGM"}),
    )
    .await?;
    assert_eq!(
        (&p["igv_affectation"], &p["unit_code"]),
        (&json!("20"), &json!("KGM"))
    );

    for (field, value) in [
        ("igv_affectation", json!("99")),
        ("igv_affectation", json!("40")),
        ("unit_code", json!("XYZ")),
        ("unit_code", json!("kgm")),
    ] {
        let mut body = json!({"sku": "BAD", "name": "Malo", "unit_price": "1.00", "stock": 1});
        body[field] = value.clone();
        let (s, b) = app.post("/api/products", &body.to_string()).await?;
        assert_eq!(s, 400, "{field} {value}: {b}");
        assert_eq!(b["error"]["code"], "invalid_field", "{b}");
        assert_eq!(b["error"]["field"], field, "{b}");
    }
    let id = p["id"].as_i64().unwrap_or_default();
    let (s, b) = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/products/{id}"),
            Some(&json!({"igv_affectation": "3O"}).to_string()),
        )
        .await?;
    assert_eq!(
        (s, &b["error"]["field"]),
        (400, &json!("igv_affectation")),
        "{b}"
    );
    let (s, b) = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/products/{id}"),
            Some(&json!({"igv_affectation": "30", "icbper": true}).to_string()),
        )
        .await?;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (&b["igv_affectation"], &b["icbper"]),
        (&json!("30"), &json!(true))
    );
    let (_, list) = app.get("/api/products").await?;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(2),
        "nothing bad was stored"
    );
    Ok(())
}

#[tokio::test]
async fn a_mixed_basket_sale_adds_up_by_hand() -> anyhow::Result<()> {
    let app = spawn_app("basket_sale").await?;
    let mut ids = Vec::new();
    for body in [
        json!({"sku": "ACE", "name": "Aceite vegetal 1 L", "unit_price": "10.50", "stock": 9}),
        json!({"sku": "PAP", "name": "Papaya fresca", "unit_price": "3.00", "stock": 9, "igv_affectation": "20"}),
        json!({"sku": "LIB", "name": "Libro escolar", "unit_price": "25.00", "stock": 9, "igv_affectation": "30"}),
        json!({"sku": "LLA", "name": "Llavero", "unit_price": "5.90", "stock": 9}),
        json!({"sku": "INK", "name": "Inca Kola 1.5 L", "unit_price": "6.50", "stock": 9}),
        json!({"sku": "BOL", "name": "Bolsa", "unit_price": "0.10", "stock": 9, "icbper": true}),
    ] {
        ids.push(product(&app, body).await?["id"].clone());
    }
    let items = json!([
        {"product_id": ids[0], "quantity": 1},
        {"product_id": ids[1], "quantity": 2},
        {"product_id": ids[2], "quantity": 1},
        {"product_id": ids[3], "quantity": 1, "free": true},
        {"product_id": ids[4], "quantity": 2, "discount": {"percent": "10"}},
        {"product_id": ids[5], "quantity": 2},
    ]);

    // Bad lines are refused naming the field, and take nothing.
    for (line, patch, field) in [
        (
            4,
            json!({"discount": {"percent": "150"}}),
            "items[4].discount",
        ),
        (
            4,
            json!({"discount": {"amount": "13.00"}}),
            "items[4].discount",
        ),
        (
            4,
            json!({"discount": {"amount": "1.505"}}),
            "items[4].discount",
        ),
        (3, json!({"discount": {"amount": "1.00"}}), "items[3].free"),
    ] {
        let mut bad = items.clone();
        for (k, v) in patch.as_object().into_iter().flatten() {
            bad[line][k] = v.clone();
        }
        let (s, b) = app
            .post("/api/sales", &json!({"items": bad}).to_string())
            .await?;
        assert_eq!(s, 400, "{patch}: {b}");
        assert_eq!(b["error"]["field"], field, "{patch}: {b}");
    }

    let (s, sale) = app
        .post("/api/sales", &json!({"items": items}).to_string())
        .await?;
    assert_eq!(s, 201, "{sale}");
    // By hand (IGV 18%, ICBPER 0.50 a bag since 2023):
    // gravado: aceite 10.50 -> 8.90 + 1.60; Inca Kola 13.00 - 10% = 11.70 -> 9.92 + 1.78;
    //          bolsas 0.20 -> 0.17 + 0.03 and ICBPER 1.00
    // exonerado 6.00, inafecto 25.00, llavero free (charged 0.00)
    // subtotal 18.99 + 6.00 + 25.00 = 49.99; IGV 3.41; total 49.99 + 3.41 + 1.00 = 54.40.
    assert_eq!(
        (&sale["subtotal"], &sale["igv"], &sale["total"]),
        (&json!("49.99"), &json!("3.41"), &json!("54.40"))
    );
    let lines: Vec<(Value, Value, Value, Value, Value)> = sale["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                i["igv_affectation"].clone(),
                i["value"].clone(),
                i["igv"].clone(),
                i["icbper_amount"].clone(),
                i["line_total"].clone(),
            )
        })
        .collect();
    let l = |a: &str, v: &str, i: &str, b: &str, t: &str| {
        (json!(a), json!(v), json!(i), json!(b), json!(t))
    };
    assert_eq!(
        lines,
        [
            l("10", "8.90", "1.60", "0.00", "10.50"),
            l("20", "6.00", "0.00", "0.00", "6.00"),
            l("30", "25.00", "0.00", "0.00", "25.00"),
            l("15", "5.00", "0.90", "0.00", "0.00"),
            l("10", "9.92", "1.78", "0.00", "11.70"),
            l("10", "0.17", "0.03", "1.00", "1.20"),
        ]
    );

    // The daily report splits the day by base and shows the ICBPER collected.
    let pool = faena_core::db::create_pool(&app.db.url, 2)?;
    let mut conn = pool.get().await?;
    let date: chrono::NaiveDate = sale["issue_date"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no issue_date in {sale}"))?
        .parse()?;
    let report =
        faena_shop::reports::compute_daily_report(&mut conn, date, chrono_tz::America::Lima)
            .await?;
    assert_eq!(
        serde_json::to_value(&report.by_affectation)?,
        json!({"gravado": "18.99", "exonerado": "6.00", "inafecto": "25.00",
               "gratuito": "5.00", "igv": "3.41", "icbper": "1.00"})
    );
    assert_eq!(
        serde_json::to_value(&report.credit_notes_by_affectation)?,
        json!({"gravado": "0.00", "exonerado": "0.00", "inafecto": "0.00",
               "gratuito": "0.00", "igv": "0.00", "icbper": "0.00"}),
        "no note yet"
    );

    // A credit note of one line of each base (accepted by SUNAT, set here): the report's
    // credit-notes row splits what it credits the same way, from the note's own lines.
    // By hand: 1 Inca Kola of the 2 at 10% off: 6.50 - 0.65 = 5.85 -> value 5.85 / 1.18 = 4.957
    // -> 4.96, IGV 0.89; 1 papaya 3.00 exonerada; the libro 25.00 inafecto; the free llavero at
    // its referential 5.00; the 2 bags 0.17 + IGV 0.03 and ICBPER 1.00. Gravado 4.96 + 0.17 =
    // 5.13, IGV 0.89 + 0.03 = 0.92; the note's total 5.13 + 3.00 + 25.00 + 0.92 + 1.00 = 35.05.
    let id = sale["id"].as_i64().unwrap_or_default();
    common::sql(
        &app.db,
        &format!("UPDATE sales SET sunat_status = 'ACCEPTED' WHERE id = {id}"),
    )
    .await?;
    let (s, note) = app
        .post(
            &format!("/api/sales/{id}/credit-notes"),
            &json!({"reason_code": "07", "description": "Devolución de una línea de cada base",
                    "items": [{"product_id": ids[4], "quantity": 1},
                              {"product_id": ids[1], "quantity": 1},
                              {"product_id": ids[2], "quantity": 1},
                              {"product_id": ids[3], "quantity": 1},
                              {"product_id": ids[5], "quantity": 2}]})
            .to_string(),
        )
        .await?;
    assert_eq!(s, 201, "{note}");
    assert_eq!(
        (
            &note["subtotal"],
            &note["igv"],
            &note["icbper"],
            &note["total"]
        ),
        (
            &json!("33.13"),
            &json!("0.92"),
            &json!("1.00"),
            &json!("35.05")
        ),
        "{note}"
    );
    let report =
        faena_shop::reports::compute_daily_report(&mut conn, date, chrono_tz::America::Lima)
            .await?;
    assert_eq!(
        serde_json::to_value(&report.credit_notes_by_affectation)?,
        json!({"gravado": "5.13", "exonerado": "3.00", "inafecto": "25.00",
               "gratuito": "5.00", "igv": "0.92", "icbper": "1.00"})
    );
    let csv = report.to_csv()?;
    let row = csv
        .lines()
        .find(|l| l.starts_with("credit_notes,"))
        .unwrap_or_default();
    assert_eq!(
        row,
        "credit_notes,07,nota de crédito,1,0,0,0,1,0,0.00,35.05,0.00,0,0.00,0.00,\
         5.13,3.00,25.00,5.00,0.92,1.00",
        "{csv}"
    );
    Ok(())
}

/// `(status, error code, error field)` of an answer.
fn fault(s: u16, b: &Value) -> (u16, Value, Value) {
    (s, b["error"]["code"].clone(), b["error"]["field"].clone())
}

#[tokio::test]
async fn quantities_are_exact_decimals_and_every_bad_one_is_a_400_naming_its_line(
) -> anyhow::Result<()> {
    let app = spawn_app("basket_quantities").await?;
    let rice = product(
        &app,
        json!({"sku": "ARR", "name": "Arroz a granel", "unit_price": "4.20", "stock": "10.000",
               "unit_code": "KGM", "decimal_quantity": true}),
    )
    .await?;
    assert_eq!(
        (
            &rice["stock"],
            &rice["decimal_quantity"],
            &rice["unit_code"]
        ),
        (&json!(10), &json!(true), &json!("KGM"))
    );
    let soda = product(
        &app,
        json!({"sku": "INK", "name": "Inca Kola", "unit_price": "6.50", "stock": 10}),
    )
    .await?;
    assert_eq!(soda["decimal_quantity"], json!(false));
    let (rice_id, soda_id) = (rice["id"].clone(), soda["id"].clone());

    // Every bad quantity, in a sale and in a checkout, names its line and takes nothing.
    for (line, quantity, says) in [
        (1, json!(1.2505), "more than 3 decimals"),
        (1, json!("1.2505"), "more than 3 decimals"),
        (1, json!(0), "not above 0"),
        (1, json!("0.000"), "not above 0"),
        (1, json!(-1), "not above 0"),
        (1, json!("-0.5"), "not above 0"),
        (1, json!("1,5"), "not a quantity"),
        (1, json!("1e3"), "not a quantity"),
        (1, json!(true), "a number such as 2"),
        (0, json!(1.5), "sold in whole units"),
        (0, json!("2.500"), "sold in whole units"),
    ] {
        let items = json!([
            {"product_id": soda_id, "quantity": if line == 0 { quantity.clone() } else { json!(1) }},
            {"product_id": rice_id, "quantity": if line == 1 { quantity.clone() } else { json!(1) }},
        ]);
        for path in ["/api/sales", "/api/checkout"] {
            let (s, b) = app.post(path, &json!({"items": items}).to_string()).await?;
            assert_eq!(
                (s, &b["error"]["field"]),
                (400, &json!(format!("items[{line}].quantity"))),
                "{path} {quantity}: {b}"
            );
            let message = b["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(says), "{path} {quantity}: {b}");
        }
    }
    let (_, p) = app.get(&format!("/api/products/{rice_id}")).await?;
    assert_eq!(p["stock"], json!(10), "nothing was taken: {p}");

    // Exact: 1.1 + 0.3 + 2.675 kg leave exactly 5.925 of 10 (a float sum would not), and
    // 2.675 kg at 4.20 is 11.235 -> 11.24 half up (as the float 2.675 it would be 11.23).
    let mut totals = Vec::new();
    for (q, written) in [
        (json!(1.1), json!(1.1)),
        (json!("0.300"), json!(0.3)),
        (json!(2.675), json!(2.675)),
    ] {
        let (s, sale) = app
            .post(
                "/api/sales",
                &json!({"items": [{"product_id": rice_id, "quantity": q}]}).to_string(),
            )
            .await?;
        assert_eq!(s, 201, "{sale}");
        assert_eq!(sale["items"][0]["quantity"], written, "{sale}");
        totals.push(sale["total"].clone());
    }
    assert_eq!(totals, [json!("4.62"), json!("1.26"), json!("11.24")]);
    let (_, p) = app.get(&format!("/api/products/{rice_id}")).await?;
    assert_eq!(p["stock"], json!(5.925), "{p}");

    // Stock changes follow the product's unit.
    let stock = |id: &Value| format!("/api/products/{id}/stock");
    let (s, b) = app.post(&stock(&soda_id), r#"{"delta": 0.5}"#).await?;
    assert_eq!(
        fault(s, &b),
        (400, json!("invalid_field"), json!("delta")),
        "{b}"
    );
    let (s, b) = app.post(&stock(&rice_id), r#"{"delta": "-0.925"}"#).await?;
    assert_eq!((s, &b["stock"]), (200, &json!(5)), "{b}");
    let (s, b) = app.post(&stock(&rice_id), r#"{"delta": 0.0005}"#).await?;
    assert_eq!(
        fault(s, &b),
        (400, json!("invalid_field"), json!("delta")),
        "{b}"
    );
    Ok(())
}

#[tokio::test]
async fn product_quantity_rules_are_checked_on_create_and_update() -> anyhow::Result<()> {
    let app = spawn_app("basket_product_rules").await?;
    for (body, field) in [
        (
            json!({"sku": "X1", "name": "Arroz", "unit_price": "4.20", "stock": "1.5"}),
            "stock",
        ),
        (
            json!({"sku": "X2", "name": "Arroz", "unit_price": "4.20", "stock": 1.0005,
                   "decimal_quantity": true}),
            "stock",
        ),
        (
            json!({"sku": "X3", "name": "Arroz", "unit_price": "4.20", "stock": -1}),
            "stock",
        ),
        (
            json!({"sku": "X4", "name": "Bolsa", "unit_price": "0.10", "stock": 5,
                   "icbper": true, "decimal_quantity": true}),
            "decimal_quantity",
        ),
        (
            json!({"sku": "X5", "name": "Arroz", "unit_price": "4.20", "stock": 1,
                   "decimal_quantity": "yes"}),
            "decimal_quantity",
        ),
        (
            json!({"sku": "X6", "name": "Arroz", "unit_price": "4.20", "stock": 1,
                   "low_stock_threshold": -2}),
            "low_stock_threshold",
        ),
    ] {
        let (s, b) = app.post("/api/products", &body.to_string()).await?;
        assert_eq!(
            (s, &b["error"]["field"]),
            (400, &json!(field)),
            "{body}: {b}"
        );
    }
    let rice = product(
        &app,
        json!({"sku": "ARR", "name": "Arroz", "unit_price": "4.20", "stock": 3,
               "low_stock_threshold": "0.5", "unit_code": "KGM"}),
    )
    .await?;
    let id = rice["id"].as_i64().unwrap_or_default();
    let path = format!("/api/products/{id}");
    let patch = |body: Value| {
        let path = path.clone();
        let app = &app;
        async move {
            app.send(reqwest::Method::PATCH, &path, Some(&body.to_string()))
                .await
        }
    };
    // Sold by weight from now on: 0.750 kg reserved, 2.250 left.
    let (s, b) = patch(json!({"decimal_quantity": true})).await?;
    assert_eq!((s, &b["decimal_quantity"]), (200, &json!(true)), "{b}");
    let (s, r) = app
        .post(
            "/api/checkout",
            &json!({"items": [{"product_id": id, "quantity": "0.750"}]}).to_string(),
        )
        .await?;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["items"][0]["quantity"], json!(0.75), "{r}");
    let (_, p) = app.get(&path).await?;
    assert_eq!(p["stock"], json!(2.25));
    // Back to whole units is refused while the stock has decimals...
    let (s, b) = patch(json!({"decimal_quantity": false})).await?;
    assert_eq!(
        fault(s, &b),
        (409, json!("decimal_stock"), json!("decimal_quantity")),
        "{b}"
    );
    assert!(
        b["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("has a stock of 2.25")),
        "{b}"
    );
    // ... and while a reservation holds decimals, even with a whole stock.
    let (s, _) = app
        .post(&format!("{path}/stock"), r#"{"delta": "-0.25"}"#)
        .await?;
    assert_eq!(s, 200);
    let (s, b) = patch(json!({"decimal_quantity": false})).await?;
    assert_eq!(
        fault(s, &b),
        (409, json!("decimal_stock"), json!("decimal_quantity")),
        "{b}"
    );
    assert!(
        b["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("0.75 held by ACTIVE reservation")),
        "{b}"
    );
    // Released, the 0.750 comes back (2.750): still decimals.
    let rid = r["reservation_id"].as_i64().unwrap_or_default();
    let (s, _) = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/reservations/{rid}"),
            None,
        )
        .await?;
    assert_eq!(s, 200);
    let (_, p) = app.get(&path).await?;
    assert_eq!(p["stock"], json!(2.75));
    let (s, _) = app
        .post(&format!("{path}/stock"), r#"{"delta": 0.25}"#)
        .await?;
    assert_eq!(s, 200);
    let (s, b) = patch(json!({"decimal_quantity": false})).await?;
    assert_eq!(
        (
            s,
            &b["decimal_quantity"],
            &b["stock"],
            &b["low_stock_threshold"]
        ),
        (200, &json!(false), &json!(3), &json!(0.5)),
        "{b}"
    );
    // A unit product cannot become a plastic bag sold by weight.
    let (s, b) = patch(json!({"icbper": true, "decimal_quantity": true})).await?;
    assert_eq!(
        (s, &b["error"]["field"]),
        (400, &json!("decimal_quantity")),
        "{b}"
    );
    Ok(())
}

#[tokio::test]
async fn checkout_lines_take_discount_and_free_and_the_sale_uses_them() -> anyhow::Result<()> {
    let app = spawn_app("basket_checkout_terms").await?;
    let soda = product(
        &app,
        json!({"sku": "INK", "name": "Inca Kola", "unit_price": "6.50", "stock": 9}),
    )
    .await?;
    let gift = product(
        &app,
        json!({"sku": "LLA", "name": "Llavero", "unit_price": "5.90", "stock": 9}),
    )
    .await?;
    let rice = product(
        &app,
        json!({"sku": "ARR", "name": "Arroz", "unit_price": "4.20", "stock": 9,
               "unit_code": "KGM", "decimal_quantity": true}),
    )
    .await?;
    let items = json!([
        {"product_id": soda["id"], "quantity": 2, "discount": {"percent": "10"}},
        {"product_id": gift["id"], "quantity": 1, "free": true},
        {"product_id": rice["id"], "quantity": "1.250"},
    ]);
    for (line, patch, field) in [
        (
            0,
            json!({"discount": {"percent": "100"}}),
            "items[0].discount",
        ),
        (
            0,
            json!({"discount": {"amount": "13.00"}}),
            "items[0].discount",
        ),
        (1, json!({"discount": {"amount": "1.00"}}), "items[1].free"),
    ] {
        let mut bad = items.clone();
        for (k, v) in patch.as_object().into_iter().flatten() {
            bad[line][k] = v.clone();
        }
        let (s, b) = app
            .post("/api/checkout", &json!({"items": bad}).to_string())
            .await?;
        assert_eq!(
            (s, &b["error"]["field"]),
            (400, &json!(field)),
            "{patch}: {b}"
        );
    }
    let (_, p) = app.get(&format!("/api/products/{}", soda["id"])).await?;
    assert_eq!(p["stock"], json!(9), "a refused checkout took nothing: {p}");

    let (s, r) = app
        .post("/api/checkout", &json!({"items": items}).to_string())
        .await?;
    assert_eq!(s, 201, "{r}");
    let reserved: Vec<(Value, Value, Value, Value)> = r["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                i["quantity"].clone(),
                i["unit_code"].clone(),
                i["discount"].clone(),
                i["free"].clone(),
            )
        })
        .collect();
    assert_eq!(
        reserved,
        [
            (
                json!(2),
                json!("NIU"),
                json!({"percent": "10"}),
                json!(false)
            ),
            (json!(1), json!("NIU"), Value::Null, json!(true)),
            (json!(1.25), json!("KGM"), Value::Null, json!(false)),
        ]
    );
    let rid = r["reservation_id"].clone();
    let (s, _) = app
        .post(&format!("/api/reservations/{rid}/confirm"), "")
        .await?;
    assert_eq!(s, 200);
    let (s, sale) = app
        .post("/api/sales", &json!({"reservation_id": rid}).to_string())
        .await?;
    assert_eq!(s, 201, "{sale}");
    // By hand: Inca Kola 13.00 - 10% = 11.70 -> 9.92 + 1.78; llavero free (5.00 + 0.90 not
    // charged); arroz 1.250 x 4.20 = 5.25 -> 4.45 + 0.80. Total 11.70 + 5.25 = 16.95.
    let lines: Vec<(Value, Value, Value, Value, Value)> = sale["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                i["quantity"].clone(),
                i["igv_affectation"].clone(),
                i["value"].clone(),
                i["discount"].clone(),
                i["line_total"].clone(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (
                json!(2),
                json!("10"),
                json!("9.92"),
                json!("1.30"),
                json!("11.70")
            ),
            (
                json!(1),
                json!("15"),
                json!("5.00"),
                json!("0.00"),
                json!("0.00")
            ),
            (
                json!(1.25),
                json!("10"),
                json!("4.45"),
                json!("0.00"),
                json!("5.25")
            ),
        ]
    );
    assert_eq!(
        (&sale["subtotal"], &sale["igv"], &sale["total"]),
        (&json!("14.37"), &json!("2.58"), &json!("16.95"))
    );
    Ok(())
}

/// The basket of the issue, in the order of its lines: (product, quantity as sent, terms).
fn basket_products() -> [Value; 7] {
    [
        json!({"sku": "ACE-1", "name": "Aceite vegetal 1 L", "unit_price": "10.50", "stock": 10}),
        json!({"sku": "PAP-1", "name": "Papaya fresca", "unit_price": "3.00", "stock": 10,
               "igv_affectation": "20"}),
        json!({"sku": "LIB-1", "name": "Libro escolar de lectura", "unit_price": "25.00",
               "stock": 10, "igv_affectation": "30"}),
        json!({"sku": "LLA-1", "name": "Llavero de regalo", "unit_price": "5.90", "stock": 10}),
        json!({"sku": "INK-15", "name": "Gaseosa Inca Kola 1.5 L", "unit_price": "6.50",
               "stock": 10}),
        json!({"sku": "ARR-G", "name": "Arroz a granel", "unit_price": "4.20", "stock": "5.000",
               "unit_code": "KGM", "decimal_quantity": true}),
        json!({"sku": "BOL-1", "name": "Bolsa plastica", "unit_price": "0.10", "stock": 10,
               "icbper": true}),
    ]
}

/// By hand (IGV 18%, ICBPER S/ 0.50 a bag since 2023, half up to the cent at each line):
/// - aceite 10.50: value 10.50 / 1.18 = 8.898 -> 8.90, IGV 1.60
/// - papaya 2 x 3.00 exonerada: 6.00
/// - libro 25.00 inafecto: 25.00
/// - llavero free (code 15): referential value 5.90 / 1.18 = 5.00, its IGV 0.90, charged 0.00
/// - Inca Kola 2 x 6.50 = 13.00 - 10% = 11.70: value 11.70 / 1.18 = 9.915 -> 9.92, IGV 1.78
/// - arroz 1.250 kg x 4.20 = 5.25: value 5.25 / 1.18 = 4.449 -> 4.45, IGV 0.80
/// - bolsas 2 x 0.10 = 0.20: value 0.169 -> 0.17, IGV 0.03, ICBPER 2 x 0.50 = 1.00
///
/// OP. GRAVADA 8.90 + 9.92 + 4.45 + 0.17 = 23.44; subtotal 23.44 + 6.00 + 25.00 = 54.44;
/// IGV 1.60 + 1.78 + 0.80 + 0.03 = 4.21; total 54.44 + 4.21 + 1.00 = 59.65
/// (= 10.50 + 6.00 + 25.00 + 11.70 + 5.25 + 0.20 + 1.00, what the buyer pays line by line).
const HAND_LINES: [(&str, &str, &str, &str, &str, &str); 7] = [
    // (quantity, affectation, value, igv, icbper, line_total)
    ("1", "10", "8.90", "1.60", "0.00", "10.50"),
    ("2", "20", "6.00", "0.00", "0.00", "6.00"),
    ("1", "30", "25.00", "0.00", "0.00", "25.00"),
    ("1", "15", "5.00", "0.90", "0.00", "0.00"),
    ("2", "10", "9.92", "1.78", "0.00", "11.70"),
    ("1.25", "10", "4.45", "0.80", "0.00", "5.25"),
    ("2", "10", "0.17", "0.03", "1.00", "1.20"),
];
const HAND_SUBTOTAL: &str = "54.44";
const HAND_IGV: &str = "4.21";
const HAND_ICBPER: &str = "1.00";
const HAND_TOTAL: &str = "59.65";
const HAND_WORDS: &str = "SON CINCUENTA Y NUEVE CON 65/100 SOLES";

fn child<'a, 'i>(
    n: roxmltree::Node<'a, 'i>,
    local: &str,
) -> anyhow::Result<roxmltree::Node<'a, 'i>> {
    n.children()
        .find(|c| c.tag_name().name() == local)
        .ok_or_else(|| anyhow::anyhow!("no {local} under {}", n.tag_name().name()))
}

fn text<'a>(n: roxmltree::Node<'a, '_>, local: &str) -> anyhow::Result<&'a str> {
    Ok(child(n, local)?.text().unwrap_or(""))
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_basket_with_a_weighed_line_is_sold_signed_accepted_and_printed(
) -> anyhow::Result<()> {
    let app = spawn_app("basket_end_to_end").await?;
    let sunat = app.sunat_worker().await?;
    let (cert, files) = (&sunat.cert, &sunat.files);

    let mut ids = Vec::new();
    for body in basket_products() {
        ids.push(product(&app, body).await?["id"].clone());
    }
    let rice = format!("/api/products/{}", ids[5]);
    let items = json!([
        {"product_id": ids[0], "quantity": 1},
        {"product_id": ids[1], "quantity": 2},
        {"product_id": ids[2], "quantity": "1"},
        {"product_id": ids[3], "quantity": 1, "free": true},
        {"product_id": ids[4], "quantity": 2, "discount": {"percent": "10"}},
        {"product_id": ids[5], "quantity": "1.250"},
        {"product_id": ids[6], "quantity": 2},
    ]);
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sunat/tests/data/xsd/2.1/maindoc/UBL-Invoice-2.1.xsd");
    // The rice's stock: 5.000 kg, less exactly 1.250 kg a sale.
    for (doc, stock_after) in [("boleta", json!(3.75)), ("factura", json!(2.5))] {
        let mut body = json!({"items": items, "doc_type": doc});
        if doc == "factura" {
            body["customer"] =
                json!({"doc_type": "ruc", "doc_number": "20131312955", "name": "SUNAT"});
        }
        let (s, sale) = app.post("/api/sales", &body.to_string()).await?;
        anyhow::ensure!(s == 201, "{doc}: {sale}");
        let (_, p) = app.get(&rice).await?;
        assert_eq!(p["stock"], stock_after, "{doc}: {p}");

        // The sale, as the api stores it: each line and the totals by hand.
        let lines: Vec<[Value; 6]> = sale["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                [
                    i["quantity"].clone(),
                    i["igv_affectation"].clone(),
                    i["value"].clone(),
                    i["igv"].clone(),
                    i["icbper_amount"].clone(),
                    i["line_total"].clone(),
                ]
            })
            .collect();
        let hand: Vec<[Value; 6]> = HAND_LINES
            .iter()
            .map(|(q, a, v, i, b, t)| {
                [
                    serde_json::from_str(q).unwrap_or_default(),
                    json!(a),
                    json!(v),
                    json!(i),
                    json!(b),
                    json!(t),
                ]
            })
            .collect();
        assert_eq!(lines, hand, "{doc}");
        assert_eq!(
            (&sale["subtotal"], &sale["igv"], &sale["total"]),
            (&json!(HAND_SUBTOTAL), &json!(HAND_IGV), &json!(HAND_TOTAL)),
            "{doc}"
        );

        // Sent by the worker (queued through the outbox with the sale), accepted by sunat-sim
        // after its checks of SUNAT's sums, without observations.
        let id = sale["id"].clone();
        let sent = wait_for(
            "the sale to be decided",
            Duration::from_secs(60),
            || async {
                let (_, s) = app.get(&format!("/api/sales/{id}")).await?;
                Ok(matches!(
                    s["sunat"]["status"].as_str(),
                    Some("ACCEPTED" | "REJECTED" | "ERROR" | "CONFLICT")
                )
                .then_some(s))
            },
        )
        .await?;
        assert_eq!(
            (
                &sent["sunat"]["status"],
                &sent["sunat"]["outcome"],
                &sent["sunat"]["notes"]
            ),
            (&json!("ACCEPTED"), &json!("accepted"), &json!([])),
            "{doc}: {sent}"
        );
        let file = |key: &str| -> anyhow::Result<PathBuf> {
            let rel = sent["files"][key]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("no {key} file in {sent}"))?;
            Ok(files.join(rel))
        };
        let stem = sent["number"].as_str().unwrap_or(doc).to_owned();

        // The signed XML: UBL 2.1 schema, signature, and the totals it states.
        let xml_path = file("xml")?;
        sunat_common::assert_schema_valid(&xsd, &xml_path, &stem);
        sunat_common::assert_signature_verifies(&cert.cert_pem_path, &xml_path, &stem);
        let xml = std::fs::read_to_string(&xml_path)?;
        let parsed = roxmltree::Document::parse(&xml)?;
        let root = parsed.root_element();
        let lmt = child(root, "LegalMonetaryTotal")?;
        assert_eq!(
            (
                text(lmt, "LineExtensionAmount")?,
                text(lmt, "PayableAmount")?
            ),
            (HAND_SUBTOTAL, HAND_TOTAL),
            "{stem}"
        );
        let tax_total = child(root, "TaxTotal")?;
        assert_eq!(
            text(tax_total, "TaxAmount")?,
            "5.21",
            "{stem}: IGV 4.21 + ICBPER 1.00"
        );
        let icbper = tax_total
            .children()
            .filter(|n| n.tag_name().name() == "TaxSubtotal")
            .find(|n| {
                child(*n, "TaxCategory")
                    .and_then(|c| child(c, "TaxScheme"))
                    .and_then(|t| text(t, "ID"))
                    .is_ok_and(|id| id == "7152")
            })
            .ok_or_else(|| anyhow::anyhow!("{stem}: no ICBPER subtotal"))?;
        assert_eq!(text(icbper, "TaxAmount")?, HAND_ICBPER, "{stem}");
        let quantities: Vec<(String, String)> = root
            .children()
            .filter(|n| n.tag_name().name() == "InvoiceLine")
            .map(|l| -> anyhow::Result<(String, String)> {
                let q = child(l, "InvoicedQuantity")?;
                Ok((
                    q.text().unwrap_or("").to_owned(),
                    q.attribute("unitCode").unwrap_or("").to_owned(),
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        assert_eq!(
            quantities[5],
            ("1.25".to_owned(), "KGM".to_owned()),
            "{stem}"
        );
        assert!(xml.contains(HAND_WORDS), "{stem}: no amount in words");

        // The PDF: every line, the weighed quantity with its unit, ICBPER and the words.
        let pdf = run(Command::new("pdftotext").arg(file("pdf")?).arg("-"))?;
        for body in basket_products() {
            let name = body["name"].as_str().unwrap_or_default();
            assert!(pdf.contains(name), "{stem}: {name:?} missing in\n{pdf}");
        }
        for shown in [
            "1.250",
            "1.250 KGM (kilogramo) x 4.20",
            "ICBPER 2 x 0.50",
            "ICBPER",
            &format!("S/ {HAND_ICBPER}"),
            &format!("S/ {HAND_TOTAL}"),
            HAND_WORDS,
        ] {
            assert!(pdf.contains(shown), "{stem}: {shown:?} missing in\n{pdf}");
        }
    }
    sunat.stop().await;
    Ok(())
}
