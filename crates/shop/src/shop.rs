//! Products and checkout reservations: stock that never oversells.
//!
//! Stock is per store (`product_stock`): a product's stock is the sum of its stores', a checkout
//! reserves from its caller's store and the reservation records it, so a release or an expiry
//! gives the stock back there.
//!
//! Concurrency (see docs/decisions.md): a checkout takes its stock with [`take_stock`], as a sale
//! from items does: row locks on its store's stock rows in product-id order, inside one
//! transaction, so two checkouts never deadlock and stock never goes below zero (the
//! `CHECK (quantity >= 0)` backs it). Releases lock the reservation first, then stock rows in
//! (store, product) order through [`give_back`]. An admin's change of a product's stock locks
//! the product's row, then the stock row. Lock waits are bounded
//! (`lock_timeout`); a checkout that still cannot get its locks after a few retries with backoff
//! answers `Contention` (409).

use std::time::Duration;

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use faena_core::db::QueryError;
use faena_sunat::taxation::{
    icbper_on, igv_rate_on, line_amounts, Affectation, LineInput, TaxError, UnitCode,
};
use serde::{Deserialize, Serialize};

use crate::quantity::{self, Quantity};
use crate::sales::{NextId, Seller};
use crate::schema::{product_stock, products, reservation_items, reservations, stores};
pub use crate::states::ReservationStatus;
pub use crate::stock::Shortage;
use crate::stock::{give_back, take_stock, BadLines, Fault, StockError, StockRequest, Taken};
use crate::stores::{self as store_rules, Store, StoreError, StoreKey};
pub use crate::terms::DiscountInput;
use crate::terms::LineTerms;

/// The most a product's stock may hold with what its ACTIVE reservations hold (the limit the
/// integer column had, kept: releasing those reservations must always fit).
pub const MAX_STOCK: i64 = i32::MAX as i64;

/// A product's row (its stock is per store, in `product_stock`).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = products, check_for_backend(diesel::pg::Pg))]
struct ProductRow {
    id: i64,
    sku: String,
    name: String,
    unit_price: BigDecimal,
    version: i32,
    low_stock_threshold: BigDecimal,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    igv_affectation: String,
    unit_code: String,
    icbper: bool,
    decimal_quantity: bool,
}

/// A product with its stock: in every store that stocks it, or in the one store asked for.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Product {
    pub id: i64,
    pub sku: String,
    pub name: String,
    /// Two decimals, always (`"0.10"`, `"12.50"`).
    #[serde(with = "crate::money")]
    #[schema(value_type = String, pattern = r"^-?[0-9]+\.[0-9]{2}$", example = "12.50")]
    pub unit_price: BigDecimal,
    /// The sum of `by_store`: the product's stock in all stores, or in the store asked for
    /// (`?store=`). A JSON number: whole (`12`), or with up to 3 decimals (`4.75`) for a product
    /// with `decimal_quantity`.
    #[serde(with = "crate::quantity::number")]
    #[schema(value_type = f64, example = 12)]
    pub stock: BigDecimal,
    /// The stock of each store that stocks the product, by store id (a store not listed has
    /// none); with `?store=`, only that store's (0 when it has none).
    pub by_store: Vec<StoreStock>,
    pub version: i32,
    /// A JSON number, like `stock`: an alert opens for a store whose stock of the product is at
    /// or below it.
    #[serde(with = "crate::quantity::number")]
    #[schema(value_type = f64, example = 5)]
    pub low_stock_threshold: BigDecimal,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The IGV affectation, a catálogo 07 code ("10" gravado, "20" exonerado, "30" inafecto, ...).
    #[schema(example = "10")]
    pub igv_affectation: String,
    /// The unit of measure, a catálogo 03 code ("NIU", "KGM", ...).
    #[schema(example = "NIU")]
    pub unit_code: String,
    /// A plastic bag that carries ICBPER (tributo 7152) per unit sold.
    pub icbper: bool,
    /// Sold by weight or measure: quantities and stock may have up to 3 decimals (`1.250` kg).
    /// Otherwise every quantity is whole.
    pub decimal_quantity: bool,
}

/// A product's stock in one store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StoreStock {
    pub store_id: i64,
    #[schema(example = "principal")]
    pub store_code: String,
    /// A JSON number (`12`, `4.75`).
    #[serde(with = "crate::quantity::number")]
    #[schema(value_type = f64, example = 12)]
    pub stock: BigDecimal,
}

impl Product {
    fn new(row: ProductRow, by_store: Vec<StoreStock>) -> Self {
        let stock = by_store
            .iter()
            .fold(BigDecimal::from(0), |sum, s| sum + &s.stock)
            .with_scale(quantity::DECIMALS);
        Self {
            id: row.id,
            sku: row.sku,
            name: row.name,
            unit_price: row.unit_price,
            stock,
            by_store,
            version: row.version,
            low_stock_threshold: row.low_stock_threshold,
            created_at: row.created_at,
            updated_at: row.updated_at,
            igv_affectation: row.igv_affectation,
            unit_code: row.unit_code,
            icbper: row.icbper,
            decimal_quantity: row.decimal_quantity,
        }
    }

    /// The product's stock in store `store_id` (0 when the store has none).
    pub fn stock_in(&self, store_id: i64) -> BigDecimal {
        self.by_store
            .iter()
            .find(|s| s.store_id == store_id)
            .map_or_else(|| BigDecimal::from(0), |s| s.stock.clone())
    }
}

/// The products of `rows` with their stock: every store's, or only `store`'s.
async fn with_stock(
    conn: &mut AsyncPgConnection,
    rows: Vec<ProductRow>,
    store: Option<&Store>,
) -> Result<Vec<Product>, ShopError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut q = product_stock::table
        .inner_join(stores::table)
        .filter(product_stock::product_id.eq_any(&ids))
        .into_boxed();
    if let Some(store) = store {
        q = q.filter(product_stock::store_id.eq(store.id));
    }
    let held: Vec<(i64, i64, String, BigDecimal)> = q
        .order((product_stock::product_id, product_stock::store_id))
        .select((
            product_stock::product_id,
            product_stock::store_id,
            stores::code,
            product_stock::quantity,
        ))
        .load(conn)
        .await?;
    let mut by_product: std::collections::HashMap<i64, Vec<StoreStock>> =
        std::collections::HashMap::new();
    for (product_id, store_id, store_code, stock) in held {
        by_product.entry(product_id).or_default().push(StoreStock {
            store_id,
            store_code,
            stock,
        });
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut by_store = by_product.remove(&row.id).unwrap_or_default();
            if let (Some(store), true) = (store, by_store.is_empty()) {
                by_store.push(StoreStock {
                    store_id: store.id,
                    store_code: store.code.clone(),
                    stock: BigDecimal::from(0).with_scale(quantity::DECIMALS),
                });
            }
            Product::new(row, by_store)
        })
        .collect())
}

