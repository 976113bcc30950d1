//! Credit notes (notas de crédito, type 07) of accepted sales: what a note may credit, its own
//! series and correlative, the units it returns to stock, and its SUNAT state, which the
//! `send_credit_note_to_sunat` job moves as `send_sale_to_sunat` moves a sale's.
//!
//! A note is made in one transaction that locks the sale's row (so two notes of one sale are
//! made one after the other and each sees what the other took), checks the sale (ACCEPTED by
//! SUNAT; not cancelled, unless SUNAT refused to void it: then only a whole note 01 or 02, which
//! returns no units), credits the whole of what is left of the sale or chosen lines with their
//! units (never more than what is left of a line, and so never more than what is left of the
//! sale: 409 with the amount left), returns those units to stock through
//! [`crate::stock::give_back`], takes the next correlative of the note's series (its sale's
//! store's note series) from
//! `series_counters`, stores the note and its lines, and queues its send through the outbox.
//!
//! What is left of a sale is its lines less the units and amounts of its notes that SUNAT did not
//! reject. A line is credited in shares ([`faena_sunat::taxation::share_amounts`]): the parts of
//! a line add up to the line to the cent, so the notes of a sale never total more than the sale.
//!
//! Which reasons (catálogo 09) Faena issues: those that give goods back. 01 (anulación de la
//! operación), 02 (anulación por error en el RUC) and 06 (devolución total) credit the whole of
//! what is left; 07 (devolución por ítem) credits chosen lines. The others adjust amounts
//! without goods coming back (discounts, corrections, exports, IVAP, instalments) and are refused
//! with a 400 that says so.

use bigdecimal::{BigDecimal, Zero};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use faena_catalog::SendCreditNoteArgs;
use faena_core::db::QueryError;
use faena_core::jobs::{EnqueueRequest, JobArgs};
use faena_core::TaskId;
use faena_sunat::credit_note::{is_note_description, MAX_DESCRIPTION_CHARS};
use faena_sunat::document::{Company, Customer, CustomerDocType, DocumentError, DocumentType};
use faena_sunat::taxation::{DocumentTotals, LineAmounts};
use faena_sunat::{CreditLine, CreditNote, CreditReason, OriginalDocument, Series};
use serde::{Deserialize, Serialize};

use crate::quantity::Quantity;
use crate::sales::{self, NotSendable, SaleItem, SaleRow, SaleView, SendResult};
use crate::schema::{
    credit_note_items, credit_notes, sale_cancellations, sale_items, sales as sales_table,
};
use crate::sendable::Sendable;
use crate::states::{SunatStatus, VoidState};
use crate::stock::{give_back, lines_of, StockRequest};

/// A credit note that cannot be made. Each variant has a stable [`CreditNoteError::code`].
#[derive(Debug, thiserror::Error)]
pub enum CreditNoteError {
    #[error("field `{field}`: {message}")]
    Invalid { field: String, message: String },
    #[error("no {what} with id {id}")]
    NotFound { what: &'static str, id: i64 },
    /// The sale is not a receipt SUNAT accepted, or it was cancelled: nothing to credit.
    #[error("{message}")]
    NotCreditable {
        message: String,
        status: SunatStatus,
        is_cancelled: bool,
    },
    /// More than what is left of the sale or of one of its lines.
    #[error("{message}")]
    Exceeds {
        message: String,
        /// What is left of the sale, with taxes.
        remaining: BigDecimal,
    },
    /// The database refused the data, or could not answer; the text is ours, never PostgreSQL's.
    #[error(transparent)]
    Db(#[from] QueryError),
}

impl CreditNoteError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid_field",
            Self::NotFound { .. } => "not_found",
            Self::NotCreditable { .. } | Self::Exceeds { .. } => "conflict",
            Self::Db(QueryError::Refused(r)) => r.code(),
            Self::Db(QueryError::Unavailable) => "database_unavailable",
        }
    }
}

impl From<diesel::result::Error> for CreditNoteError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

impl From<sales::SaleError> for CreditNoteError {
    fn from(e: sales::SaleError) -> Self {
        match e {
            sales::SaleError::NotFound { what, id } => Self::NotFound { what, id },
            sales::SaleError::Db(q) => Self::Db(q),
            other => Self::Invalid {
                field: "sale".into(),
                message: other.to_string(),
            },
        }
    }
}

