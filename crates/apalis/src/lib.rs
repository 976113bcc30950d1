//! faena-apalis: apalis-core 1.0 over Faena's broker: an apalis `WorkerBuilder` runs the jobs of one Faena queue
//! through [`FaenaBackend`], and apalis-board lists queues, tasks, workers and metrics through the
//! same type.
//!
//! # Running jobs
//!
//! ```text
//! let backend = FaenaBackend::<serde_json::Value>::new(broker.clone(), QueueName::parse("default")?);
//! let worker = WorkerBuilder::new("apalis-1").backend(backend).build(handler);
//! worker.run().await?;
//!
//! async fn handler(args: serde_json::Value, job: FaenaJob) -> Result<serde_json::Value, BoxDynError> {
//!     Ok(args)
//! }
//! ```
//!
//! * The handler's first parameter is the job's args, decoded from their stored JSON into the
//!   backend's `Args` type (`serde_json::Value` by default; any `DeserializeOwned` type works). A job
//!   whose args do not decode into `Args` is DEAD at once (class `decode`) and never reaches the
//!   handler, so one bad job cannot stop the worker.
//! * Faena's metadata of the attempt is a [`FaenaJob`] (task id, kind, queue, attempt, max_attempts,
//!   enqueue time): take it as a handler parameter (it implements `FromRequest`), or as
//!   `Data<FaenaJob>`, or as `Meta<FaenaJob>` (it is also written to the task's metadata store under
//!   `faena.*` keys). The apalis `TaskId`, `Attempt` (the attempt number, from 1), `max_attempts` and
//!   `queue` of the task carry the same values.
//! * Fetching never busy-polls: a background tokio task leases jobs with [`Broker::fetch`] while the
//!   bounded channel that feeds `poll_next` has room ([`FaenaConfig::prefetch`]), and when the queue
//!   is empty it blocks in [`Broker::wait_for_job`] (BLMOVE), so a new job is picked up at once. A
//!   paused Faena queue is checked again every 500 ms.
//! * Acknowledgement is the backend's middleware ([`FaenaAckLayer`]), which wraps the user's
//!   middleware and the handler, so it sees the final result: `Ok(value)` is recorded SUCCEEDED with
//!   `value` serialized as JSON (the handler's response type must be `Serialize`); an error is
//!   recorded as a retry, using the kind's retry policy from the broker's catalog (or
//!   `RetryPolicy::DEFAULT` for a kind the catalog does not know) while `attempt < max_attempts`,
//!   else DEAD (class `retryable`). An apalis `AbortError` is DEAD at once (class `permanent`); an
//!   apalis `RetryAfterError` retries after its own delay while attempts remain. A panic in the
//!   handler is caught and counts as a failed attempt, and the kind's `time_limit` (300 s for an
//!   unknown kind) bounds an attempt the way the native runtime does.
//! * While jobs are leased to the worker (buffered or running) their leases are renewed every third
//!   of the broker's lease. The backend also does the queue's upkeep ([`Broker::maintain`]: due
//!   retries and scheduled jobs are promoted, expired leases taken back), heartbeats into Faena's
//!   worker registry (id `<apalis worker name>@<host>:<pid>:<random>`), and takes back ids parked by
//!   dead workers, so an apalis worker is enough on its own for its queue.
//! * On `poll_close` (after the worker has finished its running jobs) the jobs leased but never
//!   started, and any id parked by the blocking wait, go back to the queue with their attempt given
//!   back ([`Broker::release`]), and the worker leaves the registry. A backend dropped without
//!   `poll_close` does the same from a spawned task when a tokio runtime is at hand.
//! * `TaskSink` (`push`, `push_bulk`, ...) enqueues through [`Broker::enqueue_many`], so pushed jobs
//!   are validated like any other: the job kind is the task's metadata `faena.kind`, else
//!   [`FaenaConfig::push_kind`]; the task's `run_at`, `max_attempts` and `idempotency_key` are
//!   honoured; Faena assigns the task id (an id set on the apalis task is not used).
//!
//! # Listing (apalis-board)
//!
//! Implemented over [`Broker::queues`], [`Broker::stats`], [`Broker::list`], [`Broker::task`] and
//! [`Broker::workers`]: `ListQueues`, `ListWorkers`, `ListTasks`, `ListAllTasks`, `FetchById`,
//! `Metrics`, plus `TaskSink`, which is what apalis-board-api 1.0 needs to register a backend.
//! States map to apalis' `Status` as follows:
//!
//! | Faena state | apalis `Status` | listed by filter |
//! |---|---|---|
//! | PENDING   | `Pending` (no `run_at`)      | `Pending` |
//! | SCHEDULED | `Pending` with `run_at`      | `Pending` |
//! | RUNNING   | `Running`                    | `Running` |
//! | SUCCEEDED | `Done`                       | never (see below) |
//! | DEAD      | `Failed`                     | `Failed` |
//! | CANCELLED | `Killed`                     | never (see below) |
//!
//! A listing without a status filter returns RUNNING, then PENDING, then SCHEDULED, then DEAD tasks.
//! `FetchById` returns a task of this backend's queue in any state, with `faena.kind`,
//! `faena.error`, `faena.error_class` and `faena.result` (JSON text) in its metadata.
//!
//! # What cannot be given
//!
//! * SUCCEEDED and CANCELLED tasks are not indexed by the broker (their records only expire), so the
//!   `Done` and `Killed` filters list nothing; such a task is still found by id. `Queued` (fetched
//!   but not started) lists nothing: the broker does not tell a buffered lease from a running one.
//! * `QueueInfo::activity` (7 days of activity) is empty: the broker keeps counters since the queue
//!   was created, not per day.
//! * `RunningWorker::layers` is empty: the registry does not record a worker's middleware.
//! * Pagination of a listing reads `offset + page_size` ids from Redis (the broker lists from the
//!   start of an index), fine for a dashboard's pages, not for deep paging.
//! * apalis' own retry middleware is not needed (and would run attempts Faena does not count):
//!   retries are Faena's, with its policy and its `max_attempts`.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_core::backend::codec::Codec;
use apalis_core::backend::finalize::Durable;
use apalis_core::backend::queue::Queue;
use apalis_core::backend::{
    Backend, BackendConfig, FetchById, Filter, ListAllTasks, ListQueues, ListTasks, ListWorkers,
    Metrics, QueueInfo, RunningWorker, StatType, Statistic, WireFormatBackend,
};
use apalis_core::error::{AbortError, BoxDynError, RetryAfterError};
use apalis_core::layers::{Layer, Service};
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::from_request::FromRequest;
use apalis_core::task::metadata::{Metadata, MetadataStore};
use apalis_core::task::status::Status;
use apalis_core::task::task_id::TaskId as ApalisTaskId;
use apalis_core::task::Task;
use apalis_core::worker::context::WorkerContext;
use chrono::{DateTime, TimeZone, Utc};
use faena_broker::consume::{self, AttemptEnd, FetchLoop, Fetched};
use faena_core::jobs::{EnqueueRequest, ErrorClass, KindSpec};
use faena_core::{QueueName, TaskId};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use faena_broker::{
    Broker, BrokerError, Lease, LeaseToken, LeasedJob, Outcome, OutcomeKind, QueueStats,
    TaskRecord, TaskState, WorkerInfo, WorkerRegistration, ENQUEUE_CHUNK,
};

