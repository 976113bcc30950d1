//! The worker runtime: one fetcher and one acknowledger per queue, a shared concurrency limit,
//! lease renewal, upkeep (promotion and reaping), heartbeats and graceful shutdown.

use std::collections::{HashMap, HashSet};

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::AbortHandle;

use chrono::Utc;
use faena_broker::consume::{self, AttemptEnd, FetchLoop, Fetched};
use faena_broker::{
    Broker, Lease, LeaseToken, LeasedJob, Outcome, OutcomeKind, WorkerRegistration,
};
use faena_core::jobs::{ErrorClass, JobError};
use faena_core::{QueueName, TaskId};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, error, info, info_span, warn, Instrument};

use crate::handlers::{Handlers, JobContext};

/// How long a stopping worker waits for its acknowledgers after its jobs ended or were stopped.
const ACK_DRAIN: Duration = Duration::from_secs(5);

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Queues to consume; empty means every known queue (refreshed while running) plus `default`.
    pub queues: Vec<QueueName>,
    /// Jobs run at once.
    pub concurrency: usize,
    /// How long a stopping worker waits for running jobs before it gives them back.
    pub stop_timeout: Duration,
    /// How often upkeep (promotion of due jobs, lease reaping) runs.
    pub upkeep_interval: Duration,
    /// How often the worker refreshes its registry entry.
    pub heartbeat_interval: Duration,
    /// How long after its enqueue a job of a kind without a handler here is snoozed before it is
    /// DEAD (`unknown_kind`): during a rolling deploy a newer worker may know the kind.
    pub unknown_kind_grace: Duration,
}

impl WorkerConfig {
    pub fn from_settings(s: &faena_core::settings::WorkerSettings) -> Self {
        Self {
            queues: s.queues.clone(),
            concurrency: s.concurrency,
            stop_timeout: s.stop_timeout,
            upkeep_interval: Duration::from_millis(200),
            heartbeat_interval: Duration::from_secs(5),
            unknown_kind_grace: s.unknown_kind_grace,
        }
    }
}

/// A running attempt: its lease token and the handle that stops it without an acknowledgement.
struct RunningJob {
    token: LeaseToken,
    abort: AbortHandle,
}

/// Running attempts by queue and id, for lease renewal, for stopping the ones whose lease is lost,
/// and for the give-back at the stop timeout.
type Running = Arc<Mutex<HashMap<QueueName, HashMap<TaskId, RunningJob>>>>;

