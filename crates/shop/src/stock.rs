//! Taking stock, the one way both a checkout and a sale from items do it, and giving it back
//! when a sale is cancelled or a credit note returns goods ([`give_back`]): the request is parsed
//! into a [`StockRequest`] (1 to 100 lines, each product once, each with a [`Quantity`]), then
//! [`take_stock`] locks the products' rows in product-id order, checks every line and takes the
//! quantities, or takes nothing and answers every line at fault.
//!
//! One lock order for every transaction that touches several products means two of them never
//! deadlock; the lock is held until the caller's transaction ends, so what was checked is what is
//! taken, and `CHECK (stock >= 0)` backs it. Lock waits are the caller's to bound
//! (`SET LOCAL lock_timeout`), and so are retries.
//!
//! Quantities are exact decimals (`NUMERIC(13, 3)`): a fraction is taken only from a product sold
//! by weight or measure (`decimal_quantity`), checked in the same conditional `UPDATE` that takes
//! it, so a line costs one statement whatever it holds (`CHECK (decimal_quantity OR stock =
//! trunc(stock))` backs it).

use bigdecimal::BigDecimal;
use diesel::prelude::*;
use diesel::sql_types::Bool;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::quantity::Quantity;
use crate::schema::products;

/// The most lines one request may take.
pub const MAX_LINES: usize = 100;

/// `quantity` of product `product_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLine {
    pub product_id: i64,
    pub quantity: Quantity,
}

/// Lines that may take stock: 1 to [`MAX_LINES`], each product once, kept in product-id order
/// (the lock order). Each quantity is a [`Quantity`] already (above 0, at most 3 decimals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockRequest(Vec<StockLine>);

/// Why lines cannot make a [`StockRequest`]; `index` is the line's position as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadLines {
    /// No lines, or more than [`MAX_LINES`]: how many there were.
    Count(usize),
    /// A product given a second time.
    Repeated { index: usize, product_id: i64 },
}

impl StockRequest {
    /// Checks `(product_id, quantity)` lines in the order given: first their number, then each
    /// line's product, so the first line at fault is the one named.
    pub fn parse(lines: impl IntoIterator<Item = (i64, Quantity)>) -> Result<Self, BadLines> {
        let mut lines: Vec<StockLine> = lines
            .into_iter()
            .map(|(product_id, quantity)| StockLine {
                product_id,
                quantity,
            })
            .collect();
        if lines.is_empty() || lines.len() > MAX_LINES {
            return Err(BadLines::Count(lines.len()));
        }
        let mut seen = std::collections::HashSet::new();
        for (index, line) in lines.iter().enumerate() {
            if !seen.insert(line.product_id) {
                return Err(BadLines::Repeated {
                    index,
                    product_id: line.product_id,
                });
            }
        }
        lines.sort_by_key(|l| l.product_id);
        Ok(Self(lines))
    }

    /// The lines in product-id order.
    pub fn lines(&self) -> &[StockLine] {
        &self.0
    }
}

/// A product that lacks stock for a request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Shortage {
    pub product_id: i64,
    pub sku: String,
    /// A JSON number (`2`, `1.25`).
    #[serde(with = "crate::quantity::number")]
    #[schema(value_type = f64, example = 1.25)]
    pub requested: BigDecimal,
    /// A JSON number (`0`, `0.75`).
    #[serde(with = "crate::quantity::number")]
    #[schema(value_type = f64, example = 0.75)]
    pub available: BigDecimal,
}

/// A line that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// No product has this id.
    Unknown(i64),
    /// The product has less stock than the line asks for.
    Short(Shortage),
    /// A quantity with a fraction of a product sold in whole units (`decimal_quantity` false).
    Whole {
        product_id: i64,
        sku: String,
        quantity: Quantity,
    },
}

/// Why [`take_stock`] took nothing.
#[derive(Debug)]
pub enum StockError {
    /// The lines at fault, in product-id order: `first`, then the `rest`.
    Refused {
        first: Fault,
        rest: Vec<Fault>,
    },
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for StockError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e)
    }
}

/// How a product is taxed (catálogo 07 affectation, catálogo 03 unit, ICBPER), as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = products, check_for_backend(diesel::pg::Pg))]
pub struct ProductTaxation {
    pub igv_affectation: String,
    pub unit_code: String,
    pub icbper: bool,
}

/// A line as taken, with what its product says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub product_id: i64,
    pub sku: String,
    pub name: String,
    pub unit_price: BigDecimal,
    pub quantity: Quantity,
    pub taxation: ProductTaxation,
}