/// The `backend` a [`RunningWorker`] reports.
pub const BACKEND_NAME: &str = "faena";

/// How long an attempt of a kind the catalog does not know may run (the native runtime's default).
pub use faena_broker::consume::DEFAULT_TIME_LIMIT;

const META_ID: &str = "faena.task_id";
const META_KIND: &str = "faena.kind";
const META_TOKEN: &str = "faena.lease_token";
const META_QUEUE: &str = "faena.queue";
const META_ATTEMPT: &str = "faena.attempt";
const META_MAX_ATTEMPTS: &str = "faena.max_attempts";
const META_ENQUEUED_AT: &str = "faena.enqueued_at_ms";
const META_LATENCY: &str = "faena.latency_ms";
const META_ERROR: &str = "faena.error";
const META_ERROR_CLASS: &str = "faena.error_class";
const META_RESULT: &str = "faena.result";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock_mut<T>(m: &mut Mutex<T>) -> &mut T {
    m.get_mut().unwrap_or_else(|p| p.into_inner())
}

fn secs(t: Option<DateTime<Utc>>) -> Option<u64> {
    t.and_then(|t| u64::try_from(t.timestamp()).ok())
}

fn ms_to_secs(ms: i64) -> Option<u64> {
    u64::try_from(ms / 1000).ok()
}

/// Faena's facts about one attempt of a job, available to the handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaenaJob {
    /// The Faena task id (a ULID).
    pub id: TaskId,
    /// This attempt's lease token (fencing): the outcome of an attempt that lost its lease is ignored.
    pub token: LeaseToken,
    /// The job kind.
    pub kind: String,
    pub queue: QueueName,
    /// This attempt's number, from 1.
    pub attempt: u32,
    pub max_attempts: u32,
    /// When the job was enqueued (ms since the epoch).
    pub enqueued_at_ms: i64,
    /// Its enqueue-to-start latency (ms), as [`LeasedJob::latency_ms`].
    #[serde(default)]
    pub latency_ms: u64,
}

impl FaenaJob {
    /// True when a failure of this attempt makes the job DEAD.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// This attempt's outcome, to record.
    fn outcome(&self, kind: OutcomeKind) -> Outcome {
        let lease = Lease {
            id: self.id,
            token: self.token,
        };
        Outcome::of(lease, &self.kind, self.latency_ms, kind)
    }
}

impl From<&LeasedJob> for FaenaJob {
    fn from(j: &LeasedJob) -> Self {
        Self {
            id: j.id,
            token: j.token,
            kind: j.kind.clone(),
            queue: j.queue.clone(),
            attempt: j.attempt,
            max_attempts: j.max_attempts,
            enqueued_at_ms: j.enqueued_at_ms,
            latency_ms: j.latency_ms,
        }
    }
}

