//! *Tareas*: tasks filtered by queue, state and kind; a task's page (args, result or error with
//! its class, every attempt with its worker and times); retry, cancel and purge, each confirmed
//! on a second step. The broker does the work (`Broker::list`, `task`, `retry`, `cancel`, `purge`),
//! as for the CLI and `GET /api/tasks/{id}`.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};
use faena_broker::record::{AttemptOutcome, TaskRecord, TaskState};
use faena_broker::PurgeTarget;
use faena_core::{QueueName, TaskId};
use maud::{html, Markup};
use serde::Deserialize;

use crate::console::error::{ConsoleError, Failure};
use crate::console::i18n::{Lang, Msg};
use crate::console::layout::{badge, confirm, html_response, page, pretty, see_other, time, Tab};
use crate::console::session::{AdminAction, AdminViewer, Viewer};
use crate::error::ApiError;
use crate::AppState;

/// How many tasks one list shows at most (per queue).
const LIST_LIMIT: usize = 100;

/// The states that have an index to list.
const LISTED: [TaskState; 4] = [
    TaskState::Pending,
    TaskState::Scheduled,
    TaskState::Running,
    TaskState::Dead,
];

fn state_msg(s: TaskState) -> Msg {
    match s {
        TaskState::Pending => Msg::StatePending,
        TaskState::Scheduled => Msg::StateScheduled,
        TaskState::Running => Msg::StateRunning,
        TaskState::Succeeded => Msg::StateSucceeded,
        TaskState::Dead => Msg::StateDead,
        TaskState::Cancelled => Msg::StateCancelled,
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    cola: Option<String>,
    estado: Option<String>,
    tipo: Option<String>,
    id: Option<String>,
}

fn parse_queue(v: &Viewer, q: &str) -> Result<QueueName, ConsoleError> {
    QueueName::parse(q).map_err(|e| {
        v.fail(ApiError::bad_request(
            "invalid_query",
            format!("`cola` is not a queue name: {e}"),
            Some("cola".into()),
        ))
    })
}

fn parse_id(v: &Viewer, raw: &str) -> Result<TaskId, ConsoleError> {
    TaskId::parse(raw).map_err(|e| {
        v.fail(ApiError::bad_request(
            "invalid_task_id",
            e.to_string(),
            Some("id".into()),
        ))
    })
}

/// The task list with its filters.
#[get("/tareas")]
pub async fn list(
    state: web::Data<AppState>,
    admin: AdminViewer,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let v = admin.0;
    let l = v.lang;
    if let Some(raw) = q.id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let id = parse_id(&v, raw)?;
        return Ok(see_other(&format!("/console/tareas/{id}")));
    }
    let queues = state
        .broker
        .queues()
        .await
        .map_err(|e| v.fail(ApiError::from(e)))?;
    let chosen = match q.cola.as_deref().filter(|s| !s.is_empty()) {
        Some(name) => Some(parse_queue(&v, name)?),
        None => None,
    };
    let st = match q.estado.as_deref().filter(|s| !s.is_empty()) {
        None => TaskState::Pending,
        Some(s) => TaskState::parse(s)
            .filter(|s| LISTED.contains(s))
            .ok_or_else(|| {
                v.fail(ApiError::bad_request(
                    "invalid_query",
                    format!("`estado` is pending, scheduled, running or dead, not {s:?}"),
                    Some("estado".into()),
                ))
            })?,
    };
    let kind = q.tipo.as_deref().filter(|s| !s.is_empty());
    let mut rows: Vec<TaskRecord> = Vec::new();
    // A chosen queue is listed in every partition; without one, every broker queue is listed
    // (partitions are in the queue set already).
    let listed = match &chosen {
        Some(c) => state
            .broker
            .expand(c)
            .await
            .map_err(|e| v.fail(ApiError::from(e)))?,
        None => queues.clone(),
    };
    for queue in &listed {
        let found = state
            .broker
            .list_one(queue, st, LIST_LIMIT)
            .await
            .map_err(|e| v.fail(ApiError::from(e)))?;
        rows.extend(
            found
                .into_iter()
                .filter(|r| kind.is_none_or(|k| r.kind == k)),
        );
    }
    let sel_queue = chosen.as_ref().map(|c| c.to_string()).unwrap_or_default();
    let body = html! {
        section.card {
            form.filters method="get" action="/console/tareas" {
                div { label for="cola" { (Msg::Queue.text(l)) }
                    select #cola name="cola" {
                        option value="" { (Msg::AllQueues.text(l)) }
                        @for queue in &queues {
                            option value=(queue) selected[queue.as_str() == sel_queue] { (queue) }
                        }
                    }
                }
                div { label for="estado" { (Msg::State.text(l)) }
                    select #estado name="estado" {
                        @for s in LISTED {
                            option value=(s.as_str().to_lowercase()) selected[s == st] { (state_msg(s).text(l)) }
                        }
                    }
                }
                div { label for="tipo" { (Msg::Kind.text(l)) }
                    select #tipo name="tipo" {
                        option value="" { (Msg::AllKinds.text(l)) }
                        @for k in state.broker.catalog().kinds() {
                            option value=(k.name) selected[kind == Some(k.name)] { (k.name) }
                        }
                    }
                }
                button #filter type="submit" { (Msg::Filter.text(l)) }
            }
            form.filters method="get" action="/console/tareas" style="margin-top:.6rem" {
                div { label for="id" { (Msg::TaskById.text(l)) }
                    input #id name="id" size="30" placeholder="01K...";
                }
                button.secondary type="submit" { (Msg::Open.text(l)) }
            }
        }
        section.card {
            p.muted { (Msg::ListLimit.text(l).replace("{}", &LIST_LIMIT.to_string())) }
            @if rows.is_empty() { p #no-tasks { (Msg::NoTasks.text(l)) } } @else {
                table #tasks {
                    thead { tr {
                        th { "ID" } th { (Msg::Kind.text(l)) } th { (Msg::Queue.text(l)) }
                        th { (Msg::State.text(l)) } th.num { (Msg::Attempts.text(l)) }
                        th { (Msg::EnqueuedAt.text(l)) } th { (Msg::Error.text(l)) }
                    } }
                    tbody {
                        @for r in &rows {
                            tr data-task=(r.id) {
                                td { a href={ "/console/tareas/" (r.id) } { code { (r.id) } } }
                                td { (r.kind) } td { (r.queue) } td { (badge(r.state.as_str())) }
                                td.num { (r.attempts) " / " (r.max_attempts) }
                                td { (time(r.enqueued_at, v.tz)) }
                                td { (r.error.as_deref().map(|e| e.chars().take(120).collect::<String>()).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
            @if let Some(queue) = &chosen {
                @if st == TaskState::Dead || st == TaskState::Pending || st == TaskState::Scheduled {
                    form method="post" action={ "/console/colas/" (queue) "/vaciar" } {
                        input type="hidden" name="csrf" value=(v.session.csrf_token);
                        input type="hidden" name="que" value=(if st == TaskState::Dead { "dead" } else { "pending" });
                        button.danger #purge type="submit" {
                            (if st == TaskState::Dead { Msg::PurgeDead } else { Msg::PurgePending }.text(l))
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page(&v.chrome(Tab::Tasks), Msg::TabTasks.text(l), body),
    ))
}

fn outcome_msg(o: &AttemptOutcome) -> Msg {
    match o {
        AttemptOutcome::Succeeded => Msg::AttemptSucceeded,
        AttemptOutcome::Retried => Msg::AttemptRetried,
        AttemptOutcome::Dead => Msg::AttemptDead,
    }
}

/// The record's details (polled by htmx while the task is not final).
fn detail(r: &TaskRecord, l: Lang, tz: chrono_tz::Tz) -> Markup {
    html! {
        section.card #task-detail data-state=(r.state.as_str()) {
            table {
                tr { th { (Msg::State.text(l)) } td #task-state { (badge(r.state.as_str())) } }
                tr { th { (Msg::Kind.text(l)) } td { (r.kind) } }
                tr { th { (Msg::Queue.text(l)) } td { (r.queue) } }
                tr { th { (Msg::Attempts.text(l)) } td { (r.attempts) " / " (r.max_attempts) } }
                tr { th { (Msg::EnqueuedAt.text(l)) } td { (time(r.enqueued_at, tz)) } }
                tr { th { (Msg::StartedAt.text(l)) } td { (time(r.started_at, tz)) } }
                tr { th { (Msg::FinishedAt.text(l)) } td { (time(r.finished_at, tz)) } }
                @if r.next_run_at.is_some() { tr { th { (Msg::NextRun.text(l)) } td { (time(r.next_run_at, tz)) } } }
                @if let Some(w) = &r.worker { tr { th { (Msg::Worker.text(l)) } td { (w) } } }
            }
        }
        div.grid {
            section.card {
                h2 { (Msg::Args.text(l)) }
                pre #task-args { (pretty(&r.args)) }
            }
            section.card {
                @if let Some(res) = &r.result {
                    h2 { (Msg::Result.text(l)) }
                    pre #task-result { (pretty(res)) }
                } @else if let Some(e) = &r.error {
                    h2 { (Msg::Error.text(l)) }
                    p { (Msg::ErrorClass.text(l)) ": " code #task-error-class { (r.error_class.as_deref().unwrap_or("-")) } }
                    pre #task-error { (e) }
                } @else {
                    h2 { (Msg::Result.text(l)) }
                    p.muted { (Msg::NoResultYet.text(l)) }
                }
            }
        }
        section.card {
            h2 { (Msg::AttemptLog.text(l)) }
            @if r.attempt_log.is_empty() { p.muted { (Msg::NoAttemptsYet.text(l)) } } @else {
                table #attempts {
                    thead { tr {
                        th.num { "#" } th { (Msg::Worker.text(l)) } th { (Msg::StartedAt.text(l)) }
                        th { (Msg::FinishedAt.text(l)) } th { (Msg::Outcome.text(l)) } th { (Msg::Error.text(l)) }
                    } }
                    tbody {
                        @for a in &r.attempt_log {
                            tr {
                                td.num { (a.attempt) } td { (a.worker) }
                                td { (time(a.started_at, tz)) } td { (time(a.ended_at, tz)) }
                                td { (outcome_msg(&a.outcome).text(l)) }
                                td { @if let Some(c) = &a.error_class { code { (c) } " " } (a.error.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn record(state: &AppState, v: &Viewer, raw: &str) -> Result<TaskRecord, ConsoleError> {
    let id = parse_id(v, raw)?;
    state
        .broker
        .task(&id)
        .await
        .map_err(|e| v.fail(ApiError::from(e)))?
        .ok_or_else(|| {
            v.fail(ApiError::NotFound(format!(
                "no task {id}: it never existed or its record expired after the retention"
            )))
        })
}

/// A task's page.
#[get("/tareas/{id}")]
pub async fn show(
    state: web::Data<AppState>,
    admin: AdminViewer,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let v = admin.0;
    let l = v.lang;
    let r = record(&state, &v, &id).await?;
    let csrf = &v.session.csrf_token;
    let body = html! {
        p { a href={ "/console/tareas?cola=" (r.queue) } { "← " (Msg::TabTasks.text(l)) } }
        div #task-live hx-get={ "/console/tareas/" (r.id) "/detalle" } hx-trigger="every 2s" hx-swap="innerHTML" {
            (detail(&r, l, v.tz))
        }
        section.card {
            @if matches!(r.state, TaskState::Dead | TaskState::Cancelled) {
                form.inline method="post" action={ "/console/tareas/" (r.id) "/reintentar" } {
                    input type="hidden" name="csrf" value=(csrf);
                    button #retry type="submit" { (Msg::Retry.text(l)) }
                }
            }
            " "
            @if matches!(r.state, TaskState::Pending | TaskState::Scheduled) {
                form.inline method="post" action={ "/console/tareas/" (r.id) "/cancelar" } {
                    input type="hidden" name="csrf" value=(csrf);
                    button.danger #cancel type="submit" { (Msg::Cancel.text(l)) }
                }
            }
        }
    };
    let title = format!("{} {}", Msg::Task.text(l), r.id);
    Ok(html_response(
        StatusCode::OK,
        page(&v.chrome(Tab::Tasks), &title, body),
    ))
}

/// The live part of a task's page, for htmx.
#[get("/tareas/{id}/detalle")]
pub async fn show_detail(
    state: web::Data<AppState>,
    admin: AdminViewer,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let v = admin.0;
    let r = record(&state, &v, &id).await?;
    Ok(html_response(StatusCode::OK, detail(&r, v.lang, v.tz)))
}

/// Retry (DEAD or CANCELLED back to PENDING) or cancel (PENDING or SCHEDULED), after a
/// confirmation step.
async fn act(
    state: &AppState,
    a: AdminAction,
    raw: &str,
    is_retry: bool,
) -> Result<HttpResponse, ConsoleError> {
    let v = &a.viewer;
    let l = v.lang;
    let r = record(state, v, raw).await?;
    let back = format!("/console/tareas/{}", r.id);
    // The broker answers an action that does not apply with the unchanged state, which for a
    // PENDING task asked to retry reads like success: say so before asking anything.
    let applies = if is_retry {
        matches!(r.state, TaskState::Dead | TaskState::Cancelled)
    } else {
        matches!(r.state, TaskState::Pending | TaskState::Scheduled)
    };
    if !applies {
        return Err(not_applicable(v, &r.id, r.state, is_retry));
    }
    let (verb, question) = if is_retry {
        ("reintentar", Msg::ConfirmRetry)
    } else {
        ("cancelar", Msg::ConfirmCancel)
    };
    if !a.form.is_on("confirmado") {
        let body = confirm(
            l,
            &v.session.csrf_token,
            &format!("/console/tareas/{}/{verb}", r.id),
            &question
                .text(l)
                .replace("{}", &format!("{} ({})", r.id, r.kind)),
            &[],
            &back,
        );
        return Ok(html_response(
            StatusCode::OK,
            page(&v.chrome(Tab::Tasks), Msg::Confirm.text(l), body),
        ));
    }
    let id = parse_id(v, raw)?;
    let after = if is_retry {
        state.broker.retry(&id).await
    } else {
        state.broker.cancel(&id).await
    }
    .map_err(|e| v.fail(ApiError::from(e)))?;
    let wanted = if is_retry {
        TaskState::Pending
    } else {
        TaskState::Cancelled
    };
    match after {
        Some(s) if s == wanted => Ok(see_other(&back)),
        Some(s) => Err(not_applicable(v, &r.id, s, is_retry)),
        None => Err(v.fail(ApiError::NotFound(format!("no task {id}")))),
    }
}

/// 409: retry applies to DEAD or CANCELLED tasks, cancel to PENDING or SCHEDULED ones.
fn not_applicable(v: &Viewer, id: &str, s: TaskState, is_retry: bool) -> ConsoleError {
    v.fail(ApiError::Conflict(if is_retry {
        format!("task {id} is {s}: only DEAD or CANCELLED tasks are retried")
    } else {
        format!("task {id} is {s}: only PENDING or SCHEDULED tasks are cancelled")
    }))
}

#[post("/tareas/{id}/reintentar")]
pub async fn retry(
    state: web::Data<AppState>,
    a: AdminAction,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    act(&state, a, &id, true).await
}

#[post("/tareas/{id}/cancelar")]
pub async fn cancel(
    state: web::Data<AppState>,
    a: AdminAction,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    act(&state, a, &id, false).await
}

/// Purges a queue's waiting (`que=pending`: pending and scheduled) or DEAD jobs, confirmed first.
#[post("/colas/{queue}/vaciar")]
pub async fn purge(
    state: web::Data<AppState>,
    a: AdminAction,
    queue: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let v = &a.viewer;
    let l = v.lang;
    let q = parse_queue(v, &queue)?;
    let (target, what) = match a.form.get("que") {
        Some("dead") => (PurgeTarget::Dead, "dead"),
        Some("pending") => (PurgeTarget::Pending, "pending"),
        other => {
            return Err(v.fail(Failure::Field {
                field: "que",
                message: format!("is pending or dead, not {:?}", other.unwrap_or("")),
            }))
        }
    };
    let back = format!("/console/tareas?cola={q}&estado={what}");
    if !a.form.is_on("confirmado") {
        let stats = state
            .broker
            .total_stats(&q)
            .await
            .map_err(|e| v.fail(ApiError::from(e)))?;
        let (n, msg) = match target {
            PurgeTarget::Dead => (stats.dead, Msg::ConfirmPurgeDead),
            PurgeTarget::Pending => (stats.pending + stats.scheduled, Msg::ConfirmPurgePending),
        };
        let question = msg
            .text(l)
            .replacen("{}", &n.to_string(), 1)
            .replacen("{}", q.as_str(), 1);
        let body = confirm(
            l,
            &v.session.csrf_token,
            &format!("/console/colas/{q}/vaciar"),
            &question,
            &[("que", what)],
            &back,
        );
        return Ok(html_response(
            StatusCode::OK,
            page(&v.chrome(Tab::Tasks), Msg::Confirm.text(l), body),
        ));
    }
    let removed = state
        .broker
        .purge(&q, target)
        .await
        .map_err(|e| v.fail(ApiError::from(e)))?;
    tracing::info!(user = %v.session.username, queue = %q, what, removed, "console purge");
    Ok(see_other(&back))
}
