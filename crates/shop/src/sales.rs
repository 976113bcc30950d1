//! Sales and their SUNAT state in PostgreSQL: creation with the next correlative of the series
//! (atomic: no gaps, no duplicates), IGV with exact decimals, the conditional state changes the
//! `send_sale_to_sunat` job makes, one row per SUNAT attempt, and the ERROR sales to retry.
//!
//! States of `sunat_status`: PENDING (not sent, or a retry is due) -> SENDING (a worker holds it)
//! -> ACCEPTED | REJECTED | ERROR (retries used up or a permanent problem) | CONFLICT (SUNAT holds
//! the number and nothing says it was us); ERROR -> SENDING again on a retry. Only the attempt
//! that moved a sale to SENDING moves it out. See `docs/job-states.md`.

use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use faena_catalog::SendSaleArgs;
use faena_core::db::QueryError;
use faena_core::jobs::{EnqueueRequest, JobArgs};
use faena_core::TaskId;
use faena_sunat::document::{Customer, CustomerDocType, DocumentError, DocumentType, Line, Series};
use faena_sunat::taxation::{
    icbper_on, igv_rate_on, line_amounts, Affectation, Discount, DocumentTotals, TaxError, UnitCode,
};
use serde::{Deserialize, Serialize};

use crate::quantity::{self, Quantity};
use crate::schema::{
    products, reservation_items, reservations, sale_items, sale_send_jobs, sales, series_counters,
    sunat_submissions,
};
use crate::sendable::Sendable;
pub use crate::sendable::{SendResult, NOT_AUTO_RETRIED};
use crate::states::ReservationStatus;
pub use crate::states::SunatStatus;
use crate::stock::{take_stock, BadLines, Fault, ProductTaxation, StockError, StockRequest, Taken};
use crate::stores::{self, StoreError};
use crate::summaries::{CancellationView, CarriedView};
pub use crate::terms::DiscountInput;
use crate::terms::LineTerms;

/// Above this total a boleta needs the buyer's identity document (SUNAT error 2396).
pub const ANONYMOUS_BOLETA_LIMIT: i64 = 700;

/// A sale that cannot be made or changed. Each variant has a stable [`SaleError::code`].
#[derive(Debug, thiserror::Error)]
pub enum SaleError {
    #[error("field `{field}`: {message}")]
    Invalid { field: String, message: String },
    #[error("no {what} with id {id}")]
    NotFound { what: &'static str, id: i64 },
    #[error(
        "not enough stock of product {product_id} ({sku}) in store {store_id}: {} available, {} \
         requested",
        quantity::format(.available),
        quantity::format(.requested)
    )]
    InsufficientStock {
        product_id: i64,
        sku: String,
        /// The store the sale takes its stock from.
        store_id: i64,
        available: BigDecimal,
        requested: BigDecimal,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    /// The database refused the data, or could not answer; the text is ours, never PostgreSQL's.
    #[error(transparent)]
    Db(#[from] QueryError),
}

impl SaleError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid_field",
            Self::NotFound { .. } => "not_found",
            Self::InsufficientStock { .. } => "insufficient_stock",
            Self::Conflict(_) => "conflict",
            Self::Forbidden(_) => "forbidden",
            Self::Db(QueryError::Refused(r)) => r.code(),
            Self::Db(QueryError::Unavailable) => "database_unavailable",
        }
    }
}

impl From<diesel::result::Error> for SaleError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

impl SaleError {
    /// Why the items' stock could not be taken: the first line at fault, in product-id order; a
    /// quantity with decimals of a product sold in whole units names the item's quantity.
    fn from_stock(e: StockError, items: &[SaleItemInput]) -> Self {
        match e {
            StockError::Db(e) => e.into(),
            StockError::Refused { first, .. } => match first {
                Fault::Unknown(id) => Self::NotFound {
                    what: "product",
                    id,
                },
                Fault::Whole {
                    product_id,
                    sku,
                    quantity,
                } => invalid(
                    items
                        .iter()
                        .position(|i| i.product_id == product_id)
                        .map_or_else(|| "items".to_owned(), |i| format!("items[{i}].quantity")),
                    crate::stock::whole_units_message(product_id, &sku, &quantity),
                ),
                Fault::Short(s) => Self::InsufficientStock {
                    product_id: s.product_id,
                    sku: s.sku,
                    store_id: s.store_id,
                    available: s.available,
                    requested: s.requested,
                },
            },
        }
    }
}

impl From<StoreError> for SaleError {
    /// A store the seller may not use is 403, a disabled one 409; an unknown `store_id` is the
    /// request's field.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid { field, message } => Self::Invalid { field, message },
            StoreError::NotFound(m) | StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::Forbidden(m) => Self::Forbidden(m),
            StoreError::Db(e) => Self::Db(e),
        }
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> SaleError {
    SaleError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// The buyer, as a request gives it.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    /// none, dni, ce, ruc or passport (or SUNAT's code 0, 1, 4, 6, 7).
    pub doc_type: String,
    /// The document number; "-" or empty for none.
    #[serde(default)]
    pub doc_number: String,
    #[serde(default)]
    pub name: String,
}

