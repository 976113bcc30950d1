//! *Resumen*: each queue's pending, scheduled, running and dead jobs and the live workers (a
//! fragment htmx reloads every 2 seconds), and the history graphs (throughput, failures,
//! enqueue-to-start latency over the last hour, day or week; `console.js` draws them from
//! `/console/resumen/historial`, which reads `Broker::history` like `GET /api/metrics/history`).

use actix_web::http::StatusCode;
use actix_web::{get, web, HttpResponse};
use chrono::Utc;
use faena_broker::history::HistoryQuery;
use maud::{html, Markup};
use serde::Deserialize;

use crate::console::error::ConsoleError;
use crate::console::i18n::Msg;
use crate::console::layout::{html_response, page, Tab};
use crate::console::session::{AdminViewer, Viewer};
use crate::error::ApiError;
use crate::AppState;

/// The queues and workers, as the fragment shows them.
async fn queues_fragment(state: &AppState, v: &Viewer) -> Result<Markup, ConsoleError> {
    let l = v.lang;
    let stats = state
        .broker
        .all_stats()
        .await
        .map_err(|e| v.fail(ApiError::from(e)))?;
    let workers = state
        .broker
        .workers()
        .await
        .map_err(|e| v.fail(ApiError::from(e)))?;
    let now = Utc::now();
    Ok(html! {
        section.card {
            h2 { (Msg::Queues.text(l)) }
            @if stats.is_empty() { p.muted { (Msg::NoQueues.text(l)) } } @else {
                table #queues {
                    thead { tr {
                        th { (Msg::Queue.text(l)) }
                        th.num { (Msg::StatePending.text(l)) }
                        th.num { (Msg::StateScheduled.text(l)) }
                        th.num { (Msg::StateRunning.text(l)) }
                        th.num { (Msg::StateDead.text(l)) }
                        th.num { (Msg::SucceededTotal.text(l)) }
                        th.num { (Msg::FailedTotal.text(l)) }
                        th { }
                    } }
                    tbody {
                        @for s in &stats {
                            tr data-queue=(s.queue) {
                                td { a href={ "/console/tareas?cola=" (s.queue) } { (s.queue) } }
                                td.num data-stat="pending" { (s.pending) }
                                td.num data-stat="scheduled" { (s.scheduled) }
                                td.num data-stat="running" { (s.running) }
                                td.num data-stat="dead" {
                                    a href={ "/console/tareas?cola=" (s.queue) "&estado=dead" } { (s.dead) }
                                }
                                td.num data-stat="succeeded" { (s.succeeded) }
                                td.num data-stat="failed" { (s.failed) }
                                td { @if s.paused { span.badge { (Msg::Paused.text(l)) } } }
                            }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { (Msg::Workers.text(l)) }
            @if workers.is_empty() { p.muted #no-workers { (Msg::NoWorkers.text(l)) } } @else {
                table #workers {
                    thead { tr {
                        th { (Msg::Worker.text(l)) }
                        th { (Msg::Queues.text(l)) }
                        th.num { (Msg::RunningJobs.text(l)) }
                        th.num { (Msg::HeartbeatAge.text(l)) }
                        th { (Msg::StartedAt.text(l)) }
                    } }
                    tbody {
                        @for w in &workers {
                            tr data-worker=(w.id) {
                                td { (w.id) }
                                td { @if w.queues.is_empty() { (Msg::AllQueues.text(l)) } @else { (w.queues.join(", ")) } }
                                td.num data-stat="running" { (w.running) " / " (w.concurrency) }
                                td.num { (w.last_heartbeat.map_or_else(|| "-".to_owned(), |h| format!("{} s", (now - h).num_seconds().max(0)))) }
                                td { (crate::console::layout::time(w.started_at, v.tz)) }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// The *Resumen* page.
#[get("/resumen")]
pub async fn summary(
    state: web::Data<AppState>,
    admin: AdminViewer,
) -> Result<HttpResponse, ConsoleError> {
    let v = admin.0;
    let l = v.lang;
    let live = queues_fragment(&state, &v).await?;
    let body = html! {
        div #live hx-get="/console/resumen/colas" hx-trigger="every 2s" hx-swap="innerHTML" {
            (live)
        }
        section.card #history
            data-title-throughput=(Msg::ChartThroughput.text(l))
            data-title-failures=(Msg::ChartFailures.text(l))
            data-title-latency=(Msg::ChartLatency.text(l))
            data-label-succeeded=(Msg::Succeeded.text(l))
            data-label-failed=(Msg::Failed.text(l))
            data-label-dead=(Msg::StateDead.text(l))
            data-label-p50=(Msg::LatencyP50.text(l))
            data-label-p95=(Msg::LatencyP95.text(l))
            data-label-time=(Msg::Time.text(l))
            data-tz=(v.tz.name()) {
            h2 { (Msg::History.text(l)) }
            p.ranges {
                a href="#" data-range="hora" .active { (Msg::LastHour.text(l)) }
                a href="#" data-range="dia" { (Msg::LastDay.text(l)) }
                a href="#" data-range="semana" { (Msg::LastWeek.text(l)) }
            }
            div.grid {
                div.chart #chart-throughput {}
                div.chart #chart-failures {}
                div.chart #chart-latency {}
            }
            p.muted { (Msg::HistoryNote.text(l)) }
        }
        script src="/console/assets/uPlot.iife.min.js" {}
        script src="/console/assets/console.js" {}
    };
    Ok(html_response(
        StatusCode::OK,
        page(&v.chrome(Tab::Summary), Msg::TabSummary.text(l), body),
    ))
}

/// The live part of *Resumen*, for htmx.
#[get("/resumen/colas")]
pub async fn queues(
    state: web::Data<AppState>,
    admin: AdminViewer,
) -> Result<HttpResponse, ConsoleError> {
    Ok(html_response(
        StatusCode::OK,
        queues_fragment(&state, &admin.0).await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct RangeQuery {
    rango: Option<String>,
}

/// The graphs' data: one column per series, as uPlot takes it.
#[get("/resumen/historial")]
pub async fn history(
    state: web::Data<AppState>,
    admin: AdminViewer,
    q: web::Query<RangeQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let v = admin.0;
    // (span, step): at most 168 points.
    let (span, step_minutes) = match q.rango.as_deref().unwrap_or("hora") {
        "hora" => (chrono::Duration::hours(1), 1),
        "dia" => (chrono::Duration::days(1), 10),
        "semana" => (chrono::Duration::days(7), 60),
        other => {
            return Err(v.fail(ApiError::bad_request(
                "invalid_query",
                format!("`rango` is hora, dia or semana, not {other:?}"),
                Some("rango".into()),
            )))
        }
    };
    let to = Utc::now();
    let points = state
        .broker
        .history(&HistoryQuery {
            queue: None,
            kind: None,
            from: to - span,
            to,
            step_minutes,
        })
        .await
        .map_err(|e| v.fail(ApiError::from(e)))?;
    let col = |f: &dyn Fn(&faena_broker::history::HistoryPoint) -> serde_json::Value| {
        points.iter().map(f).collect::<Vec<_>>()
    };
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "step_minutes": step_minutes,
            "at": col(&|p| p.at.timestamp().into()),
            "succeeded": col(&|p| p.succeeded.into()),
            "failed": col(&|p| p.failed.into()),
            "dead": col(&|p| p.dead.into()),
            "p50": col(&|p| p.latency_p50_ms.into()),
            "p95": col(&|p| p.latency_p95_ms.into()),
        })))
}
