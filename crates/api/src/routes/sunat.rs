//! `/api/sunat/summaries`: the Resumen Diario (RC) and Comunicación de Baja (RA) documents Faena
//! built, with their state, ticket, SUNAT's answer and lines (admins only).

use actix_web::{get, web, HttpResponse};
use faena_shop::states::SummaryState;
use faena_shop::summaries::{self, SummaryFilter, SummaryKind, SummaryView};
use serde::Deserialize;

use crate::auth::AdminCaller;
use crate::error::ApiError;
use crate::responses::{BadInput, NeedsAdmin, Unavailable};
use crate::AppState;

/// Filters of `GET /api/sunat/summaries`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SummariesQuery {
    /// RC (Resumen Diario) or RA (Comunicación de Baja); both when absent.
    pub kind: Option<String>,
    /// PENDING, SENT, ACCEPTED, REJECTED or ERROR; any when absent.
    pub state: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Summaries, newest first, each with its lines.
#[utoipa::path(
    tag = "sales",
    security(("bearer" = [])),
    params(SummariesQuery),
    responses(
        (status = 200, description = "The summaries, newest first", body = Vec<SummaryView>),
        BadInput,
        NeedsAdmin,
        Unavailable,
    )
)]
#[get("/api/sunat/summaries")]
pub async fn list(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    query: web::Query<SummariesQuery>,
) -> Result<HttpResponse, ApiError> {
    let bad = |field: &str, message: String| {
        ApiError::bad_request("invalid_query", message, Some(field.to_owned()))
    };
    let kind = match query.kind.as_deref() {
        None => None,
        Some(k) => Some(SummaryKind::parse(k).map_err(|_| {
            bad(
                "kind",
                format!("kind `{k}` is neither RC (Resumen Diario) nor RA (Comunicación de Baja)"),
            )
        })?),
    };
    let summary_state = match query.state.as_deref() {
        None => None,
        Some(s) => Some(
            s.parse::<SummaryState>()
                .map_err(|e| bad("state", e.to_string()))?,
        ),
    };
    let limit = match query.limit {
        Some(n) if !(1..=1000).contains(&n) => {
            return Err(bad("limit", format!("limit {n} is not from 1 to 1000")))
        }
        n => n,
    };
    let filter = SummaryFilter {
        kind,
        state: summary_state,
        limit,
    };
    let list = summaries::list(&mut *state.db_conn().await?, &filter).await?;
    Ok(HttpResponse::Ok().json(list))
}
