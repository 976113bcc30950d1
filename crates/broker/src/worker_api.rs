//! The worker's side of the broker: leased fetch, blocking wait, batched outcomes, lease renewal,
//! upkeep (promotion, reaping), release on shutdown, and the worker registry.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use faena_core::jobs::ErrorClass;
use faena_core::{QueueName, TaskId};
use redis::AsyncCommands;

use crate::record::WorkerInfo;
use crate::{now_ms, scripts, Broker, Result};

/// The fencing token of one lease: unique in its queue for ever, so an attempt that lost its lease
/// (paused past it, then leased again elsewhere) cannot finish, renew or give back the new one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct LeaseToken(pub u64);

impl std::fmt::Display for LeaseToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl redis::ToRedisArgs for LeaseToken {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + redis::RedisWrite,
    {
        out.write_arg_fmt(self.0);
    }
}

/// One lease a worker holds: the job and the token of this attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    pub id: TaskId,
    pub token: LeaseToken,
}

/// A job leased to this worker.
#[derive(Debug, Clone)]
pub struct LeasedJob {
    pub id: TaskId,
    /// This attempt's fencing token: its outcome, renewals and give-back must carry it.
    pub token: LeaseToken,
    pub kind: String,
    pub queue: QueueName,
    /// The args as stored (JSON text).
    pub args: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
    pub max_attempts: u32,
    /// When it was enqueued (ms since the epoch).
    pub enqueued_at_ms: i64,
    /// Its enqueue-to-start latency (ms): from when it became due (enqueued, or its `next_run_at`
    /// for a delayed job or a retry) to this lease, on the worker's clock (never negative).
    pub latency_ms: u64,
}

/// The answer of a fetch.
#[derive(Debug)]
pub enum Fetch {
    /// The queue is paused: nothing was leased.
    Paused,
    /// Zero or more jobs, now RUNNING and leased to the worker.
    Jobs(Vec<LeasedJob>),
}

/// How one attempt ended.
#[derive(Debug, Clone)]
pub enum OutcomeKind {
    Succeeded {
        result: String,
    },
    Retry {
        error: String,
        class: ErrorClass,
        at: DateTime<Utc>,
    },
    Dead {
        error: String,
        class: ErrorClass,
    },
    Snooze {
        until: DateTime<Utc>,
    },
}

/// The outcome of one attempt of one job. Made by [`LeasedJob::outcome`], which carries what the
/// queue's history counts it under.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: TaskId,
    /// The token of the lease the attempt ran under; a stale one is not recorded.
    pub token: LeaseToken,
    pub kind: OutcomeKind,
    /// The job's kind, as its lease had it (the history's per-kind counters).
    pub job_kind: String,
    /// The history's latency bucket of the attempt ([`crate::history::latency_bucket`]).
    pub latency_bucket: u32,
}

/// What [`Broker::finish`] recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinishReport {
    pub succeeded: u64,
    pub retried: u64,
    pub dead: u64,
    /// Outcomes of attempts that no longer held their job's latest lease: ignored. Each with the
    /// token the job has now (`None` when its record is gone).
    pub stale: Vec<(TaskId, Option<LeaseToken>)>,
}

impl LeasedJob {
    /// The lease this attempt holds.
    pub fn lease(&self) -> Lease {
        Lease {
            id: self.id,
            token: self.token,
        }
    }

    /// This attempt's outcome, to give [`Broker::finish`].
    pub fn outcome(&self, kind: OutcomeKind) -> Outcome {
        Outcome::of(self.lease(), &self.kind, self.latency_ms, kind)
    }
}

impl Outcome {
    /// The outcome `kind` of the attempt holding `lease` of a job of `job_kind` that started
    /// `latency_ms` after it was due (the facts its [`LeasedJob`] has).
    pub fn of(lease: Lease, job_kind: &str, latency_ms: u64, kind: OutcomeKind) -> Self {
        Self {
            id: lease.id,
            token: lease.token,
            kind,
            job_kind: job_kind.to_owned(),
            latency_bucket: crate::history::latency_bucket(latency_ms),
        }
    }
}

/// What one upkeep pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintainReport {
    pub promoted: u64,
    pub requeued: u64,
    pub dead: u64,
    /// When the next scheduled job is due (ms), if any.
    pub next_due_ms: Option<i64>,
    /// Leases moved forward because no upkeep of the queue ran for longer than
    /// [`Broker::stall_after`] (Redis paused, or every worker stopped): that time does not count.
    pub shifted: u64,
}

