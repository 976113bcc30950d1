//! `/api/sales`: make a sale (next correlative of its series, IGV 18%), see it with its SUNAT
//! state and attempts, and send it to SUNAT in the background. Sellers use their own sales;
//! admins every sale.

use actix_web::{get, post, web, HttpResponse};
use faena_shop::jobs::SendSaleArgs;
use faena_shop::sales::{self, NewSale, SaleView, Seller};
use serde::Serialize;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::responses::{JsonBody, NeedsOwner, NeedsToken, Unavailable};
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
        (status = 409, description = "The reservation is not CONFIRMED or already became a sale \
            (`conflict`); not enough stock is a 400 (`insufficient_stock`)", body = ErrorBody),
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

/// A sale with its items, SUNAT state and every attempt.
#[utoipa::path(
    tag = "sales",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The sale's id")),
    responses(
        (status = 200, description = "The sale", body = SaleView),
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
    let sale = sales::get_sale(&mut *state.db_conn().await?, *id).await?;
    caller.require_owner(Some(&sale.seller_id), "sale")?;
    Ok(HttpResponse::Ok().json(sale))
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
    let sale = sales::sale_row(&mut *state.db_conn().await?, *id).await?;
    caller.require_owner(Some(&sale.seller_id), "sale")?;
    if let Err(message) = sales::check_sendable(&sale) {
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
            Some(caller.user_id().to_owned()),
        )
        .await?;
    Ok(HttpResponse::Accepted().json(SendQueued {
        task_id,
        sale_id: sale.id,
        correlative: sale.correlative,
        number: format!("{}-{}", sale.series, sale.correlative),
    }))
}
