//! Real shop baskets (issue 16) through the api: products with their IGV affectation, unit and
//! ICBPER, strict validation naming the field, and a sale of a mixed basket (gravado, exonerado,
//! inafecto, a free gift, a discounted line, plastic bags) whose totals equal a computation by
//! hand.

mod common;

use common::spawn_app;
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
    Ok(())
}