/// One product with every store's stock.
async fn product_of(conn: &mut AsyncPgConnection, row: ProductRow) -> Result<Product, ShopError> {
    let id = row.id;
    with_stock(conn, vec![row], None)
        .await?
        .pop()
        .ok_or(ShopError::NotFound {
            what: "product",
            id,
        })
}

/// A new product. `unit_price` is a decimal string such as `"12.50"` (a JSON number is accepted too).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    pub sku: String,
    pub name: String,
    /// The price, from 0.01 (a product cannot be free) to 9999999999.99.
    #[schema(value_type = String, pattern = r"^[0-9]{1,10}(\.[0-9]{1,2})?$", example = "12.50")]
    pub unit_price: BigDecimal,
    /// The main store's stock, 0 or more: a JSON number or a decimal string, whole unless
    /// `decimal_quantity` (then up to 3 decimals). Other stores' stock is set afterwards (PATCH
    /// with `store_id` and `stock`).
    #[serde(with = "crate::quantity::number")]
    #[schema(value_type = f64, minimum = 0, example = 12)]
    pub stock: BigDecimal,
    /// 0 or more, up to 3 decimals: an alert opens when the stock is at or below it.
    #[serde(with = "crate::quantity::number", default = "default_threshold")]
    #[schema(value_type = f64, minimum = 0, default = 5)]
    pub low_stock_threshold: BigDecimal,
    /// The IGV affectation, a catálogo 07 code as a string: "10" gravado (default), "20"
    /// exonerado, "30" inafecto, or a gratuitous one (11-16, 21, 31-37: every sale of it is free).
    #[serde(default = "default_affectation")]
    #[schema(default = "10", example = "20")]
    pub igv_affectation: String,
    /// The unit of measure, a catálogo 03 code: "NIU" (default), "ZZ", "KGM", "LTR", ...
    #[serde(default = "default_unit")]
    #[schema(default = "NIU", example = "KGM")]
    pub unit_code: String,
    /// A plastic bag subject to ICBPER (tributo 7152): each unit sold carries the amount in force.
    #[serde(default)]
    pub icbper: bool,
    /// Sold by weight or measure (`KGM`, `LTR`, ...): quantities may have up to 3 decimals.
    /// Default false: whole units. A plastic bag (`icbper`) counts whole bags.
    #[serde(default)]
    pub decimal_quantity: bool,
}

fn default_threshold() -> BigDecimal {
    BigDecimal::from(5)
}

fn default_affectation() -> String {
    Affectation::GRAVADO.code().to_owned()
}

fn default_unit() -> String {
    UnitCode::NIU.as_str().to_owned()
}

/// Checks a product's taxation codes and answers them as stored (trimmed), naming the field.
fn check_taxation(
    affectation: Option<&str>,
    unit: Option<&str>,
) -> Result<(Option<String>, Option<String>), ShopError> {
    let a = affectation
        .map(|a| Affectation::parse(a).map_err(|e| invalid("igv_affectation", e.to_string())))
        .transpose()?;
    let u = unit
        .map(|u| UnitCode::parse(u).map_err(|e| invalid("unit_code", e.to_string())))
        .transpose()?;
    Ok((
        a.map(|a| a.code().to_owned()),
        u.map(|u| u.as_str().to_owned()),
    ))
}

/// Changes to a product's description, and to its stock in one store (`stock`, the store's new
/// stock, in `store_id`, the main store by default; [`adjust_stock`] adds to it instead).
#[derive(Debug, Clone, Default, Deserialize, AsChangeset, utoipa::ToSchema)]
#[diesel(table_name = products)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    pub name: Option<String>,
    /// The price, from 0.01 (a product cannot be free) to 9999999999.99.
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{1,10}(\.[0-9]{1,2})?$", example = "12.50")]
    pub unit_price: Option<BigDecimal>,
    /// 0 or more, up to 3 decimals (a JSON number or a decimal string).
    #[serde(default, with = "crate::quantity::number::option")]
    #[schema(value_type = Option<f64>, minimum = 0, example = 5)]
    pub low_stock_threshold: Option<BigDecimal>,
    /// A catálogo 07 code as a string ("10", "20", "30", ...).
    #[schema(example = "20")]
    pub igv_affectation: Option<String>,
    /// A catálogo 03 code ("NIU", "KGM", ...).
    #[schema(example = "KGM")]
    pub unit_code: Option<String>,
    pub icbper: Option<bool>,
    /// Sold by weight or measure. Turning it off while the stock, or a quantity an ACTIVE
    /// reservation holds, has decimals is a 409 (`decimal_stock`): adjust the stock first.
    pub decimal_quantity: Option<bool>,
    /// The stock of the store `store_id` (the main store by default) from now on: 0 or more,
    /// whole unless `decimal_quantity`.
    #[serde(default, with = "crate::quantity::number::option")]
    #[schema(value_type = Option<f64>, minimum = 0, example = 12)]
    #[diesel(skip_update)]
    pub stock: Option<BigDecimal>,
    /// The store whose `stock` is set; the main store when absent. Only with `stock`.
    #[diesel(skip_update)]
    #[schema(example = 2)]
    pub store_id: Option<i64>,
    /// Change it only if the product is still at this `version` (what the caller read), else
    /// `version_conflict`; the same as `If-Match: "3"`. Absent: change it whatever its version.
    #[diesel(skip_update)]
    #[schema(minimum = 0, example = 3)]
    pub expected_version: Option<i32>,
}

/// One line of a checkout: what to reserve, and the terms the sale made from the reservation
/// will use.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutItem {
    pub product_id: i64,
    /// A JSON number (`2`, `1.25`) or a decimal string (`"1.250"`): above 0, at most 3
    /// decimals, whole unless the product has `decimal_quantity`.
    #[schema(schema_with = crate::quantity::request_schema)]
    pub quantity: Quantity,
    /// A discount on the line, applied when the reservation becomes a sale: `{"percent": "10"}`
    /// or `{"amount": "1.50"}` (off the price with taxes).
    #[serde(default)]
    pub discount: Option<DiscountInput>,
    /// Given, not sold ("transferencia gratuita"), when the reservation becomes a sale.
    #[serde(default)]
    pub free: bool,
}

/// `POST /api/checkout`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// 1 to 100 items, each product once.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<CheckoutItem>,
    /// The store whose stock is reserved: the caller's own store when absent. Only admins may
    /// name another (403 otherwise); a disabled store cannot sell (409).
    #[serde(default)]
    #[schema(example = 2)]
    pub store_id: Option<i64>,
}

/// A reservation with its items.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReservationView {
    pub reservation_id: i64,
    pub user_id: Option<String>,
    /// The store whose stock it holds; its sale is made there, and released or expired, the
    /// stock goes back there.
    pub store_id: i64,
    pub status: ReservationStatus,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub released_at: Option<DateTime<Utc>>,
    pub items: Vec<ReservedItem>,
}

