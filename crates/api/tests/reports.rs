//! `/api/reports/daily/{date}` (JSON, and CSV with `Accept: text/csv`) and `/api/insights`:
//! admins only, 404 before the report exists, 400 for a bad date or filter.

mod common;

use common::spawn_app;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use faena_shop::auth::Role;
use faena_shop::schema::sales;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn daily_report_as_json_and_csv_and_insights_for_admins_only() -> anyhow::Result<()> {
    let app = spawn_app("api_reports").await?;
    let seller = app.user_token("caja", Role::Seller).await?;
    let (s, p) = app
        .post(
            "/api/products",
            &json!({"sku": "CHICHA", "name": "Chicha morada 1 L", "unit_price": "4.90",
                "stock": 10, "low_stock_threshold": 8})
            .to_string(),
        )
        .await?;
    assert_eq!(s, 201, "{p}");
    let pid = p["id"].as_i64().unwrap_or_default();
    let body = json!({"items": [{"product_id": pid, "quantity": 1}]}).to_string();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (s, sale) = app
            .send_as(Some(&seller), Method::POST, "/api/sales", Some(&body))
            .await?;
        assert_eq!(s, 201, "{sale}");
        ids.push(sale["id"].as_i64().unwrap_or_default());
    }
    // On 2026-11-20: one ACCEPTED, one REJECTED; the third sale is of another day.
    let pool = faena_core::db::create_pool(&app.db.url, 2)?;
    let mut conn = pool.get().await?;
    let day: chrono::NaiveDate = "2026-11-20".parse()?;
    for (id, status, date) in [
        (ids[0], "ACCEPTED", day),
        (ids[1], "REJECTED", day),
        (ids[2], "ACCEPTED", day.succ_opt().unwrap_or(day)),
    ] {
        diesel::update(sales::table.find(id))
            .set((sales::sunat_status.eq(status), sales::issue_date.eq(date)))
            .execute(&mut conn)
            .await?;
    }

    let (s, e) = app.get("/api/reports/daily/2026-11-20").await?;
    assert_eq!(s, 404, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("sunat_daily_report"),
        "{e}"
    );
    let (s, e) = app.get("/api/reports/daily/20-11-2026").await?;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["field"], "date");

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
    assert_eq!(r["date"], "2026-11-20");
    let t = &r["totals"];
    assert_eq!(
        (
            t["issued"].clone(),
            t["accepted"].clone(),
            t["rejected"].clone()
        ),
        (json!(2), json!(1), json!(1)),
        "{r}"
    );
    assert_eq!(t["success_pct"], "50.00");
    assert_eq!(t["total_billed"], "9.80");
    assert_eq!(t["total_accepted"], "4.90");
    assert_eq!(r["by_seller"].as_array().map(Vec::len), Some(1));
    assert_eq!(r["by_seller"][0]["seller_name"], "caja");
    assert_eq!(r["csv_path"], "reports/sunat-daily-2026-11-20.csv");

    let res = app
        .client
        .get(format!("{}/api/reports/daily/2026-11-20", app.base))
        .header("accept", "text/csv")
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 200);
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("text/csv"), "{ct}");
    let csv = res.text().await?;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines.len(),
        7,
        "header, day, 1 seller, 2 doc types, 1 store, credit notes: {csv}"
    );
    // Every sale is the main store's: its row has the day's numbers, column for column.
    let numbers = |line: &str| line.split(',').skip(3).collect::<Vec<_>>().join(",");
    assert!(
        lines[5].starts_with(
            "store,principal,Tienda principal,2,1,1,0,0,0,50.00,9.80,4.90,0,0.00,0.00,"
        ),
        "{csv}"
    );
    assert_eq!(numbers(lines[5]), numbers(lines[1]), "{csv}");
    // No credit note that day: every column 0, its split too.
    assert_eq!(
        lines[6], "credit_notes,07,nota de crédito,0,0,0,0,0,0,0.00,0.00,0.00,0,0.00,0.00,0.00,0.00,0.00,0.00,0.00,0.00",
        "{csv}"
    );
    assert!(
        lines[1].starts_with("total,2026-11-20,,2,1,1,0,0,0,50.00,9.80,4.90"),
        "{csv}"
    );
    assert!(lines[2].contains(",caja,2,1,1,"), "{csv}");

    // Insights: the product is at 7, under its threshold of 8.
    faena_shop::insights::refresh_stock_alerts(&mut conn).await?;
    let (s, list) = app.get("/api/insights?status=open").await?;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["kind"], "low_stock");
    assert_eq!(list[0]["product_id"], pid);
    assert_eq!(list[0]["data"]["stock"], 7);
    let (_, list) = app.get("/api/insights?status=closed").await?;
    assert_eq!(list, json!([]));
    let (_, list) = app.get("/api/insights?kind=low_stock&limit=5").await?;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let (s, e) = app.get("/api/insights?kind=bogus").await?;
    assert_eq!(
        (s, e["error"]["field"].clone()),
        (400, json!("kind")),
        "{e}"
    );
    let (s, e) = app.get("/api/insights?status=maybe").await?;
    assert_eq!(
        (s, e["error"]["field"].clone()),
        (400, json!("status")),
        "{e}"
    );

    // Sellers and anonymous callers are refused.
    for path in ["/api/reports/daily/2026-11-20", "/api/insights"] {
        let (s, _) = app.send_as(Some(&seller), Method::GET, path, None).await?;
        assert_eq!(s, 403, "{path}");
        let (s, _) = app.send_as(None, Method::GET, path, None).await?;
        assert_eq!(s, 401, "{path}");
    }
    Ok(())
}