/// One line of a new sale.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleItemInput {
    pub product_id: i64,
    /// A JSON number (`2`, `1.25`) or a decimal string (`"1.250"`): above 0, at most 3
    /// decimals, whole unless the product has `decimal_quantity`.
    #[schema(schema_with = crate::quantity::request_schema)]
    pub quantity: Quantity,
    /// A discount on the line: `{"percent": "10"}` or `{"amount": "1.50"}` (off the price with
    /// taxes). Written as catálogo 53 code 00 (it reduces the IGV base).
    #[serde(default)]
    pub discount: Option<DiscountInput>,
    /// Given, not sold ("transferencia gratuita"): valued at its price, charged nothing.
    #[serde(default)]
    pub free: bool,
}

/// `POST /api/sales`: from `items` (stock is taken now) or from a CONFIRMED `reservation_id`
/// (its stock was taken at checkout); exactly one of the two.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSale {
    /// boleta (default) or factura.
    #[serde(default)]
    pub doc_type: Option<String>,
    /// The series: the store's series of the document type (the default); another is a 400.
    #[serde(default)]
    pub series: Option<String>,
    /// The store that sells: the seller's own store when absent. Only admins may name another
    /// (a seller naming another store gets 403); a disabled store cannot sell (409).
    #[serde(default)]
    pub store_id: Option<i64>,
    /// The buyer; an anonymous consumer when absent (boletas up to S/ 700 only).
    #[serde(default)]
    pub customer: Option<CustomerInput>,
    #[serde(default)]
    pub items: Option<Vec<SaleItemInput>>,
    #[serde(default)]
    pub reservation_id: Option<i64>,
    /// Queue its send to SUNAT in the sale's own transaction (through the outbox): committed
    /// means it will be sent. Default: the setting `FAENA_SALES_AUTO_SEND` (on).
    #[serde(default)]
    pub send: Option<bool>,
}

/// Where a new sale takes its defaults.
#[derive(Debug, Clone)]
pub struct SaleDefaults {
    /// `FAENA_BOLETA_SERIES` / `FAENA_FACTURA_SERIES`: the main store's series while it has
    /// issued nothing of the type (the api applies them at start, `stores::adopt_series_settings`).
    /// A sale always takes its store's series.
    pub boleta_series: String,
    pub factura_series: String,
    /// The business time zone: the issue date is today there.
    pub tz: chrono_tz::Tz,
    /// Whether a sale that does not say `send` is sent to SUNAT on its own (`FAENA_SALES_AUTO_SEND`).
    pub auto_send: bool,
}

impl Default for SaleDefaults {
    /// B001, F001 and America/Lima: the settings' defaults.
    fn default() -> Self {
        Self {
            boleta_series: "B001".into(),
            factura_series: "F001".into(),
            tz: chrono_tz::America::Lima,
            auto_send: true,
        }
    }
}

/// Who makes the sale.
#[derive(Debug, Clone)]
pub struct Seller {
    pub user_id: String,
    pub is_admin: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = sales, check_for_backend(diesel::pg::Pg))]
pub struct SaleRow {
    pub id: i64,
    pub seller_id: String,
    pub reservation_id: Option<i64>,
    pub doc_type: String,
    pub series: String,
    pub correlative: i64,
    pub issue_date: NaiveDate,
    pub issued_at: DateTime<Utc>,
    pub customer_doc_type: String,
    pub customer_doc_number: String,
    pub customer_name: String,
    pub currency: String,
    #[serde(with = "crate::money")]
    pub subtotal: BigDecimal,
    #[serde(with = "crate::money")]
    pub igv: BigDecimal,
    #[serde(with = "crate::money")]
    pub total: BigDecimal,
    pub is_cancelled: bool,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub sunat_status: SunatStatus,
    pub sunat_outcome: Option<String>,
    pub sunat_code: Option<String>,
    pub sunat_description: Option<String>,
    pub sunat_notes: serde_json::Value,
    pub sunat_attempts: i32,
    pub sunat_sent_at: Option<DateTime<Utc>>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub digest_value: Option<String>,
    pub xml_path: Option<String>,
    pub cdr_path: Option<String>,
    pub pdf_path: Option<String>,
    pub qr_path: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = sale_items, check_for_backend(diesel::pg::Pg))]
pub struct SaleItem {
    #[serde(skip)]
    pub id: i64,
    #[serde(skip)]
    pub sale_id: i64,
    pub product_id: Option<i64>,
    pub sku: String,
    pub description: String,
    /// A JSON number: whole (`2`), or with up to 3 decimals (`1.25`) for a product sold by
    /// weight or measure.
    #[serde(with = "crate::quantity::number")]
    #[schema(value_type = f64, example = 1.25)]
    pub quantity: BigDecimal,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, pattern = r"^-?[0-9]+\.[0-9]{2}$", example = "12.50")]
    pub unit_price: BigDecimal,
    /// What the buyer pays for the line: value + IGV + ICBPER (only ICBPER for a free line).
    #[serde(with = "crate::money")]
    #[schema(value_type = String, pattern = r"^-?[0-9]+\.[0-9]{2}$", example = "25.00")]
    pub line_total: BigDecimal,
    /// Catálogo 03.
    pub unit_code: String,
    /// Catálogo 07, as written on the receipt (a free line's gratuitous code).
    pub igv_affectation: String,
    pub icbper: bool,
    pub free: bool,
    #[schema(value_type = Option<String>)]
    pub discount_percent: Option<BigDecimal>,
    #[schema(value_type = Option<String>)]
    pub discount_amount: Option<BigDecimal>,
    /// The line's value without taxes (`LineExtensionAmount`).
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "21.19")]
    pub value: BigDecimal,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "3.81")]
    pub igv: BigDecimal,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "0.00")]
    pub icbper_amount: BigDecimal,
    /// The discount, with taxes.
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "0.00")]
    pub discount: BigDecimal,
}