/// A reserved line, with the terms its sale will use.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReservedItem {
    pub product_id: i64,
    pub sku: String,
    /// A JSON number (`2`, `1.25`).
    #[schema(value_type = f64, example = 1.25)]
    pub quantity: Quantity,
    /// Catálogo 03 unit of the product (`NIU`, `KGM`, ...).
    pub unit_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount: Option<DiscountInput>,
    pub free: bool,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = reservations, check_for_backend(diesel::pg::Pg))]
struct ReservationRow {
    id: i64,
    user_id: Option<String>,
    status: ReservationStatus,
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    confirmed_at: Option<DateTime<Utc>>,
    released_at: Option<DateTime<Utc>>,
    store_id: i64,
}

/// A reserved line as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = reservation_items, check_for_backend(diesel::pg::Pg))]
struct StoredItem {
    product_id: i64,
    quantity: BigDecimal,
    free: bool,
    discount_percent: Option<BigDecimal>,
    discount_amount: Option<BigDecimal>,
}

impl StoredItem {
    /// The line as answered, with its product's `sku` and `unit_code`.
    fn view(
        self,
        reservation: i64,
        sku: String,
        unit_code: String,
    ) -> Result<ReservedItem, ShopError> {
        // Stored by a checkout, so above 0 with at most 3 decimals (`NUMERIC(13, 3)`).
        let quantity = Quantity::from_decimal(&self.quantity).map_err(|e| {
            tracing::error!(reservation, product_id = self.product_id, error = %e, "a stored quantity does not parse");
            ShopError::Db(QueryError::Unavailable)
        })?;
        Ok(ReservedItem {
            product_id: self.product_id,
            sku,
            quantity,
            unit_code,
            discount: DiscountInput::from_columns(
                self.discount_percent.as_ref(),
                self.discount_amount.as_ref(),
            ),
            free: self.free,
        })
    }
}

/// What the release job did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReleaseReport {
    pub released: u64,
    /// The quantities given back, summed (a JSON number).
    #[serde(with = "crate::quantity::number")]
    pub units: BigDecimal,
}

/// An error of the shop. Every variant has a stable [`ShopError::code`].
#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    #[error("no {what} with id {id}")]
    NotFound { what: &'static str, id: i64 },
    #[error("field `{field}`: {message}")]
    Invalid { field: String, message: String },
    #[error("not enough stock: {}", describe(.0))]
    InsufficientStock(Vec<Shortage>),
    #[error("reservation {id} is {status}: {message}")]
    WrongState {
        id: i64,
        status: ReservationStatus,
        message: &'static str,
    },
    #[error("reservation {id} expired at {expires_at}")]
    Expired { id: i64, expires_at: DateTime<Utc> },
    #[error("a product with sku `{0}` already exists")]
    SkuExists(String),
    #[error("the products are busy (lock contention persisted after {0} tries); try again")]
    Contention(u32),
    /// A versioned write whose product changed since the caller read it: nothing was changed.
    #[error(
        "product {id} is at version {current}, not {expected}: it changed since you read it. \
         Nothing was changed; read it again and retry"
    )]
    VersionConflict {
        id: i64,
        expected: i32,
        current: i32,
    },
    /// `decimal_quantity` cannot be turned off while a quantity of the product has decimals.
    #[error(
        "product {id} {holds}: it cannot be sold in whole units only while a quantity of it has \
         decimals. Adjust the stock to a whole number (POST /api/products/{id}/stock) and wait \
         for the reservations to end, then try again"
    )]
    DecimalStock { id: i64, holds: String },
    /// The store named (`store_id`, `?store=`) cannot be used: unknown, not the caller's, disabled.
    #[error(transparent)]
    Store(StoreError),
    /// The database refused the data, or could not answer; the text is ours, never PostgreSQL's.
    #[error(transparent)]
    Db(#[from] QueryError),
}

fn describe(s: &[Shortage]) -> String {
    s.iter()
        .map(|x| {
            format!(
                "product {} ({}) has {} available in store {}, {} requested",
                x.product_id,
                x.sku,
                quantity::format(&x.available),
                x.store_id,
                quantity::format(&x.requested)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl ShopError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::Invalid { .. } => "invalid_field",
            Self::InsufficientStock(_) => "insufficient_stock",
            Self::WrongState { .. } => "wrong_state",
            Self::Expired { .. } => "expired",
            Self::SkuExists(_) => "already_exists",
            Self::Contention(_) => "contention",
            Self::VersionConflict { .. } => "version_conflict",
            Self::DecimalStock { .. } => "decimal_stock",
            Self::Store(e) => e.code(),
            Self::Db(QueryError::Refused(r)) => r.code(),
            Self::Db(QueryError::Unavailable) => "database_error",
        }
    }

    /// True for errors that a retry of the whole transaction may fix.
    fn is_transient(e: &diesel::result::Error) -> bool {
        use diesel::result::{DatabaseErrorKind as K, Error};
        match e {
            Error::DatabaseError(K::SerializationFailure, _) => true,
            Error::DatabaseError(_, info) => {
                let m = info.message();
                m.contains("deadlock detected") || m.contains("lock timeout")
            }
            _ => false,
        }
    }
}

impl From<StoreError> for ShopError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(e) => Self::Db(e),
            other => Self::Store(other),
        }
    }
}

