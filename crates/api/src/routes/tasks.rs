//! Task endpoints: `POST /api/tasks` enqueues, `GET /api/tasks/{id}` answers the record.
//! Authentication (issue 9) wraps this scope as middleware; the handlers do not change.

use actix_web::{get, post, web, HttpResponse};
use faena_core::jobs::EnqueueRequest;
use faena_core::TaskId;

use crate::error::ApiError;
use crate::AppState;

#[post("/api/tasks")]
pub async fn enqueue(
    state: web::Data<AppState>,
    body: web::Json<EnqueueRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = state.broker.enqueue(body.into_inner()).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "task_id": id })))
}

#[get("/api/tasks/{id}")]
pub async fn show(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let id = TaskId::parse(&raw)
        .map_err(|e| ApiError::bad_request("invalid_task_id", e.to_string(), Some("id".into())))?;
    match state.broker.task(&id).await? {
        Some(rec) => Ok(HttpResponse::Ok().json(rec)),
        None => Err(ApiError::NotFound(format!(
            "no task {id}: it never existed or its record expired after the retention"
        ))),
    }
}