fn store_error(e: crate::stores::StoreError) -> CreditNoteError {
    use crate::stores::StoreError;
    match e {
        StoreError::Db(q) => CreditNoteError::Db(q),
        StoreError::Invalid { field, message } => CreditNoteError::Invalid { field, message },
        other => invalid("series", other.to_string()),
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> CreditNoteError {
    CreditNoteError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// One chosen line: `quantity` units of the sale's line of `product_id`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditItemInput {
    pub product_id: i64,
    /// Units (a JSON number or a decimal string, like a sale line's), at most what is left of the
    /// line.
    #[schema(schema_with = crate::quantity::request_schema)]
    pub quantity: Quantity,
}

/// `POST /api/sales/{id}/credit-notes`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCreditNote {
    /// Catálogo 09: `01` anulación de la operación, `02` anulación por error en el RUC, `06`
    /// devolución total (the whole of what is left; no `items`), or `07` devolución por ítem
    /// (with `items`).
    #[schema(example = "07")]
    pub reason_code: String,
    /// Why, in the shop's words: 1 to 500 characters without line breaks (printed on the note).
    #[schema(example = "Cliente devolvió 2 unidades")]
    pub description: String,
    /// The lines to credit (reason 07); absent: the whole of what is left.
    #[serde(default)]
    pub items: Option<Vec<CreditItemInput>>,
}

/// What a note credits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credited {
    /// Every unit left of every line.
    Whole,
    /// Chosen lines, by product, each once (product-id order).
    Items(StockRequest),
}

/// A request for a credit note, checked: a reason Faena issues, a description SUNAT takes, and
/// what it credits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditRequest {
    reason: CreditReason,
    description: String,
    credited: Credited,
}

/// The reasons that credit the whole of what is left.
const WHOLE_REASONS: [CreditReason; 3] = [
    CreditReason::Cancellation,
    CreditReason::WrongRuc,
    CreditReason::TotalReturn,
];

impl CreditRequest {
    /// Checks a request; the error names the field at fault.
    pub fn parse(input: &NewCreditNote) -> Result<Self, CreditNoteError> {
        let reason = CreditReason::parse(&input.reason_code)
            .map_err(|e| invalid("reason_code", e.to_string()))?;
        let description = input.description.trim().to_owned();
        let credited = match (&input.items, reason) {
            (None, r) if WHOLE_REASONS.contains(&r) => Credited::Whole,
            (Some(items), CreditReason::ItemReturn) => Credited::Items(parse_items(items)?),
            (None, CreditReason::ItemReturn) => {
                return Err(invalid(
                    "items",
                    "reason 07 (devolución por ítem) credits chosen lines: give `items` \
                     [{product_id, quantity}], or use 06 (devolución total) for all of them",
                ))
            }
            (Some(_), r) if WHOLE_REASONS.contains(&r) => {
                return Err(invalid(
                    "items",
                    format!(
                        "reason {} ({}) credits the whole of what is left of the sale: give no \
                         `items`, or use 07 (devolución por ítem) for chosen lines",
                        r.code(),
                        r.label().to_lowercase()
                    ),
                ))
            }
            (_, r) => {
                return Err(invalid(
                    "reason_code",
                    format!(
                        "reason {} ({}) adjusts amounts without goods coming back, which Faena \
                         does not issue: use 01, 02 or 06 to credit the whole sale, or 07 for \
                         chosen lines",
                        r.code(),
                        r.label().to_lowercase()
                    ),
                ))
            }
        };
        Self::new(reason, description, credited)
    }

    /// The whole of what is left of a sale, for `reason` (01, 02 or 06): what a cancellation past
    /// the voiding window issues.
    pub fn whole(reason: CreditReason, description: &str) -> Result<Self, CreditNoteError> {
        if !WHOLE_REASONS.contains(&reason) {
            return Err(invalid(
                "reason_code",
                format!(
                    "reason {} does not credit a whole sale: use 01, 02 or 06",
                    reason.code()
                ),
            ));
        }
        Self::new(reason, description.trim().to_owned(), Credited::Whole)
    }

    fn new(
        reason: CreditReason,
        description: String,
        credited: Credited,
    ) -> Result<Self, CreditNoteError> {
        if !is_note_description(&description) {
            return Err(invalid(
                "description",
                format!(
                    "give 1 to {MAX_DESCRIPTION_CHARS} characters without line breaks or tabs \
                     (SUNAT rejects the note otherwise, 2135/2136); it is printed on the note"
                ),
            ));
        }
        Ok(Self {
            reason,
            description,
            credited,
        })
    }

    pub fn reason(&self) -> CreditReason {
        self.reason
    }
}

fn parse_items(items: &[CreditItemInput]) -> Result<StockRequest, CreditNoteError> {
    use crate::stock::BadLines;
    StockRequest::parse(items.iter().map(|i| (i.product_id, i.quantity.clone()))).map_err(|bad| {
        match bad {
            BadLines::Count(_) => invalid("items", "give 1 to 100 items"),
            BadLines::Repeated { index, product_id } => invalid(
                format!("items[{index}].product_id"),
                format!(
                    "product {product_id} is listed twice; give it once with the total quantity"
                ),
            ),
        }
    })
}

