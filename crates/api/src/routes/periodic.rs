//! `/api/periodic-tasks`: list, add, edit, delete and run schedules. A running beat applies changes
//! within a second (it re-reads the table). Admins only.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use faena_core::periodic::{self, NewPeriodic, PeriodicPatch, PeriodicTask};
use serde::Serialize;

use crate::auth::AdminCaller;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::AppState;

/// A schedule as the api shows it.
#[derive(Serialize)]
pub struct PeriodicView {
    #[serde(flatten)]
    pub task: PeriodicTask,
    pub next_run_at: Option<DateTime<Utc>>,
    /// False when this build has no job kind of that name: beat skips the schedule.
    pub kind_registered: bool,
}

fn view(state: &AppState, task: PeriodicTask) -> PeriodicView {
    PeriodicView {
        next_run_at: task.next_run_at(Utc::now()),
        kind_registered: state.broker.catalog().get(&task.kind).is_some(),
        task,
    }
}

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

#[get("/api/periodic-tasks/{name}")]
pub async fn show(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = periodic::get(&mut *state.db_conn().await?, &name).await?;
    Ok(HttpResponse::Ok().json(view(&state, row)))
}

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

/// Enqueues the schedule's job now, outside its ticks.
#[post("/api/periodic-tasks/{name}/run")]
pub async fn run_now(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = periodic::get(&mut *state.db_conn().await?, &name).await?;
    let mut req = row.request(Utc::now());
    req.idempotency_key = None;
    let id = state.broker.enqueue(req).await?;
    Ok(HttpResponse::Accepted()
        .json(serde_json::json!({ "task_id": id, "periodic_task": row.name })))
}
