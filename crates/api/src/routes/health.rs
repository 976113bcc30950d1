//! `GET /api/health`: 200 when PostgreSQL and Redis answer, 503 naming what is down.

use actix_web::{get, web, HttpResponse};

use crate::AppState;

#[get("/api/health")]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let report = faena_core::health::check(&state.db, state.broker.pool()).await;
    if report.ok() {
        HttpResponse::Ok().json(report)
    } else {
        let down = report.down();
        HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "status": "unavailable",
            "down": down,
            "database": report.database,
            "redis": report.redis,
            "version": report.version,
        }))
    }
}