impl From<diesel::result::Error> for ShopError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ShopError {
    ShopError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Checks a product's fields; `price` and `stock` only when they are given (a product stored before
/// prices had to be above zero can still be renamed).
fn check_product(
    sku: &str,
    name: &str,
    price: Option<&BigDecimal>,
    stock: Option<&BigDecimal>,
    threshold: &BigDecimal,
    sold: Sold,
) -> Result<(), ShopError> {
    if sku.trim().is_empty() || sku.len() > 64 {
        return Err(invalid("sku", "give 1 to 64 characters"));
    }
    if name.trim().is_empty() || name.len() > 200 {
        return Err(invalid("name", "give 1 to 200 characters"));
    }
    if let Some(price) = price {
        check_price(price)?;
    }
    if let Some(stock) = stock {
        if *stock < 0 {
            return Err(invalid(
                "stock",
                format!("{} is negative: give 0 or more", quantity::format(stock)),
            ));
        }
        if *stock > MAX_STOCK {
            return Err(invalid(
                "stock",
                format!(
                    "{} is more than a product may hold: at most {MAX_STOCK}",
                    quantity::format(stock)
                ),
            ));
        }
        if !sold.decimal_quantity && !quantity::is_whole(stock) {
            return Err(invalid(
                "stock",
                format!(
                    "{} has decimals, but the product is sold in whole units: give a whole \
                     number, or \"decimal_quantity\": true for a product sold by weight or measure",
                    quantity::format(stock)
                ),
            ));
        }
    }
    if *threshold < 0 || *threshold > MAX_STOCK {
        return Err(invalid(
            "low_stock_threshold",
            format!(
                "{} is not a threshold: give 0 to {MAX_STOCK}",
                quantity::format(threshold)
            ),
        ));
    }
    if sold.decimal_quantity && sold.icbper {
        return Err(invalid(
            "decimal_quantity",
            "a plastic bag (icbper) is sold in whole bags: ICBPER is charged per bag; leave \
             decimal_quantity false",
        ));
    }
    Ok(())
}

/// How a product is sold, for [`check_product`].
#[derive(Debug, Clone, Copy)]
struct Sold {
    decimal_quantity: bool,
    icbper: bool,
}

/// A product's price: above zero (a sale line cannot be free: `sale_items` refuses it), at most two
/// decimals, below ten thousand million (`NUMERIC(12, 2)`).
fn check_price(price: &BigDecimal) -> Result<(), ShopError> {
    let (zero, max) = (BigDecimal::from(0), BigDecimal::from(10_000_000_000i64));
    if *price <= zero || price.fractional_digit_count() > 2 || *price >= max {
        return Err(invalid(
            "unit_price",
            format!(
                "{price} is not a price from 0.01 to 9999999999.99 with at most 2 decimals \
                 (a product cannot be free)"
            ),
        ));
    }
    Ok(())
}

/// Adds a product, with its stock in the main store (a row even at 0: the main store stocks it).
pub async fn create_product(
    conn: &mut AsyncPgConnection,
    new: NewProduct,
) -> Result<Product, ShopError> {
    check_product(
        &new.sku,
        &new.name,
        Some(&new.unit_price),
        Some(&new.stock),
        &new.low_stock_threshold,
        Sold {
            decimal_quantity: new.decimal_quantity,
            icbper: new.icbper,
        },
    )?;
    let (a, u) = check_taxation(Some(&new.igv_affectation), Some(&new.unit_code))?;
    let (affectation, unit) = (a.unwrap_or_default(), u.unwrap_or_default());
    let row = conn
        .transaction::<ProductRow, ShopError, _>(async |conn| {
            let main = store_rules::main_store(conn).await?;
            let row = match diesel::insert_into(products::table)
                .values((
                    products::sku.eq(&new.sku),
                    products::name.eq(&new.name),
                    products::unit_price.eq(&new.unit_price),
                    products::low_stock_threshold.eq(&new.low_stock_threshold),
                    products::igv_affectation.eq(&affectation),
                    products::unit_code.eq(&unit),
                    products::icbper.eq(new.icbper),
                    products::decimal_quantity.eq(new.decimal_quantity),
                ))
                .returning(ProductRow::as_returning())
                .get_result(conn)
                .await
            {
                // Only the sku's key: another unique rule is answered as itself.
                Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    info,
                )) if info.constraint_name() == Some("products_sku_key") => {
                    return Err(ShopError::SkuExists(new.sku.clone()))
                }
                other => other?,
            };
            diesel::insert_into(product_stock::table)
                .values((
                    product_stock::product_id.eq(row.id),
                    product_stock::store_id.eq(main.id),
                    product_stock::decimal_quantity.eq(row.decimal_quantity),
                    product_stock::quantity.eq(&new.stock),
                ))
                .execute(conn)
                .await?;
            Ok(row)
        })
        .await?;
    product_of(conn, row).await
}

/// The store a product request names (`?store=` or `store_id`), checked.
async fn named_store(conn: &mut AsyncPgConnection, key: &StoreKey) -> Result<Store, ShopError> {
    Ok(store_rules::get_store(conn, key).await?)
}

/// Every product by id (at most `limit`), with every store's stock, or only `store`'s.
pub async fn list_products(
    conn: &mut AsyncPgConnection,
    limit: i64,
    store: Option<&StoreKey>,
) -> Result<Vec<Product>, ShopError> {
    let store = match store {
        Some(key) => Some(named_store(conn, key).await?),
        None => None,
    };
    let rows: Vec<ProductRow> = products::table
        .order(products::id)
        .limit(limit)
        .select(ProductRow::as_select())
        .load(conn)
        .await?;
    with_stock(conn, rows, store.as_ref()).await
}

