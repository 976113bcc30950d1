//! Task endpoints: `POST /api/tasks` enqueues, `GET /api/tasks/{id}` answers the record.
//! Enqueueing any kind is for admins; a seller sees only the tasks enqueued on their behalf.

use actix_web::{get, post, web, HttpResponse};
use faena_broker::record::TaskRecord;
use faena_core::jobs::EnqueueRequest;
use faena_core::TaskId;
use serde::Serialize;

use crate::auth::{AdminCaller, Caller};
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::responses::{JsonBody, NeedsAdmin, NeedsOwner, Unavailable};
use crate::AppState;

/// The answer of an enqueue.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Enqueued {
    /// The task's id (a ULID).
    #[schema(value_type = String, example = "01JD0000000000000000000000")]
    pub task_id: faena_core::TaskId,
}

/// Enqueues a job of any kind.
#[utoipa::path(
    tag = "tasks",
    security(("bearer" = [])),
    request_body = EnqueueRequest,
    responses(
        (status = 202, description = "Enqueued (or the task that already has this \
            `idempotency_key`)", body = Enqueued),
        JsonBody,
        NeedsAdmin,
        Unavailable,
    )
)]
#[post("/api/tasks")]
pub async fn enqueue(
    admin: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<EnqueueRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = state
        .broker
        .enqueue_for(body.into_inner(), Some(admin.0.sub))
        .await?;
    Ok(HttpResponse::Accepted().json(Enqueued { task_id: id }))
}

/// A task's record: admins see every task, anyone else the tasks enqueued on their behalf.
#[utoipa::path(
    tag = "tasks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The task's id (a ULID)")),
    responses(
        (status = 200, description = "The task's record", body = TaskRecord),
        (status = 400, description = "Not a task id (`invalid_task_id`)", body = ErrorBody),
        NeedsOwner,
        (status = 404, description = "No such task, or its record expired (`not_found`)",
            body = ErrorBody),
        Unavailable,
    )
)]
#[get("/api/tasks/{id}")]
pub async fn show(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let id = TaskId::parse(&raw)
        .map_err(|e| ApiError::bad_request("invalid_task_id", e.to_string(), Some("id".into())))?;
    match state.broker.task(&id).await? {
        Some(rec) => {
            caller.require_owner(rec.owner.as_deref(), "task")?;
            Ok(HttpResponse::Ok().json(rec))
        }
        None => Err(ApiError::NotFound(format!(
            "no task {id}: it never existed or its record expired after the retention"
        ))),
    }
}