/// A task that did not come from a [`FaenaBackend`] has no [`FaenaJob`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("this task carries no Faena metadata (it did not come from a FaenaBackend)")]
pub struct MissingFaenaJob;

impl Metadata for FaenaJob {
    type Error = MissingFaenaJob;

    fn extract(store: &MetadataStore) -> Result<Self, Self::Error> {
        let text = |k: &str| store.get(k).map(str::to_owned).ok_or(MissingFaenaJob);
        let num = |k: &str| -> Result<i64, MissingFaenaJob> {
            store
                .get(k)
                .and_then(|v| v.parse().ok())
                .ok_or(MissingFaenaJob)
        };
        Ok(Self {
            id: TaskId::parse(&text(META_ID)?).map_err(|_| MissingFaenaJob)?,
            token: LeaseToken(u64::try_from(num(META_TOKEN)?).map_err(|_| MissingFaenaJob)?),
            kind: text(META_KIND)?,
            queue: QueueName::parse(&text(META_QUEUE)?).map_err(|_| MissingFaenaJob)?,
            attempt: u32::try_from(num(META_ATTEMPT)?).map_err(|_| MissingFaenaJob)?,
            max_attempts: u32::try_from(num(META_MAX_ATTEMPTS)?).map_err(|_| MissingFaenaJob)?,
            enqueued_at_ms: num(META_ENQUEUED_AT)?,
            // Absent in metadata written before it existed: no latency.
            latency_ms: num(META_LATENCY).map_or(0, |ms| u64::try_from(ms).unwrap_or(0)),
        })
    }

    fn inject(&self, store: &mut MetadataStore) -> Result<(), Self::Error> {
        store.replace(META_ID, self.id.to_string());
        store.replace(META_TOKEN, self.token.to_string());
        store.replace(META_KIND, self.kind.clone());
        store.replace(META_QUEUE, self.queue.to_string());
        store.replace(META_ATTEMPT, self.attempt.to_string());
        store.replace(META_MAX_ATTEMPTS, self.max_attempts.to_string());
        store.replace(META_ENQUEUED_AT, self.enqueued_at_ms.to_string());
        store.replace(META_LATENCY, self.latency_ms.to_string());
        Ok(())
    }
}

impl<Args: Sync> FromRequest<Task<Args>> for FaenaJob {
    type Error = MissingFaenaJob;

    async fn from_request(task: &Task<Args>) -> Result<Self, Self::Error> {
        match task.data().get::<FaenaJob>() {
            Some(job) => Ok(job.clone()),
            None => Self::extract(task.metadata()),
        }
    }
}

/// The wire format of the backend: JSON values, decoded into the handler's `Args` with serde.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

impl<T: Serialize + DeserializeOwned> Codec<T> for JsonCodec {
    type Error = serde_json::Error;
    type Compact = Value;

    fn encode(&self, val: &T) -> Result<Value, Self::Error> {
        serde_json::to_value(val)
    }

    fn decode(&self, val: &Value) -> Result<T, Self::Error> {
        T::deserialize(val)
    }
}

/// How a [`FaenaBackend`] works.
#[derive(Debug, Clone)]
pub struct FaenaConfig {
    /// Jobs leased ahead of the handler (the channel that feeds `poll_next`); at least 1.
    pub prefetch: usize,
    /// How long one blocking wait for a job lasts; it bounds how long `poll_close` waits for the fetcher.
    pub wait_timeout: Duration,
    /// How often the queue's upkeep runs (promotion of due retries and scheduled jobs, lease reaping).
    pub upkeep_interval: Duration,
    /// How often the worker refreshes its registry entry.
    pub heartbeat_interval: Duration,
    /// The job kind of a task pushed through `TaskSink` without a `faena.kind` metadata entry.
    pub push_kind: Option<String>,
    /// How long an outcome is retried while Redis refuses it before the backend gives up (the
    /// lease then expires and the job runs again).
    pub ack_retry_for: Duration,
}

impl Default for FaenaConfig {
    fn default() -> Self {
        Self {
            prefetch: 8,
            wait_timeout: Duration::from_secs(1),
            upkeep_interval: Duration::from_millis(250),
            heartbeat_interval: Duration::from_secs(5),
            push_kind: None,
            ack_retry_for: Duration::from_secs(60),
        }
    }
}

/// What the fetcher, the keeper, the acknowledgement layer and the backend share.
struct Shared {
    broker: Broker,
    queue: QueueName,
    /// Ids leased to this worker and not yet finished (buffered or running).
    leased: Mutex<HashMap<TaskId, LeaseToken>>,
    ack_retry_for: Duration,
}

impl Shared {
    fn leases(&self) -> Vec<Lease> {
        lock(&self.leased)
            .iter()
            .map(|(id, token)| Lease {
                id: *id,
                token: *token,
            })
            .collect()
    }

