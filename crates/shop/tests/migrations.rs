//! Migrations keep existing data: a database as it was before decimal quantities (the migrations
//! reverted with their own `down.sql`), with whole stocks up to the old integer limit, a
//! reservation and a sale line, migrates to exact decimals with every value unchanged and every
//! product sold in whole units; and a database as it was before stock per store moves every
//! product's stock into the main store's row unchanged.

use bigdecimal::BigDecimal;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use faena_shop::schema::{
    insights, product_stock, products, reservation_items, reservations, sale_items,
};
use faena_testkit::TestDb;

const DOWN_QUANTITIES: &str =
    include_str!("../../../migrations/2026-12-02-001600_decimal_quantities/down.sql");
const DOWN_STOCK: &str =
    include_str!("../../../migrations/2026-12-02-002100_product_stock/down.sql");

/// The main store's id.
async fn main_store(conn: &mut AsyncPgConnection) -> anyhow::Result<i64> {
    Ok(faena_shop::stores::main_store(conn).await?.id)
}

/// Each product's stock rows as (product, store, quantity, decimal_quantity).
async fn stock_rows(
    conn: &mut AsyncPgConnection,
) -> anyhow::Result<Vec<(i64, i64, BigDecimal, bool)>> {
    Ok(product_stock::table
        .order((product_stock::product_id, product_stock::store_id))
        .select((
            product_stock::product_id,
            product_stock::store_id,
            product_stock::quantity,
            product_stock::decimal_quantity,
        ))
        .load(conn)
        .await?)
}

#[tokio::test]
async fn whole_quantities_migrate_to_decimals_unchanged() -> anyhow::Result<()> {
    let db = TestDb::new("mig_quantities").await?;
    let mut conn = AsyncPgConnection::establish(&db.url).await?;
    conn.batch_execute(DOWN_STOCK).await?;
    conn.batch_execute(DOWN_QUANTITIES).await?;
    conn.batch_execute(
        "DELETE FROM __diesel_schema_migrations WHERE version IN ('20261202001600', '20261202002100');
         INSERT INTO products (id, sku, name, unit_price, stock, low_stock_threshold)
             VALUES (1, 'MAX', 'Al límite', 1.00, 2147483647, 0),
                    (2, 'ARR', 'Arroz', 4.20, 7, 5);
         INSERT INTO reservations (id, expires_at) VALUES (1, now() + interval '1 hour');
         INSERT INTO reservation_items (reservation_id, product_id, quantity) VALUES (1, 2, 3);
         INSERT INTO sales (id, seller_id, doc_type, series, correlative, issue_date,
                 customer_doc_type, customer_doc_number, customer_name, subtotal, igv, total)
             VALUES (1, '1', '03', 'B001', 1, '2026-12-01', '0', '00000000', 'CLIENTES VARIOS',
                 7.12, 1.28, 8.40);
         INSERT INTO sale_items (sale_id, product_id, sku, description, quantity, unit_price,
                 line_total, value, igv)
             VALUES (1, 2, 'ARR', 'Arroz', 2, 4.20, 8.40, 7.12, 1.28);",
    )
    .await?;
    let applied = faena_core::db::run_migrations(&db.url).await?;
    assert_eq!(applied.len(), 2, "{applied:?}");

    let stored: Vec<(i64, BigDecimal, bool)> = products::table
        .order(products::id)
        .select((
            products::id,
            products::low_stock_threshold,
            products::decimal_quantity,
        ))
        .load(&mut conn)
        .await?;
    let n = |v: i64| BigDecimal::from(v);
    assert_eq!(stored, [(1, n(0), false), (2, n(5), false)]);
    let main = main_store(&mut conn).await?;
    assert_eq!(
        stock_rows(&mut conn).await?,
        [(1, main, n(2_147_483_647), false), (2, main, n(7), false)]
    );
    let held: (BigDecimal, bool, Option<BigDecimal>, Option<BigDecimal>) = reservation_items::table
        .select((
            reservation_items::quantity,
            reservation_items::free,
            reservation_items::discount_percent,
            reservation_items::discount_amount,
        ))
        .first(&mut conn)
        .await?;
    assert_eq!(held, (n(3), false, None, None));
    let sold: BigDecimal = sale_items::table
        .select(sale_items::quantity)
        .first(&mut conn)
        .await?;
    assert_eq!(sold, n(2));
    // Whole units: a fraction of a product without decimal_quantity is refused by the database
    // too, not only by the api.
    let fraction =
        diesel::sql_query("UPDATE product_stock SET quantity = 6.5 WHERE product_id = 2")
            .execute(&mut conn)
            .await;
    assert!(fraction.is_err(), "a fractional stock of a unit product");
    Ok(())
}

