//! Telemetry events as metrics, in one place (Vector style): each function records one lifecycle event.
//! Names follow `faena_<what>_<unit>` with labels; the api serves them at `/metrics` and workers and
//! beat at `FAENA_METRICS_BIND` (Prometheus text format).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `faena_jobs_total` | counter | kind, queue, outcome (succeeded, retry, dead, snoozed) |
//! | `faena_job_duration_seconds` | histogram | kind |
//! | `faena_queue_jobs` | gauge | queue, state (pending, scheduled, running, dead) |
//! | `faena_queue_paused` | gauge | queue |
//! | `faena_beat_ticks_total` | counter | schedule |
//! | `faena_beat_leader` | gauge | (1 while this beat leads) |
//! | `faena_http_requests_total` | counter | route, method, status |
//! | `faena_http_request_duration_seconds` | histogram | route |

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's Prometheus recorder once and returns its handle (the api renders it at
/// `/metrics`). Later calls return the same handle.
pub fn recorder() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0,
                ])
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only when another recorder is installed; the handle still renders ours.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Serves the recorder at `http://addr/metrics` in the background (workers and beat).
pub fn serve(addr: SocketAddr) -> Result<(), String> {
    let handle = recorder();
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("cannot listen on FAENA_METRICS_BIND={addr}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if request.starts_with("GET /metrics") {
                    ("200 OK", handle.render())
                } else {
                    (
                        "404 Not Found",
                        "only GET /metrics is served here\n".to_owned(),
                    )
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
            });
        }
    });
    Ok(())
}

/// One attempt of a job ended.
pub fn job_finished(kind: &str, queue: &str, outcome: &'static str, took: Duration) {
    metrics::counter!("faena_jobs_total", "kind" => kind.to_owned(), "queue" => queue.to_owned(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("faena_job_duration_seconds", "kind" => kind.to_owned())
        .record(took.as_secs_f64());
}

/// The sizes of one queue, read from the broker.
pub fn queue_depth(
    queue: &str,
    pending: u64,
    scheduled: u64,
    running: u64,
    dead: u64,
    paused: bool,
) {
    for (state, v) in [
        ("pending", pending),
        ("scheduled", scheduled),
        ("running", running),
        ("dead", dead),
    ] {
        metrics::gauge!("faena_queue_jobs", "queue" => queue.to_owned(), "state" => state)
            .set(v as f64);
    }
    metrics::gauge!("faena_queue_paused", "queue" => queue.to_owned()).set(if paused {
        1.0
    } else {
        0.0
    });
}

/// Beat enqueued a tick.
pub fn beat_tick(schedule: &str) {
    metrics::counter!("faena_beat_ticks_total", "schedule" => schedule.to_owned()).increment(1);
}

/// Beat's leadership changed.
pub fn beat_leader(leading: bool) {
    metrics::gauge!("faena_beat_leader").set(if leading { 1.0 } else { 0.0 });
}

/// The api answered a request.
pub fn http_request(route: &str, method: &str, status: u16, took: Duration) {
    metrics::counter!("faena_http_requests_total", "route" => route.to_owned(), "method" => method.to_owned(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("faena_http_request_duration_seconds", "route" => route.to_owned())
        .record(took.as_secs_f64());
}

/// Outcomes, renewals or give-backs of attempts that no longer held their job's latest lease
/// (fencing): ignored by the broker, counted here.
pub fn stale_outcomes(queue: &str, n: u64) {
    metrics::counter!("faena_stale_outcomes_total", "queue" => queue.to_owned()).increment(n);
}