    /// Records outcomes (retrying for `ack_retry_for`), then forgets their leases.
    async fn record(&self, outcomes: Vec<Outcome>) {
        consume::record_outcomes(
            &self.broker,
            &self.queue,
            &outcomes,
            Some(self.ack_retry_for),
        )
        .await;
        let mut leased = lock(&self.leased);
        for o in &outcomes {
            if leased.get(&o.id) == Some(&o.token) {
                leased.remove(&o.id);
            }
        }
    }
}

type Validator = fn(&Value) -> Result<(), String>;

fn validate_as<Args: DeserializeOwned>(v: &Value) -> Result<(), String> {
    Args::deserialize(v).map(|_| ()).map_err(|e| e.to_string())
}

/// The background half of a started backend.
struct Running {
    reg: WorkerRegistration,
    rx: mpsc::Receiver<Task<Value>>,
    stop: watch::Sender<bool>,
    fetcher: Option<JoinHandle<()>>,
    keeper: Option<JoinHandle<()>>,
}

/// An apalis backend over one Faena queue. See the [module documentation](self).
pub struct FaenaBackend<Args = Value> {
    shared: Arc<Shared>,
    config: FaenaConfig,
    codec: JsonCodec,
    validate: Validator,
    running: Option<Running>,
    closed: bool,
    // Futures in a Mutex only so the backend is `Sync` (apalis-board shares it behind a RwLock);
    // they are reached through `get_mut`, never locked.
    closing: Mutex<Option<BoxFuture<'static, Result<(), BrokerError>>>>,
    sink_buf: Vec<EnqueueRequest>,
    sink_flight: Mutex<Option<BoxFuture<'static, Result<(), BrokerError>>>>,
    _args: PhantomData<fn() -> Args>,
}

impl<Args> std::fmt::Debug for FaenaBackend<Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaenaBackend")
            .field("queue", &self.shared.queue)
            .field("config", &self.config)
            .field("started", &self.running.is_some())
            .field("closed", &self.closed)
            .finish()
    }
}

impl<Args: DeserializeOwned> FaenaBackend<Args> {
    /// A backend over `queue` with the default [`FaenaConfig`].
    pub fn new(broker: Broker, queue: QueueName) -> Self {
        Self::with_config(broker, queue, FaenaConfig::default())
    }

    /// A backend over `queue`.
    pub fn with_config(broker: Broker, queue: QueueName, config: FaenaConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                broker,
                queue,
                leased: Default::default(),
                ack_retry_for: config.ack_retry_for,
            }),
            config,
            codec: JsonCodec,
            validate: validate_as::<Args>,
            running: None,
            closed: false,
            closing: Mutex::new(None),
            sink_buf: Vec::new(),
            sink_flight: Mutex::new(None),
            _args: PhantomData,
        }
    }
}

impl<Args> FaenaBackend<Args> {
    pub fn queue(&self) -> &QueueName {
        &self.shared.queue
    }

    pub fn broker(&self) -> &Broker {
        &self.shared.broker
    }

    /// The registry id of the running worker, once the apalis worker has started polling.
    pub fn worker_id(&self) -> Option<&str> {
        self.running.as_ref().map(|r| r.reg.id.as_str())
    }

    fn start(&mut self, worker: &WorkerContext) -> Result<(), BrokerError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|e| {
            BrokerError::Invalid(format!(
                "FaenaBackend must be polled inside a tokio runtime: {e}"
            ))
        })?;
        let prefetch = self.config.prefetch.max(1);
        let mut reg = WorkerRegistration::new(vec![self.shared.queue.clone()], prefetch as u32);
        let name: String = worker
            .name()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        reg.id = format!("{name}@{}", reg.id);
        let (tx, rx) = mpsc::channel(prefetch);
        let (stop, stop_rx) = watch::channel(false);
        let fetcher = rt.spawn(fetcher(
            Arc::clone(&self.shared),
            reg.id.clone(),
            tx,
            stop_rx.clone(),
            self.validate,
            self.config.wait_timeout,
        ));
        let keeper = rt.spawn(keeper(
            Arc::clone(&self.shared),
            reg.clone(),
            stop_rx,
            self.config.clone(),
        ));
        info!(worker = %reg.id, queue = %self.shared.queue, prefetch, "apalis worker started on a Faena queue");
        self.running = Some(Running {
            reg,
            rx,
            stop,
            fetcher: Some(fetcher),
            keeper: Some(keeper),
        });
        Ok(())
    }

    fn ensure_started(&mut self, worker: &WorkerContext) -> Result<(), BrokerError> {
        if self.running.is_none() && !self.closed {
            self.start(worker)?;
        }
        Ok(())
    }

    /// Turns a pushed apalis task into an enqueue request.
    fn request_of(&self, task: Task<Value>) -> Result<EnqueueRequest, BrokerError> {
        let (args, ctx) = task.take();
        let kind = ctx
            .metadata()
            .get(META_KIND)
            .map(str::to_owned)
            .or_else(|| self.config.push_kind.clone())
            .ok_or_else(|| {
                BrokerError::Invalid(
                    "a pushed task needs a job kind: set FaenaConfig::push_kind or the task metadata `faena.kind`"
                        .into(),
                )
            })?;
        let eta = ctx
            .run_at()
            .and_then(|s| i64::try_from(s).ok())
            .and_then(|s| Utc.timestamp_opt(s, 0).single())
            .filter(|t| *t > Utc::now());
        Ok(EnqueueRequest {
            kind,
            args,
            queue: Some(self.shared.queue.to_string()),
            eta,
            max_attempts: ctx
                .max_attempts()
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            idempotency_key: ctx.idempotency_key().map(str::to_owned),
            ..Default::default()
        })
    }

    fn poll_sink_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BrokerError>> {
        loop {
            let flight = lock_mut(&mut self.sink_flight);
            if flight.is_none() {
                if self.sink_buf.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                let reqs = std::mem::take(&mut self.sink_buf);
                let broker = self.shared.broker.clone();
                *flight = Some(Box::pin(async move {
                    broker.enqueue_many(reqs).await.map(|_| ())
                }));
            }
            if let Some(f) = flight.as_mut() {
                match f.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => {
                        *flight = None;
                        r?;
                    }
                }
            }
        }
    }
}