/// A worker process as it registers itself.
#[derive(Debug, Clone)]
pub struct WorkerRegistration {
    /// `host:pid:random`: unique across restarts, so a restarted worker never collides with its earlier life.
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub queues: Vec<QueueName>,
    pub concurrency: u32,
    pub started_at: DateTime<Utc>,
}

impl WorkerRegistration {
    pub fn new(queues: Vec<QueueName>, concurrency: u32) -> Self {
        let host = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into());
        let pid = std::process::id();
        let suffix = ulid::Ulid::new().to_string()[20..].to_ascii_lowercase();
        Self {
            id: format!("{host}:{pid}:{suffix}"),
            host,
            pid,
            queues,
            concurrency,
            started_at: Utc::now(),
        }
    }
}

/// A fetcher's dedicated blocking connection, opened on first use and reopened after an error.
#[derive(Default)]
pub struct Waiter {
    conn: Option<crate::BlockingConnection>,
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiter")
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

/// How long a worker may miss heartbeats before its parked ids are taken back.
pub const WORKER_STALE_AFTER: Duration = Duration::from_secs(30);

impl Broker {
    /// A gap between two upkeep passes of a queue longer than this (half the lease) is a stall, not
    /// time the holders of its leases failed to renew in.
    pub fn stall_after(&self) -> Duration {
        self.cfg.lease / 2
    }

    /// Leases up to `n` jobs of `queue` to `worker`.
    pub async fn fetch(&self, queue: &QueueName, worker: &str, n: usize) -> Result<Fetch> {
        let k = self.queue_keys(queue);
        let now = self.now_ms();
        let inflight = k.inflight(worker);
        let mut cmd = scripts::evalsha(
            &scripts::FETCH,
            &[&k.pending, &k.leased, &inflight, &k.paused, &k.stats],
        );
        cmd.arg(now)
            .arg(self.cfg.lease.as_millis() as u64)
            .arg(n.max(1))
            .arg(worker)
            .arg(&k.base);
        let mut conn = self.conn().await?;
        let reply: redis::Value = scripts::run(&mut conn, &cmd).await?;
        match &reply {
            redis::Value::SimpleString(s) if s == "PAUSED" => return Ok(Fetch::Paused),
            redis::Value::Okay => return Ok(Fetch::Paused),
            _ => {}
        }
        let flat: Vec<redis::Value> = redis::from_redis_value(reply)?;
        let mut jobs = Vec::with_capacity(flat.len() / 8);
        let text = |v: &redis::Value| -> String {
            redis::from_redis_value_ref::<String>(v).unwrap_or_default()
        };
        let num = |v: &redis::Value| -> i64 { redis::from_redis_value_ref::<i64>(v).unwrap_or(0) };
        for c in flat.chunks_exact(8) {
            let raw = text(&c[0]);
            let Ok(id) = TaskId::parse(&raw) else {
                // Only an enqueue writes ids; one that does not parse is foreign data. Its lease
                // expires and upkeep deals with it like any lost job.
                tracing::error!(queue = %queue, id = %raw, "a leased id is not a task id; skipped");
                continue;
            };
            jobs.push(LeasedJob {
                id,
                kind: text(&c[1]),
                queue: queue.clone(),
                args: text(&c[2]),
                attempt: num(&c[3]) as u32,
                max_attempts: num(&c[4]) as u32,
                enqueued_at_ms: num(&c[5]),
                token: LeaseToken(num(&c[6]) as u64),
                // Started at `now` (fetch.lua writes it as started_at); due at the later of
                // enqueued_at and next_run_at.
                latency_ms: (now - num(&c[5]).max(num(&c[7]))).max(0) as u64,
            });
        }
        Ok(Fetch::Jobs(jobs))
    }

    /// Blocks up to `timeout` until a job is pending, parking its id in the worker's inflight list
    /// (the next [`Broker::fetch`] leases it). Uses `conn`, a connection from
    /// [`Broker::blocking_connection`]. Returns true when an id was parked.
    pub async fn wait_for_job(
        &self,
        conn: &mut crate::BlockingConnection,
        queue: &QueueName,
        worker: &str,
        timeout: Duration,
    ) -> Result<bool> {
        let k = self.queue_keys(queue);
        let moved: Option<String> = redis::cmd("BLMOVE")
            .arg(&k.pending)
            .arg(k.inflight(worker))
            .arg("LEFT")
            .arg("RIGHT")
            .arg(timeout.as_secs_f64())
            .query_async(conn)
            .await?;
        Ok(moved.is_some())
    }

