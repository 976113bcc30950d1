//! The outbox relay: moves jobs written with `faena_core::outbox::enqueue_in_tx` from PostgreSQL to
//! Redis. Safe with any number of relays (rows are claimed with `FOR UPDATE SKIP LOCKED`) and across
//! crashes (a row is deleted in the transaction that enqueued it; one enqueued by a relay that died
//! before its commit is enqueued again under the same idempotency key, so the broker keeps one job).
//!
//! [`run`] wakes when this process commits an outbox write (`outbox::committed`: a sale made through
//! the api is relayed by the api within milliseconds) and polls every [`POLL`] for the writes of
//! other processes.

use std::time::Duration;

use diesel_async::AsyncConnection;
use faena_core::db::PgPool;
use faena_core::outbox;
use tokio::sync::watch;
use tracing::{debug, error, warn};

use crate::Broker;

/// Rows moved per transaction.
pub const BATCH: i64 = 500;
/// The relay's poll, for rows other processes wrote.
pub const POLL: Duration = Duration::from_millis(500);

/// Why a relay pass moved nothing.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Db(String),
    #[error(transparent)]
    Broker(#[from] crate::BrokerError),
}

impl From<diesel::result::Error> for RelayError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.to_string())
    }
}

/// One pass: claims up to [`BATCH`] rows, enqueues them, deletes them, in one transaction. Rows
/// the broker refuses for good (unknown kind) are parked with the reason. Returns the rows moved.
pub async fn relay_once(broker: &Broker, db: &PgPool) -> Result<usize, RelayError> {
    let mut conn = db.get().await.map_err(|e| RelayError::Db(e.to_string()))?;
    conn.transaction::<usize, RelayError, _>(async move |conn| {
        let (claimed, bad) = outbox::claim(conn, broker.catalog(), BATCH).await?;
        if !bad.is_empty() {
            for b in &bad {
                error!(seq = b.seq, error = %b.error, "outbox row cannot be enqueued; parked with its error");
            }
            outbox::park(conn, &bad).await?;
        }
        if claimed.is_empty() {
            return Ok(0);
        }
        let seqs: Vec<i64> = claimed.iter().map(|c| c.seq).collect();
        let tasks = claimed.into_iter().map(|c| c.task).collect();
        // Redis inside the PostgreSQL transaction: if Redis fails, the rows stay; if the commit
        // fails after Redis took them, the next pass re-sends and the idempotency key dedupes.
        broker.enqueue_prepared(tasks).await?;
        outbox::remove(conn, &seqs).await?;
        Ok(seqs.len())
    })
    .await
}

/// Relays until nothing is left (a backlog drains in batches).
pub async fn drain(broker: &Broker, db: &PgPool) -> Result<usize, RelayError> {
    let mut total = 0;
    loop {
        let n = relay_once(broker, db).await?;
        total += n;
        if n < BATCH as usize {
            return Ok(total);
        }
    }
}

/// Runs the relay until `stop` turns true: a pass at start, whenever this process commits an outbox
/// write ([`outbox::committed`]), and every [`POLL`] (writes of other processes). Errors are logged
/// and retried; nothing is lost meanwhile (the rows wait).
pub async fn run(broker: Broker, db: PgPool, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        match drain(&broker, &db).await {
            Ok(n) if n > 0 => {
                failures = 0;
                debug!(jobs = n, "relayed from the outbox");
            }
            Ok(_) => failures = 0,
            Err(e) => {
                failures += 1;
                // Every failure while it lasts would flood the log: the first, then every 30th.
                if failures == 1 || failures.is_multiple_of(30) {
                    warn!(error = %e, failures, "outbox relay failed; the jobs wait in PostgreSQL");
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = outbox::next_commit() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
