//! PostgreSQL's errors on the real schema, sorted by `faena_core::db::QueryError`: each kind of
//! constraint and the data exceptions are the caller's fault, with the column when the database
//! names it, in words of our own; a timeout or a query of ours that is wrong are not.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use faena_core::db::{QueryError, Refusal, Rule};
use faena_testkit::TestDb;

/// Runs `sql`, which must fail, and sorts its error.
async fn error_of(conn: &mut AsyncPgConnection, sql: &str) -> anyhow::Result<QueryError> {
    match diesel::sql_query(sql).execute(conn).await {
        Ok(n) => anyhow::bail!("`{sql}` succeeded ({n} rows)"),
        Err(e) => Ok(QueryError::from(e)),
    }
}

fn refused(rule: Rule, column: Option<&str>) -> QueryError {
    QueryError::Refused(Refusal {
        rule,
        column: column.map(str::to_owned),
    })
}

/// A product with its low-stock threshold (its stock is per store, in `product_stock`).
const PRODUCT: &str = "INSERT INTO products (sku, name, unit_price, low_stock_threshold) VALUES";
/// A sale row, for a line to refer to.
const SALE: &str = "WITH s AS (INSERT INTO sales (seller_id, doc_type, series, correlative, \
    issue_date, customer_doc_type, customer_doc_number, customer_name, subtotal, igv, total) \
    VALUES ('u', '03', 'B001', 1, '2026-11-24', '0', '-', '', 0, 0, 0) RETURNING id)";

#[tokio::test]
async fn constraint_violations_and_data_exceptions_are_the_callers_fault() -> anyhow::Result<()> {
    let db = TestDb::new("db_refusals").await?;
    let mut conn = AsyncPgConnection::establish(&db.url).await?;
    diesel::sql_query(format!("{PRODUCT} ('A-1', 'Arroz', 4.50, 10)"))
        .execute(&mut conn)
        .await?;
    let cases = [
        // The case: a free line of a sale (`sale_items.unit_price > 0`).
        (
            format!(
                "{SALE} INSERT INTO sale_items (sale_id, sku, description, quantity, unit_price, \
                 line_total, value, igv) SELECT id, 'A-1', 'Arroz', 1, 0.00, 0.00, 0.00, 0.00 FROM s"
            ),
            refused(Rule::Check, Some("unit_price")),
        ),
        (
            format!("{PRODUCT} ('A-2', 'Azúcar', 3.00, -1)"),
            refused(Rule::Check, Some("low_stock_threshold")),
        ),
        (
            format!("{PRODUCT} ('A-1', 'Otro arroz', 4.00, 1)"),
            refused(Rule::Unique, Some("sku")),
        ),
        (
            "INSERT INTO reservation_items (reservation_id, product_id, quantity) \
             SELECT 999999, id, 1 FROM products"
                .to_owned(),
            refused(Rule::ForeignKey, Some("reservation_id")),
        ),
        (
            "INSERT INTO products (sku, unit_price, low_stock_threshold) VALUES ('A-3', 1.00, 1)".to_owned(),
            refused(Rule::NotNull, Some("name")),
        ),
        // NUMERIC(12, 2) holds less than ten thousand million.
        (
            format!("{PRODUCT} ('A-4', 'Oro', 99999999999.99, 1)"),
            refused(Rule::Data, None),
        ),
        // NUMERIC(13, 3) holds less than ten thousand million units.
        (
            format!("{PRODUCT} ('A-5', 'Sal', 1.00, 10000000000)"),
            refused(Rule::Data, None),
        ),
        ("SELECT 'abc'::int".to_owned(), refused(Rule::Data, None)),
        (
            "SELECT '5874898-01-01'::date".to_owned(),
            refused(Rule::Data, None),
        ),
    ];
    for (sql, expected) in cases {
        let got = error_of(&mut conn, &sql).await?;
        assert_eq!(got, expected, "{sql}");
        let message = got.to_string();
        for database_word in [
            "violates",
            "constraint",
            "relation",
            "products",
            "sale_items",
            "overflow",
            "syntax",
        ] {
            assert!(!message.contains(database_word), "{sql}: {message}");
        }
    }
    let QueryError::Refused(unique) =
        error_of(&mut conn, &format!("{PRODUCT} ('A-1', 'x', 1, 1)")).await?
    else {
        anyhow::bail!("a duplicate sku is a refusal");
    };
    assert_eq!(unique.code(), "conflict");
    assert!(unique.rule.is_conflict());
    let QueryError::Refused(check) =
        error_of(&mut conn, &format!("{PRODUCT} ('A-6', 'x', 1, -5)")).await?
    else {
        anyhow::bail!("a negative threshold is a refusal");
    };
    assert_eq!(check.code(), "invalid_value");
    assert!(!check.rule.is_conflict());
    Ok(())
}

#[tokio::test]
async fn a_timeout_or_a_wrong_query_is_the_databases_fault() -> anyhow::Result<()> {
    let db = TestDb::new("db_unavailable").await?;
    let mut conn = AsyncPgConnection::establish(&db.url).await?;
    diesel::sql_query("SET statement_timeout = '50ms'")
        .execute(&mut conn)
        .await?;
    let timeout = error_of(&mut conn, "SELECT pg_sleep(5)").await?;
    assert_eq!(timeout, QueryError::Unavailable);
    assert!(!timeout.to_string().contains("canceling"), "{timeout}");
    let wrong = error_of(&mut conn, "SELECT * FROM no_such_table").await?;
    assert_eq!(wrong, QueryError::Unavailable);
    Ok(())
}