    /// [`Broker::wait_for_job`] over the connection kept in `waiter`: opens it when needed, and drops
    /// it after an error so the next call reconnects (the caller pauses a little before that).
    pub async fn wait_for_job_with(
        &self,
        waiter: &mut Waiter,
        queue: &QueueName,
        worker: &str,
        timeout: Duration,
    ) -> Result<bool> {
        let conn = match waiter.conn.as_mut() {
            Some(c) => c,
            None => waiter.conn.insert(self.blocking_connection().await?),
        };
        let parked = self.wait_for_job(conn, queue, worker, timeout).await;
        if parked.is_err() {
            waiter.conn = None;
        }
        parked
    }

    /// Records a batch of outcomes of one queue in one script call. Outcomes whose token is not
    /// their job's latest lease change nothing; the report lists them.
    pub async fn finish(&self, queue: &QueueName, outcomes: &[Outcome]) -> Result<FinishReport> {
        if outcomes.is_empty() {
            return Ok(FinishReport::default());
        }
        let k = self.queue_keys(queue);
        let mut cmd = scripts::evalsha(
            &scripts::FINISH,
            &[&k.leased, &k.scheduled, &k.dead, &k.stats, &k.pending],
        );
        cmd.arg(self.now_ms())
            .arg(self.cfg.result_ttl.as_secs())
            .arg(self.cfg.dead_ttl.as_secs())
            .arg(&k.base);
        // Grouped by the job's kind and latency bucket: finish.lua counts the history once per
        // group (a batch of one kind of short jobs is a few groups), not once per outcome.
        let mut sorted: Vec<&Outcome> = outcomes.iter().collect();
        sorted.sort_by(|a, b| {
            (a.job_kind.as_str(), a.latency_bucket).cmp(&(b.job_kind.as_str(), b.latency_bucket))
        });
        for group in
            sorted.chunk_by(|a, b| a.job_kind == b.job_kind && a.latency_bucket == b.latency_bucket)
        {
            cmd.arg(&group[0].job_kind)
                .arg(group[0].latency_bucket)
                .arg(group.len());
            for o in group {
                let (code, text, class, at): (&str, &str, &str, i64) = match &o.kind {
                    OutcomeKind::Succeeded { result } => ("S", result, "", 0),
                    OutcomeKind::Retry { error, class, at } => {
                        ("R", error, class.as_str(), at.timestamp_millis())
                    }
                    OutcomeKind::Dead { error, class } => ("D", error, class.as_str(), 0),
                    OutcomeKind::Snooze { until } => ("Z", "", "", until.timestamp_millis()),
                };
                cmd.arg(o.id)
                    .arg(o.token)
                    .arg(code)
                    .arg(text)
                    .arg(class)
                    .arg(at);
            }
        }
        let reply: Vec<String> = if self.cfg.min_replicas == 0 {
            scripts::run(&mut self.conn().await?, &cmd).await?
        } else {
            // On a connection of its own: the `WAIT` would hold back the shared one.
            let mut pipe = redis::pipe();
            pipe.add_command(cmd);
            self.push_wait(&mut pipe);
            self.waiting(|mut conn| async move {
                let (reply, acked): (Vec<String>, redis::Value) =
                    scripts::query_pipe(&mut conn, &pipe).await?;
                self.check_replicated(Some(acked), "the outcome")?;
                Ok(reply)
            })
            .await?
        };
        let num = |i: usize| reply.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
        let stale = reply
            .get(3..)
            .unwrap_or_default()
            .chunks_exact(2)
            .filter_map(|p| {
                let id = TaskId::parse(&p[0]).ok()?;
                Some((id, p[1].parse().ok().map(LeaseToken)))
            })
            .collect();
        Ok(FinishReport {
            succeeded: num(0),
            retried: num(1),
            dead: num(2),
            stale,
        })
    }

    /// Extends the leases a worker holds, each only while it is its job's latest lease and still
    /// leased. Returns the ids whose lease is lost (expired and taken back, or leased again): their
    /// runners must stop without acknowledging.
    pub async fn renew(&self, queue: &QueueName, leases: &[Lease]) -> Result<Vec<TaskId>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let k = self.queue_keys(queue);
        let mut cmd = scripts::evalsha(&scripts::RENEW, &[&k.leased, &k.stats]);
        cmd.arg(self.cfg.lease.as_millis() as u64).arg(&k.base);
        for l in leases {
            cmd.arg(l.id).arg(l.token);
        }
        let mut conn = self.conn().await?;
        let lost: Vec<String> = scripts::run(&mut conn, &cmd).await?;
        Ok(lost
            .iter()
            .filter_map(|id| TaskId::parse(id).ok())
            .collect())
    }