/// Takes the stock of every line, in product-id order, inside the caller's transaction: one
/// conditional `UPDATE ... WHERE stock >= q RETURNING` per line, each taking its row's lock in that
/// order (two callers never deadlock, none oversells). When a line is refused, the products are read
/// again under their locks to name every line at fault, and the caller's transaction must roll back
/// what was taken. Lock timeouts and retries are the caller's.
pub async fn take_stock(
    conn: &mut AsyncPgConnection,
    request: &StockRequest,
) -> Result<Vec<Taken>, StockError> {
    let lines = request.lines();
    let mut taken = Vec::with_capacity(lines.len());
    let mut looked = false;
    while let Some(line) = lines.get(taken.len()) {
        let q = line.quantity.decimal();
        // A fraction only from a product sold by weight: `decimal_quantity OR $whole`.
        let whole = line.quantity.is_whole().into_sql::<Bool>();
        let row: Option<(String, String, BigDecimal, ProductTaxation)> =
            diesel::update(products::table.find(line.product_id))
                .filter(products::stock.ge(q))
                .filter(products::decimal_quantity.or(whole))
                .set((
                    products::stock.eq(products::stock - q),
                    products::version.eq(products::version + 1),
                ))
                .returning((
                    products::sku,
                    products::name,
                    products::unit_price,
                    ProductTaxation::as_returning(),
                ))
                .get_result(conn)
                .await
                .optional()?;
        match row {
            Some((sku, name, unit_price, taxation)) => taken.push(Taken {
                product_id: line.product_id,
                sku,
                name,
                unit_price,
                quantity: line.quantity.clone(),
                taxation,
            }),
            // Refused, and nothing changed since (the look holds the locks): every fault, named.
            None if looked => return Err(refusal(conn, request, taken.len()).await?),
            // Stock can come back between the refused UPDATE and the look (another transaction
            // rolled back): look under the locks, then try the line once more.
            None => {
                looked = true;
                if let Some(refused) = faults(conn, request, taken.len()).await? {
                    return Err(refused);
                }
            }
        }
    }
    Ok(taken)
}

/// Gives the units of `request` back to their products (a cancelled sale, the goods a credit note
/// returns), inside the caller's
/// transaction and in product-id order, the lock order of [`take_stock`], so a cancellation and a
/// checkout never deadlock. A product that no longer exists takes nothing back. Returns the units
/// given back (exact: a weighed product's fractions count as they are).
pub async fn give_back(
    conn: &mut AsyncPgConnection,
    request: &StockRequest,
) -> Result<BigDecimal, diesel::result::Error> {
    let mut units = BigDecimal::from(0);
    for line in request.lines() {
        let q = line.quantity.decimal();
        let n = diesel::update(products::table.find(line.product_id))
            .set((
                products::stock.eq(products::stock + q),
                products::version.eq(products::version + 1),
            ))
            .execute(conn)
            .await?;
        if n == 1 {
            units += q;
        }
    }
    Ok(units)
}

/// Like [`faults`], for a line refused under the locks: always a refusal.
async fn refusal(
    conn: &mut AsyncPgConnection,
    request: &StockRequest,
    refused: usize,
) -> Result<StockError, StockError> {
    Ok(faults(conn, request, refused)
        .await?
        .unwrap_or(StockError::Refused {
            first: Fault::Unknown(request.lines()[refused].product_id),
            rest: Vec::new(),
        }))
}

/// Reads the requested products under their locks (product-id order) and names every line at fault
/// from line `refused` on (the lines before it were taken); `None` when none is.
async fn faults(
    conn: &mut AsyncPgConnection,
    request: &StockRequest,
    refused: usize,
) -> Result<Option<StockError>, StockError> {
    let ids: Vec<i64> = request.lines().iter().map(|l| l.product_id).collect();
    let found: Vec<(i64, String, BigDecimal, bool)> = products::table
        .filter(products::id.eq_any(&ids))
        .order(products::id)
        .select((
            products::id,
            products::sku,
            products::stock,
            products::decimal_quantity,
        ))
        .for_update()
        .load(conn)
        .await?;
    let mut faults = Vec::new();
    for line in &request.lines()[refused..] {
        match found.iter().find(|f| f.0 == line.product_id) {
            None => faults.push(Fault::Unknown(line.product_id)),
            Some((_, sku, _, false)) if !line.quantity.is_whole() => faults.push(Fault::Whole {
                product_id: line.product_id,
                sku: sku.clone(),
                quantity: line.quantity.clone(),
            }),
            Some((_, sku, stock, _)) if stock < line.quantity.decimal() => {
                faults.push(Fault::Short(Shortage {
                    product_id: line.product_id,
                    sku: sku.clone(),
                    requested: line.quantity.decimal().clone(),
                    available: stock.clone(),
                }))
            }
            Some(_) => {}
        }
    }
    let mut faults = faults.into_iter();
    Ok(faults.next().map(|first| StockError::Refused {
        first,
        rest: faults.collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(product_id: i64, quantity: i64) -> (i64, Quantity) {
        (
            product_id,
            Quantity::whole(quantity).unwrap_or_else(|e| panic!("{e}")),
        )
    }

    #[test]
    fn a_request_keeps_product_id_order() {
        let r = StockRequest::parse([line(9, 1), line(2, 3), line(5, 1)]).expect("valid lines");
        let ids: Vec<i64> = r.lines().iter().map(|l| l.product_id).collect();
        assert_eq!(ids, [2, 5, 9]);
    }

    #[test]
    fn the_first_line_at_fault_is_named() {
        assert_eq!(StockRequest::parse([]), Err(BadLines::Count(0)));
        let many = (0..=MAX_LINES as i64).map(|id| line(id, 1));
        assert_eq!(
            StockRequest::parse(many),
            Err(BadLines::Count(MAX_LINES + 1))
        );
        assert_eq!(
            StockRequest::parse([line(1, 1), line(2, 1), line(1, 2), line(3, 1)]),
            Err(BadLines::Repeated {
                index: 2,
                product_id: 1
            })
        );
    }
}
