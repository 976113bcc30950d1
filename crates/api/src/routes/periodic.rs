//! `/api/periodic-tasks`: list, add, edit, delete and run schedules. A running beat applies changes
//! within a second (it re-reads the table). Admins only.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use faena_core::periodic::{self, NewPeriodic, PeriodicPatch, PeriodicTask};
use serde::Serialize;

use crate::auth::AdminCaller;
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::responses::{BadInput, JsonBody, NeedsAdmin, Unavailable};
use crate::AppState;

/// A schedule as the api shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PeriodicView {
    #[serde(flatten)]
    pub task: PeriodicTask,
    pub next_run_at: Option<DateTime<Utc>>,
    /// False when this build has no job kind of that name: beat skips the schedule.
    pub kind_registered: bool,
}

/// A schedule with its next run and whether this build knows its kind.
pub fn view(state: &AppState, task: PeriodicTask) -> PeriodicView {
    PeriodicView {
        next_run_at: task.next_run_at(Utc::now()),
        kind_registered: state.broker.catalog().get(&task.kind).is_some(),
        task,
    }
}

/// Every schedule.
#[utoipa::path(
    tag = "periodic",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every schedule", body = Vec<PeriodicView>),
        NeedsAdmin,
        Unavailable,
    )
)]
#[get("/api/periodic-tasks")]
pub async fn list(
    _admin: AdminCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let rows = periodic::list(&mut *state.db_conn().await?).await?;
    Ok(HttpResponse::Ok().json(
        rows.into_iter()
            .map(|t| view(&state, t))
            .collect::<Vec<_>>(),
    ))
}

/// Adds a schedule: `cron` or `interval_secs`, one of them.
#[utoipa::path(
    tag = "periodic",
    security(("bearer" = [])),
    request_body = NewPeriodic,
    responses(
        (status = 201, description = "Added", body = PeriodicView),
        JsonBody,
        NeedsAdmin,
        (status = 409, description = "A schedule has that name (`conflict`)", body = ErrorBody),
        Unavailable,
    )
)]
#[post("/api/periodic-tasks")]
pub async fn create(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<NewPeriodic>,
) -> Result<HttpResponse, ApiError> {
    let row = periodic::create(
        &mut *state.db_conn().await?,
        state.broker.catalog(),
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Created().json(view(&state, row)))
}

/// One schedule.
#[utoipa::path(
    tag = "periodic",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 200, description = "The schedule", body = PeriodicView),
        BadInput,
        NeedsAdmin,
        (status = 404, description = "No such schedule (`not_found`)", body = ErrorBody),
        Unavailable,
    )
)]
#[get("/api/periodic-tasks/{name}")]
pub async fn show(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = periodic::get(&mut *state.db_conn().await?, &name).await?;
    Ok(HttpResponse::Ok().json(view(&state, row)))
}

/// Changes a schedule; absent fields stay as they are.
#[utoipa::path(
    tag = "periodic",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The schedule's name")),
    request_body = PeriodicPatch,
    responses(
        (status = 200, description = "The changed schedule", body = PeriodicView),
        JsonBody,
        NeedsAdmin,
        (status = 404, description = "No such schedule (`not_found`)", body = ErrorBody),
        Unavailable,
    )
)]
#[patch("/api/periodic-tasks/{name}")]
pub async fn update(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: ApiJson<PeriodicPatch>,
) -> Result<HttpResponse, ApiError> {
    let row = periodic::update(
        &mut *state.db_conn().await?,
        state.broker.catalog(),
        &name,
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(view(&state, row)))
}

/// Deletes a schedule.
#[utoipa::path(
    tag = "periodic",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 204, description = "Deleted"),
        BadInput,
        NeedsAdmin,
        (status = 404, description = "No such schedule (`not_found`)", body = ErrorBody),
        Unavailable,
    )
)]
#[delete("/api/periodic-tasks/{name}")]
pub async fn remove(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if periodic::delete(&mut *state.db_conn().await?, &name).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(periodic::PeriodicError::NotFound(name.into_inner()).into())
    }
}

/// The answer of a run now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunNow {
    /// The enqueued task's id.
    #[schema(value_type = String)]
    pub task_id: faena_core::TaskId,
    /// The schedule's name.
    pub periodic_task: String,
}

/// Enqueues the schedule's job now, outside its ticks.
#[utoipa::path(
    tag = "periodic",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 202, description = "Enqueued", body = RunNow),
        (status = 400, description = "The schedule's job does not validate any more (an \
            unknown kind, bad args...)", body = ErrorBody),
        NeedsAdmin,
        (status = 404, description = "No such schedule (`not_found`)", body = ErrorBody),
        Unavailable,
    )
)]
#[post("/api/periodic-tasks/{name}/run")]
pub async fn run_now(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Accepted().json(enqueue_now(&state, &name).await?))
}

/// Enqueues a schedule's job now, outside its ticks (no tick key): `POST
/// /api/periodic-tasks/{name}/run` and the console's "ejecutar ahora".
pub async fn enqueue_now(state: &AppState, name: &str) -> Result<RunNow, ApiError> {
    let row = periodic::get(&mut *state.db_conn().await?, name).await?;
    let mut req = row.request(Utc::now());
    req.idempotency_key = None;
    let id = state.broker.enqueue(req).await?;
    Ok(RunNow {
        task_id: id,
        periodic_task: row.name,
    })
}
