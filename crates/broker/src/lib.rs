//! faena-broker: Faena's own Redis queue backend.
//!
//! Enqueue (single and batch, with idempotency keys), leased fetch with blocking pickup, batched
//! acknowledgements, retries, snoozes, promotion of delayed jobs in bounded chunks, lease reaping,
//! a worker registry, queue statistics in O(1), pause/resume, retry/cancel/purge, and workflows
//! (chains, groups, callbacks; `workflow.rs`).
//! Every Redis key name lives in [`keys`]; every multi-step change is one Lua script in `src/lua/`.

mod check;
pub mod consume;
pub mod history;
pub mod keys;
mod leases;
pub mod partitions;
pub mod record;
pub mod relay;
mod scripts;
mod worker_api;
mod workflow;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::Utc;
use faena_core::jobs::{Catalog, EnqueueError, EnqueueRequest, NewTask};
use faena_core::redis_pool::{Pool, RedisTarget, SharedConnection};
use faena_core::settings::BrokerSettings;
use faena_core::{QueueName, TaskId};
use redis::AsyncCommands;

pub use keys::{GlobalKeys, QueueKeys};
pub use leases::{Admission, EventLimit};
pub use record::{QueueStats, TaskRecord, TaskState, WorkerInfo};
pub use worker_api::{
    Fetch, FinishReport, Lease, LeaseToken, LeasedJob, MaintainReport, Outcome, OutcomeKind,
    Waiter, WorkerRegistration,
};
pub use workflow::{StepState, WorkflowRecord, WorkflowStarted, WorkflowState, WorkflowStep};

/// The dedicated connection of a blocking wait ([`Broker::blocking_connection`]): to the server,
/// or on a cluster one that routes the wait to the node of its queue.
pub type BlockingConnection = faena_core::redis_pool::RedisConnection;

/// Jobs per enqueue script call; large batches are split so no call blocks Redis for long.
pub const ENQUEUE_CHUNK: usize = 1000;

/// An error of the broker boundary, with a stable [`BrokerError::code`].
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
    #[error(transparent)]
    Workflow(#[from] faena_core::workflow::WorkflowError),
    #[error(
        "Redis is unavailable: {0}. Check REDIS_URL and that Redis runs (`faena check-infra`)"
    )]
    Unavailable(String),
    #[error("Redis answered an error: {0}")]
    Redis(String),
    #[error("{0}")]
    Invalid(String),
}

impl BrokerError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Enqueue(e) => e.code(),
            Self::Workflow(e) => e.code(),
            Self::Unavailable(_) => "broker_unavailable",
            Self::Redis(_) => "broker_error",
            Self::Invalid(_) => "invalid_request",
        }
    }
}

/// A Redis that answers but cannot serve now: loading its data after a restart, a replica (after a
/// failover, until clients find the new primary), out of memory, busy with a script; Sentinels
/// that name no primary yet (the old one is down and none is promoted: a failover under way); or a
/// cluster with a slot unserved or a node the client cannot reach (a primary down until its
/// replica is promoted), or whose slots moved while the call was redirected (`MOVED`/`ASK` left
/// after the crate's retries: its slot map is being rebuilt during a failover).
fn serves_later(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind as S};
    matches!(
        e.kind(),
        ErrorKind::Server(
            S::BusyLoading
                | S::TryAgain
                | S::ClusterDown
                | S::MasterDown
                | S::ReadOnly
                | S::Moved
                | S::Ask
        ) | ErrorKind::MasterNameNotFoundBySentinel
            | ErrorKind::NoValidReplicasFoundBySentinel
            | ErrorKind::ClusterConnectionNotFound
    ) || matches!(
        e.code(),
        Some(
            "LOADING"
                | "READONLY"
                | "MASTERDOWN"
                | "OOM"
                | "BUSY"
                | "NOREPLICAS"
                | "TRYAGAIN"
                | "CLUSTERDOWN"
        )
    )
}

impl From<redis::RedisError> for BrokerError {
    fn from(e: redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || serves_later(&e)
        {
            Self::Unavailable(e.to_string())
        } else {
            Self::Redis(e.to_string())
        }
    }
}