impl SaleItem {
    /// The line as the receipt carries it.
    pub fn line(&self) -> Result<Line, TaxError> {
        let discount = match (&self.discount_percent, &self.discount_amount) {
            (Some(p), _) => Some(Discount::Percent(p.clone())),
            (None, Some(a)) => Some(Discount::Amount(a.clone())),
            (None, None) => None,
        };
        Ok(Line {
            code: self.sku.clone(),
            description: self.description.clone(),
            quantity: self.quantity.clone(),
            unit_code: UnitCode::parse(&self.unit_code)?,
            unit_price: self.unit_price.clone(),
            affectation: Affectation::parse(&self.igv_affectation)?,
            icbper: self.icbper,
            discount,
            free: self.free,
        })
    }
}

/// One attempt to send a sale to SUNAT.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = sunat_submissions, check_for_backend(diesel::pg::Pg))]
pub struct Submission {
    #[serde(skip)]
    pub id: i64,
    #[serde(skip)]
    pub sale_id: i64,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    /// The outcome class: accepted, observed, rejected, retryable, unknown, ...
    pub outcome: String,
    pub code: Option<String>,
    pub description: Option<String>,
    pub http_status: Option<i32>,
    pub task_id: Option<String>,
}

/// A sale's SUNAT state, as the api shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SunatView {
    pub status: SunatStatus,
    /// The status as the shop's staff read it, in Spanish (e.g. "Aceptado por SUNAT").
    #[schema(example = "Aceptado por SUNAT")]
    pub status_label: &'static str,
    pub outcome: Option<String>,
    pub code: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Vec<String>)]
    pub notes: serde_json::Value,
    pub attempts: i32,
    pub sent_at: Option<DateTime<Utc>>,
    pub accepted_at: Option<DateTime<Utc>>,
    /// The signature's digest ("valor resumen").
    pub digest_value: Option<String>,
    pub submissions: Vec<Submission>,
}

/// Paths of a sale's files, relative to the files directory.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SaleFiles {
    pub xml: Option<String>,
    pub cdr: Option<String>,
    pub pdf: Option<String>,
    pub qr: Option<String>,
}

/// A sale as the api shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SaleView {
    pub id: i64,
    pub seller_id: String,
    /// The store it was made in; its series and its receipt's establishment code are the store's.
    pub store_id: i64,
    pub reservation_id: Option<i64>,
    /// 01 (factura) or 03 (boleta).
    pub doc_type: String,
    pub series: String,
    pub correlative: i64,
    /// SERIES-CORRELATIVE, as printed (e.g. B001-42).
    pub number: String,
    pub issue_date: NaiveDate,
    pub issued_at: DateTime<Utc>,
    pub customer_doc_type: String,
    pub customer_doc_number: String,
    pub customer_name: String,
    pub currency: String,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, pattern = r"^-?[0-9]+\.[0-9]{2}$", example = "100.00")]
    pub subtotal: BigDecimal,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, pattern = r"^-?[0-9]+\.[0-9]{2}$", example = "18.00")]
    pub igv: BigDecimal,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, pattern = r"^-?[0-9]+\.[0-9]{2}$", example = "118.00")]
    pub total: BigDecimal,
    pub is_cancelled: bool,
    /// When, why, by whom, and what SUNAT was told; null unless cancelled.
    pub cancellation: Option<CancellationView>,
    pub items: Vec<SaleItem>,
    pub sunat: SunatView,
    /// Every Resumen Diario or Comunicación de Baja that carried the sale, oldest first.
    pub summaries: Vec<CarriedView>,
    pub files: SaleFiles,
}

fn view(
    row: SaleRow,
    store_id: i64,
    items: Vec<SaleItem>,
    submissions: Vec<Submission>,
    cancellation: Option<CancellationView>,
    summaries: Vec<CarriedView>,
) -> SaleView {
    SaleView {
        cancellation,
        summaries,
        number: format!("{}-{}", row.series, row.correlative),
        store_id,
        id: row.id,
        seller_id: row.seller_id,
        reservation_id: row.reservation_id,
        doc_type: row.doc_type,
        series: row.series,
        correlative: row.correlative,
        issue_date: row.issue_date,
        issued_at: row.issued_at,
        customer_doc_type: row.customer_doc_type,
        customer_doc_number: row.customer_doc_number,
        customer_name: row.customer_name,
        currency: row.currency,
        subtotal: row.subtotal,
        igv: row.igv,
        total: row.total,
        is_cancelled: row.is_cancelled,
        items,
        sunat: SunatView {
            status: row.sunat_status,
            status_label: row.sunat_status.label(),
            outcome: row.sunat_outcome,
            code: row.sunat_code,
            description: row.sunat_description,
            notes: row.sunat_notes,
            attempts: row.sunat_attempts,
            sent_at: row.sunat_sent_at,
            accepted_at: row.accepted_at,
            digest_value: row.digest_value,
            submissions,
        },
        files: SaleFiles {
            xml: row.xml_path,
            cdr: row.cdr_path,
            pdf: row.pdf_path,
            qr: row.qr_path,
        },
    }
}

