//! Workflow endpoints (admins): `POST /api/workflows` starts a chain or a group with a callback,
//! `GET /api/workflows/{id}` answers its progress. The broker moves the progress; this only
//! translates.

use actix_web::{get, post, web, HttpResponse};
use faena_broker::{WorkflowRecord, WorkflowStarted};
use faena_core::workflow::WorkflowRequest;
use faena_core::TaskId;

use crate::auth::AdminCaller;
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::responses::{JsonBody, NeedsAdmin, Unavailable};
use crate::AppState;

/// Starts a workflow: `{"chain": [step, ...]}` or `{"group": [step, ...], "callback": step,
/// "on_failure": "run"|"skip"}`, each step the body of `POST /api/tasks`. Every step runs in one
/// queue. A chain's later steps get `previous` (the result of the step before) in their args; the
/// callback gets `members: [{task_id, state, result}]` in the group's order.
#[utoipa::path(
    tag = "workflows",
    security(("bearer" = [])),
    request_body = WorkflowRequest,
    responses(
        (status = 202, description = "Started: the workflow's id and its task ids (the steps in \
            order, then the callback)", body = WorkflowStarted),
        (status = 400, description = "A step that does not validate (`unknown_kind`, \
            `invalid_args`, `invalid_field`, with `field` naming the step, e.g. `group[3].args.ms`) \
            or a shape that does not (`invalid_workflow`)", body = ErrorBody),
        JsonBody,
        NeedsAdmin,
        Unavailable,
    )
)]
#[post("/api/workflows")]
pub async fn start(
    admin: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<WorkflowRequest>,
) -> Result<HttpResponse, ApiError> {
    let started = state
        .broker
        .start_workflow(body.into_inner(), Some(admin.0.sub))
        .await?;
    Ok(HttpResponse::Accepted().json(started))
}

/// A workflow's progress: its state, each step's task and state (`WAITING` before a chain step or
/// the callback starts, `SKIPPED` when it never will), and the callback of a group.
#[utoipa::path(
    tag = "workflows",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The workflow's id (a ULID)")),
    responses(
        (status = 200, description = "The workflow's progress", body = WorkflowRecord),
        (status = 400, description = "Not a workflow id (`invalid_workflow_id`)", body = ErrorBody),
        NeedsAdmin,
        (status = 404, description = "No such workflow, or it expired with its tasks' records \
            (`not_found`)", body = ErrorBody),
        Unavailable,
    )
)]
#[get("/api/workflows/{id}")]
pub async fn show(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let id = TaskId::parse(&raw).map_err(|_| {
        ApiError::bad_request(
            "invalid_workflow_id",
            format!("`{raw}` is not a workflow id (a ULID of 26 characters)"),
            Some("id".into()),
        )
    })?;
    match state.broker.workflow(&id).await? {
        Some(rec) => Ok(HttpResponse::Ok().json(rec)),
        None => Err(ApiError::NotFound(format!(
            "no workflow {id}: it never existed or expired with its tasks' records"
        ))),
    }
}
