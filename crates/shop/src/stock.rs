//! Taking stock, the one way both a checkout and a sale from items do it, and giving it back
//! when a reservation is released or expires, a sale is cancelled or a credit note returns goods
//! ([`give_back`]): the request is parsed into a [`StockRequest`] (1 to 100 lines, each product
//! once, each with a [`Quantity`]), then [`take_stock`] locks the store's stock rows of the
//! products in product-id order, checks every line and takes the quantities, or takes nothing and
//! answers every line at fault.
//!
//! Stock is per store (`product_stock`, one row per product and store that stocks it): a take
//! touches only its store's rows, never the product's row, so sales of one product in two stores
//! do not queue on each other. Stock goes back to the store it came from.
//!
//! One lock order for every transaction that touches several stock rows, (store, product), means
//! two of them never deadlock; the lock is held until the caller's transaction ends, so what was
//! checked is what is taken, and `CHECK (quantity >= 0)` backs it. Lock waits are the caller's to
//! bound (`SET LOCAL lock_timeout`), and so are retries.
//!
//! Quantities are exact decimals (`NUMERIC(13, 3)`): a fraction is taken only from a product sold
//! by weight or measure (`decimal_quantity`, which the stock row carries in step with the
//! product), checked in the same conditional `UPDATE` that takes it, so a line costs one
//! statement whatever it holds (`CHECK (decimal_quantity OR quantity = trunc(quantity))` backs it),
//! after one read of the products' descriptions for the whole request.

use bigdecimal::BigDecimal;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::quantity::Quantity;
use crate::schema::{product_stock, products};

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
    /// The store whose stock was short (the checkout's or the sale's).
    pub store_id: i64,
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

/// Takes the stock of every line from store `store_id`, in product-id order, inside the caller's
/// transaction: the products read once, then one conditional `UPDATE ... WHERE quantity >= q` per line, each taking
/// its stock row's lock in that order (two callers never deadlock, none oversells), never the
/// product's row. A store without a row for a product has none of it. When a line is refused, the
/// rows are read again under their locks to name every line at fault, and the caller's
/// transaction must roll back what was taken. Lock timeouts and retries are the caller's.
pub async fn take_stock(
    conn: &mut AsyncPgConnection,
    store_id: i64,
    request: &StockRequest,
) -> Result<Vec<Taken>, StockError> {
    let lines = request.lines();
    // The products as they are now, read once and before any lock (a product's row is never
    // locked by a take; its stock row is what is taken). Every statement here is a prepared one
    // the connection keeps (diesel's statement cache), so a hot product's queue holds the row for
    // one short UPDATE, not a join planned each time.
    let ids: Vec<i64> = lines.iter().map(|l| l.product_id).collect();
    let Some(first) = lines.first() else {
        return Ok(Vec::new());
    };
    // The read and the first line's take go out together, in one round trip (the connection
    // runs them in order): the read needs no lock, and a one-line sale or checkout then waits for
    // its stock row once, not after a round trip of its own.
    let shared: &AsyncPgConnection = conn;
    let (mut read_on, mut take_on) = (shared, shared);
    let (described, first_took): (Vec<Described>, usize) = futures::try_join!(
        products::table
            .filter(products::id.eq_any(&ids))
            .select((
                products::id,
                products::sku,
                products::name,
                products::unit_price,
                ProductTaxation::as_select(),
            ))
            .load(&mut read_on),
        take_line(&mut take_on, store_id, first),
    )?;
    let mut first_took = Some(first_took);
    let mut taken = Vec::with_capacity(lines.len());
    let mut looked = false;
    while let Some(line) = lines.get(taken.len()) {
        let updated = match first_took.take() {
            Some(n) => n,
            None => take_line(conn, store_id, line).await?,
        };
        let took = updated == 1;
        let product = described.iter().find(|d| d.0 == line.product_id);
        match (took, product) {
            (true, Some((_, sku, name, unit_price, taxation))) => taken.push(Taken {
                product_id: line.product_id,
                sku: sku.clone(),
                name: name.clone(),
                unit_price: unit_price.clone(),
                quantity: line.quantity.clone(),
                taxation: taxation.clone(),
            }),
            // Taken, but the product was deleted after it was read: named as unknown.
            (true, None) => return Err(refusal(conn, store_id, request, taken.len()).await?),
            // Refused, and nothing changed since (the look holds the locks): every fault, named.
            (false, _) if looked => {
                return Err(refusal(conn, store_id, request, taken.len()).await?)
            }
            // Stock can come back between the refused UPDATE and the look (another transaction
            // rolled back): look under the locks, then try the line once more.
            (false, _) => {
                looked = true;
                if let Some(refused) = faults(conn, store_id, request, taken.len()).await? {
                    return Err(refused);
                }
            }
        }
    }
    Ok(taken)
}

/// A product as a take reads it: id, sku, name, unit price, taxation.
type Described = (i64, String, String, BigDecimal, ProductTaxation);

