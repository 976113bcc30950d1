//! `/api/sales`: make a sale (next correlative of its series, IGV 18%), see it with its SUNAT
//! state and attempts, send it to SUNAT in the background, and credit it with a credit note.
//! Sellers use their own sales; admins every sale.

use actix_web::{get, post, web, HttpResponse};
use faena_shop::cancel::{CancelRequest, Canceller};
use faena_shop::credit_notes::{self, CreditNoteView, CreditRequest, NewCreditNote, SaleDetail};
use faena_shop::deadlines::{self, SaleDue, SaleFilter};
use faena_shop::jobs::SendSaleArgs;
use faena_shop::sales::{self, NewSale, SaleView, Seller, SunatStatus};
use faena_shop::summaries::CancellationView;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::responses::{BadInput, JsonBody, NeedsOwner, NeedsToken, Unavailable};
use crate::AppState;

/// Makes a sale from items (their stock is taken now) or from a CONFIRMED reservation.
#[utoipa::path(
    tag = "sales",
    security(("bearer" = [])),
    request_body = NewSale,
    responses(
        (status = 201, description = "The sale, with its series and correlative", body = SaleView),
        JsonBody,
        NeedsToken,
        (status = 403, description = "The reservation is another user's (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such product or reservation (`not_found`)", body = ErrorBody),
        (status = 409, description = "The reservation is not CONFIRMED, already became a sale \
            or holds another store's stock (`conflict`), or the store has not enough stock of \
            a product (`insufficient_stock`, with `details.shortages`)", body = ErrorBody),
        Unavailable,
    )
)]
#[post("/api/sales")]
pub async fn create(
    caller: Caller,
    state: web::Data<AppState>,
    body: ApiJson<NewSale>,
) -> Result<HttpResponse, ApiError> {
    let seller = Seller {
        user_id: caller.user_id().to_owned(),
        is_admin: caller.is_admin(),
    };
    let sale = sales::create_sale(
        &mut *state.db_conn().await?,
        &seller,
        &body,
        &state.sale_defaults,
    )
    .await?;
    Ok(HttpResponse::Created().json(sale))
}

/// A sale with its items, SUNAT state and every attempt, its credit notes with their SUNAT
/// state, and what is left of it to credit.
#[utoipa::path(
    tag = "sales",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The sale's id")),
    responses(
        (status = 200, description = "The sale", body = SaleDetail),
        (status = 400, description = "Not a sale id (`invalid_path`)", body = ErrorBody),
        NeedsOwner,
        (status = 404, description = "No such sale (`not_found`)", body = ErrorBody),
        Unavailable,
    )
)]
#[get("/api/sales/{id}")]
pub async fn show(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let sale = credit_notes::sale_detail(&mut *state.db_conn().await?, *id).await?;
    caller.require_owner(Some(&sale.sale.seller_id), "sale")?;
    Ok(HttpResponse::Ok().json(sale))
}

/// Issues a credit note (07) of an accepted sale: the whole of what is left (reasons 01, 02,
/// 06) or chosen lines with their units (reason 07). The credited units go back to stock in the
/// same transaction, the note takes the next correlative of its series (FC01 for a factura,
/// BC01 for a boleta by default), and its send to SUNAT (sendBill) is queued with it.
#[utoipa::path(
    tag = "sales",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The sale's id")),
    request_body = NewCreditNote,
    responses(
        (status = 201, description = "The note, PENDING at SUNAT", body = CreditNoteView),
        JsonBody,
        NeedsOwner,
        (status = 404, description = "No such sale (`not_found`)", body = ErrorBody),
        (status = 409, description = "The sale is not ACCEPTED by SUNAT or is cancelled \
            (`conflict`, with `details.status`), or the note asks for more than what is left of \
            the sale or of a line (`conflict`, with `details.remaining`, the amount left)",
            body = ErrorBody),
        Unavailable,
    )
)]
#[post("/api/sales/{id}/credit-notes")]
pub async fn create_credit_note(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: ApiJson<NewCreditNote>,
) -> Result<HttpResponse, ApiError> {
    let req = CreditRequest::parse(&body)?;
    let mut conn = state.db_conn().await?;
    let sale = sales::sale_row(&mut conn, *id).await?;
    caller.require_owner(Some(&sale.seller_id), "sale")?;
    let note = credit_notes::create(
        &mut conn,
        sale.id,
        caller.user_id(),
        &req,
        &state.note_defaults,
    )
    .await?;
    Ok(HttpResponse::Created().json(note))
}