/// A line before it is stored: what the product says now.
struct DraftLine {
    product_id: i64,
    sku: String,
    name: String,
    quantity: BigDecimal,
    unit_price: BigDecimal,
    taxation: ProductTaxation,
    discount: Option<Discount>,
    free: bool,
}

impl From<Taken> for DraftLine {
    fn from(t: Taken) -> Self {
        Self {
            product_id: t.product_id,
            sku: t.sku,
            name: t.name,
            quantity: t.quantity.decimal().clone(),
            unit_price: t.unit_price,
            taxation: t.taxation,
            discount: None,
            free: false,
        }
    }
}

impl DraftLine {
    fn line(&self) -> Result<Line, TaxError> {
        Ok(Line {
            code: self.sku.clone(),
            description: self.name.clone(),
            quantity: self.quantity.clone(),
            unit_code: UnitCode::parse(&self.taxation.unit_code)?,
            unit_price: self.unit_price.clone(),
            affectation: Affectation::parse(&self.taxation.igv_affectation)?,
            icbper: self.taxation.icbper,
            discount: self.discount.clone(),
            free: self.free,
        })
    }
}

fn parse_customer(input: Option<&CustomerInput>, doc: DocumentType) -> Result<Customer, SaleError> {
    let customer = match input {
        None => Customer::anonymous(),
        Some(c) => {
            let t = CustomerDocType::parse(&c.doc_type)
                .map_err(|e| invalid("customer.doc_type", e.to_string()))?;
            Customer::new(t, &c.doc_number, &c.name).map_err(|e| match e {
                // SUNAT rejects a name of fewer than 3 characters (2022): say so now, not after
                // the number is used up.
                DocumentError::InvalidCustomerName(_) => invalid("customer.name", e.to_string()),
                DocumentError::InvalidCustomer(ref why) if why.starts_with("name") => {
                    invalid("customer.name", e.to_string())
                }
                _ => invalid("customer.doc_number", e.to_string()),
            })?
        }
    };
    if doc == DocumentType::Factura && customer.doc_type != CustomerDocType::Ruc {
        return Err(invalid(
            "customer.doc_type",
            "a factura needs a buyer with a RUC (doc_type ruc)",
        ));
    }
    Ok(customer)
}

/// A `SELECT nextval(...) AS id`: a row's id taken before the locks its transaction will hold.
#[derive(QueryableByName)]
pub(crate) struct NextId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) id: i64,
}

