//! Money is written with exactly two decimals in every answer and in CSV: products, sales and
//! their items, the daily report and the sales summary, whatever scale the value carried.

mod common;

use common::spawn_app;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use faena_shop::schema::sales;
use reqwest::Method;
use serde_json::{json, Value};

async fn product(app: &common::TestApp, sku: &str, price: Value) -> anyhow::Result<Value> {
    let (s, p) = app
        .post(
            "/api/products",
            &json!({"sku": sku, "name": sku, "unit_price": price, "stock": 10}).to_string(),
        )
        .await?;
    anyhow::ensure!(s == 201, "product {sku}: {s} {p}");
    Ok(p)
}

#[tokio::test]
async fn money_has_two_decimals_in_every_answer_and_in_csv() -> anyhow::Result<()> {
    let app = spawn_app("money").await?;
    let mut ids = Vec::new();
    for (sku, price, written) in [
        ("UNO", json!("1"), "1.00"),
        ("DIEZ", json!("0.1"), "0.10"),
        ("CIEN", json!(100), "100.00"),
        ("MEDIO", json!(12.5), "12.50"),
        ("IGV", json!("118.0"), "118.00"),
    ] {
        let p = product(&app, sku, price).await?;
        assert_eq!(p["unit_price"], written, "{p}");
        let id = p["id"].as_i64().unwrap_or_default();
        let (_, got) = app.get(&format!("/api/products/{id}")).await?;
        assert_eq!(got["unit_price"], written, "{got}");
        ids.push(id);
    }
    // A product stored free before prices had to be above zero: PostgreSQL's 0.00 has no scale.
    common::sql(
        &app.db,
        "WITH p AS (INSERT INTO products (sku, name, unit_price) VALUES ('OLD', 'old', 0.00) \
         RETURNING id, decimal_quantity) \
         INSERT INTO product_stock (product_id, store_id, decimal_quantity, quantity) \
         SELECT p.id, s.id, p.decimal_quantity, 1 FROM p, stores s WHERE s.establishment_code = '0000'",
    )
    .await?;
    let (_, list) = app.get("/api/products").await?;
    let prices: Vec<&str> = list
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["unit_price"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        prices,
        ["1.00", "0.10", "100.00", "12.50", "118.00", "0.00"]
    );
    let (s, renamed) = app
        .send(
            Method::PATCH,
            &format!("/api/products/{}", ids[2]),
            Some(r#"{"name":"Cien"}"#),
        )
        .await?;
    assert_eq!((s, renamed["unit_price"].clone()), (200, json!("100.00")));
    let (s, stocked) = app
        .post(&format!("/api/products/{}/stock", ids[3]), r#"{"delta":1}"#)
        .await?;
    assert_eq!((s, stocked["unit_price"].clone()), (200, json!("12.50")));

    // A sale whose amounts are whole: 118.00 is 100.00 plus 18.00 of IGV.
    let body = json!({"items": [{"product_id": ids[4], "quantity": 1}], "send": false});
    let (s, sale) = app.post("/api/sales", &body.to_string()).await?;
    assert_eq!(s, 201, "{sale}");
    let money = |sale: &Value| {
        [
            sale["subtotal"].clone(),
            sale["igv"].clone(),
            sale["total"].clone(),
            sale["items"][0]["unit_price"].clone(),
            sale["items"][0]["line_total"].clone(),
        ]
    };
    let expected = ["100.00", "18.00", "118.00", "118.00", "118.00"].map(|m| json!(m));
    assert_eq!(money(&sale), expected, "{sale}");
    let sale_id = sale["id"].as_i64().unwrap_or_default();
    let (_, again) = app.get(&format!("/api/sales/{sale_id}")).await?;
    assert_eq!(money(&again), expected, "{again}");
    // Ten lines of 0.10: 1.00 with IGV.
    let body = json!({"items": [{"product_id": ids[1], "quantity": 10}], "send": false});
    let (s, dimes) = app.post("/api/sales", &body.to_string()).await?;
    assert_eq!(s, 201, "{dimes}");
    assert_eq!(
        money(&dimes),
        ["0.85", "0.15", "1.00", "0.10", "1.00"].map(|m| json!(m)),
        "{dimes}"
    );

    // The daily report: totals, and zero accepted.
    let pool = faena_core::db::create_pool(&app.db.url, 1)?;
    let mut conn = pool.get().await?;
    let day: chrono::NaiveDate = "2026-11-20".parse()?;
    diesel::update(sales::table)
        .set(sales::issue_date.eq(day))
        .execute(&mut conn)
        .await?;
    let files = tempfile::tempdir()?;
    faena_shop::reports::generate_daily_report(
        &mut conn,
        day,
        chrono_tz::America::Lima,
        files.path(),
    )
    .await?;
    let (s, r) = app.get("/api/reports/daily/2026-11-20").await?;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (
            r["totals"]["total_billed"].clone(),
            r["totals"]["total_accepted"].clone()
        ),
        (json!("119.00"), json!("0.00")),
        "{r}"
    );
    let csv = app
        .client
        .get(format!("{}/api/reports/daily/2026-11-20", app.base))
        .header("accept", "text/csv")
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(
        csv.lines().next(),
        Some(
            "section,key,name,issued,accepted,rejected,error,pending,cancelled,success_pct,\
             total_billed,total_accepted,voided,total_cancelled,total_voided,\
             gravado,exonerado,inafecto,gratuito,igv,icbper"
        ),
        "{csv}"
    );
    // The split of the day: 119.00 of gravado lines is 100.85 + IGV 18.15, nothing else.
    assert_eq!(
        csv.lines().nth(1),
        Some("total,2026-11-20,,2,0,0,0,2,0,0.00,119.00,0.00,0,0.00,0.00,100.85,0.00,0.00,0.00,18.15,0.00"),
        "{csv}"
    );
    let stored = std::fs::read_to_string(files.path().join("reports/sunat-daily-2026-11-20.csv"))?;
    assert_eq!(stored, csv);

    // The sales summary insight, and its best seller.
    let until = chrono::Utc::now() + chrono::Duration::minutes(1);
    faena_shop::insights::store_sales_summary(&mut conn, until, 24).await?;
    let (_, list) = app.get("/api/insights?kind=sales_summary").await?;
    let data = &list[0]["data"];
    assert_eq!(
        (
            data["revenue"].clone(),
            data["top_products"][0]["sku"].clone(),
            data["top_products"][0]["revenue"].clone(),
            data["top_products"][1]["revenue"].clone(),
        ),
        (
            json!("119.00"),
            json!("DIEZ"),
            json!("1.00"),
            json!("118.00")
        ),
        "{list}"
    );
    Ok(())
}