/// Where notes take their dates. Their series is the note series of the store the sale was
/// made in (`stores.boleta_note_series` / `factura_note_series`; the main store's follow
/// `FAENA_BOLETA_NOTE_SERIES` / `FAENA_FACTURA_NOTE_SERIES` until it issues its first note of
/// that type, `stores::adopt_note_series_settings`).
#[derive(Debug, Clone)]
pub struct NoteDefaults {
    /// The business time zone: the issue date is today there.
    pub tz: chrono_tz::Tz,
}

impl Default for NoteDefaults {
    /// America/Lima: the settings' default.
    fn default() -> Self {
        Self {
            tz: chrono_tz::America::Lima,
        }
    }
}

/// A stored credit note.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = credit_notes, check_for_backend(diesel::pg::Pg))]
pub struct CreditNoteRow {
    pub id: i64,
    pub sale_id: i64,
    pub created_by: String,
    pub series: String,
    pub correlative: i64,
    pub issue_date: NaiveDate,
    pub issued_at: DateTime<Utc>,
    pub reason_code: String,
    pub description: String,
    pub currency: String,
    pub subtotal: BigDecimal,
    pub igv: BigDecimal,
    pub icbper: BigDecimal,
    pub total: BigDecimal,
    pub sunat_status: SunatStatus,
    pub sunat_outcome: Option<String>,
    pub sunat_code: Option<String>,
    pub sunat_description: Option<String>,
    pub sunat_notes: serde_json::Value,
    pub sunat_attempts: i32,
    pub sunat_sent_at: Option<DateTime<Utc>>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub sunat_send_marker: Option<String>,
    pub unsure_sha256: Option<String>,
    pub digest_value: Option<String>,
    pub xml_path: Option<String>,
    pub cdr_path: Option<String>,
    pub pdf_path: Option<String>,
    pub qr_path: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A credited line, as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = credit_note_items, check_for_backend(diesel::pg::Pg))]
pub struct CreditNoteItemRow {
    pub id: i64,
    pub credit_note_id: i64,
    pub sale_item_id: i64,
    pub product_id: Option<i64>,
    pub quantity: BigDecimal,
    pub credited_before: BigDecimal,
    pub value: BigDecimal,
    pub igv: BigDecimal,
    pub icbper_amount: BigDecimal,
    pub line_total: BigDecimal,
}

/// A credited line, as the api shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreditNoteItemView {
    pub product_id: Option<i64>,
    pub sku: String,
    pub description: String,
    /// The units credited (a decimal string: `"2"`, `"0.5"`).
    #[schema(value_type = String, example = "2")]
    pub quantity: BigDecimal,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "4.24")]
    pub value: BigDecimal,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "0.76")]
    pub igv: BigDecimal,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "0.00")]
    pub icbper_amount: BigDecimal,
    /// What the line gives back: value + IGV + ICBPER.
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "5.00")]
    pub line_total: BigDecimal,
}

/// A credit note's SUNAT state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NoteSunatView {
    pub status: SunatStatus,
    /// The status in Spanish, for the shop's staff.
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
}

/// A credit note as the api shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreditNoteView {
    pub id: i64,
    pub sale_id: i64,
    pub series: String,
    pub correlative: i64,
    /// SERIES-CORRELATIVE, as printed (e.g. BC01-3).
    pub number: String,
    pub issue_date: NaiveDate,
    pub issued_at: DateTime<Utc>,
    /// Catálogo 09.
    #[schema(example = "07")]
    pub reason_code: String,
    /// The reason's name in Spanish.
    #[schema(example = "Devolución por ítem")]
    pub reason_label: &'static str,
    pub description: String,
    pub created_by: String,
    pub currency: String,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "4.24")]
    pub subtotal: BigDecimal,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "0.76")]
    pub igv: BigDecimal,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "0.00")]
    pub icbper: BigDecimal,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "5.00")]
    pub total: BigDecimal,
    pub items: Vec<CreditNoteItemView>,
    pub sunat: NoteSunatView,
    pub files: sales::SaleFiles,
}

/// `GET /api/sales/{id}`: the sale, its credit notes with their state, and what is left of it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SaleDetail {
    #[serde(flatten)]
    pub sale: SaleView,
    /// Its credit notes, oldest first.
    pub credit_notes: Vec<CreditNoteView>,
    /// What its notes credit (those SUNAT did not reject), with taxes.
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "5.00")]
    pub credited: BigDecimal,
    /// What a further note may still credit.
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "5.50")]
    pub remaining: BigDecimal,
}

fn reason_label(code: &str) -> &'static str {
    CreditReason::parse(code).map_or("", CreditReason::label)
}