/// Creates a sale: validates, takes stock (from `items`) or uses a CONFIRMED reservation, takes
/// the next correlative of the series, all in one transaction.
pub async fn create_sale(
    conn: &mut AsyncPgConnection,
    seller: &Seller,
    req: &NewSale,
    defaults: &SaleDefaults,
) -> Result<SaleView, SaleError> {
    let doc = match req.doc_type.as_deref() {
        None => DocumentType::Boleta,
        Some(d) => DocumentType::parse(d).map_err(|e| invalid("doc_type", e.to_string()))?,
    };
    // The series is the store's (`stores::Store::series_for`); a requested one must be it.
    let requested_series = req
        .series
        .as_deref()
        .map(|s| Series::parse_for(s, doc).map_err(|e| invalid("series", e.to_string())))
        .transpose()?;
    let customer = parse_customer(req.customer.as_ref(), doc)?;
    let stock = match (&req.items, req.reservation_id) {
        (Some(items), None) => Some(parse_items(items)?),
        (None, Some(_)) => None,
        _ => {
            return Err(invalid(
                "items",
                "give either `items` or `reservation_id` (a CONFIRMED reservation), not both or neither",
            ))
        }
    };
    let line_terms = match &req.items {
        Some(items) => parse_line_terms(items)?,
        None => Vec::new(),
    };
    let now = Utc::now();
    let issue_date = now.with_timezone(&defaults.tz).date_naive();
    let send = req.send.unwrap_or(defaults.auto_send);
    let req = req.clone();
    let seller = seller.clone();
    let view = conn
        .transaction::<SaleView, SaleError, _>(async move |conn| {
            // The sale's id first, and its send queued with it, before any lock is taken: sales of
            // one series run one at a time from the series' counter to the commit, so that stretch
            // holds only what needs the counter (measured: queuing the send inside it cost a quarter
            // of the sales per second).
            // The id and the seller's store in one round trip (two statements, pipelined).
            let shared: &AsyncPgConnection = conn;
            let (mut id_on, mut store_on) = (shared, shared);
            let (id, store) = futures::try_join!(
                async {
                    diesel::sql_query("SELECT nextval(pg_get_serial_sequence('sales', 'id')) AS id")
                        .get_result::<NextId>(&mut id_on)
                        .await
                        .map_err(SaleError::from)
                },
                async {
                    stores::store_for_sale(
                        &mut store_on,
                        &seller.user_id,
                        seller.is_admin,
                        req.store_id,
                    )
                    .await
                    .map_err(SaleError::from)
                },
            )?;
            let id = id.id;
            let series = store.series_for(doc, requested_series.as_ref())?;
            if send {
                queue_send_in_tx(conn, id, Some(&seller.user_id)).await?;
            }
            let mut draft: Vec<DraftLine> = Vec::new();
            if let Some(stock) = &stock {
                let items = req.items.as_deref().unwrap_or_default();
                let taken = take_stock(conn, store.id, stock)
                    .await
                    .map_err(|e| SaleError::from_stock(e, items))?;
                draft.extend(taken.into_iter().map(DraftLine::from));
                // The request's discounts and free lines, checked before the transaction.
                for d in &mut draft {
                    if let Some((_, terms)) = line_terms.iter().find(|(id, _)| *id == d.product_id)
                    {
                        d.discount = terms.discount.clone();
                        d.free = terms.free;
                    }
                }
            } else {
                let rid = req.reservation_id.unwrap_or_default();
                let r: Option<(Option<String>, ReservationStatus, i64)> = reservations::table
                    .find(rid)
                    .select((reservations::user_id, reservations::status, reservations::store_id))
                    .for_update()
                    .first(conn)
                    .await
                    .optional()?;
                let Some((owner, status, reserved_in)) = r else {
                    return Err(SaleError::NotFound {
                        what: "reservation",
                        id: rid,
                    });
                };
                if !seller.is_admin && owner.as_deref() != Some(seller.user_id.as_str()) {
                    return Err(SaleError::Forbidden(format!(
                        "reservation {rid} belongs to another user"
                    )));
                }
                if status != ReservationStatus::Confirmed {
                    return Err(SaleError::Conflict(format!(
                        "reservation {rid} is {status}: only a CONFIRMED reservation becomes a sale (POST /api/reservations/{rid}/confirm)"
                    )));
                }
                // Its stock was taken from its store's: the sale is made there.
                if reserved_in != store.id {
                    return Err(SaleError::Conflict(format!(
                        "reservation {rid} holds the stock of store {reserved_in}, not of store {} ({}): sell it in store {reserved_in} (`store_id`)",
                        store.id, store.code
                    )));
                }
                let taken: i64 = sales::table
                    .filter(sales::reservation_id.eq(rid))
                    .count()
                    .get_result(conn)
                    .await?;
                if taken > 0 {
                    return Err(SaleError::Conflict(format!(
                        "reservation {rid} already became a sale"
                    )));
                }
                type Reserved = (
                    i64,
                    String,
                    String,
                    BigDecimal,
                    BigDecimal,
                    bool,
                    Option<BigDecimal>,
                    Option<BigDecimal>,
                    ProductTaxation,
                );
                let rows: Vec<Reserved> = reservation_items::table
                    .inner_join(products::table)
                    .filter(reservation_items::reservation_id.eq(rid))
                    .order(products::id.asc())
                    .select((
                        products::id,
                        products::sku,
                        products::name,
                        products::unit_price,
                        reservation_items::quantity,
                        reservation_items::free,
                        reservation_items::discount_percent,
                        reservation_items::discount_amount,
                        ProductTaxation::as_select(),
                    ))
                    .load(conn)
                    .await?;
                // The terms the checkout took, applied now at the product's price.
                draft.extend(rows.into_iter().map(
                    |(product_id, sku, name, unit_price, quantity, free, percent, amount, taxation)| DraftLine {
                        product_id,
                        sku,
                        name,
                        quantity,
                        unit_price,
                        taxation,
                        discount: DiscountInput::from_columns(percent.as_ref(), amount.as_ref())
                            .map(|d| d.discount()),
                        free,
                    },
                ));
            }
            // A product stored before prices had to be above zero: `sale_items` would refuse it.
            if let Some(d) = draft.iter().find(|d| d.unit_price <= 0) {
                let field = match &req.items {
                    Some(items) => items
                        .iter()
                        .position(|i| i.product_id == d.product_id)
                        .map_or_else(|| "items".to_owned(), |i| format!("items[{i}].product_id")),
                    None => "reservation_id".to_owned(),
                };
                return Err(invalid(
                    field,
                    format!(
                        "product {} ({}) has no price ({}): give it one (PATCH /api/products/{}) \
                         before selling it",
                        d.product_id, d.sku, d.unit_price, d.product_id
                    ),
                ));
            }
            // Each line taxed as its product says, at the rates in force on the issue date.
            let field_of = |d: &DraftLine, what: &str| match &req.items {
                Some(items) => items
                    .iter()
                    .position(|i| i.product_id == d.product_id)
                    .map_or_else(|| "items".to_owned(), |i| format!("items[{i}].{what}")),
                None => "reservation_id".to_owned(),
            };
            let rate = igv_rate_on(issue_date);
            let icbper = icbper_on(issue_date);
            let mut lines = Vec::with_capacity(draft.len());
            let mut amounts = Vec::with_capacity(draft.len());
            for d in &draft {
                let line = d
                    .line()
                    .map_err(|e| invalid(field_of(d, "product_id"), e.to_string()))?;
                if line.icbper && icbper.is_none() {
                    return Err(invalid(
                        field_of(d, "product_id"),
                        TaxError::IcbperNotInForce(issue_date).to_string(),
                    ));
                }
                let a = line_amounts(line.input(), line.free, &rate, icbper.as_ref()).map_err(
                    |e| {
                        let what = match e {
                            TaxError::FreeWithDiscount => "free",
                            TaxError::Discount(_) | TaxError::DiscountTooLarge { .. } => "discount",
                            _ => "product_id",
                        };
                        invalid(field_of(d, what), e.to_string())
                    },
                )?;
                lines.push(line);
                amounts.push(a);
            }
            let totals = DocumentTotals::of(&amounts);
            let (subtotal, igv, total) = (totals.subtotal, totals.igv, totals.total);
            let limit = BigDecimal::from(ANONYMOUS_BOLETA_LIMIT);
            if doc == DocumentType::Boleta
                && customer.doc_type == CustomerDocType::None
                && total > limit
            {
                return Err(invalid(
                    "customer",
                    format!(
                        "a boleta above S/ {ANONYMOUS_BOLETA_LIMIT} needs the buyer's document (total {total})"
                    ),
                ));
            }
            // From the counter's UPSERT to the commit, sales of this series wait for this one (the
            // counter's row lock). The three statements go out together, pipelined on the
            // connection (PostgreSQL runs them in order; the sale reads the correlative the UPSERT
            // just wrote), so the stretch holds one statement, the sale's insert and the commit
            // (docs/benchmarks.md).
            // Through the query builder, so the connection keeps it prepared: raw SQL would be
            // planned on every sale, inside the stretch that holds the counter.
            let counter = diesel::insert_into(series_counters::table)
                .values((
                    series_counters::series.eq(series.as_str()),
                    series_counters::last_correlative.eq(1i64),
                ))
                .on_conflict(series_counters::series)
                .do_update()
                .set(series_counters::last_correlative.eq(series_counters::last_correlative + 1i64))
                .returning(series_counters::last_correlative);
            let correlative = series_counters::table
                .find(series.as_str())
                .select(series_counters::last_correlative)
                .single_value()
                .assume_not_null();
            let insert_sale = diesel::insert_into(sales::table)
                .values((
                    sales::id.eq(id),
                    sales::seller_id.eq(&seller.user_id),
                    sales::reservation_id.eq(req.reservation_id),
                    sales::doc_type.eq(doc.code()),
                    sales::series.eq(series.as_str()),
                    sales::correlative.eq(correlative),
                    sales::issue_date.eq(issue_date),
                    sales::issued_at.eq(now),
                    sales::customer_doc_type.eq(customer.doc_type.code()),
                    sales::customer_doc_number.eq(&customer.doc_number),
                    sales::customer_name.eq(&customer.name),
                    sales::subtotal.eq(&subtotal),
                    sales::igv.eq(&igv),
                    sales::total.eq(&total),
                ))
                .returning(SaleRow::as_returning());
            let rows: Vec<_> = draft
                .iter()
                .zip(lines.iter().zip(&amounts))
                .map(|(d, (l, a))| {
                    let (percent, amount) = DiscountInput::columns(l.discount.as_ref());
                    (
                        (
                            sale_items::sale_id.eq(id),
                            sale_items::product_id.eq(Some(d.product_id)),
                            sale_items::sku.eq(d.sku.clone()),
                            sale_items::description.eq(d.name.clone()),
                            sale_items::quantity.eq(d.quantity.clone()),
                            sale_items::unit_price.eq(d.unit_price.clone()),
                            sale_items::line_total.eq(a.payable.clone()),
                            sale_items::unit_code.eq(l.unit_code.as_str()),
                        ),
                        (
                            sale_items::igv_affectation.eq(a.affectation.code()),
                            sale_items::icbper.eq(l.icbper),
                            sale_items::free.eq(a.is_free()),
                            sale_items::discount_percent.eq(percent),
                            sale_items::discount_amount.eq(amount),
                            sale_items::value.eq(a.value.clone()),
                            sale_items::igv.eq(a.igv.clone()),
                            sale_items::icbper_amount.eq(a.icbper.clone()),
                            sale_items::discount.eq(a.discount.clone()),
                        ),
                    )
                })
                .collect();
            let insert_items = diesel::insert_into(sale_items::table)
                .values(rows)
                .returning(SaleItem::as_returning());
            // The lines first: they need no counter (their reference to the sale is checked at
            // commit, migration 002400), so the counter is held for the sale's row alone.
            let (mut items, next, row): (Vec<SaleItem>, i64, SaleRow) = futures::try_join!(
                insert_items.get_results(&mut &*conn),
                counter.get_result(&mut &*conn),
                insert_sale.get_result(&mut &*conn),
            )?;
            debug_assert_eq!(next, row.correlative);
            stores::record_sale_store(conn, id, &store).await?;
            // The answer is the sale as inserted (RETURNING): a new sale has no submission,
            // cancellation or summary yet, so reading it back would cost six queries for nothing.
            items.sort_by_key(|i| i.id);
            Ok(view(row, store.id, items, Vec::new(), None, Vec::new()))
        })
        .await?;
    if send {
        faena_core::outbox::committed();
    }
    Ok(view)
}