/// Takes one line's quantity from its product's stock row in `store_id`, if the row holds that
/// much: 1 row updated, or 0 when it does not (or the product is not sold by weight and the
/// quantity is a fraction). Two statements rather than `decimal_quantity OR $whole`, each prepared
/// once per connection.
async fn take_line<C>(conn: &mut C, store_id: i64, line: &StockLine) -> QueryResult<usize>
where
    C: diesel_async::AsyncConnectionCore<Backend = diesel::pg::Pg> + Send,
{
    let q = line.quantity.decimal();
    let row = product_stock::table
        .filter(product_stock::product_id.eq(line.product_id))
        .filter(product_stock::store_id.eq(store_id))
        .filter(product_stock::quantity.ge(q));
    let left = product_stock::quantity.eq(product_stock::quantity - q);
    if line.quantity.is_whole() {
        diesel::update(row).set(left).execute(conn).await
    } else {
        diesel::update(row.filter(product_stock::decimal_quantity))
            .set(left)
            .execute(conn)
            .await
    }
}

/// Gives `lines` (product id, quantity) back to store `store_id`, the store they were taken
/// from: a released or expired reservation, a cancelled sale, the goods a credit note returns.
/// Inside the caller's transaction and in product-id order, the lock order of [`take_stock`], so
/// a give-back and a checkout never deadlock; a caller giving back to several stores calls it
/// store by store in store-id order. A product that no longer exists takes nothing back. Returns
/// the units given back (exact: a weighed product's fractions count as they are).
pub async fn give_back(
    conn: &mut AsyncPgConnection,
    store_id: i64,
    lines: &[(i64, BigDecimal)],
) -> Result<BigDecimal, diesel::result::Error> {
    let mut lines: Vec<&(i64, BigDecimal)> = lines.iter().collect();
    lines.sort_by_key(|(product_id, _)| *product_id);
    let mut units = BigDecimal::from(0);
    for (product_id, q) in lines {
        let n = diesel::update(product_stock::table.find((*product_id, store_id)))
            .set(product_stock::quantity.eq(product_stock::quantity + q))
            .execute(conn)
            .await?;
        if n == 1 {
            units += q;
        }
    }
    Ok(units)
}

/// The lines of a request as [`give_back`] takes them.
pub fn lines_of(request: &StockRequest) -> Vec<(i64, BigDecimal)> {
    request
        .lines()
        .iter()
        .map(|l| (l.product_id, l.quantity.decimal().clone()))
        .collect()
}

/// Like [`faults`], for a line refused under the locks: always a refusal.
async fn refusal(
    conn: &mut AsyncPgConnection,
    store_id: i64,
    request: &StockRequest,
    refused: usize,
) -> Result<StockError, StockError> {
    Ok(faults(conn, store_id, request, refused)
        .await?
        .unwrap_or(StockError::Refused {
            first: Fault::Unknown(request.lines()[refused].product_id),
            rest: Vec::new(),
        }))
}

/// Reads the store's stock rows of the requested products under their locks (product-id order)
/// and names every line at fault from line `refused` on (the lines before it were taken); `None`
/// when none is. A product the store has no row for has 0 there.
async fn faults(
    conn: &mut AsyncPgConnection,
    store_id: i64,
    request: &StockRequest,
    refused: usize,
) -> Result<Option<StockError>, StockError> {
    let ids: Vec<i64> = request.lines().iter().map(|l| l.product_id).collect();
    let held: Vec<(i64, BigDecimal, bool)> = product_stock::table
        .filter(product_stock::store_id.eq(store_id))
        .filter(product_stock::product_id.eq_any(&ids))
        .order(product_stock::product_id)
        .select((
            product_stock::product_id,
            product_stock::quantity,
            product_stock::decimal_quantity,
        ))
        .for_update()
        .load(conn)
        .await?;
    let found: Vec<(i64, String, bool)> = products::table
        .filter(products::id.eq_any(&ids))
        .select((products::id, products::sku, products::decimal_quantity))
        .load(conn)
        .await?;
    let zero = BigDecimal::from(0);
    let mut faults = Vec::new();
    for line in &request.lines()[refused..] {
        let Some((_, sku, product_decimal)) = found.iter().find(|f| f.0 == line.product_id) else {
            faults.push(Fault::Unknown(line.product_id));
            continue;
        };
        let row = held.iter().find(|h| h.0 == line.product_id);
        let (stock, decimal) = row.map_or((&zero, *product_decimal), |(_, q, d)| (q, *d));
        if !decimal && !line.quantity.is_whole() {
            faults.push(Fault::Whole {
                product_id: line.product_id,
                sku: sku.clone(),
                quantity: line.quantity.clone(),
            });
        } else if stock < line.quantity.decimal() {
            faults.push(Fault::Short(Shortage {
                product_id: line.product_id,
                sku: sku.clone(),
                store_id,
                requested: line.quantity.decimal().clone(),
                available: stock.clone(),
            }));
        }
    }
    let mut faults = faults.into_iter();
    Ok(faults.next().map(|first| StockError::Refused {
        first,
        rest: faults.collect(),
    }))
}

/// What to do about a quantity with decimals of a product sold in whole units.
pub fn whole_units_message(product_id: i64, sku: &str, quantity: &Quantity) -> String {
    format!(
        "{quantity} has decimals, but product {product_id} ({sku}) is sold in whole units: give a \
         whole quantity (decimals are for products with decimal_quantity, sold by weight or \
         measure)"
    )
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