fn note_view(row: CreditNoteRow, items: Vec<CreditNoteItemView>) -> CreditNoteView {
    CreditNoteView {
        number: format!("{}-{}", row.series, row.correlative),
        reason_label: reason_label(&row.reason_code),
        id: row.id,
        sale_id: row.sale_id,
        series: row.series,
        correlative: row.correlative,
        issue_date: row.issue_date,
        issued_at: row.issued_at,
        reason_code: row.reason_code,
        description: row.description,
        created_by: row.created_by,
        currency: row.currency,
        subtotal: row.subtotal,
        igv: row.igv,
        icbper: row.icbper,
        total: row.total,
        items,
        sunat: NoteSunatView {
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
        },
        files: sales::SaleFiles {
            xml: row.xml_path,
            cdr: row.cdr_path,
            pdf: row.pdf_path,
            qr: row.qr_path,
        },
    }
}

/// The credit notes of a sale, oldest first, with their lines.
pub async fn of_sale(
    conn: &mut AsyncPgConnection,
    sale_id: i64,
) -> Result<Vec<CreditNoteView>, CreditNoteError> {
    let rows: Vec<CreditNoteRow> = credit_notes::table
        .filter(credit_notes::sale_id.eq(sale_id))
        .order(credit_notes::id.asc())
        .select(CreditNoteRow::as_select())
        .load(conn)
        .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let items: Vec<(CreditNoteItemRow, String, String)> = credit_note_items::table
        .inner_join(sale_items::table)
        .filter(credit_note_items::credit_note_id.eq_any(&ids))
        .order(credit_note_items::id.asc())
        .select((
            CreditNoteItemRow::as_select(),
            sale_items::sku,
            sale_items::description,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mine = items
                .iter()
                .filter(|(i, _, _)| i.credit_note_id == row.id)
                .map(|(i, sku, description)| CreditNoteItemView {
                    product_id: i.product_id,
                    sku: sku.clone(),
                    description: description.clone(),
                    quantity: i.quantity.normalized(),
                    value: i.value.clone(),
                    igv: i.igv.clone(),
                    icbper_amount: i.icbper_amount.clone(),
                    line_total: i.line_total.clone(),
                })
                .collect();
            note_view(row, mine)
        })
        .collect())
}

/// One credit note.
pub async fn get(conn: &mut AsyncPgConnection, id: i64) -> Result<CreditNoteView, CreditNoteError> {
    let sale_id: i64 = credit_notes::table
        .find(id)
        .select(credit_notes::sale_id)
        .first(conn)
        .await
        .optional()?
        .ok_or(CreditNoteError::NotFound {
            what: "credit note",
            id,
        })?;
    of_sale(conn, sale_id)
        .await?
        .into_iter()
        .find(|n| n.id == id)
        .ok_or(CreditNoteError::NotFound {
            what: "credit note",
            id,
        })
}

/// A sale with its credit notes and what is left of it.
pub async fn sale_detail(
    conn: &mut AsyncPgConnection,
    sale_id: i64,
) -> Result<SaleDetail, CreditNoteError> {
    let sale = sales::get_sale(conn, sale_id).await?;
    let notes = of_sale(conn, sale_id).await?;
    let credited: BigDecimal = notes
        .iter()
        .filter(|n| n.sunat.status != SunatStatus::Rejected)
        .map(|n| n.total.clone())
        .sum();
    let remaining = &sale.total - &credited;
    Ok(SaleDetail {
        sale,
        credit_notes: notes,
        credited,
        remaining,
    })
}

/// Units of each sale line credited by the sale's notes that SUNAT did not reject, and their
/// total, read in the caller's transaction.
pub(crate) async fn credited_so_far(
    conn: &mut AsyncPgConnection,
    sale_id: i64,
) -> Result<(Vec<(i64, BigDecimal)>, BigDecimal), CreditNoteError> {
    let units: Vec<(i64, BigDecimal)> = credit_note_items::table
        .inner_join(credit_notes::table)
        .filter(credit_notes::sale_id.eq(sale_id))
        .filter(credit_notes::sunat_status.ne(SunatStatus::Rejected))
        .select((credit_note_items::sale_item_id, credit_note_items::quantity))
        .load(conn)
        .await?;
    let totals: Vec<BigDecimal> = credit_notes::table
        .filter(credit_notes::sale_id.eq(sale_id))
        .filter(credit_notes::sunat_status.ne(SunatStatus::Rejected))
        .select(credit_notes::total)
        .load(conn)
        .await?;
    Ok((units, totals.into_iter().sum()))
}

#[derive(QueryableByName)]
struct Next {
    #[diesel(sql_type = diesel::sql_types::Int8)]
    last_correlative: i64,
}

