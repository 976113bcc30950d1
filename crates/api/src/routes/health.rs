//! `GET /api/health`: 200 when PostgreSQL and Redis answer, 503 naming what is down.

use actix_web::{get, web, HttpResponse};
use faena_core::health::{DependencyHealth, HealthReport};
use serde::Serialize;

use crate::AppState;

/// The 503 answer: what is down, and the state of each dependency.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HealthDown {
    /// Always `unavailable`.
    #[schema(example = "unavailable")]
    pub status: &'static str,
    /// The dependencies that do not answer (`database`, `redis`).
    pub down: Vec<&'static str>,
    pub database: DependencyHealth,
    pub redis: DependencyHealth,
    pub version: &'static str,
}

/// Whether PostgreSQL and Redis answer.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "PostgreSQL and Redis answer", body = HealthReport),
        (status = 503, description = "A dependency is down", body = HealthDown),
    )
)]
#[get("/api/health")]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let report = faena_core::health::check(&state.db, state.broker.pool()).await;
    if report.ok() {
        HttpResponse::Ok().json(report)
    } else {
        let down = report.down();
        HttpResponse::ServiceUnavailable().json(HealthDown {
            status: "unavailable",
            down,
            database: report.database,
            redis: report.redis,
            version: report.version,
        })
    }
}