/// The answer of `send-to-sunat`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SendQueued {
    #[schema(value_type = String)]
    pub task_id: faena_core::TaskId,
    pub sale_id: i64,
    pub correlative: i64,
    /// SERIES-CORRELATIVE.
    pub number: String,
}

/// Queues the sale's send to SUNAT (queue `sunat`) and answers at once.
#[utoipa::path(
    tag = "sales",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The sale's id")),
    responses(
        (status = 202, description = "Queued; follow it with GET /api/tasks/{task_id} or GET /api/sales/{id}",
            body = SendQueued),
        (status = 400, description = "Not a sale id (`invalid_path`)", body = ErrorBody),
        NeedsOwner,
        (status = 404, description = "No such sale (`not_found`)", body = ErrorBody),
        (status = 409, description = "Already ACCEPTED or REJECTED, being sent, in CONFLICT (SUNAT \
            holds its number: a person must look), or cancelled (`conflict`, with \
            `details.status`)", body = ErrorBody),
        Unavailable,
    )
)]
#[post("/api/sales/{id}/send-to-sunat")]
pub async fn send_to_sunat(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let queued = queue_send(&state, caller.user_id(), caller.is_admin(), *id).await?;
    Ok(HttpResponse::Accepted().json(queued))
}

/// Queues a sale's send to SUNAT for `user_id` (its owner, or an admin): what
/// `POST /api/sales/{id}/send-to-sunat` and the console's "reenviar" do.
pub async fn queue_send(
    state: &AppState,
    user_id: &str,
    is_admin: bool,
    sale_id: i64,
) -> Result<SendQueued, ApiError> {
    let sale = sales::sale_row(&mut *state.db_conn().await?, sale_id).await?;
    crate::auth::require_owner(user_id, is_admin, Some(&sale.seller_id), "sale")?;
    // A SENDING sale whose send lock is free has no attempt sending it (its worker died, or its
    // job ended without an outcome): it may be sent again, as the rescue sweep would.
    let abandoned = sale.sunat_status == sales::SunatStatus::Sending
        && !sale.is_cancelled
        && state
            .broker
            .lock_holder(&sales::send_lock(sale.id))
            .await?
            .is_none();
    if let Err(message) =
        sales::check_sendable(&sale).or_else(|m| if abandoned { Ok(()) } else { Err(m) })
    {
        return Err(ApiError::ConflictWith {
            message,
            details: serde_json::json!({
                "status": sale.sunat_status, "is_cancelled": sale.is_cancelled,
            }),
        });
    }
    let task_id = state
        .broker
        .enqueue_for(
            faena_core::jobs::EnqueueRequest {
                kind: "send_sale_to_sunat".into(),
                args: serde_json::to_value(SendSaleArgs { sale_id: sale.id })
                    .map_err(|e| ApiError::Internal(e.to_string()))?,
                ..Default::default()
            },
            Some(user_id.to_owned()),
        )
        .await?;
    // The job exists; if this record fails, the sweep only sees an older job id for the sale.
    if let Err(e) = sales::record_send_task(&mut *state.db_conn().await?, sale.id, &task_id).await {
        tracing::warn!(sale_id = sale.id, error = %e, "could not record the sale's send job");
    }
    Ok(SendQueued {
        task_id,
        sale_id: sale.id,
        correlative: sale.correlative,
        number: format!("{}-{}", sale.series, sale.correlative),
    })
}

