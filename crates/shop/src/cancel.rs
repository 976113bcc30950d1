//! Cancelling a sale: the decision table of `docs/decisions.md` ("Cancelling a sale"), applied
//! under the sale's row lock, and the cancellation itself (the stock back, `is_cancelled` and
//! `cancelled_at`, the reason and what SUNAT must learn) in one transaction.
//!
//! | the sale at SUNAT | answer |
//! |---|---|
//! | never sent (no send that may have reached SUNAT), REJECTED, or answered 1079 | cancelled here; SUNAT holds nothing to void |
//! | ACCEPTED factura, the nightly summary still inside SUNAT's 7 days | cancelled; a Comunicación de Baja line is queued |
//! | ACCEPTED boleta, same window | cancelled; a Resumen Diario line with status 3 is queued |
//! | ACCEPTED, past that window | cancelled with a whole credit note (catálogo 09 code 01, anulación de la operación) of what is left of the sale, made and queued for SUNAT in the same transaction |
//! | ACCEPTED, past that window, and credited in full by earlier notes | 409 `credited_in_full` |
//! | SENDING, an unknown outcome, or a Resumen Diario informing it not answered yet | 409 `sunat_pending` |
//! | CONFLICT | 409 `sunat_conflict` |
//!
//! The stock comes back once: what is left of the sale (its units less those its notes that
//! SUNAT did not reject already gave back), by the cancellation itself, or by the credit note
//! that carries it (`credit_notes::create_in_tx`), never by both. Cancelling again answers the
//! stored cancellation, unchanged.

use bigdecimal::{BigDecimal, Zero};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use faena_core::db::QueryError;
use faena_sunat::CreditReason;
use serde::{Deserialize, Serialize};

use crate::credit_notes::{self, CreditNoteError, CreditRequest, NoteDefaults};
use crate::quantity::Quantity;
use crate::sales::{sale_row, SaleError, SaleRow, Seller, UNSURE};
use crate::schema::{
    sale_cancellations, sale_items, sales, sunat_submissions, sunat_summary_lines,
};
use crate::states::{SunatStatus, VoidRoute, VoidState};
use crate::stock::{give_back, lines_of, BadLines, StockRequest};
use crate::summaries::{self, CancellationView, NEEDS_SUMMARY, SUMMARY_REJECTED, VOID_WINDOW_DAYS};

/// `POST /api/sales/{id}/cancel`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why, 3 to 100 characters without line breaks (it is the text of the Comunicación de Baja
    /// line, SUNAT 2315/4203).
    #[schema(example = "Cliente devolvió el producto")]
    pub reason: String,
}

/// Who cancels: a user of the api (owner or admin), or an operator at the CLI.
#[derive(Debug, Clone)]
pub enum Canceller {
    User(Seller),
    Operator,
}

impl Canceller {
    fn id(&self) -> &str {
        match self {
            Self::User(s) => &s.user_id,
            Self::Operator => "cli",
        }
    }
}

/// Why a sale is not cancelled. Each variant has a stable [`CancelError::code`].
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("field `{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no sale with id {0}")]
    NotFound(i64),
    #[error("{0}")]
    Forbidden(String),
    /// The decision table says no (409): `reason` is the stable word.
    #[error("{message}")]
    Refused {
        reason: &'static str,
        message: String,
        status: SunatStatus,
    },
    #[error(transparent)]
    Db(#[from] QueryError),
}

impl CancelError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid_field",
            Self::NotFound(_) => "not_found",
            Self::Forbidden(_) => "forbidden",
            Self::Refused { .. } => "conflict",
            Self::Db(QueryError::Refused(r)) => r.code(),
            Self::Db(QueryError::Unavailable) => "database_unavailable",
        }
    }
}

impl From<diesel::result::Error> for CancelError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

impl From<SaleError> for CancelError {
    fn from(e: SaleError) -> Self {
        match e {
            SaleError::NotFound { id, .. } => Self::NotFound(id),
            SaleError::Db(q) => Self::Db(q),
            // `sale_row` answers only the two above.
            other => {
                tracing::error!(error = %other, "unexpected error reading a sale to cancel");
                Self::Db(QueryError::Unavailable)
            }
        }
    }
}