/// Makes a credit note of sale `sale_id` in the caller's transaction (see the module's
/// documentation): checks, returns the credited units to stock, takes the correlative, stores
/// the note and queues its send through the outbox. Returns the note's id; after the commit,
/// call `faena_core::outbox::committed()`. `created_by` is the user (or `cli`) who made it, and
/// owns the send job. A cancelled sale is refused, so a cancellation that issues a whole note
/// ([`CreditRequest::whole`]) calls this before it marks the sale cancelled, in its transaction;
/// except a sale whose cancellation SUNAT refused to void (FAILED): it takes a whole note of
/// reason 01 or 02, which returns no units (the cancellation did).
pub async fn create_in_tx(
    conn: &mut AsyncPgConnection,
    sale_id: i64,
    created_by: &str,
    req: &CreditRequest,
    defaults: &NoteDefaults,
) -> Result<i64, CreditNoteError> {
    let sale: SaleRow = sales_table::table
        .find(sale_id)
        .select(SaleRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(CreditNoteError::NotFound {
            what: "sale",
            id: sale_id,
        })?;
    let number = format!("{}-{}", sale.series, sale.correlative);
    // A cancelled sale whose void SUNAT refused (its baja or Resumen Diario line FAILED) is still
    // valid at SUNAT: only a whole note that annuls it (01 or 02) may follow, and its units are
    // back in stock already (the cancellation returned them).
    let mut stock_back_already = false;
    if sale.is_cancelled {
        let void_refused = sale_cancellations::table
            .find(sale_id)
            .select(sale_cancellations::sunat_state)
            .first::<VoidState>(conn)
            .await
            .optional()?
            == Some(VoidState::Failed);
        let annuls = req.credited == Credited::Whole
            && matches!(
                req.reason,
                CreditReason::Cancellation | CreditReason::WrongRuc
            );
        if !void_refused {
            return Err(CreditNoteError::NotCreditable {
                message: format!(
                    "la venta {sale_id} ({number}) está anulada: no queda nada que acreditar \
                     (sale {sale_id} is cancelled: there is nothing left to credit)"
                ),
                status: sale.sunat_status,
                is_cancelled: true,
            });
        }
        if !annuls {
            return Err(CreditNoteError::NotCreditable {
                message: format!(
                    "la venta {sale_id} ({number}) está anulada y SUNAT rechazó su baja: solo \
                     cabe una nota de crédito por todo lo que queda, motivo 01 (anulación de la \
                     operación) o 02 (anulación por error en el RUC), sin `items` (sale \
                     {sale_id} is cancelled and SUNAT refused its void: only a whole note, \
                     reason 01 or 02)"
                ),
                status: sale.sunat_status,
                is_cancelled: true,
            });
        }
        stock_back_already = true;
    }
    if sale.sunat_status != SunatStatus::Accepted {
        return Err(CreditNoteError::NotCreditable {
            message: format!(
                "sale {sale_id} ({number}) is {}: a credit note modifies a receipt SUNAT \
                 accepted (SUNAT rejects one of a document it does not hold, 2119); wait for \
                 SUNAT's answer",
                sale.sunat_status
            ),
            status: sale.sunat_status,
            is_cancelled: false,
        });
    }
    let doc = DocumentType::parse(&sale.doc_type).map_err(|e| invalid("sale", e.to_string()))?;
    // The note series of the store the sale was made in.
    let store = crate::stores::sale_store(conn, sale_id)
        .await
        .map_err(store_error)?;
    let series = store.note_series_for(doc).map_err(store_error)?;
    let items = sales::sale_items(conn, sale_id).await?;
    let (units, credited_total) = credited_so_far(conn, sale_id).await?;
    let remaining = &sale.total - &credited_total;
    let before_of = |item: &SaleItem| -> BigDecimal {
        units
            .iter()
            .filter(|(id, _)| *id == item.id)
            .map(|(_, q)| q.clone())
            .sum()
    };
    // The lines to credit: (sale line, units before, units now).
    let mut chosen: Vec<(&SaleItem, BigDecimal, BigDecimal)> = Vec::new();
    match &req.credited {
        Credited::Whole => {
            for item in &items {
                let before = before_of(item);
                let left = item.quantity.clone() - &before;
                if left > BigDecimal::zero() {
                    chosen.push((item, before, left));
                }
            }
            if chosen.is_empty() {
                return Err(CreditNoteError::Exceeds {
                    message: format!(
                        "sale {sale_id} ({number}) is credited in full: nothing is left to credit"
                    ),
                    remaining,
                });
            }
        }
        Credited::Items(request) => {
            for line in request.lines() {
                let Some(item) = items.iter().find(|i| i.product_id == Some(line.product_id))
                else {
                    return Err(invalid(
                        "items",
                        format!(
                            "sale {sale_id} ({number}) has no line of product {}",
                            line.product_id
                        ),
                    ));
                };
                let before = before_of(item);
                let left = item.quantity.clone() - &before;
                let asked = line.quantity.decimal().clone();
                if asked > left {
                    return Err(CreditNoteError::Exceeds {
                        message: format!(
                            "sale {sale_id} ({number}): {} unit(s) of product {} ({}) are left \
                             to credit, not {}; S/ {} is left of the sale",
                            left.normalized(),
                            line.product_id,
                            item.sku,
                            line.quantity,
                            crate::money::format(&remaining)
                        ),
                        remaining,
                    });
                }
                chosen.push((item, before, asked));
            }
        }
    }
    // Each line's share, at the sale's rates.
    let mut amounts: Vec<LineAmounts> = Vec::with_capacity(chosen.len());
    for (index, (item, before, now)) in chosen.iter().enumerate() {
        let line = item
            .line()
            .map_err(|e| invalid(format!("items[{index}]"), e.to_string()))?;
        let share = CreditLine {
            line,
            credited_before: before.clone(),
            quantity: now.clone(),
        };
        amounts.push(
            share
                .amounts(sale.issue_date)
                .map_err(|e| invalid(format!("items[{index}].quantity"), e.to_string()))?,
        );
    }
    let totals = DocumentTotals::of(&amounts);
    if totals.total > remaining {
        return Err(CreditNoteError::Exceeds {
            message: format!(
                "a note of S/ {} is above the S/ {} left of sale {sale_id} ({number})",
                crate::money::format(&totals.total),
                crate::money::format(&remaining)
            ),
            remaining,
        });
    }
    if totals.total <= BigDecimal::zero() {
        return Err(invalid(
            "items",
            "the chosen lines credit nothing (free lines): SUNAT takes no note of S/ 0.00",
        ));
    }
    // The goods come back.
    let mut back: Vec<(i64, Quantity)> = Vec::with_capacity(chosen.len());
    for (item, _, now) in &chosen {
        let Some(product) = item.product_id else {
            continue;
        };
        // What is credited of a line is a quantity of its product (a weighed one's may have decimals).
        let units = Quantity::from_decimal(now).map_err(|e| {
            invalid(
                "items",
                format!("{} units of {}: {e}", now.normalized(), item.sku),
            )
        })?;
        back.push((product, units));
    }
    if !back.is_empty() && !stock_back_already {
        let request = StockRequest::parse(back)
            .map_err(|e| invalid("items", format!("cannot return the units: {e:?}")))?;
        // Back to the store the sale took them from.
        let store = crate::stores::sale_store_id(conn, sale_id).await?;
        give_back(conn, store, &lines_of(&request)).await?;
    }
    let next: Next = diesel::sql_query(
        "INSERT INTO series_counters (series, last_correlative) VALUES ($1, 1) \
         ON CONFLICT (series) DO UPDATE SET last_correlative = series_counters.last_correlative + 1 \
         RETURNING last_correlative",
    )
    .bind::<diesel::sql_types::Text, _>(series.as_str())
    .get_result(conn)
    .await?;
    let issue_date = Utc::now().with_timezone(&defaults.tz).date_naive();
    let issue_date = issue_date.max(sale.issue_date);
    let id: i64 = diesel::insert_into(credit_notes::table)
        .values((
            credit_notes::sale_id.eq(sale_id),
            credit_notes::created_by.eq(created_by),
            credit_notes::series.eq(series.as_str()),
            credit_notes::correlative.eq(next.last_correlative),
            credit_notes::issue_date.eq(issue_date),
            credit_notes::reason_code.eq(req.reason.code()),
            credit_notes::description.eq(&req.description),
            credit_notes::currency.eq(&sale.currency),
            credit_notes::subtotal.eq(&totals.subtotal),
            credit_notes::igv.eq(&totals.igv),
            credit_notes::icbper.eq(&totals.icbper),
            credit_notes::total.eq(&totals.total),
        ))
        .returning(credit_notes::id)
        .get_result(conn)
        .await?;
    let rows: Vec<_> = chosen
        .iter()
        .zip(&amounts)
        .map(|((item, before, now), a)| {
            (
                credit_note_items::credit_note_id.eq(id),
                credit_note_items::sale_item_id.eq(item.id),
                credit_note_items::product_id.eq(item.product_id),
                credit_note_items::quantity.eq(now.clone()),
                credit_note_items::credited_before.eq(before.clone()),
                credit_note_items::value.eq(a.value.clone()),
                credit_note_items::igv.eq(a.igv.clone()),
                credit_note_items::icbper_amount.eq(a.icbper.clone()),
                credit_note_items::line_total.eq(a.payable.clone()),
            )
        })
        .collect();
    diesel::insert_into(credit_note_items::table)
        .values(rows)
        .execute(conn)
        .await?;
    queue_send_in_tx(conn, id, Some(created_by)).await?;
    Ok(id)
}

/// [`create_in_tx`] in a transaction of its own; answers the note.
pub async fn create(
    conn: &mut AsyncPgConnection,
    sale_id: i64,
    created_by: &str,
    req: &CreditRequest,
    defaults: &NoteDefaults,
) -> Result<CreditNoteView, CreditNoteError> {
    let (by, req, defaults) = (created_by.to_owned(), req.clone(), defaults.clone());
    let id = conn
        .transaction::<i64, CreditNoteError, _>(async move |conn| {
            create_in_tx(conn, sale_id, &by, &req, &defaults).await
        })
        .await?;
    faena_core::outbox::committed();
    get(conn, id).await
}

/// Queues the note's send to SUNAT through the outbox, in the caller's transaction, and records
/// the job as the note's last (`send_task_id`).
pub async fn queue_send_in_tx(
    conn: &mut AsyncPgConnection,
    credit_note_id: i64,
    owner: Option<&str>,
) -> Result<TaskId, CreditNoteError> {
    let req = EnqueueRequest {
        kind: SendCreditNoteArgs::KIND.into(),
        args: serde_json::json!({ "credit_note_id": credit_note_id }),
        ..Default::default()
    };
    let task = faena_core::outbox::enqueue_in_tx(conn, &faena_catalog::catalog(), req, owner)
        .await
        .map_err(|e| match e {
            faena_core::outbox::OutboxError::Db(e) => CreditNoteError::from(e),
            // Our own request: a catalog without the kind is a build defect, not the caller's.
            other => {
                tracing::error!(credit_note_id, error = %other, "cannot queue the note's send");
                CreditNoteError::Db(QueryError::Unavailable)
            }
        })?;
    // The job last queued for the note: the rescue sweep asks whether it still lives.
    diesel::update(credit_notes::table.find(credit_note_id))
        .set(credit_notes::send_task_id.eq(task.to_string()))
        .execute(conn)
        .await?;
    Ok(task)
}

/// [`queue_send_in_tx`] in a transaction of its own (the rescue sweep's).
pub async fn queue_send(
    conn: &mut AsyncPgConnection,
    credit_note_id: i64,
    owner: Option<&str>,
) -> Result<TaskId, CreditNoteError> {
    let owner = owner.map(str::to_owned);
    let task = conn
        .transaction::<TaskId, CreditNoteError, _>(async move |conn| {
            queue_send_in_tx(conn, credit_note_id, owner.as_deref()).await
        })
        .await?;
    faena_core::outbox::committed();
    Ok(task)
}

// ---- Sending (the worker's `send_credit_note_to_sunat`) ------------------------------------

/// The name of the Redis lock a send of the note holds while it sends.
pub fn send_lock(credit_note_id: i64) -> String {
    crate::sendable::Sendable::CreditNote.send_lock(credit_note_id)
}

/// The note's row.
pub async fn row(conn: &mut AsyncPgConnection, id: i64) -> Result<CreditNoteRow, CreditNoteError> {
    credit_notes::table
        .find(id)
        .select(CreditNoteRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(CreditNoteError::NotFound {
            what: "credit note",
            id,
        })
}

/// The note as SUNAT receives it, from its row, its lines and its sale, for `company`; the
/// issue time is read in `tz`.
pub async fn document(
    conn: &mut AsyncPgConnection,
    note: &CreditNoteRow,
    company: &Company,
    tz: chrono_tz::Tz,
) -> Result<Result<CreditNote, DocumentError>, CreditNoteError> {
    let sale = sales::sale_row(conn, note.sale_id).await?;
    let lines: Vec<(CreditNoteItemRow, SaleItem)> = credit_note_items::table
        .inner_join(sale_items::table)
        .filter(credit_note_items::credit_note_id.eq(note.id))
        .order(credit_note_items::id.asc())
        .select((CreditNoteItemRow::as_select(), SaleItem::as_select()))
        .load(conn)
        .await?;
    Ok(build_document(note, &sale, &lines, company, tz))
}

fn build_document(
    note: &CreditNoteRow,
    sale: &SaleRow,
    lines: &[(CreditNoteItemRow, SaleItem)],
    company: &Company,
    tz: chrono_tz::Tz,
) -> Result<CreditNote, DocumentError> {
    let doc_type = DocumentType::parse(&sale.doc_type)?;
    let reason = CreditReason::parse(&note.reason_code)
        .map_err(|e| DocumentError::InvalidNote(e.to_string()))?;
    let n = CreditNote {
        company: company.clone(),
        series: Series::parse(&note.series)?,
        correlative: note.correlative,
        issue_date: note.issue_date,
        issue_time: note.issued_at.with_timezone(&tz).time(),
        customer: Customer::new(
            CustomerDocType::parse(&sale.customer_doc_type)?,
            &sale.customer_doc_number,
            &sale.customer_name,
        )?,
        currency: note.currency.clone(),
        reason,
        description: note.description.clone(),
        original: OriginalDocument {
            doc_type,
            series: Series::parse_for(&sale.series, doc_type)?,
            correlative: sale.correlative,
            issue_date: sale.issue_date,
        },
        lines: lines
            .iter()
            .enumerate()
            .map(|(index, (c, item))| {
                Ok(CreditLine {
                    line: item
                        .line()
                        .map_err(|source| DocumentError::Tax { index, source })?,
                    credited_before: c.credited_before.clone(),
                    quantity: c.quantity.clone(),
                })
            })
            .collect::<Result<_, DocumentError>>()?,
    };
    n.validate()?;
    Ok(n)
}

fn note_send_error(e: crate::sendable::SendableError) -> CreditNoteError {
    match e {
        crate::sendable::SendableError::NotFound { what, id } => {
            CreditNoteError::NotFound { what, id }
        }
        crate::sendable::SendableError::Db(q) => CreditNoteError::Db(q),
    }
}

/// Marks the note SENDING and counts the attempt, if it may be sent (PENDING, ERROR, or SENDING
/// left by a dead worker): [`crate::sendable::Sendable::begin_send`].
pub async fn begin_send(
    conn: &mut AsyncPgConnection,
    id: i64,
    marker: &str,
) -> Result<Result<i32, NotSendable>, CreditNoteError> {
    Sendable::CreditNote
        .begin_send(conn, id, marker)
        .await
        .map_err(note_send_error)
}

/// Whether the note is still SENDING under this attempt's `marker`.
pub async fn is_sending(
    conn: &mut AsyncPgConnection,
    id: i64,
    marker: &str,
) -> Result<bool, CreditNoteError> {
    Sendable::CreditNote
        .is_sending(conn, id, marker)
        .await
        .map_err(note_send_error)
}

/// Stores the signed note's digest and path, once.
pub async fn store_signed(
    conn: &mut AsyncPgConnection,
    id: i64,
    digest_value: &str,
    xml_path: &str,
) -> Result<(), CreditNoteError> {
    Sendable::CreditNote
        .store_signed(conn, id, digest_value, xml_path)
        .await
        .map_err(note_send_error)
}

/// Leaves SENDING for the result's state, only under `marker`; `unsure` records the signed
/// bytes of a send whose outcome is unknown ([`crate::sendable::Sendable::finish_send`]).
pub async fn finish_send(
    conn: &mut AsyncPgConnection,
    id: i64,
    marker: &str,
    r: &SendResult,
    unsure: Option<&str>,
) -> Result<bool, CreditNoteError> {
    Sendable::CreditNote
        .finish_send(conn, id, marker, r, unsure)
        .await
        .map_err(note_send_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(reason: &str, description: &str, items: Option<Vec<(i64, i64)>>) -> NewCreditNote {
        NewCreditNote {
            reason_code: reason.into(),
            description: description.into(),
            items: items.map(|v| {
                v.into_iter()
                    .map(|(product_id, quantity)| CreditItemInput {
                        product_id,
                        quantity: Quantity::whole(quantity).expect("a test quantity above 0"),
                    })
                    .collect()
            }),
        }
    }

    fn field(r: Result<CreditRequest, CreditNoteError>) -> String {
        match r {
            Err(CreditNoteError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_names_the_field_at_fault() {
        let ok = CreditRequest::parse(&input("07", "Devolución", Some(vec![(3, 2)]))).unwrap();
        assert_eq!(ok.reason(), CreditReason::ItemReturn);
        assert_eq!(
            CreditRequest::parse(&input("6", "Devolución total", None))
                .unwrap()
                .credited,
            Credited::Whole
        );
        assert_eq!(
            field(CreditRequest::parse(&input("99", "x", None))),
            "reason_code"
        );
        assert_eq!(
            field(CreditRequest::parse(&input("04", "Descuento", None))),
            "reason_code"
        );
        assert_eq!(
            field(CreditRequest::parse(&input("07", "x", None))),
            "items"
        );
        assert_eq!(
            field(CreditRequest::parse(&input("01", "x", Some(vec![(1, 1)])))),
            "items"
        );
        assert_eq!(
            field(CreditRequest::parse(&input("06", " \n ", None))),
            "description"
        );
        assert_eq!(
            field(CreditRequest::parse(&input("06", "dos\nlíneas", None))),
            "description"
        );
        assert_eq!(
            field(CreditRequest::parse(&input(
                "07",
                "x",
                Some(vec![(1, 1), (1, 2)])
            ))),
            "items[1].product_id"
        );
        // A quantity of 0 (or 4 decimals) is refused when the body is read, naming the field.
        let zero: Result<NewCreditNote, _> = serde_json::from_str(
            r#"{"reason_code": "07", "description": "x", "items": [{"product_id": 1, "quantity": 0}]}"#,
        );
        let e = zero.expect_err("0 units").to_string();
        assert!(e.contains("quantity") || e.contains("above 0"), "{e}");
        assert!(CreditRequest::whole(CreditReason::ItemReturn, "x").is_err());
        assert!(CreditRequest::whole(CreditReason::Cancellation, "Anulación").is_ok());
    }
}
