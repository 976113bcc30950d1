//! The shop's jobs that need only the database: `release_expired_reservations` and
//! `cleanup_expired_tokens`.

use faena_core::db::PgPool;
use faena_core::jobs::JobError;
use faena_shop::jobs::{CleanupTokensArgs, ReleaseExpiredArgs};

use crate::handlers::Handlers;

/// A connection, or a retryable error: the database being away is temporary.
pub(crate) async fn connection(db: &PgPool) -> Result<faena_core::db::PooledConnection, JobError> {
    db.get()
        .await
        .map_err(|e| JobError::Retry(anyhow::anyhow!("the database is unavailable: {e}")))
}

/// Registers the shop's database jobs.
pub fn register(h: &mut Handlers, db: PgPool) {
    let tokens_db = db.clone();
    h.register(move |_: CleanupTokensArgs, _ctx| {
        let db = tokens_db.clone();
        async move {
            let mut conn = connection(&db).await?;
            let deleted = faena_shop::auth::cleanup_expired_tokens(&mut conn)
                .await
                .map_err(|e| JobError::Retry(anyhow::anyhow!(e)))?;
            let sessions = faena_shop::sessions::cleanup_expired(&mut conn)
                .await
                .map_err(|e| JobError::Retry(anyhow::anyhow!(e)))?;
            tracing::info!(
                deleted,
                sessions,
                "deleted expired and revoked refresh tokens, and expired console sessions"
            );
            Ok(serde_json::json!({ "deleted": deleted, "sessions": sessions }))
        }
    });
    h.register(move |a: ReleaseExpiredArgs, _ctx| {
        let db = db.clone();
        async move {
            let mut conn = connection(&db).await?;
            let batch = i64::from(a.batch_size.unwrap_or(500).clamp(1, 10_000));
            let report = faena_shop::shop::release_expired(&mut conn, batch)
                .await
                .map_err(|e| JobError::Retry(anyhow::anyhow!(e)))?;
            tracing::info!(
                released = report.released,
                units = %faena_shop::quantity::format(&report.units),
                "released expired reservations"
            );
            serde_json::to_value(report).map_err(|e| JobError::Permanent(e.into()))
        }
    });
}