/// The reason, trimmed: 3 to 100 characters, no control characters.
pub fn parse_reason(reason: &str) -> Result<String, CancelError> {
    let r = reason.trim();
    let n = r.chars().count();
    if !(3..=100).contains(&n) || r.chars().any(char::is_control) {
        return Err(CancelError::Invalid {
            field: "reason",
            message: format!(
                "give 3 to 100 characters on one line (SUNAT's rule for the reason of a baja); got {n}"
            ),
        });
    }
    Ok(r.to_owned())
}

/// The last date on which an ACCEPTED receipt of `issue_date` may still be cancelled with a
/// baja or an RC line: its summary goes out with the next nightly build (the day after), which
/// must reach SUNAT within [`VOID_WINDOW_DAYS`] of the issue date.
pub fn last_void_day(issue_date: NaiveDate) -> NaiveDate {
    issue_date + chrono::Duration::days(VOID_WINDOW_DAYS - 1)
}

/// What the decision table says for a sale, given whether SUNAT may hold an earlier send
/// (`unsure`) and whether a Resumen Diario informing it waits for SUNAT (`add_pending`).
fn decide(
    row: &SaleRow,
    today: NaiveDate,
    unsure: bool,
    add_pending: bool,
) -> Result<VoidRoute, CancelError> {
    let refused = |reason, message: String| CancelError::Refused {
        reason,
        message,
        status: row.sunat_status,
    };
    let number = format!("{}-{}", row.series, row.correlative);
    match row.sunat_status {
        SunatStatus::Rejected => Ok(VoidRoute::None),
        SunatStatus::Accepted => {
            if today > last_void_day(row.issue_date) {
                return Ok(VoidRoute::CreditNote);
            }
            Ok(if row.doc_type == "01" {
                VoidRoute::Baja
            } else {
                VoidRoute::Resumen
            })
        }
        SunatStatus::Sending => Err(refused(
            "sunat_pending",
            format!("{number} se está enviando a SUNAT ahora: espere el resultado de SUNAT y vuelva a intentar"),
        )),
        SunatStatus::Conflict => Err(refused(
            "sunat_conflict",
            format!(
                "{number} está en CONFLICTO: SUNAT ya tiene ese número con otros datos; una persona \
                 debe revisarlo en SUNAT antes de anular (README, troubleshooting)"
            ),
        )),
        SunatStatus::Voided => Err(refused(
            "already_voided",
            format!("{number} ya está dado de baja en SUNAT"),
        )),
        SunatStatus::Pending | SunatStatus::Error => {
            if add_pending {
                return Err(refused(
                    "sunat_pending",
                    format!(
                        "{number} va en un Resumen Diario que SUNAT todavía no respondió: espere el \
                         resultado de SUNAT y vuelva a intentar"
                    ),
                ));
            }
            // 1079: SUNAT did not register it.
            let not_registered = matches!(
                row.sunat_outcome.as_deref(),
                Some(NEEDS_SUMMARY | SUMMARY_REJECTED)
            );
            if unsure && !not_registered {
                return Err(refused(
                    "sunat_pending",
                    format!(
                        "el último envío de {number} a SUNAT quedó sin respuesta segura: SUNAT podría \
                         tenerlo; espere el resultado de SUNAT (el reintento lo aclara) y vuelva a intentar"
                    ),
                ));
            }
            Ok(VoidRoute::None)
        }
    }
}

/// A cancellation recorded before Faena kept its reason (a row with `is_cancelled` and no
/// `sale_cancellations` row): shown, never written.
fn legacy(row: &SaleRow) -> CancellationView {
    CancellationView {
        sale_id: row.id,
        reason: "(anulada antes de que Faena guardara el motivo)".into(),
        cancelled_by: "-".into(),
        cancelled_at: row.cancelled_at.unwrap_or(row.updated_at),
        sunat_action: VoidRoute::None,
        sunat_label: VoidState::None.label(),
        sunat_state: VoidState::None,
        sunat_code: None,
        sunat_description: None,
        credit_note: None,
    }
}