/// Queues the sale's send to SUNAT through the outbox, in the caller's transaction, and records
/// the job's id on the sale. Returns the id. After the commit, `faena_core::outbox::committed()`
/// wakes this process's relay.
pub async fn queue_send_in_tx(
    conn: &mut AsyncPgConnection,
    sale_id: i64,
    owner: Option<&str>,
) -> Result<TaskId, SaleError> {
    let req = EnqueueRequest {
        kind: SendSaleArgs::KIND.into(),
        args: serde_json::json!({ "sale_id": sale_id }),
        ..Default::default()
    };
    let task = faena_core::outbox::enqueue_in_tx(conn, &faena_catalog::catalog(), req, owner)
        .await
        .map_err(|e| match e {
            faena_core::outbox::OutboxError::Db(e) => SaleError::from(e),
            // Our own request: a catalog without the kind is a build defect, not the caller's.
            other => {
                tracing::error!(sale_id, error = %other, "cannot queue the sale's send");
                SaleError::Db(QueryError::Unavailable)
            }
        })?;
    record_send_task(conn, sale_id, &task).await?;
    Ok(task)
}

/// The name of the Redis lock a send of the sale holds from before it marks the sale SENDING
/// until after it records the outcome (held by the attempt: `task_id:token`).
pub fn send_lock(sale_id: i64) -> String {
    crate::sendable::Sendable::Sale.send_lock(sale_id)
}

