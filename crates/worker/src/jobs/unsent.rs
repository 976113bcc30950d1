//! `rescue_unsent_sales`: no sale stays PENDING or SENDING for good. A PENDING sale older than the
//! sweep's age whose send job no longer lives (never enqueued, purged, DEAD, cancelled) gets a new
//! one through the outbox; a SENDING sale whose send lock is free (no attempt is sending it: its
//! worker died, or the job ended without an outcome) goes back to PENDING and is sent again. It
//! also opens (and closes) the `sunat_deadline` insights of sales near their sendBill deadline.

use faena_broker::{Broker, TaskState};
use faena_core::db::PgPool;
use faena_core::jobs::JobError;
use faena_core::TaskId;
use faena_shop::jobs::RescueUnsentArgs;
use faena_shop::sales;
use faena_shop::unsent;
use serde_json::{json, Value};

use crate::handlers::{Handlers, JobContext};
use crate::jobs::shop::connection;

fn db_err(e: impl std::fmt::Display) -> JobError {
    JobError::Retry(anyhow::anyhow!("database: {e}"))
}

fn redis_err(e: impl std::fmt::Display) -> JobError {
    JobError::Retry(anyhow::anyhow!("redis: {e}"))
}

/// Registers `rescue_unsent_sales`.
pub fn register(h: &mut Handlers, db: PgPool, broker: Broker, tz: chrono_tz::Tz) {
    h.register(move |a: RescueUnsentArgs, ctx: JobContext| {
        let (db, broker) = (db.clone(), broker.clone());
        async move { rescue(&db, &broker, a, &ctx, tz).await }
    });
}

/// Whether the send job `task` will still run or is running: waiting in the outbox, or PENDING,
/// SCHEDULED or RUNNING in Redis.
async fn lives(
    conn: &mut faena_core::db::PooledConnection,
    broker: &Broker,
    task: Option<&str>,
) -> Result<bool, JobError> {
    let Some(id) = task.and_then(|t| TaskId::parse(t).ok()) else {
        return Ok(false);
    };
    if faena_core::outbox::holds(conn, &id).await.map_err(db_err)? {
        return Ok(true);
    }
    let state = broker.task(&id).await.map_err(redis_err)?.map(|r| r.state);
    Ok(matches!(
        state,
        Some(TaskState::Pending | TaskState::Scheduled | TaskState::Running)
    ))
}

async fn queue_send(
    conn: &mut faena_core::db::PooledConnection,
    sale_id: i64,
) -> Result<TaskId, JobError> {
    sales::queue_send(conn, sale_id, None).await.map_err(db_err)
}

async fn rescue(
    db: &PgPool,
    broker: &Broker,
    a: RescueUnsentArgs,
    ctx: &JobContext,
    tz: chrono_tz::Tz,
) -> Result<Value, JobError> {
    let age = chrono::Duration::seconds(a.older_than_secs.unwrap_or(600).min(86_400 * 30) as i64);
    let limit = i64::from(a.limit.unwrap_or(200).clamp(1, 10_000));
    let before = chrono::Utc::now() - age;
    let mut conn = connection(db).await?;

    let mut sent = Vec::new();
    for s in unsent::pending_before(&mut conn, before, limit)
        .await
        .map_err(db_err)?
    {
        if !lives(&mut conn, broker, s.task_id.as_deref()).await? {
            let task = queue_send(&mut conn, s.sale_id).await?;
            tracing::warn!(sale_id = s.sale_id, task_id = %task, "PENDING sale had no live send job: queued one");
            sent.push(s.sale_id);
        }
    }

    let mut taken_back = Vec::new();
    let holder = format!("rescue:{}:{}", ctx.task_id, ctx.token);
    for s in unsent::sending_before(&mut conn, before, limit)
        .await
        .map_err(db_err)?
    {
        // The send job holds this lock from before it marks the sale SENDING until after it records
        // the outcome: getting it proves no attempt is inside a send of this sale.
        let lock = sales::send_lock(s.sale_id);
        if !broker
            .acquire_lock(&lock, &holder, std::time::Duration::from_secs(60))
            .await
            .map_err(redis_err)?
        {
            continue;
        }
        let result = async {
            if !unsent::take_back(&mut conn, s.sale_id).await.map_err(db_err)? {
                return Ok::<_, JobError>(());
            }
            tracing::warn!(sale_id = s.sale_id, task_id = ?s.task_id,
                "SENDING sale had no attempt sending it (its worker died or its job ended without an outcome): back to PENDING");
            taken_back.push(s.sale_id);
            if !lives(&mut conn, broker, s.task_id.as_deref()).await? {
                queue_send(&mut conn, s.sale_id).await?;
                sent.push(s.sale_id);
            }
            Ok(())
        }
        .await;
        if let Err(e) = broker.release_lock(&lock, &holder).await {
            tracing::warn!(sale_id = s.sale_id, error = %e, "could not release the sale's lock; it expires by itself");
        }
        result?;
    }
    let insights =
        faena_shop::insights::refresh_deadline_insights(&mut conn, chrono::Utc::now(), tz)
            .await
            .map_err(db_err)?;
    if insights.opened > 0 {
        tracing::warn!(
            opened = insights.opened,
            "sales not decided by SUNAT within 24 hours of their sendBill deadline"
        );
    }
    if !sent.is_empty() || !taken_back.is_empty() {
        tracing::info!(
            queued = sent.len(),
            taken_back = taken_back.len(),
            "rescued unsent sales"
        );
    }
    Ok(json!({
        "queued": sent, "taken_back": taken_back,
        "deadline_insights": { "opened": insights.opened, "closed": insights.closed },
    }))
}