impl<Args> Drop for FaenaBackend<Args> {
    fn drop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        let _ = running.stop.send(true);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let shared = Arc::clone(&self.shared);
                rt.spawn(async move {
                    if let Err(e) = close(shared, running).await {
                        warn!(error = %e, "could not give back the jobs of a dropped FaenaBackend; their leases will expire");
                    }
                });
            }
            Err(_) => {
                warn!("FaenaBackend dropped outside a tokio runtime without poll_close: its leases will expire");
            }
        }
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Ends a started backend: stops the fetcher (after its current blocking wait), gives back what was
/// leased and not finished, and leaves the registry.
async fn close(shared: Arc<Shared>, mut running: Running) -> Result<(), BrokerError> {
    let _ = running.stop.send(true);
    if let Some(f) = running.fetcher.take() {
        let _ = f.await;
    }
    running.rx.close();
    while running.rx.try_recv().is_ok() {}
    if let Some(k) = running.keeper.take() {
        let _ = k.await;
    }
    let leases = shared.leases();
    let released = shared
        .broker
        .release(&shared.queue, &running.reg.id, &leases)
        .await;
    if let Ok(n) = &released {
        lock(&shared.leased).clear();
        if *n > 0 {
            info!(queue = %shared.queue, jobs = n, "gave unstarted jobs back to the queue");
        }
    }
    let deregistered = shared.broker.deregister(&running.reg).await;
    info!(worker = %running.reg.id, "apalis worker stopped");
    released?;
    deregistered
}

fn undecodable(job: &LeasedJob, error: String) -> Outcome {
    let end = AttemptEnd::Fatal {
        error,
        class: ErrorClass::Decode,
    };
    job.outcome(consume::decide_outcome(
        None,
        job.attempt,
        job.max_attempts,
        end,
    ))
}

/// Builds the apalis task of a leased job, or the DEAD outcome of a job whose args cannot be used.
fn to_task(job: &LeasedJob, worker_id: &str, validate: Validator) -> Result<Task<Value>, Outcome> {
    let args: Value = serde_json::from_str(&job.args)
        .map_err(|e| undecodable(job, format!("decode error: stored args are not JSON: {e}")))?;
    validate(&args).map_err(|e| {
        undecodable(
            job,
            format!("decode error: args do not fit the handler's type: {e}"),
        )
    })?;
    let meta = FaenaJob::from(job);
    let mut store = MetadataStore::new();
    let _ = meta.inject(&mut store);
    let mut b = TaskBuilder::new(args)
        .task_id(ApalisTaskId::from_string(job.id))
        // apalis counts the attempt when the handler starts, so it starts from the previous ones.
        .attempt(job.attempt.saturating_sub(1) as usize)
        .max_attempts(job.max_attempts as usize)
        .queue(Queue::from(job.queue.as_str()))
        .status(Status::Queued)
        .lock_at(secs(Some(Utc::now())))
        .lock_by(Some(worker_id.to_owned()))
        .with_metadata(store)
        .data(meta);
    if let Some(t) = ms_to_secs(job.enqueued_at_ms) {
        b = b.run_at_timestamp(t);
    }
    Ok(b.build())
}

/// Leases jobs while the channel to the worker has room; blocks in Redis while the queue is empty.
async fn fetcher(
    shared: Arc<Shared>,
    worker_id: String,
    tx: mpsc::Sender<Task<Value>>,
    mut stop: watch::Receiver<bool>,
    validate: Validator,
    wait_timeout: Duration,
) {
    let q = &shared.queue;
    let mut fetch = FetchLoop::new(wait_timeout);
    loop {
        if *stop.borrow() {
            break;
        }
        let first = tokio::select! {
            _ = stopped(&mut stop) => break,
            p = tx.reserve() => match p { Ok(p) => p, Err(_) => break },
        };
        let mut permits = vec![first];
        while let Ok(p) = tx.try_reserve() {
            permits.push(p);
        }
        let n = permits.len();
        match fetch
            .step(&shared.broker, q, &worker_id, permits, n, &mut stop)
            .await
        {
            Fetched::Stop => break,
            Fetched::Nothing => {}
            Fetched::Jobs(jobs, permits) => {
                lock(&shared.leased).extend(jobs.iter().map(|j| (j.id, j.token)));
                let mut bad = Vec::new();
                for (job, permit) in jobs.iter().zip(permits) {
                    match to_task(job, &worker_id, validate) {
                        Ok(task) => permit.send(task),
                        Err(outcome) => bad.push(outcome),
                    }
                }
                if !bad.is_empty() {
                    shared.record(bad).await;
                }
            }
        }
    }
    debug!(queue = %q, "fetcher stopped");
}

