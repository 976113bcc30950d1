//! The transactional outbox: [`enqueue_in_tx`] writes a job into the `faena_outbox` table inside the
//! caller's PostgreSQL transaction, so the job exists once that transaction commits and never if it
//! rolls back. A relay (`faena_broker::relay`, run by the worker and the api) moves rows to Redis:
//! it claims them with `FOR UPDATE SKIP LOCKED` (several relays never take the same row), enqueues
//! them with the idempotency key `outbox:<task id>` (a relay that died after Redis but before its
//! commit re-sends, and the broker answers with the same job), then deletes them.
//!
//! Invariant: a row is only ever read by a relay and deleted in the transaction that enqueued it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::jobs::{Catalog, EnqueueError, EnqueueRequest, NewTask};
use crate::schema::faena_outbox;
use crate::{QueueName, TaskId};

/// Wakes this process's relay.
static COMMITTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Tells this process's relay that an outbox write has committed, so it moves it now rather than at
/// its next poll. Call it after the commit (a call before it only wakes the relay early).
///
/// In-process on purpose: a PostgreSQL `NOTIFY` in the writing transaction would wake relays in
/// other processes too, but PostgreSQL serializes the commits of every transaction that notifies
/// (measured: 16 clients inserting one row each, 6,140 commits/s without it, 1,245 with it), and a
/// sale is such a transaction. Other processes' relays find the row at their next poll.
pub fn committed() {
    COMMITTED.notify_one();
}

/// Resolves at the next [`committed`] of this process (or at once if one came since the last wait).
pub async fn next_commit() {
    COMMITTED.notified().await;
}

/// Why a job could not be written to the outbox.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The request itself is wrong (unknown kind, bad args, bad queue or time): the caller's 400.
    #[error(transparent)]
    Invalid(#[from] EnqueueError),
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
}

impl OutboxError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(e) => e.code(),
            Self::Db(_) => "database_error",
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = faena_outbox)]
struct Row<'a> {
    task_id: String,
    kind: &'a str,
    queue: &'a str,
    args: &'a str,
    run_at: Option<DateTime<Utc>>,
    max_attempts: i32,
    idempotency_key: Option<&'a str>,
    owner: Option<&'a str>,
}

/// Validates `req` against `catalog` and writes it to the outbox in the caller's transaction (call
/// it inside one: on its own it commits at once, which is still correct but gains nothing).
/// Returns the id the job will have in Redis. After the commit, call [`committed`] so this
/// process's relay moves it at once.
pub async fn enqueue_in_tx(
    conn: &mut AsyncPgConnection,
    catalog: &Catalog,
    req: EnqueueRequest,
    owner: Option<&str>,
) -> Result<TaskId, OutboxError> {
    let task = catalog.prepare(req, Utc::now())?;
    diesel::insert_into(faena_outbox::table)
        .values(Row {
            task_id: task.id.to_string(),
            kind: task.kind,
            queue: task.queue.as_str(),
            args: &task.args,
            run_at: task.run_at,
            max_attempts: i32::try_from(task.max_attempts).unwrap_or(i32::MAX),
            idempotency_key: task.idempotency_key.as_deref(),
            owner,
        })
        .execute(conn)
        .await?;
    Ok(task.id)
}

/// One claimed row, ready for the broker.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub seq: i64,
    pub task: NewTask,
}

/// A row the relay cannot turn into a job (its kind or queue unknown to this version).
#[derive(Debug, Clone)]
pub struct Unrelayable {
    pub seq: i64,
    pub error: String,
}

type RowTuple = (
    i64,
    String,
    String,
    String,
    String,
    Option<DateTime<Utc>>,
    i32,
    Option<String>,
    Option<String>,
);

/// Locks up to `limit` rows no other relay holds, oldest first, skipping rows parked with an error.
/// Call inside a transaction; the locks hold until it ends.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    catalog: &Catalog,
    limit: i64,
) -> Result<(Vec<Claimed>, Vec<Unrelayable>), diesel::result::Error> {
    let rows: Vec<RowTuple> = faena_outbox::table
        .filter(faena_outbox::last_error.is_null())
        .order(faena_outbox::seq.asc())
        .limit(limit)
        .select((
            faena_outbox::seq,
            faena_outbox::task_id,
            faena_outbox::kind,
            faena_outbox::queue,
            faena_outbox::args,
            faena_outbox::run_at,
            faena_outbox::max_attempts,
            faena_outbox::idempotency_key,
            faena_outbox::owner,
        ))
        .for_update()
        .skip_locked()
        .load(conn)
        .await?;
    let mut ok = Vec::with_capacity(rows.len());
    let mut bad = Vec::new();
    for (seq, task_id, kind, queue, args, run_at, max_attempts, key, owner) in rows {
        let parsed = (|| -> Result<NewTask, String> {
            let spec = catalog
                .get(&kind)
                .ok_or_else(|| format!("kind `{kind}` is unknown to this version"))?;
            let id = TaskId::parse(&task_id).map_err(|e| format!("task id: {e}"))?;
            let queue = QueueName::parse(&queue).map_err(|e| format!("queue: {e}"))?;
            Ok(NewTask {
                id,
                kind: spec.name,
                queue,
                args,
                run_at,
                max_attempts: u32::try_from(max_attempts).unwrap_or(1).max(1),
                // A relay that enqueued and died before deleting re-sends: this key makes the
                // broker answer with the job it already has.
                idempotency_key: Some(key.unwrap_or_else(|| format!("outbox:{task_id}"))),
                owner,
            })
        })();
        match parsed {
            Ok(task) => ok.push(Claimed { seq, task }),
            Err(error) => bad.push(Unrelayable { seq, error }),
        }
    }
    Ok((ok, bad))
}

/// Deletes relayed rows (in the claiming transaction).
pub async fn remove(
    conn: &mut AsyncPgConnection,
    seqs: &[i64],
) -> Result<(), diesel::result::Error> {
    diesel::delete(faena_outbox::table.filter(faena_outbox::seq.eq_any(seqs)))
        .execute(conn)
        .await?;
    Ok(())
}

/// Parks rows the relay cannot enqueue, with the reason, so they stop blocking the others.
pub async fn park(
    conn: &mut AsyncPgConnection,
    rows: &[Unrelayable],
) -> Result<(), diesel::result::Error> {
    for r in rows {
        diesel::update(faena_outbox::table.find(r.seq))
            .set(faena_outbox::last_error.eq(&r.error))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Whether the job `id` is still waiting in the outbox (written, not yet in Redis).
pub async fn holds(
    conn: &mut AsyncPgConnection,
    id: &TaskId,
) -> Result<bool, diesel::result::Error> {
    diesel::select(diesel::dsl::exists(
        faena_outbox::table.filter(faena_outbox::task_id.eq(id.to_string())),
    ))
    .get_result(conn)
    .await
}

/// Rows waiting, and rows parked with an error.
pub async fn backlog(conn: &mut AsyncPgConnection) -> Result<(i64, i64), diesel::result::Error> {
    let waiting = faena_outbox::table
        .filter(faena_outbox::last_error.is_null())
        .count()
        .get_result(conn)
        .await?;
    let parked = faena_outbox::table
        .filter(faena_outbox::last_error.is_not_null())
        .count()
        .get_result(conn)
        .await?;
    Ok((waiting, parked))
}
