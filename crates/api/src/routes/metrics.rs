//! `GET /metrics`: Prometheus text format. Queue depths are read from the broker at each scrape.

use actix_web::{get, web, HttpResponse};

use crate::AppState;

/// Prometheus metrics.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String,
            content_type = "text/plain"),
    )
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let stats =
        tokio::time::timeout(std::time::Duration::from_secs(2), state.broker.all_stats()).await;
    if let Ok(Ok(stats)) = stats {
        for s in stats {
            faena_core::metrics::queue_depth(
                &s.queue,
                s.pending,
                s.scheduled,
                s.running,
                s.dead,
                s.paused,
            );
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(faena_core::metrics::recorder().render())
}