/// Lease renewal, upkeep of the queue, heartbeats and the reaping of dead workers.
async fn keeper(
    shared: Arc<Shared>,
    reg: WorkerRegistration,
    mut stop: watch::Receiver<bool>,
    cfg: FaenaConfig,
) {
    let broker = &shared.broker;
    let q = &shared.queue;
    let mut renew = tokio::time::interval(consume::renew_interval(broker));
    let mut upkeep = tokio::time::interval(cfg.upkeep_interval.max(Duration::from_millis(10)));
    let mut heartbeat =
        tokio::time::interval(cfg.heartbeat_interval.max(Duration::from_millis(100)));
    for t in [&mut renew, &mut upkeep, &mut heartbeat] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            _ = renew.tick() => {
                // An apalis attempt cannot be stopped from here: one whose lease is lost runs on,
                // and its outcome is ignored as stale (the job's new attempt decides).
                let lost = consume::renew_leases(broker, q, &shared.leases()).await;
                let mut leased = lock(&shared.leased);
                for id in lost {
                    leased.remove(&id);
                }
            }
            _ = upkeep.tick() => {
                consume::upkeep_queue(broker, q).await;
            }
            _ = heartbeat.tick() => {
                let running = lock(&shared.leased).len();
                consume::heartbeat_and_reap(broker, &reg, running).await;
            }
        }
    }
}

impl<Args> Backend for FaenaBackend<Args> {
    type Task = Task<Value>;
    type Error = BrokerError;

    fn poll_ready(
        &mut self,
        _cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(self.ensure_started(worker))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        if self.closed {
            return Poll::Ready(None);
        }
        if let Err(e) = self.ensure_started(worker) {
            return Poll::Ready(Some(Err(e)));
        }
        match self.running.as_mut() {
            Some(r) => r.rx.poll_recv(cx).map(|t| t.map(Ok)),
            None => Poll::Ready(None),
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        self.closed = true;
        if let Some(running) = self.running.take() {
            let fut = close(Arc::clone(&self.shared), running);
            *lock_mut(&mut self.closing) = Some(Box::pin(fut));
        }
        let slot = lock_mut(&mut self.closing);
        let Some(fut) = slot.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        match fut.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                *slot = None;
                Poll::Ready(r)
            }
        }
    }
}

impl<Args> BackendConfig for FaenaBackend<Args> {
    type Args = Args;
    type Id = TaskId;
    type Kind = Durable;
    type Config = FaenaConfig;
    type Layer = FaenaAckLayer;

    fn config(&self) -> &Self::Config {
        &self.config
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        FaenaAckLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<Args> WireFormatBackend for FaenaBackend<Args> {
    type Codec = JsonCodec;
    type Compact = Value;

    fn codec(&self) -> &Self::Codec {
        &self.codec
    }
}

impl<Args> futures::Sink<Task<Value>> for FaenaBackend<Args> {
    type Error = BrokerError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        if this.sink_buf.len() >= ENQUEUE_CHUNK {
            return this.poll_sink_flush(cx);
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Task<Value>) -> Result<(), Self::Error> {
        let this = self.get_mut();
        let req = this.request_of(item)?;
        this.sink_buf.push(req);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_sink_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_sink_flush(cx)
    }
}

/// The backend's middleware: records the outcome of each attempt with [`Broker::finish`].
#[derive(Clone)]
pub struct FaenaAckLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FaenaAckLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaenaAckLayer")
            .field("queue", &self.shared.queue)
            .finish()
    }
}

impl<S> Layer<S> for FaenaAckLayer {
    type Service = FaenaAck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FaenaAck {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service of [`FaenaAckLayer`].
#[derive(Clone)]
pub struct FaenaAck<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for FaenaAck<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaenaAck")
            .field("queue", &self.shared.queue)
            .finish()
    }
}

impl<S, Args> Service<Task<Args>> for FaenaAck<S>
where
    S: Service<Task<Args>>,
    S::Future: Send + 'static,
    S::Response: Serialize + Send + 'static,
    S::Error: Into<BoxDynError>,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let job = task.data().get::<FaenaJob>().cloned();
        let shared = Arc::clone(&self.shared);
        let fut = self.inner.call(task);
        Box::pin(async move {
            let Some(job) = job else {
                // Not a Faena job (a test calling the service directly): nothing to record.
                return fut.await.map_err(Into::into);
            };
            let spec = shared.broker.catalog().get(&job.kind);
            let res: Result<S::Response, BoxDynError> =
                match consume::guard_attempt(spec, fut).await {
                    Err(e) => Err(e.into()),
                    Ok(r) => r.map_err(Into::into),
                };
            let kind = outcome_of(&job, spec, &res);
            shared.record(vec![job.outcome(kind)]).await;
            res
        })
    }
}

