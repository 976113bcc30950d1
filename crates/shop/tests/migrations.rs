//! Migrations keep existing data: a database as it was before decimal quantities (the migration
//! reverted with its own `down.sql`), with whole stocks up to the old integer limit, a
//! reservation and a sale line, migrates to exact decimals with every value unchanged and every
//! product sold in whole units.

use bigdecimal::BigDecimal;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use faena_shop::schema::{products, reservation_items, sale_items};
use faena_testkit::TestDb;

const DOWN: &str =
    include_str!("../../../migrations/2026-12-02-001600_decimal_quantities/down.sql");

#[tokio::test]
async fn whole_quantities_migrate_to_decimals_unchanged() -> anyhow::Result<()> {
    let db = TestDb::new("mig_quantities").await?;
    let mut conn = AsyncPgConnection::establish(&db.url).await?;
    conn.batch_execute(DOWN).await?;
    conn.batch_execute(
        "DELETE FROM __diesel_schema_migrations WHERE version = '20261202001600';
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
    assert_eq!(applied.len(), 1, "{applied:?}");

    let stored: Vec<(i64, BigDecimal, BigDecimal, bool)> = products::table
        .order(products::id)
        .select((
            products::id,
            products::stock,
            products::low_stock_threshold,
            products::decimal_quantity,
        ))
        .load(&mut conn)
        .await?;
    let n = |v: i64| BigDecimal::from(v);
    assert_eq!(
        stored,
        [(1, n(2_147_483_647), n(0), false), (2, n(7), n(5), false)]
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
    let fraction = diesel::sql_query("UPDATE products SET stock = 6.5 WHERE id = 2")
        .execute(&mut conn)
        .await;
    assert!(fraction.is_err(), "a fractional stock of a unit product");
    Ok(())
}