#[tokio::test]
async fn stock_moves_into_the_main_store_unchanged() -> anyhow::Result<()> {
    let db = TestDb::new("mig_store_stock").await?;
    let mut conn = AsyncPgConnection::establish(&db.url).await?;
    conn.batch_execute(DOWN_STOCK).await?;
    conn.batch_execute(
        "DELETE FROM __diesel_schema_migrations WHERE version = '20261202002100';
         INSERT INTO stores (id, code, name, establishment_code, boleta_series, factura_series,
                 boleta_note_series, factura_note_series)
             VALUES (50, 'norte', 'Tienda Norte', '0001', 'B050', 'F050', 'BC50', 'FC50');
         INSERT INTO products (id, sku, name, unit_price, stock, low_stock_threshold, decimal_quantity)
             VALUES (1, 'ARR', 'Arroz a granel', 4.20, 12.345, 5, TRUE),
                    (2, 'LEC', 'Leche', 3.50, 0, 2, FALSE),
                    (3, 'PAN', 'Pan', 0.50, 1000000000, 10, FALSE);
         INSERT INTO reservations (id, expires_at) VALUES (1, now() + interval '1 hour');
         INSERT INTO reservation_items (reservation_id, product_id, quantity) VALUES (1, 1, 0.5);
         INSERT INTO insights (kind, product_id, status, data)
             VALUES ('out_of_stock', 2, 'open', '{\"sku\": \"LEC\", \"stock\": 0}');",
    )
    .await?;
    let applied = faena_core::db::run_migrations(&db.url).await?;
    assert_eq!(applied.len(), 1, "{applied:?}");

    let main = main_store(&mut conn).await?;
    let d = |s: &str| s.parse::<BigDecimal>().expect("a decimal");
    // Every product's stock, unchanged, in the main store only (the other store has none).
    assert_eq!(
        stock_rows(&mut conn).await?,
        [
            (1, main, d("12.345"), true),
            (2, main, d("0"), false),
            (3, main, d("1000000000"), false)
        ]
    );
    // Read through the shop: the total is the main store's.
    let p = faena_shop::shop::get_product(&mut conn, 1).await?;
    assert_eq!(p.stock, d("12.345"));
    assert_eq!(p.by_store.len(), 1);
    assert_eq!(p.stock_in(main), d("12.345"));
    assert_eq!(p.stock_in(50), d("0"));
    // The reservation and the open alert are the main store's.
    let reserved_in: i64 = reservations::table
        .find(1)
        .select(reservations::store_id)
        .first(&mut conn)
        .await?;
    assert_eq!(reserved_in, main);
    let alert: (Option<i64>, String) = insights::table
        .select((insights::store_id, insights::kind))
        .first(&mut conn)
        .await?;
    assert_eq!(alert, (Some(main), "out_of_stock".to_owned()));
    // One truth: products has no stock of its own any more.
    let gone = diesel::sql_query("SELECT stock FROM products")
        .execute(&mut conn)
        .await;
    assert!(gone.is_err(), "products.stock is dropped");
    // A product's decimal_quantity is carried to its stock rows.
    diesel::sql_query("UPDATE products SET decimal_quantity = TRUE WHERE id = 2")
        .execute(&mut conn)
        .await?;
    let carried: bool = product_stock::table
        .find((2, main))
        .select(product_stock::decimal_quantity)
        .first(&mut conn)
        .await?;
    assert!(carried, "ON UPDATE CASCADE carries decimal_quantity");
    Ok(())
}