/// Turns an apalis result into an [`AttemptEnd`]; [`consume::decide_outcome`] does the rest, as
/// for the native runtime.
fn outcome_of<R: Serialize>(
    job: &FaenaJob,
    spec: Option<&KindSpec>,
    res: &Result<R, BoxDynError>,
) -> OutcomeKind {
    let end = match res {
        Ok(value) => AttemptEnd::Succeeded(serde_json::to_string(value).unwrap_or_else(|e| {
            warn!(task_id = %job.id, error = %e, "the handler's result is not JSON; storing null");
            "null".into()
        })),
        Err(e) if e.downcast_ref::<AbortError>().is_some() => AttemptEnd::Fatal {
            error: e.to_string(),
            class: ErrorClass::Permanent,
        },
        Err(e) => AttemptEnd::Failed {
            error: e.to_string(),
            retry_after: e
                .downcast_ref::<RetryAfterError>()
                .map(|r| r.get_duration()),
        },
    };
    let span =
        tracing::info_span!("job", task_id = %job.id, kind = %job.kind, attempt = job.attempt);
    span.in_scope(|| consume::decide_outcome(spec, job.attempt, job.max_attempts, end))
}

/// apalis' status of a Faena state.
pub fn status_of(state: TaskState) -> Status {
    match state {
        TaskState::Pending | TaskState::Scheduled => Status::Pending,
        TaskState::Running => Status::Running,
        TaskState::Succeeded => Status::Done,
        TaskState::Dead => Status::Failed,
        TaskState::Cancelled => Status::Killed,
    }
}

/// The indexed Faena states a status filter lists, in listing order.
fn states_for(status: Option<&Status>) -> &'static [TaskState] {
    match status {
        None => &[
            TaskState::Running,
            TaskState::Pending,
            TaskState::Scheduled,
            TaskState::Dead,
        ],
        Some(Status::Pending) => &[TaskState::Pending, TaskState::Scheduled],
        Some(Status::Running) => &[TaskState::Running],
        Some(Status::Failed) => &[TaskState::Dead],
        // Queued, Done, Killed: not indexed by the broker.
        Some(_) => &[],
    }
}

/// The apalis task of a task record.
pub fn task_of_record(r: TaskRecord) -> Task<Value> {
    let mut store = MetadataStore::new();
    store.replace(META_ID, r.id.clone());
    store.replace(META_KIND, r.kind.clone());
    store.replace(META_QUEUE, r.queue.clone());
    store.replace(META_MAX_ATTEMPTS, r.max_attempts.to_string());
    if let Some(t) = r.enqueued_at {
        store.replace(META_ENQUEUED_AT, t.timestamp_millis().to_string());
    }
    if let Some(e) = &r.error {
        store.replace(META_ERROR, e.clone());
    }
    if let Some(c) = &r.error_class {
        store.replace(META_ERROR_CLASS, c.clone());
    }
    if let Some(v) = &r.result {
        store.replace(META_RESULT, v.to_string());
    }
    let mut b = TaskBuilder::new(r.args)
        .task_id(ApalisTaskId::from_string(r.id))
        .attempt(r.attempts as usize)
        .max_attempts(r.max_attempts as usize)
        .status(status_of(r.state))
        .queue(Queue::from(r.queue))
        .done_at(secs(r.finished_at))
        .lock_at(secs(r.started_at))
        .lock_by(r.worker)
        .with_metadata(store);
    if let Some(t) = secs(r.next_run_at.or(r.enqueued_at)) {
        b = b.run_at_timestamp(t);
    }
    if let Some(k) = r.idempotency_key {
        b = b.idempotency_key(k);
    }
    b.build()
}

fn page(filter: &Filter) -> (usize, usize) {
    let limit = filter.page_size.unwrap_or(10).clamp(1, 1000) as usize;
    let offset = (filter.page.max(1) as usize - 1) * limit;
    (offset, limit)
}

fn stat(title: &str, value: impl ToString, priority: u64) -> Statistic {
    Statistic {
        title: title.to_owned(),
        stat_type: StatType::Number,
        value: value.to_string(),
        priority: Some(priority),
    }
}

/// The statistics of one queue (titles are stable: the board and tests look them up).
pub fn queue_statistics(s: &QueueStats) -> Vec<Statistic> {
    vec![
        stat("PENDING_JOBS", s.pending, 1),
        stat("SCHEDULED_JOBS", s.scheduled, 2),
        stat("RUNNING_JOBS", s.running, 3),
        stat("DEAD_JOBS", s.dead, 4),
        stat("SUCCEEDED_ATTEMPTS", s.succeeded, 5),
        stat("FAILED_ATTEMPTS", s.failed, 6),
        stat("RETRIED_ATTEMPTS", s.retried, 7),
        stat("ENQUEUED_JOBS", s.enqueued, 8),
        stat("PAUSED", u8::from(s.paused), 9),
    ]
}