async fn product_row(conn: &mut AsyncPgConnection, id: i64) -> Result<ProductRow, ShopError> {
    products::table
        .find(id)
        .select(ProductRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(ShopError::NotFound {
            what: "product",
            id,
        })
}

/// The product's row under its lock (`FOR UPDATE`): its version and description stay as read
/// until the caller's transaction ends.
async fn locked_row(conn: &mut AsyncPgConnection, id: i64) -> Result<ProductRow, ShopError> {
    products::table
        .find(id)
        .select(ProductRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(ShopError::NotFound {
            what: "product",
            id,
        })
}

/// One product, with every store's stock.
pub async fn get_product(conn: &mut AsyncPgConnection, id: i64) -> Result<Product, ShopError> {
    let row = product_row(conn, id).await?;
    product_of(conn, row).await
}

/// Changes a product's name, price, threshold or taxation, and with `stock` its stock in one store
/// (`store_id`, the main store by default). With `patch.expected_version`, only if the product is
/// still at that version: the `UPDATE` itself carries `version = expected` (no read-then-write
/// race), and a product that moved on answers [`ShopError::VersionConflict`], changed in nothing.
pub async fn update_product(
    conn: &mut AsyncPgConnection,
    id: i64,
    mut patch: ProductPatch,
) -> Result<Product, ShopError> {
    let current = get_product(conn, id).await?;
    let (a, u) = check_taxation(patch.igv_affectation.as_deref(), patch.unit_code.as_deref())?;
    patch.igv_affectation = a;
    patch.unit_code = u;
    let sold = Sold {
        decimal_quantity: patch.decimal_quantity.unwrap_or(current.decimal_quantity),
        icbper: patch.icbper.unwrap_or(current.icbper),
    };
    check_product(
        &current.sku,
        patch.name.as_deref().unwrap_or(&current.name),
        patch.unit_price.as_ref(),
        patch.stock.as_ref(),
        patch
            .low_stock_threshold
            .as_ref()
            .unwrap_or(&current.low_stock_threshold),
        sold,
    )?;
    if patch.store_id.is_some() && patch.stock.is_none() {
        return Err(invalid(
            "store_id",
            "give `stock` with it: `store_id` names the store whose stock is set",
        ));
    }
    let expected = patch.expected_version;
    if let Some(expected) = expected.filter(|v| *v != current.version) {
        return Err(version_conflict(id, expected, current.version));
    }
    let described = patch.name.is_some()
        || patch.unit_price.is_some()
        || patch.low_stock_threshold.is_some()
        || patch.igv_affectation.is_some()
        || patch.unit_code.is_some()
        || patch.icbper.is_some()
        || patch.decimal_quantity.is_some();
    if !described && patch.stock.is_none() {
        return Ok(current);
    }
    let whole_from_now = patch.decimal_quantity == Some(false) && current.decimal_quantity;
    if patch.stock.is_none() && !whole_from_now {
        let row = write_patch(conn, id, &patch).await?;
        return product_of(conn, row).await;
    }
    let store = match patch.store_id {
        Some(sid) => Some(store_for_stock(conn, sid).await?),
        None if patch.stock.is_some() => Some(store_rules::main_store(conn).await?),
        None => None,
    };
    // Under the product's row lock, then its stock rows' (every change of its stock by an
    // admin, or of whether it takes decimals, takes them in that order).
    let row = conn
        .transaction::<ProductRow, ShopError, _>(async move |conn| {
            diesel::sql_query("SET LOCAL lock_timeout = '2s'")
                .execute(conn)
                .await?;
            let locked = locked_row(conn, id).await?;
            if let Some(expected) = expected.filter(|v| *v != locked.version) {
                return Err(version_conflict(id, expected, locked.version));
            }
            // Decimals from now on: the stock rows take them once the product's row says so
            // (the foreign key carries it over), so the patch goes first.
            let patch_first = sold.decimal_quantity && !locked.decimal_quantity;
            let mut row = locked.clone();
            if patch_first {
                row = write_patch(conn, id, &patch).await?;
            }
            if let (Some(stock), Some(store)) = (&patch.stock, &store) {
                set_store_stock(conn, &row, store, stock.clone()).await?;
            }
            if whole_from_now {
                check_whole(conn, id).await?;
            }
            if !patch_first {
                row = write_patch(conn, id, &patch).await?;
            }
            Ok(row)
        })
        .await?;
    product_of(conn, row).await
}

/// Whole units from now on: under the product's row lock (held by the caller) and its stock rows'
/// locks (which every taking and giving back of its stock needs), nothing of it may have decimals.
async fn check_whole(conn: &mut AsyncPgConnection, id: i64) -> Result<(), ShopError> {
    let held: Vec<(i64, BigDecimal)> = product_stock::table
        .filter(product_stock::product_id.eq(id))
        .order(product_stock::store_id)
        .select((product_stock::store_id, product_stock::quantity))
        .for_update()
        .load(conn)
        .await?;
    if let Some((store, stock)) = held.iter().find(|(_, q)| !quantity::is_whole(q)) {
        return Err(ShopError::DecimalStock {
            id,
            holds: format!(
                "has a stock of {} in store {store}",
                quantity::format(stock)
            ),
        });
    }
    let reserved: Vec<(i64, BigDecimal)> = reservation_items::table
        .inner_join(reservations::table)
        .filter(reservations::status.eq(ReservationStatus::Active))
        .filter(reservation_items::product_id.eq(id))
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
            "reservation_items.quantity <> trunc(reservation_items.quantity)",
        ))
        .select((
            reservation_items::reservation_id,
            reservation_items::quantity,
        ))
        .limit(1)
        .load(conn)
        .await?;
    if let Some((rid, q)) = reserved.as_slice().first() {
        return Err(ShopError::DecimalStock {
            id,
            holds: format!(
                "has {} held by ACTIVE reservation {rid}",
                quantity::format(q)
            ),
        });
    }
    Ok(())
}

/// The store a stock change names by `store_id`: a 400 naming the field when there is none.
async fn store_for_stock(conn: &mut AsyncPgConnection, store_id: i64) -> Result<Store, ShopError> {
    store_rules::find_store(conn, &StoreKey::Id(store_id))
        .await
        .map_err(ShopError::from)?
        .ok_or_else(|| {
            invalid(
                "store_id",
                format!("no store with id {store_id} (GET /api/stores lists them)"),
            )
        })
}

