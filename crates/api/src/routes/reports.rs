//! `/api/reports` and `/api/insights`: the stored daily SUNAT report (JSON, or CSV with
//! `Accept: text/csv`) and the insights (stock alerts, sales summaries, each store's insights and
//! their all-stores summary). Admins only; the worker's jobs make them (`sunat_daily_report`,
//! `stock_alerts`, `sales_summary`, the `generate_insights` fan-out, which
//! `POST /api/insights/refresh` starts now).

use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use faena_broker::WorkflowStarted;
use faena_shop::insights::{self, Insight, InsightFilter, InsightKind, InsightStatus};
use faena_shop::reports::{self, DailyReportView, ReportError};
use faena_shop::store_insights;
use faena_shop::stores::{self, StoreKey};
use serde::Deserialize;

use crate::auth::AdminCaller;
use crate::error::{ApiError, ErrorBody};
use crate::responses::{BadInput, NeedsAdmin, Unavailable};
use crate::AppState;

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        match &e {
            ReportError::Invalid { field, .. } => {
                Self::bad_request(e.code(), e.to_string(), Some((*field).to_owned()))
            }
            ReportError::NotFound(m) => Self::NotFound(m.clone()),
            ReportError::Db(q) => Self::from_query(q, false),
            ReportError::Io { .. } | ReportError::Corrupt { .. } => Self::Internal(e.to_string()),
        }
    }
}

/// Whether the request asks for CSV (`Accept: text/csv`, also within a list).
fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/csv"))
        })
}

/// The daily report of SUNAT sends of one Lima date.
#[utoipa::path(
    tag = "reports",
    security(("bearer" = [])),
    params(
        ("date" = String, Path, description = "The business date, YYYY-MM-DD", example = "2026-11-24"),
        ("Accept" = Option<String>, Header, description = "`text/csv` for the CSV copy"),
    ),
    responses(
        (status = 200, description = "The report: totals, by seller, by document type", content(
            (DailyReportView = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "Not a date like 2026-11-24 (`invalid_field`, field `date`)",
            body = ErrorBody),
        NeedsAdmin,
        (status = 404, description = "Not generated yet for that date (`not_found`): run the \
            `sunat_daily_report` job with `{\"date\": ...}`", body = ErrorBody),
        Unavailable,
    )
)]
#[get("/api/reports/daily/{date}")]
pub async fn daily(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    date: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let date = reports::parse_date("date", &date)?;
    let Some(view) = reports::get_daily_report(&mut *state.db_conn().await?, date).await? else {
        return Err(ApiError::NotFound(format!(
            "no daily SUNAT report for {date} yet: enqueue the job `sunat_daily_report` with \
             args {{\"date\": \"{date}\"}} (`faena enqueue sunat_daily_report --args '{{\"date\":\"{date}\"}}'`)"
        )));
    };
    if wants_csv(&req) {
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"sunat-daily-{date}.csv\""),
            ))
            .body(view.report.to_csv()?));
    }
    Ok(HttpResponse::Ok().json(view))
}

/// Filters of `GET /api/insights`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InsightsQuery {
    /// open or closed; both when absent.
    pub status: Option<String>,
    /// low_stock, out_of_stock, sales_summary, sunat_deadline, store_insights or
    /// insights_summary; all when absent.
    pub kind: Option<String>,
    /// Only the insights of this store (its id or code): its `store_insights` and its stock
    /// alerts. Insights of all stores (summaries, SUNAT deadlines) have no store.
    pub store: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Insights, newest first: stock alerts (one open per product), sales summaries (with a line per
/// store), each store's insights and the all-stores summary of the fan-out.
#[utoipa::path(
    tag = "reports",
    security(("bearer" = [])),
    params(InsightsQuery),
    responses(
        (status = 200, description = "The insights", body = Vec<Insight>),
        BadInput,
        NeedsAdmin,
        (status = 404, description = "`store` names no store (`not_found`)", body = ErrorBody),
        Unavailable,
    )
)]
#[get("/api/insights")]
pub async fn list_insights(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    query: web::Query<InsightsQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.db_conn().await?;
    let store_id = match query.store.as_deref() {
        Some(raw) => Some(
            stores::get_store(&mut conn, &StoreKey::parse("store", raw)?)
                .await?
                .id,
        ),
        None => None,
    };
    let filter = InsightFilter {
        store_id,
        status: query
            .status
            .as_deref()
            .map(InsightStatus::parse)
            .transpose()?,
        kind: query.kind.as_deref().map(InsightKind::parse).transpose()?,
        limit: match query.limit {
            Some(n) if !(1..=1000).contains(&n) => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("limit {n} is not from 1 to 1000"),
                    Some("limit".into()),
                ))
            }
            n => n,
        },
    };
    let list = insights::list_insights(&mut conn, &filter).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Starts the hourly insights fan-out now: one `store_insights` per active store (a group) and
/// the `insights_summary` callback, over the 24 hours up to the end of this hour, so sales made
/// until now count; the next hourly run covers the same window and replaces the same insights
/// with its complete numbers. Follow it with `GET /api/workflows/{workflow_id}`.
#[utoipa::path(
    tag = "reports",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Started: the workflow's id and its task ids (one per             active store, then the summary)", body = WorkflowStarted),
        NeedsAdmin,
        (status = 409, description = "No store is active (`conflict`)", body = ErrorBody),
        Unavailable,
    )
)]
#[post("/api/insights/refresh")]
pub async fn refresh_insights(
    admin: AdminCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let hour = chrono::Duration::hours(1);
    let until = chrono::DurationRound::duration_trunc(chrono::Utc::now(), hour)
        .map_err(|e| ApiError::Internal(e.to_string()))?
        + hour;
    let req = store_insights::fan_out(&mut *state.db_conn().await?, until)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(
                "no store is active: there are no insights to generate (GET /api/stores)".into(),
            )
        })?;
    let started = state.broker.start_workflow(req, Some(admin.0.sub)).await?;
    Ok(HttpResponse::Accepted().json(started))
}
