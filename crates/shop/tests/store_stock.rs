//! Stock per store in the shop's own code, over real PostgreSQL: stock alerts are per product and
//! store (the product's threshold against each store's stock; a store that never stocked the
//! product gets none), and a store's stock is set and changed alone.

use std::collections::BTreeMap;

use bigdecimal::BigDecimal;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use faena_shop::insights::{self, InsightFilter, InsightStatus};
use faena_shop::shop::{self, NewProduct, ProductPatch};
use faena_shop::stores::{self, NewStore};
use faena_testkit::TestDb;

async fn add_store(conn: &mut AsyncPgConnection, code: &str, n: u32) -> anyhow::Result<i64> {
    let store = stores::create_store(
        conn,
        &NewStore {
            code: code.into(),
            name: format!("Tienda {code}"),
            address: String::new(),
            establishment_code: format!("{n:04}"),
            // The main store has B001/F001/BC01/FC01.
            boleta_series: format!("B{:03}", n + 10),
            factura_series: format!("F{:03}", n + 10),
            boleta_note_series: format!("BC{:02}", n + 10),
            factura_note_series: format!("FC{:02}", n + 10),
            active: None,
        },
    )
    .await?;
    Ok(store.id)
}

/// Sets the product's stock in a store, as `PATCH /api/products/{id}` does.
async fn set(conn: &mut AsyncPgConnection, id: i64, store: i64, stock: i64) -> anyhow::Result<()> {
    shop::update_product(
        conn,
        id,
        ProductPatch {
            stock: Some(stock.into()),
            store_id: Some(store),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// Open alerts as (store id -> kind) of product `id`, with the stock each recorded.
async fn open_alerts(
    conn: &mut AsyncPgConnection,
    id: i64,
) -> anyhow::Result<BTreeMap<i64, (String, serde_json::Value)>> {
    let list = insights::list_insights(
        conn,
        &InsightFilter {
            status: Some(InsightStatus::Open),
            ..Default::default()
        },
    )
    .await?;
    Ok(list
        .into_iter()
        .filter(|i| i.product_id == Some(id))
        .map(|i| {
            (
                i.store_id.unwrap_or_default(),
                (i.kind, i.data["stock"].clone()),
            )
        })
        .collect())
}

#[tokio::test]
async fn stock_alerts_are_per_product_and_store() -> anyhow::Result<()> {
    let db = TestDb::new("alerts_per_store").await?;
    let mut conn = AsyncPgConnection::establish(&db.url).await?;
    let main = stores::main_store(&mut conn).await?.id;
    let lima = add_store(&mut conn, "lima", 1).await?;
    let cusco = add_store(&mut conn, "cusco", 2).await?;
    let _never = add_store(&mut conn, "puno", 3).await?;
    let p = shop::create_product(
        &mut conn,
        NewProduct {
            sku: "AGUA".into(),
            name: "Agua 625 ml".into(),
            unit_price: "1.50".parse()?,
            stock: 100.into(),
            low_stock_threshold: 5.into(),
            igv_affectation: "10".into(),
            unit_code: "NIU".into(),
            icbper: false,
            decimal_quantity: false,
        },
    )
    .await?;
    set(&mut conn, p.id, lima, 3).await?;
    set(&mut conn, p.id, cusco, 0).await?;
    let read = shop::get_product(&mut conn, p.id).await?;
    assert_eq!(read.stock, BigDecimal::from(103));
    assert_eq!(
        read.by_store
            .iter()
            .map(|s| (s.store_id, s.store_code.as_str()))
            .collect::<Vec<_>>(),
        [(main, "principal"), (lima, "lima"), (cusco, "cusco")]
    );

    // Lima at 3 is low, cusco at 0 is out; the main store (100) and puno (never stocked) none.
    let report = insights::refresh_stock_alerts(&mut conn).await?;
    assert_eq!((report.opened, report.closed, report.open), (2, 0, 2));
    assert_eq!(
        open_alerts(&mut conn, p.id).await?,
        BTreeMap::from([
            (lima, ("low_stock".to_owned(), serde_json::json!(3))),
            (cusco, ("out_of_stock".to_owned(), serde_json::json!(0))),
        ])
    );
    // Listed by store, too.
    let of_lima = insights::list_insights(
        &mut conn,
        &InsightFilter {
            store_id: Some(lima),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(of_lima.len(), 1);
    assert_eq!(of_lima[0].data["store"], "lima");
    // Again without changes: nothing.
    let report = insights::refresh_stock_alerts(&mut conn).await?;
    assert_eq!(
        (report.opened, report.closed, report.updated, report.open),
        (0, 0, 0, 2)
    );

    // Lima recovers, cusco gets some but stays low: lima's closes, cusco's becomes low_stock.
    set(&mut conn, p.id, lima, 50).await?;
    shop::adjust_stock(&mut conn, p.id, Some(cusco), 2.into(), None).await?;
    let report = insights::refresh_stock_alerts(&mut conn).await?;
    assert_eq!((report.opened, report.closed, report.open), (1, 2, 1));
    assert_eq!(
        open_alerts(&mut conn, p.id).await?,
        BTreeMap::from([(cusco, ("low_stock".to_owned(), serde_json::json!(2)))])
    );
    // The main store running out opens its own alert, leaving cusco's as it is.
    shop::adjust_stock(&mut conn, p.id, None, BigDecimal::from(-100), None).await?;
    let report = insights::refresh_alerts(&mut conn, insights::AlertScope::OutOfStock).await?;
    assert_eq!((report.opened, report.closed, report.open), (1, 0, 2));
    assert_eq!(
        open_alerts(&mut conn, p.id).await?,
        BTreeMap::from([
            (main, ("out_of_stock".to_owned(), serde_json::json!(0))),
            (cusco, ("low_stock".to_owned(), serde_json::json!(2))),
        ])
    );
    Ok(())
}

#[tokio::test]
async fn a_stores_stock_is_set_and_changed_alone() -> anyhow::Result<()> {
    let db = TestDb::new("stock_set_store").await?;
    let mut conn = AsyncPgConnection::establish(&db.url).await?;
    let main = stores::main_store(&mut conn).await?.id;
    let lima = add_store(&mut conn, "lima", 1).await?;
    let p = shop::create_product(
        &mut conn,
        NewProduct {
            sku: "QUESO".into(),
            name: "Queso fresco".into(),
            unit_price: "24.00".parse()?,
            stock: "1.250".parse()?,
            low_stock_threshold: 1.into(),
            igv_affectation: "10".into(),
            unit_code: "KGM".into(),
            icbper: false,
            decimal_quantity: true,
        },
    )
    .await?;
    let d = |s: &str| s.parse::<BigDecimal>().expect("a decimal");
    let p = shop::adjust_stock(&mut conn, p.id, Some(lima), d("0.375"), None).await?;
    assert_eq!(
        (p.stock_in(main), p.stock_in(lima)),
        (d("1.25"), d("0.375"))
    );
    assert_eq!(p.stock, d("1.625"));
    // Below zero in lima is refused, whatever the main store holds.
    let err = shop::adjust_stock(&mut conn, p.id, Some(lima), d("-0.5"), None)
        .await
        .err()
        .map(|e| (e.code(), e.to_string()));
    assert_eq!(
        err.as_ref().map(|(c, _)| *c),
        Some("invalid_field"),
        "{err:?}"
    );
    // Listed for lima only: lima's stock.
    let listed =
        shop::list_products(&mut conn, 10, Some(&stores::StoreKey::Code("lima".into()))).await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].stock.clone(), listed[0].by_store.len()),
        (d("0.375"), 1)
    );
    let unchanged = shop::get_product(&mut conn, p.id).await?;
    assert_eq!(
        (unchanged.stock_in(main), unchanged.stock_in(lima)),
        (d("1.25"), d("0.375"))
    );
    Ok(())
}
