//! Job handlers by kind name, and the built-in diagnostic kinds (`noop`, `sleep`, `fail`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use faena_core::db::PgPool;
use faena_core::jobs::{
    parse_args, CleanupTokensArgs, FailArgs, JobArgs, JobError, NoopArgs, ReleaseExpiredArgs,
    SleepArgs,
};
use serde_json::Value;

/// What a handler learns about the attempt it runs.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub task_id: String,
    pub kind: String,
    pub queue: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
    pub max_attempts: u32,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Value, JobError>> + Send>>;
type ErasedHandler = Arc<dyn Fn(Value, JobContext) -> Result<BoxFuture, JobError> + Send + Sync>;

/// The handlers a worker runs, by kind name.
#[derive(Clone, Default)]
pub struct Handlers {
    map: HashMap<&'static str, ErasedHandler>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kinds: Vec<_> = self.map.keys().collect();
        kinds.sort();
        f.debug_struct("Handlers").field("kinds", &kinds).finish()
    }
}

impl Handlers {
    /// Registers a handler for the kind of `A`. Args that do not decode into `A` make the job DEAD
    /// with a decode error: they would not decode on a retry either.
    pub fn register<A, F, Fut>(&mut self, handler: F) -> &mut Self
    where
        A: JobArgs + Send + 'static,
        F: Fn(A, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, JobError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: ErasedHandler = Arc::new(move |value, ctx| {
            let args: A = parse_args(&value).map_err(|e| {
                JobError::Permanent(anyhow::anyhow!(
                    "decode error: args do not match kind `{}`: {e}",
                    A::KIND
                ))
            })?;
            let handler = Arc::clone(&handler);
            Ok(Box::pin(async move { handler(args, ctx).await }) as BoxFuture)
        });
        self.map.insert(A::KIND, erased);
        self
    }

    /// Starts the handler of `kind` with raw args; `None` when no handler is registered for it.
    pub(crate) fn start(
        &self,
        kind: &str,
        args: Value,
        ctx: JobContext,
    ) -> Option<Result<BoxFuture, JobError>> {
        self.map.get(kind).map(|h| h(args, ctx))
    }

    /// The registered kind names.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut k: Vec<_> = self.map.keys().copied().collect();
        k.sort_unstable();
        k
    }

    /// Every kind the worker process runs: [`Handlers::all`] plus the SUNAT, report and cleanup jobs.
    pub fn production(
        db: PgPool,
        broker: faena_broker::Broker,
        settings: &faena_core::Settings,
    ) -> Self {
        let mut h = Self::all(db.clone());
        Arc::new(crate::sunat_job::SunatJobs::from_settings(
            db.clone(),
            broker,
            settings,
        ))
        .register(&mut h);
        Arc::new(crate::report_jobs::ReportJobs::from_settings(db, settings)).register(&mut h);
        h
    }

    /// The built-in kinds plus the jobs that need only the database (shop, tokens).
    pub fn all(db: PgPool) -> Self {
        let mut h = Self::builtin();
        let tokens_db = db.clone();
        h.register(move |_: CleanupTokensArgs, _ctx| {
            let db = tokens_db.clone();
            async move {
                let mut conn = db.get().await.map_err(|e| {
                    JobError::Retry(anyhow::anyhow!("the database is unavailable: {e}"))
                })?;
                let deleted = faena_core::auth::cleanup_expired_tokens(&mut conn)
                    .await
                    .map_err(|e| JobError::Retry(anyhow::anyhow!(e)))?;
                tracing::info!(deleted, "deleted expired and revoked refresh tokens");
                Ok(serde_json::json!({ "deleted": deleted }))
            }
        });
        h.register(move |a: ReleaseExpiredArgs, _ctx| {
            let db = db.clone();
            async move {
                let mut conn = db.get().await.map_err(|e| {
                    JobError::Retry(anyhow::anyhow!("the database is unavailable: {e}"))
                })?;
                let batch = i64::from(a.batch_size.unwrap_or(500).clamp(1, 10_000));
                let report = faena_core::shop::release_expired(&mut conn, batch)
                    .await
                    .map_err(|e| JobError::Retry(anyhow::anyhow!(e)))?;
                tracing::info!(
                    released = report.released,
                    units = report.units,
                    "released expired reservations"
                );
                serde_json::to_value(report).map_err(|e| JobError::Permanent(e.into()))
            }
        });
        h
    }

    /// The built-in diagnostic kinds.
    pub fn builtin() -> Self {
        let mut h = Self::default();
        h.register(|NoopArgs(v): NoopArgs, _ctx| async move { Ok(v) });
        h.register(|a: SleepArgs, _ctx| async move {
            tokio::time::sleep(Duration::from_millis(a.ms)).await;
            Ok(serde_json::json!({ "slept_ms": a.ms }))
        });
        h.register(|a: FailArgs, ctx: JobContext| async move {
            if ctx.attempt <= a.fail_times {
                let err = anyhow::anyhow!(
                    "fail: attempt {} of the first {} that fail",
                    ctx.attempt,
                    a.fail_times
                );
                return Err(if a.permanent {
                    JobError::Permanent(err)
                } else {
                    JobError::Retry(err)
                });
            }
            Ok(serde_json::json!({ "succeeded_on_attempt": ctx.attempt }))
        });
        h
    }
}