/// [`queue_send_in_tx`] in a transaction of its own.
pub async fn queue_send(
    conn: &mut AsyncPgConnection,
    sale_id: i64,
    owner: Option<&str>,
) -> Result<TaskId, SaleError> {
    let owner = owner.map(str::to_owned);
    let task = conn
        .transaction::<TaskId, SaleError, _>(async move |conn| {
            queue_send_in_tx(conn, sale_id, owner.as_deref()).await
        })
        .await?;
    faena_core::outbox::committed();
    Ok(task)
}

/// Records `task` as the send job last enqueued for the sale.
pub async fn record_send_task(
    conn: &mut AsyncPgConnection,
    sale_id: i64,
    task: &TaskId,
) -> Result<(), SaleError> {
    diesel::insert_into(sale_send_jobs::table)
        .values((
            sale_send_jobs::sale_id.eq(sale_id),
            sale_send_jobs::task_id.eq(task.to_string()),
        ))
        .on_conflict(sale_send_jobs::sale_id)
        .do_update()
        .set((
            sale_send_jobs::task_id.eq(task.to_string()),
            sale_send_jobs::enqueued_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Each item's terms (discount, free), checked, by product id; the error names the line's field.
fn parse_line_terms(items: &[SaleItemInput]) -> Result<Vec<(i64, LineTerms)>, SaleError> {
    items
        .iter()
        .enumerate()
        .map(|(index, i)| {
            LineTerms::parse(i.discount.as_ref(), i.free)
                .map(|t| (i.product_id, t))
                .map_err(|(field, e)| {
                    invalid(format!("items[{index}].{}", field.name()), e.to_string())
                })
        })
        .collect()
}

/// The items of a new sale, as stock to take; the error names the first line at fault.
fn parse_items(items: &[SaleItemInput]) -> Result<StockRequest, SaleError> {
    let lines = items.iter().map(|i| (i.product_id, i.quantity.clone()));
    StockRequest::parse(lines).map_err(|bad| match bad {
        BadLines::Count(_) => invalid("items", "give 1 to 100 items"),
        BadLines::Repeated { index, product_id } => invalid(
            format!("items[{index}].product_id"),
            format!("product {product_id} is listed twice; give it once with the total quantity"),
        ),
    })
}

/// The sale's row.
/// SUNAT's last answer about a sale: its outcome class, code and description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SunatAnswer {
    pub outcome: Option<String>,
    pub code: Option<String>,
    pub description: Option<String>,
}

/// id, outcome, code and description of a sale.
type AnswerRow = (i64, Option<String>, Option<String>, Option<String>);

/// SUNAT's last answer about each of `ids`, in one query (for lists of sales).
pub async fn sunat_answers(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, SunatAnswer>, QueryError> {
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let rows: Vec<AnswerRow> = sales::table
        .filter(sales::id.eq_any(ids))
        .select((
            sales::id,
            sales::sunat_outcome,
            sales::sunat_code,
            sales::sunat_description,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, outcome, code, description)| {
            (
                id,
                SunatAnswer {
                    outcome,
                    code,
                    description,
                },
            )
        })
        .collect())
}

pub async fn sale_row(conn: &mut AsyncPgConnection, id: i64) -> Result<SaleRow, SaleError> {
    sales::table
        .find(id)
        .select(SaleRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(SaleError::NotFound { what: "sale", id })
}

/// The sale's items, in line order.
pub async fn sale_items(conn: &mut AsyncPgConnection, id: i64) -> Result<Vec<SaleItem>, SaleError> {
    Ok(sale_items::table
        .filter(sale_items::sale_id.eq(id))
        .order(sale_items::id.asc())
        .select(SaleItem::as_select())
        .load(conn)
        .await?)
}

/// A sale with its items and SUNAT attempts.
pub async fn get_sale(conn: &mut AsyncPgConnection, id: i64) -> Result<SaleView, SaleError> {
    let row = sale_row(conn, id).await?;
    let store = stores::sale_store(conn, id).await?;
    let items = sale_items(conn, id).await?;
    let subs = sunat_submissions::table
        .filter(sunat_submissions::sale_id.eq(id))
        .order(sunat_submissions::id.asc())
        .select(Submission::as_select())
        .load(conn)
        .await?;
    let cancellation = crate::summaries::cancellation_of(conn, id).await?;
    let summaries = crate::summaries::carried(conn, id).await?;
    Ok(view(row, store.id, items, subs, cancellation, summaries))
}

/// Whether a send may be queued now: not cancelled, not decided by SUNAT, not being sent. The
/// error says why, for a 409 or the CLI.
pub fn check_sendable(row: &SaleRow) -> Result<(), String> {
    if row.is_cancelled {
        return Err(format!("sale {} is cancelled: it is not sent", row.id));
    }
    match row.sunat_status {
        SunatStatus::Sending => Err(format!(
            "sale {} is SENDING: a worker is sending it now",
            row.id
        )),
        SunatStatus::Conflict => Err(format!(
            "sale {} is CONFLICT: SUNAT already holds {}-{} ({} {}); sending it again gets the \
             same answer. A person must look the number up at SUNAT (README, troubleshooting)",
            row.id,
            row.series,
            row.correlative,
            row.sunat_code.as_deref().unwrap_or("-"),
            row.sunat_description.as_deref().unwrap_or(""),
        )),
        s if s.is_decided() => Err(format!("sale {} is {s}: SUNAT has already decided", row.id)),
        _ => Ok(()),
    }
}

pub use crate::sendable::NotSendable;

fn sale_send_error(e: crate::sendable::SendableError) -> SaleError {
    match e {
        crate::sendable::SendableError::NotFound { what, id } => SaleError::NotFound { what, id },
        crate::sendable::SendableError::Db(q) => SaleError::Db(q),
    }
}

/// Marks the sale SENDING and counts the attempt, if it may be sent (not cancelled; PENDING,
/// ERROR, or SENDING left by a dead worker): [`crate::sendable::Sendable::begin_send`].
pub async fn begin_send(
    conn: &mut AsyncPgConnection,
    id: i64,
    marker: &str,
) -> Result<Result<i32, NotSendable>, SaleError> {
    Sendable::Sale
        .begin_send(conn, id, marker)
        .await
        .map_err(sale_send_error)
}

/// Whether the sale is still SENDING under this attempt's `marker`.
pub async fn is_sending(
    conn: &mut AsyncPgConnection,
    id: i64,
    marker: &str,
) -> Result<bool, SaleError> {
    Sendable::Sale
        .is_sending(conn, id, marker)
        .await
        .map_err(sale_send_error)
}

/// Stores the signed document's digest and path, once.
pub async fn store_signed(
    conn: &mut AsyncPgConnection,
    id: i64,
    digest_value: &str,
    xml_path: &str,
) -> Result<(), SaleError> {
    Sendable::Sale
        .store_signed(conn, id, digest_value, xml_path)
        .await
        .map_err(sale_send_error)
}

/// One attempt, as recorded in `sunat_submissions`.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = sunat_submissions)]
pub struct NewSubmission {
    pub sale_id: i64,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub outcome: String,
    pub code: Option<String>,
    pub description: Option<String>,
    pub http_status: Option<i32>,
    pub task_id: Option<String>,
    /// [`faena_sunat::signed_sha256`] of the signed XML sent; `None` when nothing was sent.
    pub signed_sha256: Option<String>,
    /// `SunatConfig::fingerprint` of the settings the call was made with (a hash, no secret).
    pub settings_fingerprint: Option<String>,
}

/// Records one attempt.
pub async fn record_submission(
    conn: &mut AsyncPgConnection,
    s: &NewSubmission,
) -> Result<(), SaleError> {
    diesel::insert_into(sunat_submissions::table)
        .values(s)
        .execute(conn)
        .await?;
    Ok(())
}

/// Leaves SENDING for the result's state, only under this attempt's `marker`
/// ([`crate::sendable::Sendable::finish_send`]; a sale's unsure sends are in
/// `sunat_submissions`). Returns whether it wrote.
pub async fn finish_send(
    conn: &mut AsyncPgConnection,
    id: i64,
    marker: &str,
    r: &SendResult,
) -> Result<bool, SaleError> {
    Sendable::Sale
        .finish_send(conn, id, marker, r, None)
        .await
        .map_err(sale_send_error)
}

/// Whether an earlier attempt of the sale sent these very signed bytes (`signed_sha256`) and got
/// an unknown or in-process outcome: then SUNAT may hold the document because of us, and a 1033
/// or 1032 on this send speaks of our own first send (`Outcome::on_resend`). Without such an
/// attempt, or after one with other bytes, those codes are a conflict.
pub async fn sent_unsure_before(
    conn: &mut AsyncPgConnection,
    id: i64,
    signed_sha256: &str,
) -> Result<bool, SaleError> {
    let n: i64 = sunat_submissions::table
        .filter(sunat_submissions::sale_id.eq(id))
        .filter(sunat_submissions::outcome.eq_any(UNSURE))
        .filter(sunat_submissions::signed_sha256.eq(signed_sha256))
        .count()
        .get_result(conn)
        .await?;
    Ok(n > 0)
}

/// Outcome classes after which SUNAT may hold the document without our knowing.
pub const UNSURE: [&str; 2] = ["unknown", "in_process"];