impl From<redis::ParsingError> for BrokerError {
    fn from(e: redis::ParsingError) -> Self {
        Self::Redis(format!("unexpected reply: {e}"))
    }
}

impl From<faena_core::redis_pool::PoolError> for BrokerError {
    fn from(e: faena_core::redis_pool::PoolError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// Result alias of the broker.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

/// What `purge` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeTarget {
    /// Jobs waiting to run (pending and scheduled).
    Pending,
    /// DEAD jobs.
    Dead,
}

/// The broker: cheap to clone, shared by every task of a process.
#[derive(Clone)]
pub struct Broker {
    pool: Pool,
    /// One multiplexed, self-reconnecting connection for every hot-path command: concurrent callers
    /// are pipelined on it, and unlike a deadpool checkout it costs no PING per use. Under Sentinel
    /// it follows the primary through a failover.
    shared: SharedConnection,
    /// Where Redis is (one server or a Sentinel service): the blocking connections are made from it.
    target: RedisTarget,
    cfg: Arc<BrokerSettings>,
    catalog: Catalog,
    global: Arc<GlobalKeys>,
    /// The partition counts of partitioned queues, as last read (`partitions.rs`).
    parts: Arc<partitions::PartitionCache>,
    /// The caller's clock (ms): the system's, or one a test or a simulation sets
    /// ([`Broker::with_manual_clock`]).
    clock: Option<Arc<AtomicI64>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("prefix", &self.cfg.prefix)
            .finish()
    }
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Broker {
    /// A broker over a pool. The shared multiplexed connection and the dedicated blocking
    /// connections of workers go where the pool goes (`redis_url` is the one the pool was made
    /// from, kept for callers that built both); nothing connects until first use.
    pub fn new(pool: Pool, redis_url: &str, cfg: BrokerSettings, catalog: Catalog) -> Result<Self> {
        let target = faena_core::redis_pool::pool_target(&pool);
        debug_assert!(
            target.is_sentinel() == faena_core::redis_pool::is_sentinel_url(redis_url),
            "the pool and the URL name the same Redis"
        );
        let shared = target.shared()?;
        Ok(Self {
            pool,
            shared,
            target,
            global: Arc::new(GlobalKeys::new(&cfg.prefix)),
            parts: Arc::default(),
            cfg: Arc::new(cfg),
            catalog,
            clock: None,
        })
    }

    /// This broker reading the caller's clock from `clock` (ms since the epoch) instead of the
    /// system's: the times scripts write (`enqueued_at`, `started_at`, `finished_at`, due jobs) and
    /// the minute of the history's counters follow it. Leases stay on Redis's clock. For tests and
    /// simulations that replay minutes or days without waiting for them.
    pub fn with_manual_clock(mut self, clock: Arc<AtomicI64>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Now (ms) on the caller's clock.
    pub(crate) fn now_ms(&self) -> i64 {
        match &self.clock {
            Some(c) => c.load(Ordering::Relaxed),
            None => now_ms(),
        }
    }

    pub fn settings(&self) -> &BrokerSettings {
        &self.cfg
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn global_keys(&self) -> &GlobalKeys {
        &self.global
    }

    pub fn queue_keys(&self, queue: &QueueName) -> QueueKeys {
        QueueKeys::new(&self.cfg.prefix, queue)
    }

    pub(crate) async fn conn(&self) -> Result<SharedConnection> {
        Ok(self.shared.clone())
    }

    /// True when Redis is a cluster (`redis+cluster://`).
    pub fn is_cluster(&self) -> bool {
        self.target.is_cluster()
    }

    /// Runs commands grouped by hash slot: every command of a group touches keys of one slot (one
    /// queue's `{prefix:q:Q}`, or the process-wide `{prefix}`), and the replies come back grouped
    /// the same way. On one server (or a Sentinel primary) all groups go in one pipeline, one round
    /// trip; on a cluster each group is a pipeline of its own (the crate sends a pipeline whole to
    /// one node and refuses one that crosses slots), all sent at once. With `writes`, the writes
    /// must reach `FAENA_REDIS_MIN_REPLICAS` replicas: a `WAIT` ends the pipeline, or each one on a
    /// cluster (a `WAIT` vouches only for its own connection's writes, and each node has its own);
    /// `writes` names them in the error.
    ///
    /// Writes that wait go on a pooled connection of their own ([`Broker::waiting`]).
    pub(crate) async fn query_by_slot(
        &self,
        groups: Vec<Vec<redis::Cmd>>,
        writes: Option<&str>,
    ) -> Result<Vec<Vec<redis::Value>>> {
        if writes.is_some() && self.cfg.min_replicas > 0 {
            return self
                .waiting(|conn| self.by_slot(conn, groups, writes))
                .await;
        }
        self.by_slot(self.conn().await?, groups, writes).await
    }

    /// Runs `f` on a connection of the pool: a client blocked in `WAIT` holds back every later
    /// command of its connection, so a write that waits for replicas must not be sent on the
    /// shared one (every fetch, outcome and enqueue of the process would queue behind it). A
    /// connection that failed is dropped, not given back.
    pub(crate) async fn waiting<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(faena_core::redis_pool::RedisConnection) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let pooled = self.pool.get().await?;
        let result = f(pooled.clone()).await;
        if matches!(
            result,
            Err(BrokerError::Unavailable(_) | BrokerError::Redis(_))
        ) {
            faena_core::redis_pool::discard(pooled);
        }
        result
    }

    async fn by_slot<C>(
        &self,
        mut conn: C,
        groups: Vec<Vec<redis::Cmd>>,
        writes: Option<&str>,
    ) -> Result<Vec<Vec<redis::Value>>>
    where
        C: redis::aio::ConnectionLike + Clone + Send,
    {
        if !self.is_cluster() {
            let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
            let mut pipe = redis::pipe();
            for cmd in groups.into_iter().flatten() {
                pipe.add_command(cmd);
            }
            let waits = writes.is_some() && self.push_wait(&mut pipe);
            let mut replies: Vec<redis::Value> = scripts::query_pipe(&mut conn, &pipe).await?;
            if waits {
                self.check_replicated(replies.pop(), writes.unwrap_or("the write"))?;
            }
            let mut replies = replies.into_iter();
            return Ok(sizes
                .into_iter()
                .map(|n| replies.by_ref().take(n).collect())
                .collect());
        }
        let calls = groups.into_iter().map(|group| {
            let mut conn = conn.clone();
            async move {
                if group.is_empty() {
                    return Ok(Vec::new());
                }
                let mut pipe = redis::pipe();
                for cmd in group {
                    pipe.add_command(cmd);
                }
                let waits = writes.is_some() && self.push_wait(&mut pipe);
                let mut replies: Vec<redis::Value> = scripts::query_pipe(&mut conn, &pipe).await?;
                if waits {
                    self.check_replicated(replies.pop(), writes.unwrap_or("the write"))?;
                }
                Ok::<_, BrokerError>(replies)
            }
        });
        futures::future::try_join_all(calls).await
    }

    /// Appends `WAIT min_replicas timeout` to `pipe` when writes must reach replicas
    /// (`FAENA_REDIS_MIN_REPLICAS`); true when it did. In the same pipeline, so it is sent on the
    /// connection that carried the writes (a `WAIT` on another connection would vouch for nothing).
    pub(crate) fn push_wait(&self, pipe: &mut redis::Pipeline) -> bool {
        if self.cfg.min_replicas == 0 {
            return false;
        }
        pipe.cmd("WAIT")
            .arg(self.cfg.min_replicas)
            .arg(self.cfg.replica_timeout.as_millis().max(1) as u64);
        true
    }

    /// Reads `WAIT`'s answer: fewer replicas than asked makes the write unacknowledged (the api
    /// answers 503 and the client retries with its idempotency key; a worker keeps the outcome
    /// and records it again, which changes nothing the second time).
    pub(crate) fn check_replicated(&self, reply: Option<redis::Value>, what: &str) -> Result<()> {
        let acked: i64 = match reply {
            Some(v) => redis::from_redis_value(v)?,
            None => 0,
        };
        if acked < i64::from(self.cfg.min_replicas) {
            return Err(BrokerError::Unavailable(format!(
                "{what} reached {acked} of the {} replicas FAENA_REDIS_MIN_REPLICAS asks for within {} ms; it is on the primary but not acknowledged",
                self.cfg.min_replicas,
                self.cfg.replica_timeout.as_millis()
            )));
        }
        Ok(())
    }

    /// Validates and enqueues one job; returns its id (or the id of the job that already holds its
    /// idempotency key).
    pub async fn enqueue(&self, req: EnqueueRequest) -> Result<TaskId> {
        self.enqueue_for(req, None).await
    }

    /// Like [`Broker::enqueue`], recording the user on whose behalf the job is enqueued (the
    /// api's owner checks read it).
    pub async fn enqueue_for(&self, req: EnqueueRequest, owner: Option<String>) -> Result<TaskId> {
        let mut task = self.catalog.prepare(req, Utc::now())?;
        task.owner = owner;
        let mut ids = self.enqueue_prepared(vec![task]).await?;
        ids.pop()
            .ok_or_else(|| BrokerError::Redis("the enqueue script returned no id".into()))
    }

    /// Validates every request first (nothing is enqueued when one is invalid), then enqueues them all.
    pub async fn enqueue_many(&self, reqs: Vec<EnqueueRequest>) -> Result<Vec<TaskId>> {
        let now = Utc::now();
        let tasks = reqs
            .into_iter()
            .map(|r| self.catalog.prepare(r, now))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        self.enqueue_prepared(tasks).await
    }

    /// Enqueues validated tasks, grouped by queue, in chunks of [`ENQUEUE_CHUNK`] pipelined together.
    /// Returns the ids in the order of `tasks`.
    /// A job of a partitioned queue goes to one of its partitions (`partitions.rs`).
    pub async fn enqueue_prepared(&self, mut tasks: Vec<NewTask>) -> Result<Vec<TaskId>> {
        let now = self.now_ms();
        let counts = self.partition_counts().await?;
        let mut by_queue: HashMap<QueueName, Vec<usize>> = HashMap::new();
        for (i, t) in tasks.iter_mut().enumerate() {
            if !counts.is_empty() {
                t.queue = self.place(&counts, &t.queue, t.idempotency_key.as_deref());
            }
            by_queue.entry(t.queue.clone()).or_default().push(i);
        }
        // Registered on every enqueue, in the same round trip: a cache in the process would miss a
        // Redis that restarted empty, and lookups by id and new-queue discovery read this set.
        // (The set's slot is not the queues': a group of its own.)
        let names: Vec<&str> = by_queue.keys().map(QueueName::as_str).collect();
        let mut groups = vec![vec![redis::Cmd::sadd(&self.global.queues, names)]];
        let mut order: Vec<&[usize]> = Vec::new();
        let ttl = self.cfg.idempotency_ttl.as_secs().max(1);
        for (queue, idxs) in &by_queue {
            let k = self.queue_keys(queue);
            let mut group = Vec::new();
            for chunk in idxs.chunks(ENQUEUE_CHUNK) {
                let mut cmd =
                    scripts::evalsha(&scripts::ENQUEUE, &[&k.pending, &k.scheduled, &k.stats]);
                cmd.arg(now).arg(&k.base).arg(ttl).arg(queue.as_str());
                for &i in chunk {
                    let t = &tasks[i];
                    let run_at = t.run_at.map_or(0, |d| d.timestamp_millis());
                    cmd.arg(t.id.to_string())
                        .arg(t.kind)
                        .arg(&t.args)
                        .arg(t.max_attempts)
                        .arg(run_at)
                        .arg(t.idempotency_key.as_deref().unwrap_or(""))
                        .arg(t.owner.as_deref().unwrap_or(""));
                }
                group.push(cmd);
                order.push(chunk);
            }
            groups.push(group);
        }
        let replies: Vec<redis::Value> = self
            .query_by_slot(groups, Some("the enqueue"))
            .await?
            .into_iter()
            .skip(1)
            .flatten()
            .collect();
        let replies: Vec<Vec<String>> = redis::from_redis_value(redis::Value::Array(replies))?;
        let mut ids: Vec<TaskId> = tasks.iter().map(|t| t.id).collect();
        for (chunk, reply) in order.into_iter().zip(replies) {
            if reply.len() != chunk.len() {
                return Err(BrokerError::Redis(format!(
                    "the enqueue script returned {} ids for {} jobs",
                    reply.len(),
                    chunk.len()
                )));
            }
            for (&i, id) in chunk.iter().zip(reply) {
                // The script answers the id of the job that already holds the idempotency key,
                // or the new one: both were written by an enqueue, so both parse.
                ids[i] = TaskId::parse(&id)
                    .map_err(|e| BrokerError::Redis(format!("the enqueue script returned {e}")))?;
            }
        }
        Ok(ids)
    }

    /// Every queue that ever received a job, sorted.
    pub async fn queues(&self) -> Result<Vec<QueueName>> {
        let mut conn = self.conn().await?;
        let names: Vec<String> = conn.smembers(&self.global.queues).await?;
        let mut queues: Vec<QueueName> = names
            .iter()
            .filter_map(|n| QueueName::parse(n).ok())
            .collect();
        queues.sort();
        Ok(queues)
    }

    /// Looks a task up by id across the known queues.
    pub async fn task(&self, id: &TaskId) -> Result<Option<TaskRecord>> {
        let queues = self.queues().await?;
        if queues.is_empty() {
            return Ok(None);
        }
        let id = id.to_string();
        let groups = queues
            .iter()
            .map(|q| vec![redis::Cmd::hgetall(self.queue_keys(q).task(&id))])
            .collect();
        let replies = self.query_by_slot(groups, None).await?;
        for reply in replies.into_iter().flatten() {
            let h: HashMap<String, String> = redis::from_redis_value(reply)?;
            if let Some(rec) = TaskRecord::from_hash(&id, &h) {
                return Ok(Some(rec));
            }
        }
        Ok(None)
    }

    /// Counters of one queue: a handful of O(1) commands in one round trip.
    pub async fn stats(&self, queue: &QueueName) -> Result<QueueStats> {
        let k = self.queue_keys(queue);
        let mut conn = self.conn().await?;
        let (pending, scheduled, running, dead, paused, counters): (
            u64,
            u64,
            u64,
            u64,
            bool,
            HashMap<String, u64>,
        ) = redis::pipe()
            .llen(&k.pending)
            .zcard(&k.scheduled)
            .zcard(&k.leased)
            .zcard(&k.dead)
            .exists(&k.paused)
            .hgetall(&k.stats)
            .query_async(&mut conn)
            .await?;
        let c = |name: &str| counters.get(name).copied().unwrap_or(0);
        Ok(QueueStats {
            queue: queue.to_string(),
            paused,
            pending,
            scheduled,
            running,
            dead,
            succeeded: c("succeeded"),
            failed: c("failed"),
            retried: c("retried"),
            enqueued: c("enqueued"),
            stale: c("stale"),
        })
    }

    /// Counters of a queue as a whole: the sums over its partitions (paused when one is), under
    /// its own name; the counters of one partition for a `Q.N` name.
    pub async fn total_stats(&self, queue: &QueueName) -> Result<QueueStats> {
        let mut total = self.stats(queue).await?;
        for q in self.expand(queue).await?.iter().skip(1) {
            total.add(&self.stats(q).await?);
        }
        Ok(total)
    }

    /// Stats of every known queue.
    pub async fn all_stats(&self) -> Result<Vec<QueueStats>> {
        let mut out = Vec::new();
        for q in self.queues().await? {
            out.push(self.stats(&q).await?);
        }
        Ok(out)
    }

    /// Pauses a queue: it keeps accepting jobs and starts none until resumed.
    /// Every partition of a partitioned queue is paused (one partition, when named as `Q.N`).
    pub async fn pause(&self, queue: &QueueName) -> Result<()> {
        let parts = self.expand(queue).await?;
        let names: Vec<&str> = parts.iter().map(QueueName::as_str).collect();
        let mut groups = vec![vec![redis::Cmd::sadd(&self.global.queues, names)]];
        let at = Utc::now().timestamp_millis();
        for q in &parts {
            groups.push(vec![redis::Cmd::set(self.queue_keys(q).paused, at)]);
        }
        self.query_by_slot(groups, None).await?;
        Ok(())
    }

    /// Resumes a paused queue (every partition of it).
    pub async fn resume(&self, queue: &QueueName) -> Result<()> {
        let groups = self
            .expand(queue)
            .await?
            .iter()
            .map(|q| vec![redis::Cmd::del(self.queue_keys(q).paused)])
            .collect();
        self.query_by_slot(groups, None).await?;
        Ok(())
    }

    async fn admin(&self, action: &str, id: &TaskId) -> Result<Option<TaskState>> {
        let Some(rec) = self.task(id).await? else {
            return Ok(None);
        };
        let queue =
            QueueName::parse(&rec.queue).map_err(|e| BrokerError::Invalid(e.to_string()))?;
        let k = self.queue_keys(&queue);
        let mut conn = self.conn().await?;
        let mut cmd = scripts::evalsha(
            &scripts::ADMIN,
            &[&k.pending, &k.scheduled, &k.dead, &k.stats],
        );
        cmd.arg(action)
            .arg(id.to_string())
            .arg(&k.base)
            .arg(self.now_ms())
            .arg(self.cfg.result_ttl.as_secs());
        let state: String = scripts::run(&mut conn, &cmd).await?;
        Ok(TaskState::parse(&state))
    }

    /// Puts a DEAD or CANCELLED task back to PENDING with fresh attempts. Returns the state after
    /// the call (unchanged when the task was in another state), `None` for an unknown id.
    pub async fn retry(&self, id: &TaskId) -> Result<Option<TaskState>> {
        self.admin("retry", id).await
    }

    /// Cancels a PENDING or SCHEDULED task. Returns the state after the call.
    pub async fn cancel(&self, id: &TaskId) -> Result<Option<TaskState>> {
        self.admin("cancel", id).await
    }

    /// Puts up to `limit` DEAD tasks of a queue back to PENDING (oldest first); returns
    /// `(looked at, retried)`. Call it again until it looks at 0 to retry them all.
    /// Each partition of a partitioned queue gets up to `limit`.
    pub async fn retry_dead(&self, queue: &QueueName, limit: usize) -> Result<(u64, u64)> {
        let (mut looked, mut retried) = (0, 0);
        for q in self.expand(queue).await? {
            let (l, r) = self.retry_dead_in(&q, limit).await?;
            looked += l;
            retried += r;
        }
        Ok((looked, retried))
    }

    async fn retry_dead_in(&self, queue: &QueueName, limit: usize) -> Result<(u64, u64)> {
        let k = self.queue_keys(queue);
        let mut conn = self.conn().await?;
        let ids: Vec<String> = conn.zrange(&k.dead, 0, limit.max(1) as isize - 1).await?;
        if ids.is_empty() {
            return Ok((0, 0));
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            let mut cmd = scripts::evalsha(
                &scripts::ADMIN,
                &[&k.pending, &k.scheduled, &k.dead, &k.stats],
            );
            cmd.arg("retry")
                .arg(id)
                .arg(&k.base)
                .arg(self.now_ms())
                .arg(self.cfg.result_ttl.as_secs());
            pipe.add_command(cmd);
        }
        let states: Vec<String> = scripts::query_pipe(&mut conn, &pipe).await?;
        let retried = states
            .iter()
            .filter(|s| *s == TaskState::Pending.as_str())
            .count() as u64;
        // Ids whose record already expired are dropped from the dead set so the loop ends.
        let gone: Vec<&String> = ids
            .iter()
            .zip(&states)
            .filter(|(_, s)| *s == "MISSING")
            .map(|(id, _)| id)
            .collect();
        if !gone.is_empty() {
            let _: i64 = conn.zrem(&k.dead, gone).await?;
        }
        Ok((ids.len() as u64, retried))
    }

    /// Lists up to `limit` tasks of a queue in a state that has an index (pending, scheduled,
    /// running, dead), oldest first.
    /// A partitioned queue's are listed partition by partition, up to `limit` in all.
    pub async fn list(
        &self,
        queue: &QueueName,
        state: TaskState,
        limit: usize,
    ) -> Result<Vec<TaskRecord>> {
        let mut out = Vec::new();
        for q in self.expand(queue).await? {
            if out.len() >= limit.max(1) {
                break;
            }
            let left = limit.max(1) - out.len();
            out.extend(self.list_one(&q, state, left).await?);
        }
        Ok(out)
    }

    /// Lists the tasks of exactly the broker queue `queue` names (one partition of a partitioned
    /// queue), for loops over [`Broker::queues`], which name every partition already.
    pub async fn list_one(
        &self,
        queue: &QueueName,
        state: TaskState,
        limit: usize,
    ) -> Result<Vec<TaskRecord>> {
        let k = self.queue_keys(queue);
        let stop = limit.max(1) as isize - 1;
        let mut conn = self.conn().await?;
        let ids: Vec<String> = match state {
            TaskState::Pending => conn.lrange(&k.pending, 0, stop).await?,
            TaskState::Scheduled => conn.zrange(&k.scheduled, 0, stop).await?,
            TaskState::Running => conn.zrange(&k.leased, 0, stop).await?,
            TaskState::Dead => conn.zrange(&k.dead, 0, stop).await?,
            other => {
                return Err(BrokerError::Invalid(format!(
                    "tasks in state {other} are not indexed; list pending, scheduled, running or dead, or show one by id"
                )))
            }
        };
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(k.task(id));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        Ok(ids
            .iter()
            .zip(&hashes)
            .filter_map(|(id, h)| TaskRecord::from_hash(id, h))
            .filter(|r| r.state == state)
            .collect())
    }

    /// Removes pending and scheduled jobs, or DEAD jobs, of a queue; returns how many.
    /// Works in chunks of 1000 ids so it never blocks Redis for long.
    /// Every partition of a partitioned queue is purged.
    pub async fn purge(&self, queue: &QueueName, target: PurgeTarget) -> Result<u64> {
        let mut removed = 0;
        for q in self.expand(queue).await? {
            removed += self.purge_in(&q, target).await?;
        }
        Ok(removed)
    }

    async fn purge_in(&self, queue: &QueueName, target: PurgeTarget) -> Result<u64> {
        let k = self.queue_keys(queue);
        let mut conn = self.conn().await?;
        let mut removed = 0u64;
        // (source, how it pops, the states whose records go with it)
        let sources: Vec<(&str, &str, &[&str])> = match target {
            PurgeTarget::Pending => vec![
                (&k.pending, "list", &["PENDING"]),
                (&k.scheduled, "zset", &["SCHEDULED"]),
            ],
            PurgeTarget::Dead => vec![(&k.dead, "zset", &["DEAD"])],
        };
        for (source, how, states) in sources {
            loop {
                let mut cmd = scripts::evalsha(&scripts::PURGE, &[source]);
                cmd.arg(how).arg(&k.base).arg(1000).arg(states);
                let (taken, deleted): (u64, u64) = scripts::run(&mut conn, &cmd).await?;
                removed += deleted;
                if taken == 0 {
                    break;
                }
            }
        }
        Ok(removed)
    }

    /// Deletes every key under this broker's prefix. For tests and `faena` dev resets only.
    pub async fn destroy_all_keys(&self) -> Result<u64> {
        let mut conn = self.conn().await?;
        // On a cluster every primary is scanned; a DEL of many keys is split by slot by the crate.
        let keys = conn.scan(&self.global.all_pattern(), None).await?;
        for chunk in keys.chunks(1000) {
            let _: () = conn.del(chunk).await?;
        }
        Ok(keys.len() as u64)
    }

    /// A connection without a response timeout, for blocking commands (one per fetcher). On a
    /// cluster it routes each command to the node of its key, so a wait on a queue blocks on the
    /// node that holds the queue.
    pub async fn blocking_connection(&self) -> Result<BlockingConnection> {
        Ok(self.target.connect_blocking().await?)
    }
}
