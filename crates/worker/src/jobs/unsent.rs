//! `rescue_unsent_sales`: no sale or credit note stays PENDING or SENDING for good. A PENDING one
//! older than the sweep's age whose send job no longer lives (never enqueued, purged, DEAD,
//! cancelled) gets a new one through the outbox; a SENDING one whose send lock is free (no attempt
//! is sending it: its worker died, or the job ended without an outcome) goes back to PENDING and
//! is sent again. Sales and credit notes go through the same steps
//! ([`faena_shop::sendable::Sendable`]). It also opens (and closes) the `sunat_deadline` insights
//! of sales near their sendBill deadline.

use faena_broker::{Broker, TaskState};
use faena_core::db::PgPool;
use faena_core::jobs::JobError;
use faena_core::TaskId;
use faena_shop::jobs::RescueUnsentArgs;
use faena_shop::sendable::Sendable;
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

/// What one sweep did to one kind of document: ids queued a send, ids taken back from SENDING.
#[derive(Debug, Default)]
struct Rescued {
    queued: Vec<i64>,
    taken_back: Vec<i64>,
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
    let holder = format!("rescue:{}:{}", ctx.task_id, ctx.token);
    let sales = rescue_kind(&mut conn, broker, Sendable::Sale, before, limit, &holder).await?;
    let notes = rescue_kind(
        &mut conn,
        broker,
        Sendable::CreditNote,
        before,
        limit,
        &holder,
    )
    .await?;
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
    Ok(json!({
        "queued": sales.queued, "taken_back": sales.taken_back,
        "credit_notes": { "queued": notes.queued, "taken_back": notes.taken_back },
        "deadline_insights": { "opened": insights.opened, "closed": insights.closed },
    }))
}

/// The sweep's steps for one kind of document.
async fn rescue_kind(
    conn: &mut faena_core::db::PooledConnection,
    broker: &Broker,
    doc: Sendable,
    before: chrono::DateTime<chrono::Utc>,
    limit: i64,
    holder: &str,
) -> Result<Rescued, JobError> {
    let what = doc.what();
    let mut done = Rescued::default();
    for s in doc
        .pending_before(conn, before, limit)
        .await
        .map_err(db_err)?
    {
        if !lives(conn, broker, s.task_id.as_deref()).await? {
            let task = faena_shop::resend::queue_send(doc, conn, s.id)
                .await
                .map_err(db_err)?;
            tracing::warn!(what, id = s.id, task_id = %task, "PENDING {what} had no live send job: queued one");
            done.queued.push(s.id);
        }
    }
    for s in doc
        .sending_before(conn, before, limit)
        .await
        .map_err(db_err)?
    {
        // The send job holds this lock from before it marks the row SENDING until after it
        // records the outcome: getting it proves no attempt is inside a send of this row.
        let lock = doc.send_lock(s.id);
        if !broker
            .acquire_lock(&lock, holder, std::time::Duration::from_secs(60))
            .await
            .map_err(redis_err)?
        {
            continue;
        }
        let result = async {
            if !doc.take_back(conn, s.id).await.map_err(db_err)? {
                return Ok::<_, JobError>(());
            }
            tracing::warn!(what, id = s.id, task_id = ?s.task_id,
                "SENDING {what} had no attempt sending it (its worker died or its job ended without an outcome): back to PENDING");
            done.taken_back.push(s.id);
            if !lives(conn, broker, s.task_id.as_deref()).await? {
                faena_shop::resend::queue_send(doc, conn, s.id).await.map_err(db_err)?;
                done.queued.push(s.id);
            }
            Ok(())
        }
        .await;
        if let Err(e) = broker.release_lock(&lock, holder).await {
            tracing::warn!(what, id = s.id, error = %e, "could not release the {what}'s lock; it expires by itself");
        }
        result?;
    }
    if !done.queued.is_empty() || !done.taken_back.is_empty() {
        tracing::info!(
            what,
            queued = done.queued.len(),
            taken_back = done.taken_back.len(),
            "rescued unsent documents"
        );
    }
    Ok(done)
}