/// The reason catálogo 09 gives a cancellation's credit note: 01, anulación de la operación (the
/// sale is undone as a whole; `docs/decisions.md` says why not 06).
pub const CANCELLATION_NOTE_REASON: CreditReason = CreditReason::Cancellation;

/// Makes the whole credit note of a cancellation past the voiding window, in the caller's
/// transaction, before the sale is marked cancelled (a note of a cancelled sale is refused). The
/// note gives back the units left of the sale. Returns its id.
async fn credit_note_of(
    conn: &mut AsyncPgConnection,
    row: &SaleRow,
    who: &str,
    reason: &str,
    notes: &NoteDefaults,
) -> Result<i64, CancelError> {
    let number = format!("{}-{}", row.series, row.correlative);
    // `reason` passed `parse_reason` (3 to 100 characters, no control characters), which a
    // note's description (1 to 500) takes.
    let req = CreditRequest::whole(CANCELLATION_NOTE_REASON, reason).map_err(|e| {
        CancelError::Invalid {
            field: "reason",
            message: e.to_string(),
        }
    })?;
    credit_notes::create_in_tx(conn, row.id, who, &req, notes)
        .await
        .map_err(|e| match e {
            CreditNoteError::Exceeds { .. } => CancelError::Refused {
                reason: "credited_in_full",
                message: format!(
                    "{number} ya está acreditada por completo con notas de crédito: no queda \
                     nada que anular (las unidades ya volvieron al stock con esas notas)"
                ),
                status: row.sunat_status,
            },
            CreditNoteError::Db(q) => CancelError::Db(q),
            CreditNoteError::NotFound { id, .. } => CancelError::NotFound(id),
            // The sale was checked ACCEPTED and not cancelled under its row lock, and the note
            // series were checked at start: anything else is a defect, not the caller's fault.
            other => {
                tracing::error!(sale_id = row.id, error = %other, "cannot make the credit note of a cancellation");
                CancelError::Db(QueryError::Unavailable)
            }
        })
}

/// The units of the sale's lines that no credit note SUNAT did not reject gave back already:
/// what a cancellation without a note returns to stock.
async fn units_left(
    conn: &mut AsyncPgConnection,
    sale_id: i64,
) -> Result<Vec<(i64, Quantity)>, CancelError> {
    let stored: Vec<(i64, Option<i64>, BigDecimal)> = sale_items::table
        .filter(sale_items::sale_id.eq(sale_id))
        .select((sale_items::id, sale_items::product_id, sale_items::quantity))
        .load(conn)
        .await?;
    let (credited, _) = credit_notes::credited_so_far(conn, sale_id)
        .await
        .map_err(|e| match e {
            CreditNoteError::Db(q) => CancelError::Db(q),
            other => {
                tracing::error!(sale_id, error = %other, "cannot read what the sale's notes credited");
                CancelError::Db(QueryError::Unavailable)
            }
        })?;
    let mut lines = Vec::with_capacity(stored.len());
    for (item, product, q) in stored {
        let Some(product) = product else { continue };
        let before: BigDecimal = credited
            .iter()
            .filter(|(i, _)| *i == item)
            .map(|(_, u)| u.clone())
            .sum();
        let left = q - before;
        if left <= BigDecimal::zero() {
            continue;
        }
        match Quantity::from_decimal(&left) {
            Ok(q) => lines.push((product, q)),
            Err(e) => {
                tracing::error!(sale_id, product, quantity = %left, error = %e, "a stored sale line's quantity left does not parse");
                return Err(CancelError::Db(QueryError::Unavailable));
            }
        }
    }
    Ok(lines)
}

