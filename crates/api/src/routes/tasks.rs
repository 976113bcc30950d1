//! Task endpoints: `POST /api/tasks` enqueues, `GET /api/tasks/{id}` answers the record.
//! Enqueueing any kind is for admins; a seller sees only the tasks enqueued on their behalf.

use actix_web::{get, post, web, HttpResponse};
use faena_core::jobs::EnqueueRequest;
use faena_core::TaskId;

use crate::auth::{AdminCaller, Caller};
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::AppState;

#[post("/api/tasks")]
pub async fn enqueue(
    admin: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<EnqueueRequest>,
) -> Result<HttpResponse, ApiError> {
    let mut task = state
        .broker
        .catalog()
        .prepare(body.into_inner(), chrono::Utc::now())
        .map_err(faena_broker::BrokerError::from)?;
    task.owner = Some(admin.0.sub);
    let id = state
        .broker
        .enqueue_prepared(vec![task])
        .await?
        .pop()
        .ok_or_else(|| ApiError::Internal("the broker returned no id".into()))?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "task_id": id })))
}

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
