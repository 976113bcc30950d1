//! Health of the two dependencies, shared by `GET /api/health` and `faena check-infra`.

use std::time::{Duration, Instant};

use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::db::PgPool;

/// How long one dependency check may take before it counts as down.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(1500);

/// The state of one dependency.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DependencyHealth {
    pub ok: bool,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The state of every dependency.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HealthReport {
    pub database: DependencyHealth,
    pub redis: DependencyHealth,
    pub version: &'static str,
}

impl HealthReport {
    /// True when every dependency answers.
    pub fn ok(&self) -> bool {
        self.database.ok && self.redis.ok
    }

    /// The names of the dependencies that are down.
    pub fn down(&self) -> Vec<&'static str> {
        let mut down = Vec::new();
        if !self.database.ok {
            down.push("database");
        }
        if !self.redis.ok {
            down.push("redis");
        }
        down
    }
}

async fn timed<F, E>(f: F) -> DependencyHealth
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let start = Instant::now();
    let result = tokio::time::timeout(CHECK_TIMEOUT, f).await;
    let latency_ms = (start.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    let error = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} ms", CHECK_TIMEOUT.as_millis())),
    };
    DependencyHealth {
        ok: error.is_none(),
        latency_ms,
        error,
    }
}

/// Checks PostgreSQL with `SELECT 1`.
pub async fn check_database(pool: &PgPool) -> DependencyHealth {
    timed(async {
        let mut conn = pool.get().await.map_err(|e| e.to_string())?;
        diesel::sql_query("SELECT 1")
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    })
    .await
}

/// Checks Redis with `PING`.
pub async fn check_redis(pool: &crate::redis_pool::Pool) -> DependencyHealth {
    timed(async {
        let mut conn = pool.get().await.map_err(|e| e.to_string())?;
        let pong: String = match redis::cmd("PING").query_async(&mut *conn).await {
            Ok(pong) => pong,
            Err(e) => {
                // Not given back: the pool skips its own check of a connection used moments ago.
                crate::redis_pool::discard(conn);
                return Err(e.to_string());
            }
        };
        if pong == "PONG" {
            Ok(())
        } else {
            Err(format!("unexpected answer to PING: {pong}"))
        }
    })
    .await
}

/// Checks both at once.
pub async fn check(db: &PgPool, redis: &crate::redis_pool::Pool) -> HealthReport {
    let (database, redis) = tokio::join!(check_database(db), check_redis(redis));
    HealthReport {
        database,
        redis,
        version: crate::VERSION,
    }
}