/// Cancels the sale (see the module's table) at `now`; `today` is `now`'s date in the business
/// time zone, and `notes` where a cancellation's credit note takes its series. Answers the
/// cancellation, the same one when the sale was already cancelled.
pub async fn cancel(
    conn: &mut AsyncPgConnection,
    sale_id: i64,
    who: &Canceller,
    req: &CancelRequest,
    now: DateTime<Utc>,
    today: NaiveDate,
    notes: &NoteDefaults,
) -> Result<CancellationView, CancelError> {
    let reason = parse_reason(&req.reason)?;
    let (who, notes) = (who.clone(), notes.clone());
    let done = conn
        .transaction::<CancellationView, CancelError, _>(async move |conn| {
            // The row lock orders this against begin_send (a conditional UPDATE of the same row).
            let locked: Option<i64> = sales::table
                .find(sale_id)
                .select(sales::id)
                .for_update()
                .first(conn)
                .await
                .optional()?;
            if locked.is_none() {
                return Err(CancelError::NotFound(sale_id));
            }
            let row = sale_row(conn, sale_id).await?;
            if let Canceller::User(s) = &who {
                if !s.is_admin && s.user_id != row.seller_id {
                    return Err(CancelError::Forbidden(
                    "this sale belongs to another user: only its owner or an admin may cancel it"
                        .into(),
                ));
                }
            }
            if let Some(done) = summaries::cancellation_of(conn, sale_id).await? {
                return Ok(done);
            }
            if row.is_cancelled {
                return Ok(legacy(&row));
            }
            let unsure: i64 = sunat_submissions::table
                .filter(sunat_submissions::sale_id.eq(sale_id))
                .filter(sunat_submissions::outcome.eq_any(UNSURE))
                .count()
                .get_result(conn)
                .await?;
            let add_pending: i64 = sunat_summary_lines::table
                .filter(sunat_summary_lines::sale_id.eq(sale_id))
                .filter(sunat_summary_lines::condition_code.eq("1"))
                .filter(sunat_summary_lines::outcome.is_null())
                .count()
                .get_result(conn)
                .await?;
            let route = decide(&row, today, unsure > 0, add_pending > 0)?;
            let state = if matches!(route, VoidRoute::None | VoidRoute::CreditNote) {
                VoidState::None
            } else {
                VoidState::Queued
            };
            // The note gives the units back itself; otherwise the cancellation does.
            let credit_note_id = if route == VoidRoute::CreditNote {
                Some(credit_note_of(conn, &row, who.id(), &reason, &notes).await?)
            } else {
                match StockRequest::parse(units_left(conn, sale_id).await?) {
                    Ok(request) => {
                        // Back to the store the sale took it from.
                        let store = crate::stores::sale_store_id(conn, sale_id).await?;
                        give_back(conn, store, &lines_of(&request)).await?;
                    }
                    // Every line's product is gone, or its notes gave every unit back already.
                    Err(BadLines::Count(0)) => {}
                    Err(bad) => {
                        tracing::error!(
                            sale_id,
                            ?bad,
                            "a stored sale's lines do not make a stock request"
                        );
                        return Err(CancelError::Db(QueryError::Unavailable));
                    }
                }
                None
            };
            diesel::update(sales::table.find(sale_id))
                .set((
                    sales::is_cancelled.eq(true),
                    sales::cancelled_at.eq(Some(now)),
                    sales::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
            diesel::insert_into(sale_cancellations::table)
                .values((
                    sale_cancellations::sale_id.eq(sale_id),
                    sale_cancellations::reason.eq(&reason),
                    sale_cancellations::cancelled_by.eq(who.id()),
                    sale_cancellations::sunat_action.eq(route),
                    sale_cancellations::sunat_state.eq(state),
                    sale_cancellations::created_at.eq(now),
                    sale_cancellations::credit_note_id.eq(credit_note_id),
                ))
                .execute(conn)
                .await?;
            summaries::cancellation_of(conn, sale_id)
                .await?
                .ok_or(CancelError::NotFound(sale_id))
        })
        .await?;
    if done.credit_note.is_some() {
        // The note's send was queued through the outbox in the committed transaction.
        faena_core::outbox::committed();
    }
    Ok(done)
}