    /// One upkeep pass over a queue: promotes due jobs, takes back expired leases, trims old DEAD ids;
    /// at most `limit` of each, so the caller loops while a pass was full.
    pub async fn maintain(&self, queue: &QueueName, limit: usize) -> Result<MaintainReport> {
        let k = self.queue_keys(queue);
        let mut cmd = scripts::evalsha(
            &scripts::MAINTAIN,
            &[&k.pending, &k.scheduled, &k.leased, &k.dead, &k.stats],
        );
        cmd.arg(self.now_ms())
            .arg(limit.max(1))
            .arg(&k.base)
            .arg(self.cfg.dead_ttl.as_secs())
            .arg(self.stall_after().as_millis() as u64);
        let mut conn = self.conn().await?;
        let (promoted, requeued, dead, next, shifted): (u64, u64, u64, i64, u64) =
            scripts::run(&mut conn, &cmd).await?;
        Ok(MaintainReport {
            promoted,
            requeued,
            dead,
            next_due_ms: (next >= 0).then_some(next),
            shifted,
        })
    }

    /// Gives back the leases `worker` holds and will not finish (never started, or aborted at its
    /// stop timeout), each only while it is its job's latest lease, and any id parked for it.
    pub async fn release(&self, queue: &QueueName, worker: &str, leases: &[Lease]) -> Result<u64> {
        let k = self.queue_keys(queue);
        let inflight = k.inflight(worker);
        let mut cmd = scripts::evalsha(&scripts::RELEASE, &[&k.pending, &k.leased, &inflight]);
        cmd.arg(&k.base);
        for l in leases {
            cmd.arg(l.id).arg(l.token);
        }
        let mut conn = self.conn().await?;
        Ok(scripts::run(&mut conn, &cmd).await?)
    }

    /// Registers or refreshes a worker in the registry with its running count.
    pub async fn heartbeat(&self, w: &WorkerRegistration, running: usize) -> Result<()> {
        let key = self.global.worker(&w.id);
        let now = now_ms();
        let queues: Vec<&str> = w.queues.iter().map(QueueName::as_str).collect();
        let mut conn = self.conn().await?;
        let _: () = redis::pipe()
            .hset_multiple(
                &key,
                &[
                    ("host", w.host.clone()),
                    ("pid", w.pid.to_string()),
                    ("queues", queues.join(",")),
                    ("concurrency", w.concurrency.to_string()),
                    ("running", running.to_string()),
                    ("started_at", w.started_at.timestamp_millis().to_string()),
                    ("last_heartbeat", now.to_string()),
                ],
            )
            .ignore()
            .expire(&key, (WORKER_STALE_AFTER.as_secs() * 2) as i64)
            .ignore()
            .zadd(&self.global.workers, &w.id, now)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Removes a worker from the registry (graceful stop).
    pub async fn deregister(&self, w: &WorkerRegistration) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: () = redis::pipe()
            .del(self.global.worker(&w.id))
            .ignore()
            .zrem(&self.global.workers, &w.id)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Live workers (heartbeat within [`WORKER_STALE_AFTER`]).
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let min = now_ms() - WORKER_STALE_AFTER.as_millis() as i64;
        let mut conn = self.conn().await?;
        let ids: Vec<String> = conn
            .zrangebyscore(&self.global.workers, min, "+inf")
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(self.global.worker(id));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        Ok(ids
            .iter()
            .zip(&hashes)
            .filter(|(_, h)| !h.is_empty())
            .map(|(id, h)| WorkerInfo::from_hash(id, h))
            .collect())
    }

    /// Takes back what workers that stopped heartbeating had parked, and drops them from the registry.
    /// (Their leased jobs come back through lease expiry in [`Broker::maintain`].) Returns ids requeued.
    pub async fn reap_dead_workers(&self) -> Result<u64> {
        let max = now_ms() - WORKER_STALE_AFTER.as_millis() as i64;
        let dead: Vec<String> = {
            let mut conn = self.conn().await?;
            conn.zrangebyscore(&self.global.workers, "-inf", max)
                .await?
        };
        let mut requeued = 0;
        for w in dead {
            for q in self.queues().await? {
                requeued += self.release(&q, &w, &[]).await?;
            }
            let mut conn = self.conn().await?;
            let _: () = conn.zrem(&self.global.workers, &w).await?;
        }
        Ok(requeued)
    }
}