/// Cancels a sale: its stock comes back, and SUNAT is told what the decision table says (a
/// Comunicación de Baja for an accepted factura, a Resumen Diario line with status 3 for an
/// accepted boleta, past SUNAT's voiding window a whole credit note (catálogo 09 code 01) made
/// and queued with the cancellation, nothing when SUNAT holds nothing to void). Cancelling again
/// answers the same.
#[utoipa::path(
    tag = "sales",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The sale's id")),
    request_body = CancelRequest,
    responses(
        (status = 200, description = "Cancelled (now or before): the cancellation", body = CancellationView),
        JsonBody,
        NeedsOwner,
        (status = 404, description = "No such sale (`not_found`)", body = ErrorBody),
        (status = 409, description = "Not cancellable now (`conflict`; `details.reason`: \
            `credited_in_full` past SUNAT's window when earlier credit notes left nothing, \
            `sunat_pending` while SUNAT's answer is awaited, `sunat_conflict`, `already_voided`; \
            `details.status`)", body = ErrorBody),
        Unavailable,
    )
)]
#[post("/api/sales/{id}/cancel")]
pub async fn cancel(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: ApiJson<CancelRequest>,
) -> Result<HttpResponse, ApiError> {
    let who = Canceller::User(Seller {
        user_id: caller.user_id().to_owned(),
        is_admin: caller.is_admin(),
    });
    let now = chrono::Utc::now();
    let today = now.with_timezone(&state.sale_defaults.tz).date_naive();
    let done = faena_shop::cancel::cancel(
        &mut *state.db_conn().await?,
        *id,
        &who,
        &body,
        now,
        today,
        &state.note_defaults,
    )
    .await?;
    Ok(HttpResponse::Ok().json(done))
}

/// Filters of `GET /api/sales`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SalesQuery {
    /// PENDING, SENDING, ACCEPTED, REJECTED, ERROR, CONFLICT or VOIDED; any when absent.
    pub sunat_status: Option<String>,
    /// Only sales whose SUNAT sendBill deadline is before this: an RFC 3339 instant
    /// (`2026-12-05T00:00:00-05:00`) or a date (`2026-12-05`: its start in the business time zone).
    pub due_before: Option<String>,
    /// At most this many, earliest deadline first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

fn parse_due_before<Z: chrono::TimeZone>(
    s: &str,
    tz: &Z,
) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|t| tz.from_local_datetime(&t).earliest())
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("due_before `{s}` is neither an RFC 3339 instant nor a YYYY-MM-DD date"),
                Some("due_before".into()),
            )
        })
}

/// Sales with their SUNAT sendBill deadline (factura: 3 days after issue, boleta: 5, Lima),
/// earliest first: `?sunat_status=PENDING&due_before=...` lists those at risk. Sellers see their
/// own sales, admins every sale.
#[utoipa::path(
    tag = "sales",
    security(("bearer" = [])),
    params(SalesQuery),
    responses(
        (status = 200, description = "The sales, earliest deadline first", body = Vec<SaleDue>),
        BadInput,
        NeedsToken,
        Unavailable,
    )
)]
#[get("/api/sales")]
pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<SalesQuery>,
) -> Result<HttpResponse, ApiError> {
    let tz = state.sale_defaults.tz;
    let sunat_status = match query.sunat_status.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<SunatStatus>().map_err(|e| {
            ApiError::bad_request("invalid_query", e.to_string(), Some("sunat_status".into()))
        })?),
    };
    let limit = match query.limit {
        Some(n) if !(1..=1000).contains(&n) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("limit {n} is not from 1 to 1000"),
                Some("limit".into()),
            ))
        }
        n => n,
    };
    let filter = SaleFilter {
        sunat_status,
        due_before: query
            .due_before
            .as_deref()
            .map(|s| parse_due_before(s, &tz))
            .transpose()?,
        seller_id: (!caller.is_admin()).then(|| caller.user_id().to_owned()),
        limit,
    };
    let list = deadlines::list_sales(&mut *state.db_conn().await?, &filter, tz)
        .await
        .map_err(|e| ApiError::from_query(&e, false))?;
    Ok(HttpResponse::Ok().json(list))
}
