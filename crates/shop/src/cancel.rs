//! Cancelling a sale: the decision table of `docs/decisions.md` ("Cancelling a sale"), applied
//! under the sale's row lock, and the cancellation itself (the stock back, `is_cancelled` and
//! `cancelled_at`, the reason and what SUNAT must learn) in one transaction.
//!
//! | the sale at SUNAT | answer |
//! |---|---|
//! | never sent (no send that may have reached SUNAT), REJECTED, or answered 1079 | cancelled here; SUNAT holds nothing to void |
//! | ACCEPTED factura, the nightly summary still inside SUNAT's 7 days | cancelled; a Comunicación de Baja line is queued |
//! | ACCEPTED boleta, same window | cancelled; a Resumen Diario line with status 3 is queued |
//! | ACCEPTED, past that window | 409 `credit_note_needed` |
//! | SENDING, an unknown outcome, or a Resumen Diario informing it not answered yet | 409 `sunat_pending` |
//! | CONFLICT | 409 `sunat_conflict` |
//!
//! Cancelling again answers the stored cancellation, unchanged.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use faena_core::db::QueryError;
use serde::{Deserialize, Serialize};

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
            let last = last_void_day(row.issue_date);
            if today > last {
                return Err(refused(
                    "credit_note_needed",
                    format!(
                        "{number} fue aceptado por SUNAT el {} y ya pasó el plazo para darlo de baja \
                         (hasta el {last}, para que el resumen de la noche llegue dentro de los 7 días \
                         de SUNAT): se necesita una nota de crédito",
                        row.issue_date
                    ),
                ));
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
    }
}

/// Cancels the sale (see the module's table) at `now`; `today` is `now`'s date in the business
/// time zone. Answers the cancellation, the same one when the sale was already cancelled.
pub async fn cancel(
    conn: &mut AsyncPgConnection,
    sale_id: i64,
    who: &Canceller,
    req: &CancelRequest,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> Result<CancellationView, CancelError> {
    let reason = parse_reason(&req.reason)?;
    let who = who.clone();
    conn.transaction::<CancellationView, CancelError, _>(async move |conn| {
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
        let state = if route == VoidRoute::None {
            VoidState::None
        } else {
            VoidState::Queued
        };
        diesel::update(sales::table.find(sale_id))
            .set((
                sales::is_cancelled.eq(true),
                sales::cancelled_at.eq(Some(now)),
                sales::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        let stored: Vec<(Option<i64>, bigdecimal::BigDecimal)> = sale_items::table
            .filter(sale_items::sale_id.eq(sale_id))
            .select((sale_items::product_id, sale_items::quantity))
            .load(conn)
            .await?;
        let mut lines = Vec::with_capacity(stored.len());
        for (product, q) in stored {
            let Some(product) = product else { continue };
            match Quantity::from_decimal(&q) {
                Ok(q) => lines.push((product, q)),
                Err(e) => {
                    tracing::error!(sale_id, product, quantity = %q, error = %e, "a stored sale line's quantity does not parse");
                    return Err(CancelError::Db(QueryError::Unavailable));
                }
            }
        }
        match StockRequest::parse(lines) {
            // Back to the store the sale took it from.
            Ok(request) => {
                let store = crate::stores::sale_store_id(conn, sale_id).await?;
                give_back(conn, store, &lines_of(&request)).await?;
            }
            // Every line's product is gone: nothing to give back.
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
        diesel::insert_into(sale_cancellations::table)
            .values((
                sale_cancellations::sale_id.eq(sale_id),
                sale_cancellations::reason.eq(&reason),
                sale_cancellations::cancelled_by.eq(who.id()),
                sale_cancellations::sunat_action.eq(route),
                sale_cancellations::sunat_state.eq(state),
                sale_cancellations::created_at.eq(now),
            ))
            .execute(conn)
            .await?;
        summaries::cancellation_of(conn, sale_id)
            .await?
            .ok_or(CancelError::NotFound(sale_id))
    })
    .await
}