/// True when a registered worker consumes `queue` (a worker that names no queue consumes them all).
fn consumes(w: &WorkerInfo, queue: &str) -> bool {
    // A worker naming `orders` consumes its partitions `orders.1`, ... too.
    let base = queue.split_once('.').map_or(queue, |(base, _)| base);
    w.queues.is_empty() || w.queues.iter().any(|q| q == queue || q == base)
}

fn running_worker(w: &WorkerInfo, queue: String) -> RunningWorker {
    RunningWorker {
        id: w.id.clone(),
        queue,
        backend: BACKEND_NAME.to_owned(),
        started_at: secs(w.started_at).unwrap_or(0),
        last_heartbeat: secs(w.last_heartbeat).unwrap_or(0),
        layers: String::new(),
    }
}

impl<Args> FaenaBackend<Args> {
    async fn list_in(
        &self,
        queues: &[QueueName],
        filter: &Filter,
    ) -> Result<Vec<Task<Value>>, BrokerError> {
        let (offset, limit) = page(filter);
        let want = offset + limit;
        let mut records = Vec::new();
        'outer: for q in queues {
            for &state in states_for(filter.status.as_ref()) {
                if records.len() >= want {
                    break 'outer;
                }
                let more = self
                    .shared
                    .broker
                    .list_one(q, state, want - records.len())
                    .await?;
                records.extend(more);
            }
        }
        Ok(records
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(task_of_record)
            .collect())
    }
}

impl<Args> ListQueues for FaenaBackend<Args> {
    async fn list_queues(&self) -> Result<Vec<QueueInfo>, Self::Error> {
        let broker = &self.shared.broker;
        let workers = broker.workers().await?;
        let mut out = Vec::new();
        for q in broker.queues().await? {
            let stats = broker.stats(&q).await?;
            out.push(QueueInfo {
                name: q.to_string(),
                stats: queue_statistics(&stats),
                workers: workers
                    .iter()
                    .filter(|w| consumes(w, q.as_str()))
                    .map(|w| w.id.clone())
                    .collect(),
                activity: Vec::new(),
            });
        }
        Ok(out)
    }
}

impl<Args> ListWorkers for FaenaBackend<Args> {
    async fn list_workers(&self) -> Result<Vec<RunningWorker>, Self::Error> {
        let q = self.shared.queue.as_str();
        Ok(self
            .shared
            .broker
            .workers()
            .await?
            .iter()
            .filter(|w| consumes(w, q))
            .map(|w| running_worker(w, q.to_owned()))
            .collect())
    }

    async fn list_all_workers(&self) -> Result<Vec<RunningWorker>, Self::Error> {
        Ok(self
            .shared
            .broker
            .workers()
            .await?
            .iter()
            .map(|w| {
                let queues = if w.queues.is_empty() {
                    "*".to_owned()
                } else {
                    w.queues.join(",")
                };
                running_worker(w, queues)
            })
            .collect())
    }
}

impl<Args> ListTasks for FaenaBackend<Args> {
    async fn list_tasks(&self, filter: &Filter) -> Result<Vec<Task<Value>>, Self::Error> {
        self.list_in(std::slice::from_ref(&self.shared.queue), filter)
            .await
    }
}

impl<Args> ListAllTasks for FaenaBackend<Args> {
    async fn list_all_tasks(&self, filter: &Filter) -> Result<Vec<Task<Value>>, Self::Error> {
        let queues = self.shared.broker.queues().await?;
        self.list_in(&queues, filter).await
    }
}

impl<Args> FetchById for FaenaBackend<Args> {
    async fn fetch_by_id(
        &mut self,
        task_id: &ApalisTaskId,
    ) -> Result<Option<Task<Value>>, Self::Error> {
        let Ok(id) = TaskId::parse(&task_id.to_string()) else {
            return Ok(None);
        };
        Ok(self
            .shared
            .broker
            .task(&id)
            .await?
            .filter(|r| r.queue == self.shared.queue.as_str())
            .map(task_of_record))
    }
}

impl<Args> Metrics for FaenaBackend<Args> {
    async fn global(&self) -> Result<Vec<Statistic>, Self::Error> {
        let broker = &self.shared.broker;
        let all = broker.all_stats().await?;
        let workers = broker.workers().await?;
        let mut sum = QueueStats::default();
        for s in &all {
            sum.add(s);
        }
        let mut out = queue_statistics(&sum);
        // PAUSED of a sum means nothing: count paused queues instead.
        out.retain(|s| s.title != "PAUSED");
        out.push(stat(
            "PAUSED_QUEUES",
            all.iter().filter(|s| s.paused).count(),
            9,
        ));
        out.push(stat("QUEUES", all.len(), 10));
        out.push(stat("WORKERS", workers.len(), 11));
        Ok(out)
    }

    async fn fetch_by_queue(&self) -> Result<Vec<Statistic>, Self::Error> {
        let stats = self.shared.broker.stats(&self.shared.queue).await?;
        Ok(queue_statistics(&stats))
    }
}