/// The leases of the running attempts, by queue.
fn leases_by_queue(running: &Running) -> Vec<(QueueName, Vec<Lease>)> {
    lock(running)
        .iter()
        .filter(|(_, jobs)| !jobs.is_empty())
        .map(|(q, jobs)| {
            let leases = jobs
                .iter()
                .map(|(id, j)| Lease {
                    id: *id,
                    token: j.token,
                })
                .collect();
            (q.clone(), leases)
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Shared {
    broker: Broker,
    handlers: Handlers,
    unknown_kind_grace: Duration,
    /// Kinds without a handler here that were logged already (once per kind).
    unknown_kinds: Mutex<HashSet<String>>,
    reg: WorkerRegistration,
    sem: Arc<Semaphore>,
    running: Running,
    stop: watch::Receiver<bool>,
    batch: usize,
    /// A fetcher could not give back what it parked at stop: the worker then stays in the registry
    /// (its heartbeat goes stale), so the dead-worker reaper takes those ids back.
    parked_left: std::sync::atomic::AtomicBool,
}

/// A handle on a running worker.
#[derive(Debug)]
pub struct WorkerHandle {
    pub id: String,
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    /// Asks the worker to stop and waits until it has.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.done.await;
    }

    /// Waits until the worker stops on its own (after a stop request from elsewhere).
    pub async fn join(self) {
        let _ = self.done.await;
    }

    /// A sender that makes the worker stop.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// Starts a worker in the background.
pub fn spawn(broker: Broker, handlers: Handlers, config: WorkerConfig) -> WorkerHandle {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut queues = config.queues.clone();
    let dynamic = queues.is_empty();
    if dynamic {
        // The default queues of the kinds this worker runs, from the start: a job on a queue that
        // no one has used yet (the first sale sent to `sunat`) must not wait for discovery.
        queues.push(QueueName::default_queue());
        for kind in handlers.kinds() {
            let q = broker
                .catalog()
                .get(kind)
                .and_then(|spec| QueueName::parse(spec.queue).ok());
            if let Some(q) = q.filter(|q| !queues.contains(q)) {
                queues.push(q);
            }
        }
    }
    let reg = WorkerRegistration::new(config.queues.clone(), config.concurrency as u32);
    let id = reg.id.clone();
    let shared = Arc::new(Shared {
        broker,
        handlers,
        unknown_kind_grace: config.unknown_kind_grace,
        unknown_kinds: Default::default(),
        reg,
        sem: Arc::new(Semaphore::new(config.concurrency.max(1))),
        running: Default::default(),
        stop: stop_rx,
        batch: config.concurrency.clamp(1, 128),
        parked_left: Default::default(),
    });
    let done = tokio::spawn(run(shared, queues, dynamic, config));
    WorkerHandle {
        id,
        stop: stop_tx,
        done,
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn run(shared: Arc<Shared>, queues: Vec<QueueName>, dynamic: bool, config: WorkerConfig) {
    let w = &shared.reg;
    info!(worker = %w.id, queues = ?queues.iter().map(QueueName::as_str).collect::<Vec<_>>(),
        concurrency = config.concurrency, kinds = ?shared.handlers.kinds(), "worker started");
    if let Err(e) = shared.broker.heartbeat(w, 0).await {
        warn!(error = %e, "first heartbeat failed; retrying in the background");
    }
    let mut tasks = JoinSet::new();
    let mut ackers = JoinSet::new();
    let mut started: HashSet<QueueName> = HashSet::new();
    let mut ack_senders = Vec::new();
    // A partitioned queue is consumed in every partition, each with its own fetcher; partitions
    // added later start at a heartbeat. (Redis down now: the queues themselves, partitions later.)
    let first = partitions_of(&shared.broker, &queues)
        .await
        .unwrap_or_else(|| queues.clone());
    for q in first {
        if started.insert(q.clone()) {
            start_queue(&shared, q, &mut tasks, &mut ackers, &mut ack_senders);
        }
    }
    // Upkeep, heartbeats, lease renewal and (when dynamic) discovery of new queues share one loop.
    let mut stop = shared.stop.clone();
    // Upkeep runs every `upkeep_interval`, or earlier when a scheduled job falls due before that.
    let mut next_upkeep = tokio::time::Instant::now();
    let mut heartbeat = tokio::time::interval(config.heartbeat_interval);
    let mut renew = tokio::time::interval(consume::renew_interval(&shared.broker));
    for t in [&mut heartbeat, &mut renew] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            _ = tokio::time::sleep_until(next_upkeep) => {
                let mut earliest: Option<i64> = None;
                for q in &started {
                    if let Some(due) = consume::upkeep_queue(&shared.broker, q).await {
                        earliest = Some(earliest.map_or(due, |e| e.min(due)));
                    }
                }
                let now = tokio::time::Instant::now();
                let until_due = earliest.map(|due| {
                    Duration::from_millis((due - Utc::now().timestamp_millis()).max(0) as u64)
                });
                next_upkeep = now + until_due.map_or(config.upkeep_interval, |d| d.min(config.upkeep_interval));
            }
            _ = renew.tick() => renew_leases(&shared).await,
            _ = heartbeat.tick() => {
                let running = config.concurrency - shared.sem.available_permits();
                consume::heartbeat_and_reap(&shared.broker, w, running).await;
                for q in &started {
                    if let Ok(st) = shared.broker.stats(q).await {
                        faena_core::metrics::queue_depth(q.as_str(), st.pending, st.scheduled, st.running, st.dead, st.paused);
                    }
                }
                let found = if dynamic {
                    shared.broker.queues().await.ok()
                } else {
                    partitions_of(&shared.broker, &queues).await
                };
                for q in found.unwrap_or_default() {
                    if started.insert(q.clone()) {
                        info!(queue = %q, "consuming a new queue");
                        start_queue(&shared, q, &mut tasks, &mut ackers, &mut ack_senders);
                    }
                }
            }
        }
    }
    info!(worker = %w.id, "stopping: no new jobs; waiting for running jobs");
    // Fetchers see the stop flag and end, giving back what they parked.
    while tasks.join_next().await.is_some() {}
    // Running jobs keep their leases while they finish: a lease that lapsed here would hand the job to
    // another worker while this one still runs it.
    let all = config.concurrency.max(1) as u32;
    let deadline = tokio::time::Instant::now() + config.stop_timeout;
    let drained = {
        let all_back = shared.sem.acquire_many(all);
        tokio::pin!(all_back);
        loop {
            tokio::select! {
                _ = &mut all_back => break true,
                _ = tokio::time::sleep_until(deadline) => break false,
                _ = renew.tick() => renew_leases(&shared).await,
            }
        }
    };
    if !drained {
        // Stop the attempts (no acknowledgement is sent for them), then give their leases back.
        let left = leases_by_queue(&shared.running);
        for jobs in lock(&shared.running).values_mut() {
            for (_, job) in jobs.drain() {
                job.abort.abort();
            }
        }
        for (q, leases) in left {
            warn!(queue = %q, jobs = leases.len(), "stop timeout reached: stopped running jobs and gave them back to the queue");
            if let Err(e) = shared.broker.release(&q, &w.id, &leases).await {
                error!(queue = %q, error = %e, "could not give jobs back; their leases will expire instead");
            }
        }
    }
    drop(ack_senders);
    // Every sender left was held by a job that has ended or was stopped: the acknowledgers finish
    // what they hold; a Redis that does not answer cannot hold the stop for longer than this.
    let acks_done = async { while ackers.join_next().await.is_some() {} };
    if tokio::time::timeout(ACK_DRAIN, acks_done).await.is_err() {
        error!(worker = %w.id, "outcomes not recorded within {ACK_DRAIN:?}; their leases will expire and the jobs run again");
        ackers.abort_all();
    }
    if shared.parked_left.load(std::sync::atomic::Ordering::SeqCst) {
        warn!(worker = %w.id, "left in the registry: ids it parked could not be given back, and the reaper takes them back once its heartbeat is stale");
    } else if let Err(e) = shared.broker.deregister(w).await {
        warn!(error = %e, "could not deregister");
    }
    info!(worker = %w.id, "worker stopped");
}

/// Every partition of the named queues, as Redis has them now (`None` when it cannot say).
async fn partitions_of(broker: &Broker, queues: &[QueueName]) -> Option<Vec<QueueName>> {
    let mut all = Vec::new();
    for q in queues {
        all.extend(broker.expand(q).await.ok()?);
    }
    Some(all)
}

fn start_queue(
    shared: &Arc<Shared>,
    q: QueueName,
    tasks: &mut JoinSet<()>,
    ackers: &mut JoinSet<()>,
    senders: &mut Vec<mpsc::UnboundedSender<Outcome>>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    ackers.spawn(acker(shared.broker.clone(), q.clone(), rx));
    tasks.spawn(fetcher(Arc::clone(shared), q, tx.clone()));
    senders.push(tx);
}

/// Renews the leases of the running attempts; stops those whose lease is lost (expired and taken
/// back, or leased again): they must not acknowledge, the job's new attempt decides.
async fn renew_leases(shared: &Shared) {
    for (q, leases) in leases_by_queue(&shared.running) {
        let lost = consume::renew_leases(&shared.broker, &q, &leases).await;
        if lost.is_empty() {
            continue;
        }
        let mut running = lock(&shared.running);
        let Some(jobs) = running.get_mut(&q) else {
            continue;
        };
        for lease in leases.iter().filter(|l| lost.contains(&l.id)) {
            if jobs.get(&lease.id).is_some_and(|j| j.token == lease.token) {
                if let Some(job) = jobs.remove(&lease.id) {
                    job.abort.abort();
                }
            }
        }
    }
}

async fn acker(broker: Broker, q: QueueName, mut rx: mpsc::UnboundedReceiver<Outcome>) {
    let mut buf = Vec::with_capacity(512);
    while rx.recv_many(&mut buf, 512).await > 0 {
        consume::record_outcomes(&broker, &q, &buf, None).await;
        buf.clear();
    }
}

async fn fetcher(shared: Arc<Shared>, q: QueueName, acks: mpsc::UnboundedSender<Outcome>) {
    let mut stop = shared.stop.clone();
    // BLMOVE wakes as soon as a job is pushed; 1 s bounds how long a stop waits.
    let mut fetch = FetchLoop::new(Duration::from_secs(1));
    let worker_id = shared.reg.id.clone();
    loop {
        if *stop.borrow() {
            break;
        }
        let first = tokio::select! {
            _ = stopped(&mut stop) => break,
            p = Arc::clone(&shared.sem).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let mut permits = vec![first];
        // When slots come back one by one (short jobs under load), yield a few times so finishing
        // jobs can return theirs: one fetch of many jobs costs about what one fetch of one costs.
        for round in 0..4 {
            while permits.len() < shared.batch {
                match Arc::clone(&shared.sem).try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            if round == 3 || permits.len() * 4 >= shared.batch {
                break;
            }
            tokio::task::yield_now().await;
        }
        let n = permits.len();
        match fetch
            .step(&shared.broker, &q, &worker_id, permits, n, &mut stop)
            .await
        {
            Fetched::Stop => break,
            Fetched::Nothing => {}
            Fetched::Jobs(jobs, mut permits) => {
                // Spawned under the lock, so a job that ends at once finds its entry to remove.
                let mut running = lock(&shared.running);
                let entries = running.entry(q.clone()).or_default();
                for (job, permit) in jobs.into_iter().zip(permits.drain(..)) {
                    let lease = job.lease();
                    let task = {
                        let shared = Arc::clone(&shared);
                        let acks = acks.clone();
                        tokio::spawn(async move {
                            let queue = job.queue.clone();
                            let outcome = execute(&shared, job).await;
                            let _ = acks.send(outcome);
                            if let Some(jobs) = lock(&shared.running).get_mut(&queue) {
                                if jobs.get(&lease.id).is_some_and(|j| j.token == lease.token) {
                                    jobs.remove(&lease.id);
                                }
                            }
                            drop(permit);
                        })
                    };
                    let abort = task.abort_handle();
                    entries.insert(
                        lease.id,
                        RunningJob {
                            token: lease.token,
                            abort,
                        },
                    );
                }
            }
        }
    }
    // Give back an id a blocking wait may have parked for us.
    if let Err(e) = shared.broker.release(&q, &worker_id, &[]).await {
        warn!(queue = %q, error = %e, "could not give back parked ids; the reaper will");
        shared
            .parked_left
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Runs one attempt and decides its outcome.
async fn execute(shared: &Shared, job: LeasedJob) -> Outcome {
    let span = info_span!("job", task_id = %job.id, kind = %job.kind, queue = %job.queue, attempt = job.attempt);
    let (lease, latency_ms) = (job.lease(), job.latency_ms);
    let (kind_name, queue) = (job.kind.clone(), job.queue.clone());
    let started = std::time::Instant::now();
    let mut trace = AttemptTrace::start(&job);
    let kind = outcome_of(shared, job).instrument(span.clone()).await;
    let label = match &kind {
        OutcomeKind::Succeeded { .. } => "succeeded",
        OutcomeKind::Retry { .. } => "retry",
        OutcomeKind::Dead { .. } => "dead",
        OutcomeKind::Snooze { .. } => "snoozed",
    };
    trace.ended(label);
    faena_core::metrics::job_finished(&kind_name, queue.as_str(), label, started.elapsed());
    Outcome::of(lease, &kind_name, latency_ms, kind)
}

/// The life of one attempt as log events of target `faena::attempt` at debug level: `attempt
/// started`, then `attempt ended` with its outcome, or `attempt stopped` when it was stopped
/// without one (its lease was lost, or the stop timeout came). `FAENA_LOG=info,faena::attempt=debug`
/// shows them; the fault-injection tests count executions from them.
struct AttemptTrace {
    task_id: TaskId,
    attempt: u32,
    token: u64,
    ended: bool,
}

impl AttemptTrace {
    fn start(job: &LeasedJob) -> Self {
        debug!(target: "faena::attempt", task_id = %job.id, attempt = job.attempt, token = job.token.0,
            kind = %job.kind, queue = %job.queue, "attempt started");
        Self {
            task_id: job.id,
            attempt: job.attempt,
            token: job.token.0,
            ended: false,
        }
    }

    fn ended(&mut self, outcome: &str) {
        self.ended = true;
        debug!(target: "faena::attempt", task_id = %self.task_id, attempt = self.attempt,
            token = self.token, outcome, "attempt ended");
    }
}

impl Drop for AttemptTrace {
    fn drop(&mut self) {
        if !self.ended {
            debug!(target: "faena::attempt", task_id = %self.task_id, attempt = self.attempt,
                token = self.token, "attempt stopped");
        }
    }
}

async fn outcome_of(shared: &Shared, job: LeasedJob) -> OutcomeKind {
    debug!("started");
    let spec = shared.broker.catalog().get(&job.kind);
    let ctx = JobContext {
        task_id: job.id,
        token: job.token,
        kind: job.kind.clone(),
        queue: job.queue.to_string(),
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        broker: shared.broker.clone(),
    };
    let end = match shared.handlers.start(&job.kind, &job.args, ctx) {
        None => unknown_kind(shared, &job),
        Some(Err(e)) => AttemptEnd::Fatal {
            error: e.to_string(),
            class: ErrorClass::Decode,
        },
        Some(Ok(fut)) => match consume::guard_attempt(spec, fut).await {
            Err(error) => AttemptEnd::Failed {
                error,
                retry_after: None,
            },
            Ok(Ok(value)) => AttemptEnd::Succeeded(value.to_string()),
            Ok(Err(JobError::Snooze(d))) => AttemptEnd::Snooze(d),
            Ok(Err(JobError::Permanent(e))) => AttemptEnd::Fatal {
                error: format!("{e:#}"),
                class: ErrorClass::Permanent,
            },
            Ok(Err(JobError::Retry(e))) => AttemptEnd::Failed {
                error: format!("{e:#}"),
                retry_after: None,
            },
        },
    };
    consume::decide_outcome(spec, job.attempt, job.max_attempts, end)
}

/// A job of a kind this worker has no handler for: snoozed (no attempt used) while it is younger
/// than the grace, since a newer worker may know the kind (a rolling deploy); DEAD after that.
fn unknown_kind(shared: &Shared, job: &LeasedJob) -> AttemptEnd {
    let age =
        Duration::from_millis((Utc::now().timestamp_millis() - job.enqueued_at_ms).max(0) as u64);
    let Some(left) = shared
        .unknown_kind_grace
        .checked_sub(age)
        .filter(|d| !d.is_zero())
    else {
        return AttemptEnd::Fatal {
            error: format!(
                "no handler for kind `{}` in this worker, {:?} after its enqueue",
                job.kind, shared.unknown_kind_grace
            ),
            class: ErrorClass::UnknownKind,
        };
    };
    if lock(&shared.unknown_kinds).insert(job.kind.clone()) {
        warn!(kind = %job.kind, grace = ?shared.unknown_kind_grace,
            "no handler for this kind here: its jobs are snoozed for a worker that knows it, DEAD after the grace");
    }
    AttemptEnd::Snooze(left.clamp(Duration::from_secs(1), Duration::from_secs(30)))
}