/// Sets the product's stock in `store` to `stock` (checked by the caller: 0 or more, whole unless
/// the product takes decimals), under the store row's lock, refusing a stock that, with what the
/// store's ACTIVE reservations of the product hold, exceeds [`MAX_STOCK`] (releasing them must
/// always fit). The caller holds the product's row lock.
async fn set_store_stock(
    conn: &mut AsyncPgConnection,
    product: &ProductRow,
    store: &Store,
    stock: BigDecimal,
) -> Result<(), ShopError> {
    let id = product.id;
    // The row first (0 when new), then its lock.
    diesel::insert_into(product_stock::table)
        .values((
            product_stock::product_id.eq(id),
            product_stock::store_id.eq(store.id),
            product_stock::decimal_quantity.eq(product.decimal_quantity),
            product_stock::quantity.eq(BigDecimal::from(0)),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    // Releases of the store's reservations wait: what they hold stays what is read here.
    diesel::sql_query(
        "SELECT 1 FROM product_stock WHERE product_id = $1 AND store_id = $2 FOR UPDATE",
    )
    .bind::<diesel::sql_types::BigInt, _>(id)
    .bind::<diesel::sql_types::BigInt, _>(store.id)
    .execute(conn)
    .await?;
    let reserved: BigDecimal = reservation_items::table
        .inner_join(reservations::table)
        .filter(reservations::status.eq(ReservationStatus::Active))
        .filter(reservations::store_id.eq(store.id))
        .filter(reservation_items::product_id.eq(id))
        .select(diesel::dsl::sum(reservation_items::quantity))
        .first::<Option<BigDecimal>>(conn)
        .await?
        .unwrap_or_default();
    if &stock + &reserved > MAX_STOCK {
        return Err(invalid(
            "stock",
            format!(
                "{} would give product {id} {} in store {}, plus {} held by reservations: at \
                 most {MAX_STOCK} in all",
                quantity::format(&stock),
                quantity::format(&stock),
                store.code,
                quantity::format(&reserved)
            ),
        ));
    }
    diesel::update(product_stock::table.find((id, store.id)))
        .set(product_stock::quantity.eq(&stock))
        .execute(conn)
        .await?;
    Ok(())
}

/// The `UPDATE` of a checked patch, conditional on its `expected_version`.
async fn write_patch(
    conn: &mut AsyncPgConnection,
    id: i64,
    patch: &ProductPatch,
) -> Result<ProductRow, ShopError> {
    let expected = patch.expected_version;
    let mut update = diesel::update(products::table.find(id))
        .set((
            patch,
            products::updated_at.eq(Utc::now()),
            products::version.eq(products::version + 1),
        ))
        .into_boxed();
    if let Some(v) = expected {
        update = update.filter(products::version.eq(v));
    }
    match update
        .returning(ProductRow::as_returning())
        .get_result(conn)
        .await
        .optional()?
    {
        Some(p) => Ok(p),
        // Changed between the read above and the update (or deleted).
        None => Err(conflict_or_gone(conn, id, expected).await),
    }
}

fn version_conflict(id: i64, expected: i32, current: i32) -> ShopError {
    ShopError::VersionConflict {
        id,
        expected,
        current,
    }
}

/// Why an update of product `id` (conditional on `expected`) changed no row: it moved past
/// `expected`, or it is gone.
async fn conflict_or_gone(
    conn: &mut AsyncPgConnection,
    id: i64,
    expected: Option<i32>,
) -> ShopError {
    let gone = ShopError::NotFound {
        what: "product",
        id,
    };
    match expected {
        None => gone,
        Some(expected) => match product_row(conn, id).await {
            Ok(p) => version_conflict(id, expected, p.version),
            Err(e) => e,
        },
    }
}

/// Adds `delta` (negative to remove) to a product's stock in store `store_id` (the main store
/// when `None`); refuses to go below zero, a delta with decimals for a product sold in whole
/// units, and a stock that, with what the store's ACTIVE reservations hold, exceeds
/// [`MAX_STOCK`]: releasing those reservations must always be able to give their quantities
/// back. With `expected`, only if the product is still at that version
/// ([`ShopError::VersionConflict`] otherwise, checked before the delta): the product's row is
/// locked, and its version moves on.
pub async fn adjust_stock(
    conn: &mut AsyncPgConnection,
    id: i64,
    store_id: Option<i64>,
    delta: BigDecimal,
    expected: Option<i32>,
) -> Result<Product, ShopError> {
    let store = match store_id {
        Some(sid) => store_for_stock(conn, sid).await?,
        None => store_rules::main_store(conn).await?,
    };
    let row = conn
        .transaction::<ProductRow, ShopError, _>(async move |conn| {
            diesel::sql_query("SET LOCAL lock_timeout = '2s'")
                .execute(conn)
                .await?;
            // The product's row lock, then the store's stock row's: checkouts and releases of
            // the store's stock of it wait until the change is in.
            let p = locked_row(conn, id).await?;
            if let Some(expected) = expected.filter(|v| *v != p.version) {
                return Err(version_conflict(id, expected, p.version));
            }
            let shown = quantity::format(&delta);
            if !p.decimal_quantity && !quantity::is_whole(&delta) {
                return Err(invalid(
                    "delta",
                    format!(
                        "{shown} has decimals, but product {id} is sold in whole units: give a \
                         whole number (or make it decimal_quantity first)"
                    ),
                ));
            }
            let before: BigDecimal = product_stock::table
                .find((id, store.id))
                .select(product_stock::quantity)
                .for_update()
                .first(conn)
                .await
                .optional()?
                .unwrap_or_default();
            let stock = &before + &delta;
            if stock < 0 {
                return Err(invalid(
                    "delta",
                    format!(
                        "{shown} would leave product {id} with {} in store {}; it has {}",
                        quantity::format(&stock),
                        store.code,
                        quantity::format(&before)
                    ),
                ));
            }
            set_store_stock(conn, &p, &store, stock)
                .await
                .map_err(|e| match e {
                    ShopError::Invalid { message, .. } => invalid("delta", message),
                    other => other,
                })?;
            Ok(diesel::update(products::table.find(id))
                .set((
                    products::version.eq(products::version + 1),
                    products::updated_at.eq(Utc::now()),
                ))
                .returning(ProductRow::as_returning())
                .get_result(conn)
                .await?)
        })
        .await?;
    product_of(conn, row).await
}

const MAX_TRIES: u32 = 4;

async fn backoff(attempt: u32) {
    let base = 10u64 << attempt.min(6);
    let jitter = rand::random::<u64>() % base.max(1);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

/// Why a checkout's transaction took nothing: stock it could not take (retried when transient),
/// or a line's terms its product refuses.
enum CheckoutTx {
    Stock(StockError),
    Terms(ShopError),
}

impl From<diesel::result::Error> for CheckoutTx {
    fn from(e: diesel::result::Error) -> Self {
        Self::Stock(StockError::Db(e))
    }
}

impl From<StockError> for CheckoutTx {
    fn from(e: StockError) -> Self {
        Self::Stock(e)
    }
}

/// Reserves every item or none, for `ttl`, from the stock of the caller's store (`req.store_id`
/// for an admin; the main store for a checkout made by code, `caller` `None`). Each line's terms
/// (its discount, or free) are checked as the sale made from the reservation will apply them, at
/// the product's price now.
pub async fn checkout(
    conn: &mut AsyncPgConnection,
    req: &CheckoutRequest,
    ttl: Duration,
    caller: Option<&Seller>,
) -> Result<ReservationView, ShopError> {
    let lines = req.items.iter().map(|i| (i.product_id, i.quantity.clone()));
    let request = StockRequest::parse(lines).map_err(|bad| match bad {
        BadLines::Count(0) => invalid("items", "give at least one item"),
        BadLines::Count(_) => invalid("items", "give at most 100 items"),
        BadLines::Repeated { index, product_id } => invalid(
            format!("items[{index}].product_id"),
            format!("product {product_id} is listed twice: give it once with the total quantity"),
        ),
    })?;
    let terms: Vec<LineTerms> = req
        .items
        .iter()
        .enumerate()
        .map(|(index, i)| {
            LineTerms::parse(i.discount.as_ref(), i.free).map_err(|(field, e)| {
                invalid(format!("items[{index}].{}", field.name()), e.to_string())
            })
        })
        .collect::<Result<_, _>>()?;
    let position = |product_id: i64| req.items.iter().position(|i| i.product_id == product_id);
    // By product id, as the stock is taken.
    let terms_of: std::collections::HashMap<i64, (usize, LineTerms)> = req
        .items
        .iter()
        .zip(terms)
        .enumerate()
        .map(|(index, (i, t))| (i.product_id, (index, t)))
        .collect();
    let expires_at = Utc::now()
        + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::minutes(15));
    // As a sale's: the caller's store, or the one an admin names (read in the transaction).
    let (seller, is_admin) = match caller {
        Some(c) => (c.user_id.clone(), c.is_admin),
        None => (String::new(), true),
    };
    let requested_store = req.store_id;
    let user = caller.map(|c| c.user_id.clone());
    for attempt in 0..MAX_TRIES {
        let request_tx = request.clone();
        let user_tx = user.clone();
        let terms_tx = terms_of.clone();
        let seller_tx = seller.as_str();
        let result = conn
            .transaction::<ReservationView, CheckoutTx, _>(async move |conn| {
                // The reservation's id and the lock timeout in one statement, before any lock:
                // once the stock's rows are locked (a hot product's checkouts queue on its row),
                // only the two inserts, sent together, and the commit remain.
                // The caller's store goes out with them (pipelined: one round trip).
                let shared: &AsyncPgConnection = conn;
                let (mut id_on, mut store_on) = (shared, shared);
                let (NextId { id }, store) = futures::try_join!(
                    async {
                        diesel::sql_query(
                            "SELECT nextval(pg_get_serial_sequence('reservations', 'id')) AS id, \
                             set_config('lock_timeout', '2s', true) AS lock_timeout",
                        )
                        .get_result::<NextId>(&mut id_on)
                        .await
                        .map_err(CheckoutTx::from)
                    },
                    async {
                        store_rules::store_for_sale(
                            &mut store_on,
                            seller_tx,
                            is_admin,
                            requested_store,
                        )
                        .await
                        .map_err(|e| CheckoutTx::Terms(e.into()))
                    },
                )?;
                let store_id = store.id;
                let taken = take_stock(conn, store_id, &request_tx).await?;
                for t in &taken {
                    if let Some((index, terms)) = terms_tx.get(&t.product_id) {
                        check_terms(t, terms, *index).map_err(CheckoutTx::Terms)?;
                    }
                }
                let insert_reservation = diesel::insert_into(reservations::table)
                    .values((
                        reservations::id.eq(id),
                        reservations::user_id.eq(user_tx),
                        reservations::expires_at.eq(expires_at),
                        reservations::store_id.eq(store_id),
                    ))
                    .returning(ReservationRow::as_returning());
                let rows: Vec<_> = request_tx
                    .lines()
                    .iter()
                    .map(|i| {
                        let terms = terms_tx.get(&i.product_id).map(|(_, t)| t);
                        let (percent, amount) =
                            DiscountInput::columns(terms.and_then(|t| t.discount.as_ref()));
                        (
                            reservation_items::reservation_id.eq(id),
                            reservation_items::product_id.eq(i.product_id),
                            reservation_items::quantity.eq(i.quantity.decimal().clone()),
                            reservation_items::free.eq(terms.is_some_and(|t| t.free)),
                            reservation_items::discount_percent.eq(percent),
                            reservation_items::discount_amount.eq(amount),
                        )
                    })
                    .collect();
                let insert_items = diesel::insert_into(reservation_items::table)
                    .values(rows)
                    .returning(StoredItem::as_returning());
                let (row, stored): (ReservationRow, Vec<StoredItem>) = futures::try_join!(
                    insert_reservation.get_result(&mut &*conn),
                    insert_items.get_results(&mut &*conn),
                )?;
                // The answer is the reservation as inserted (RETURNING), with each product's sku
                // and unit as the take read them: reading it back would cost two more queries.
                let mut items = stored
                    .into_iter()
                    .map(|item| {
                        let product = taken.iter().find(|t| t.product_id == item.product_id);
                        let sku = product.map(|t| t.sku.clone()).unwrap_or_default();
                        let unit = product
                            .map(|t| t.taxation.unit_code.clone())
                            .unwrap_or_default();
                        item.view(id, sku, unit)
                    })
                    .collect::<Result<Vec<ReservedItem>, _>>()
                    .map_err(CheckoutTx::Terms)?;
                items.sort_by_key(|i| i.product_id);
                Ok(reservation_view(row, items))
            })
            .await;
        match result {
            Ok(view) => return Ok(view),
            Err(CheckoutTx::Terms(e)) => return Err(e),
            Err(CheckoutTx::Stock(StockError::Refused { first, rest })) => {
                return Err(refused(std::iter::once(first).chain(rest), position))
            }
            Err(CheckoutTx::Stock(StockError::Db(e)))
                if ShopError::is_transient(&e) && attempt + 1 < MAX_TRIES =>
            {
                backoff(attempt).await
            }
            Err(CheckoutTx::Stock(StockError::Db(e))) if ShopError::is_transient(&e) => {
                return Err(ShopError::Contention(MAX_TRIES))
            }
            Err(CheckoutTx::Stock(StockError::Db(e))) => return Err(e.into()),
        }
    }
    Err(ShopError::Contention(MAX_TRIES))
}

/// Checks a reserved line's terms as a sale today would tax it (a discount below the line's
/// amount); the error names the line's field.
fn check_terms(t: &Taken, terms: &LineTerms, index: usize) -> Result<(), ShopError> {
    if terms.discount.is_none() {
        return Ok(());
    }
    let today = Utc::now().date_naive();
    let Ok(affectation) = Affectation::parse(&t.taxation.igv_affectation) else {
        return Ok(());
    };
    let input = LineInput {
        quantity: t.quantity.decimal(),
        unit_price: &t.unit_price,
        affectation,
        discount: terms.discount.as_ref(),
        icbper: t.taxation.icbper,
    };
    match line_amounts(
        input,
        terms.free,
        &igv_rate_on(today),
        icbper_on(today).as_ref(),
    ) {
        Err(e @ (TaxError::DiscountTooLarge { .. } | TaxError::Discount(_))) => {
            Err(invalid(format!("items[{index}].discount"), e.to_string()))
        }
        // Anything else is the sale's to answer, with the product as it is then.
        _ => Ok(()),
    }
}

/// Why stock could not be taken: an unknown product (404) before a fraction of a product sold in
/// whole units (400 naming the line's quantity, by `position` of its product id) before the
/// shortages (400).
fn refused(
    faults: impl Iterator<Item = Fault>,
    position: impl Fn(i64) -> Option<usize>,
) -> ShopError {
    let mut shortages = Vec::new();
    let mut whole = None;
    for fault in faults {
        match fault {
            Fault::Unknown(id) => {
                return ShopError::NotFound {
                    what: "product",
                    id,
                }
            }
            Fault::Whole {
                product_id,
                sku,
                quantity,
            } => {
                whole.get_or_insert_with(|| {
                    let field = position(product_id)
                        .map_or_else(|| "items".to_owned(), |i| format!("items[{i}].quantity"));
                    invalid(field, whole_units_message(product_id, &sku, &quantity))
                });
            }
            Fault::Short(s) => shortages.push(s),
        }
    }
    whole.unwrap_or(ShopError::InsufficientStock(shortages))
}

pub use crate::stock::whole_units_message;

/// A reservation with its items.
pub async fn get_reservation(
    conn: &mut AsyncPgConnection,
    id: i64,
) -> Result<ReservationView, ShopError> {
    let reservation = reservations::table
        .find(id)
        .select(ReservationRow::as_select());
    let items = reservation_items::table
        .inner_join(products::table)
        .filter(reservation_items::reservation_id.eq(id))
        .order(reservation_items::product_id)
        .select((StoredItem::as_select(), products::sku, products::unit_code));
    // Both reads pipelined on the connection: one round trip.
    let shared: &AsyncPgConnection = conn;
    let (row, rows): (Option<ReservationRow>, Vec<(StoredItem, String, String)>) = futures::try_join!(
        async { reservation.first(&mut { shared }).await.optional() },
        items.load(&mut { shared }),
    )?;
    let row = row.ok_or(ShopError::NotFound {
        what: "reservation",
        id,
    })?;
    let items = rows
        .into_iter()
        .map(|(item, sku, unit)| item.view(id, sku, unit))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(reservation_view(row, items))
}

/// A reservation's answer from its row and its lines.
fn reservation_view(row: ReservationRow, items: Vec<ReservedItem>) -> ReservationView {
    ReservationView {
        reservation_id: row.id,
        user_id: row.user_id,
        store_id: row.store_id,
        status: row.status,
        expires_at: row.expires_at,
        created_at: row.created_at,
        confirmed_at: row.confirmed_at,
        released_at: row.released_at,
        items,
    }
}

/// ACTIVE and not expired becomes CONFIRMED. Otherwise `Expired` (410) or `WrongState` (409).
pub async fn confirm(conn: &mut AsyncPgConnection, id: i64) -> Result<ReservationView, ShopError> {
    let now = Utc::now();
    let n = diesel::update(
        reservations::table
            .find(id)
            .filter(reservations::status.eq(ReservationStatus::Active))
            .filter(reservations::expires_at.gt(now)),
    )
    .set((
        reservations::status.eq(ReservationStatus::Confirmed),
        reservations::confirmed_at.eq(now),
    ))
    .execute(conn)
    .await?;
    let view = get_reservation(conn, id).await?;
    if n == 1 {
        return Ok(view);
    }
    match view.status {
        ReservationStatus::Active | ReservationStatus::Expired => Err(ShopError::Expired {
            id,
            expires_at: view.expires_at,
        }),
        other => Err(ShopError::WrongState {
            id,
            status: other,
            message: "only an ACTIVE reservation can be confirmed",
        }),
    }
}

/// Gives the stock of `reservation_ids` (already locked and marked) back to each one's store,
/// store by store in store-id order and product-id order within a store (the lock order of
/// [`take_stock`]), through [`give_back`]; answers the quantities given back, summed.
async fn return_stock(
    conn: &mut AsyncPgConnection,
    reservation_ids: &[i64],
) -> Result<BigDecimal, diesel::result::Error> {
    #[derive(QueryableByName)]
    struct Held {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        store_id: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        product_id: i64,
        #[diesel(sql_type = diesel::sql_types::Numeric)]
        quantity: BigDecimal,
    }
    let sums: Vec<Held> = diesel::sql_query(
        "SELECT r.store_id, i.product_id, sum(i.quantity) AS quantity \
         FROM reservation_items i JOIN reservations r ON r.id = i.reservation_id \
         WHERE i.reservation_id = ANY($1) \
         GROUP BY r.store_id, i.product_id ORDER BY r.store_id, i.product_id",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(reservation_ids)
    .load(conn)
    .await?;
    let mut units = BigDecimal::from(0);
    let mut rest = sums.as_slice();
    while let Some(first) = rest.first() {
        let store = first.store_id;
        let n = rest.iter().take_while(|h| h.store_id == store).count();
        let lines: Vec<(i64, BigDecimal)> = rest[..n]
            .iter()
            .map(|h| (h.product_id, h.quantity.clone()))
            .collect();
        units += give_back(conn, store, &lines).await?;
        rest = &rest[n..];
    }
    Ok(units)
}

/// Releases an ACTIVE reservation now (`DELETE /api/reservations/{id}`).
pub async fn release(conn: &mut AsyncPgConnection, id: i64) -> Result<ReservationView, ShopError> {
    for attempt in 0..MAX_TRIES {
        let result = conn
            .transaction::<Option<ReservationStatus>, diesel::result::Error, _>(async move |conn| {
                diesel::sql_query("SET LOCAL lock_timeout = '2s'")
                    .execute(conn)
                    .await?;
                let status: Option<ReservationStatus> = reservations::table
                    .find(id)
                    .select(reservations::status)
                    .for_update()
                    .first(conn)
                    .await
                    .optional()?;
                if status != Some(ReservationStatus::Active) {
                    return Ok(status);
                }
                diesel::update(reservations::table.find(id))
                    .set((
                        reservations::status.eq(ReservationStatus::Released),
                        reservations::released_at.eq(Utc::now()),
                    ))
                    .execute(conn)
                    .await?;
                return_stock(conn, &[id]).await?;
                Ok(Some(ReservationStatus::Released))
            })
            .await;
        match result {
            Ok(None) => {
                return Err(ShopError::NotFound {
                    what: "reservation",
                    id,
                })
            }
            Ok(Some(ReservationStatus::Released)) => return get_reservation(conn, id).await,
            Ok(Some(s)) => {
                return Err(ShopError::WrongState {
                    id,
                    status: s,
                    message: "only an ACTIVE reservation can be released",
                })
            }
            Err(e) if ShopError::is_transient(&e) && attempt + 1 < MAX_TRIES => {
                backoff(attempt).await
            }
            Err(e) if ShopError::is_transient(&e) => return Err(ShopError::Contention(MAX_TRIES)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ShopError::Contention(MAX_TRIES))
}

/// The job `release_expired_reservations`: marks ACTIVE reservations past their expiry EXPIRED and
/// returns their stock, `batch` at a time. `FOR UPDATE SKIP LOCKED` lets several runs work side by
/// side: each reservation is released once, and one being confirmed is skipped, never released.
pub async fn release_expired(
    conn: &mut AsyncPgConnection,
    batch: i64,
) -> Result<ReleaseReport, ShopError> {
    let mut report = ReleaseReport::default();
    let mut failures = 0;
    loop {
        let result = conn
            .transaction::<(u64, BigDecimal), diesel::result::Error, _>(async move |conn| {
                diesel::sql_query("SET LOCAL lock_timeout = '2s'")
                    .execute(conn)
                    .await?;
                let ids: Vec<i64> = reservations::table
                    .filter(reservations::status.eq(ReservationStatus::Active))
                    .filter(reservations::expires_at.lt(Utc::now()))
                    .order(reservations::expires_at)
                    .limit(batch.max(1))
                    .select(reservations::id)
                    .for_update()
                    .skip_locked()
                    .load(conn)
                    .await?;
                if ids.is_empty() {
                    return Ok((0, BigDecimal::from(0)));
                }
                diesel::update(reservations::table.filter(reservations::id.eq_any(&ids)))
                    .set((
                        reservations::status.eq(ReservationStatus::Expired),
                        reservations::released_at.eq(Utc::now()),
                    ))
                    .execute(conn)
                    .await?;
                let units = return_stock(conn, &ids).await?;
                Ok((ids.len() as u64, units))
            })
            .await;
        match result {
            Ok((0, _)) => return Ok(report),
            Ok((n, units)) => {
                report.released += n;
                report.units += units;
                report.units = report.units.with_scale(quantity::DECIMALS);
            }
            Err(e) if ShopError::is_transient(&e) && failures < MAX_TRIES => {
                failures += 1;
                backoff(failures).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
