//! Integration tests of `faena_apalis` against a real Redis: an apalis worker drains a
//! Faena queue exactly once, failures end DEAD after max_attempts, bad args are DEAD without stopping
//! the worker, unstarted jobs go back to the queue on stop, and the listing and metrics traits that
//! apalis-board uses report the queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context};
use apalis::layers::WorkerBuilderExt;
use apalis_core::backend::finalize::Durable;
use apalis_core::backend::{
    Expose, FetchById, Filter, ListAllTasks, ListQueues, ListTasks, ListWorkers, Metrics,
    Statistic, TaskSink,
};
use apalis_core::error::{BoxDynError, WorkerError};
use apalis_core::task::attempt::Attempt;
use apalis_core::task::data::Data;
use apalis_core::task::status::Status;
use apalis_core::task::task_id::TaskId as ApalisTaskId;
use apalis_core::worker::builder::WorkerBuilder;
use faena_apalis::{FaenaBackend, FaenaConfig, FaenaJob};
use faena_broker::{Broker, Fetch, OutcomeKind, TaskState, WorkerRegistration};
use faena_core::jobs::EnqueueRequest;
use faena_core::QueueName;
use faena_testkit::{wait_for, TestRedis};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Calls of a handler by task id.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<HashMap<String, u32>>>);

impl Calls {
    fn hit(&self, id: &str) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(id.to_owned()).or_default() += 1;
    }

    fn snapshot(&self) -> HashMap<String, u32> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn noop(queue: &QueueName, args: Value, max_attempts: Option<u32>) -> EnqueueRequest {
    EnqueueRequest {
        kind: "noop".into(),
        args,
        queue: Some(queue.to_string()),
        max_attempts,
        ..Default::default()
    }
}

type RunningWorker = (oneshot::Sender<()>, JoinHandle<Result<(), WorkerError>>);

/// Asks a worker started with `run_until` to stop and waits until it has.
async fn stop_worker((stop, join): RunningWorker) -> anyhow::Result<()> {
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), join)
        .await
        .context("the worker did not stop within 30 s")??
        .map_err(|e| anyhow!("the worker failed: {e}"))
}

fn stop_signal() -> (
    oneshot::Sender<()>,
    impl std::future::Future<Output = Result<(), std::io::Error>> + Send + 'static,
) {
    let (tx, rx) = oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
        Ok(())
    })
}

async fn wait_stats(
    broker: &Broker,
    queue: &QueueName,
    what: &str,
    done: impl Fn(&faena_broker::QueueStats) -> bool,
) -> anyhow::Result<()> {
    wait_for(what, Duration::from_secs(30), || async {
        let s = broker.stats(queue).await?;
        Ok(done(&s).then_some(()))
    })
    .await
}

async fn echo(
    args: Value,
    job: FaenaJob,
    attempt: Attempt,
    calls: Data<Calls>,
) -> Result<Value, BoxDynError> {
    calls.hit(&job.id.to_string());
    if attempt.current() != job.attempt as usize {
        return Err(format!(
            "apalis attempt {} != Faena attempt {}",
            attempt.current(),
            job.attempt
        )
        .into());
    }
    Ok(json!({"args": args, "kind": job.kind, "attempt": job.attempt}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_worker_runs_every_job_exactly_once() -> anyhow::Result<()> {
    let t = TestRedis::new("apalis_ok")?;
    let broker = t.broker.clone();
    let queue = QueueName::parse("apalis-ok")?;
    const N: usize = 300;
    let ids = broker
        .enqueue_many(
            (0..N)
                .map(|i| noop(&queue, json!({"i": i}), None))
                .collect(),
        )
        .await?;
    let calls = Calls::default();
    let worker = WorkerBuilder::new("apalis-ok")
        .backend(FaenaBackend::<Value>::new(broker.clone(), queue.clone()))
        .data(calls.clone())
        .build(echo);
    let (stop, signal) = stop_signal();
    let running = (stop, tokio::spawn(worker.run_until(signal)));

    wait_stats(&broker, &queue, "every job SUCCEEDED", |s| {
        s.succeeded as usize >= N
    })
    .await?;
    let workers = broker.workers().await?;
    let me = workers
        .iter()
        .find(|w| w.id.starts_with("apalis-ok@"))
        .context("the apalis worker is in the registry while it runs")?;
    assert_eq!(me.queues, vec![queue.to_string()]);
    stop_worker(running).await?;

    let s = broker.stats(&queue).await?;
    assert_eq!(s.succeeded as usize, N);
    assert_eq!(
        (s.pending, s.scheduled, s.running, s.dead, s.failed),
        (0, 0, 0, 0, 0)
    );
    for (i, id) in ids.iter().enumerate() {
        let rec = broker
            .task(id)
            .await?
            .with_context(|| format!("record of {id}"))?;
        assert_eq!(rec.state, TaskState::Succeeded, "{id}");
        assert_eq!(rec.attempts, 1, "{id}");
        assert_eq!(
            rec.result,
            Some(json!({"args": {"i": i}, "kind": "noop", "attempt": 1}))
        );
    }
    let calls = calls.snapshot();
    assert_eq!(calls.len(), N);
    assert!(calls.values().all(|&n| n == 1), "a job ran twice");
    assert!(
        !broker
            .workers()
            .await?
            .iter()
            .any(|w| w.id.starts_with("apalis-ok@")),
        "a stopped worker leaves the registry"
    );
    Ok(())
}

async fn always_fails(job: FaenaJob, calls: Data<Calls>) -> Result<Value, BoxDynError> {
    calls.hit(&job.id.to_string());
    Err(format!("boom on attempt {}", job.attempt).into())
}

async fn fail_handler(
    _args: Value,
    job: FaenaJob,
    calls: Data<Calls>,
) -> Result<Value, BoxDynError> {
    always_fails(job, calls).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_handler_ends_dead_after_max_attempts() -> anyhow::Result<()> {
    let t = TestRedis::new("apalis_fail")?;
    let broker = t.broker.clone();
    let queue = QueueName::parse("apalis-fail")?;
    let ids = broker
        .enqueue_many(vec![
            noop(&queue, json!({"a": 1}), Some(3)),
            noop(&queue, json!({"a": 2}), Some(3)),
        ])
        .await?;
    let calls = Calls::default();
    let worker = WorkerBuilder::new("apalis-fail")
        .backend(FaenaBackend::<Value>::new(broker.clone(), queue.clone()))
        .data(calls.clone())
        .build(fail_handler);
    let (stop, signal) = stop_signal();
    let running = (stop, tokio::spawn(worker.run_until(signal)));

    // Retries follow the default policy (1 s, then 2 s), so both are DEAD after about 3 s.
    wait_stats(&broker, &queue, "both jobs DEAD", |s| s.dead >= 2).await?;
    stop_worker(running).await?;

    for id in &ids {
        let rec = broker
            .task(id)
            .await?
            .with_context(|| format!("record of {id}"))?;
        assert_eq!(rec.state, TaskState::Dead);
        assert_eq!(rec.attempts, 3);
        assert_eq!(rec.error.as_deref(), Some("boom on attempt 3"));
        assert_eq!(rec.error_class.as_deref(), Some("retryable"));
    }
    let calls = calls.snapshot();
    assert_eq!(calls.len(), 2);
    assert!(calls.values().all(|&n| n == 3), "{calls:?}");
    let s = broker.stats(&queue).await?;
    assert_eq!(
        (s.dead, s.failed, s.retried, s.succeeded, s.running),
        (2, 6, 4, 0, 0)
    );
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Numbered {
    n: u32,
}

async fn double(args: Numbered) -> Result<Value, BoxDynError> {
    Ok(json!(args.n * 2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_args_decode_and_bad_args_are_dead_without_stopping_the_worker() -> anyhow::Result<()>
{
    let t = TestRedis::new("apalis_typed")?;
    let broker = t.broker.clone();
    let queue = QueueName::parse("apalis-typed")?;
    let ids = broker
        .enqueue_many(vec![
            noop(&queue, json!({"n": 1}), None),
            noop(&queue, json!("not a Numbered"), None),
            noop(&queue, json!({"n": 2}), None),
        ])
        .await?;
    let worker = WorkerBuilder::new("apalis-typed")
        .backend(FaenaBackend::<Numbered>::new(broker.clone(), queue.clone()))
        .build(double);
    let (stop, signal) = stop_signal();
    let running = (stop, tokio::spawn(worker.run_until(signal)));
    wait_stats(&broker, &queue, "two SUCCEEDED and one DEAD", |s| {
        s.succeeded >= 2 && s.dead >= 1
    })
    .await?;
    stop_worker(running).await?;

    let mut recs = Vec::new();
    for id in &ids {
        recs.push(
            broker
                .task(id)
                .await?
                .with_context(|| format!("record of {id}"))?,
        );
    }
    assert_eq!(recs[0].result, Some(json!(2)));
    assert_eq!(recs[2].result, Some(json!(4)));
    assert_eq!(recs[1].state, TaskState::Dead);
    assert_eq!(recs[1].error_class.as_deref(), Some("decode"));
    assert_eq!(recs[1].attempts, 1);
    Ok(())
}

async fn slow(_args: Value) -> Result<Value, BoxDynError> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unstarted_jobs_go_back_to_the_queue_on_stop() -> anyhow::Result<()> {
    let t = TestRedis::new("apalis_release")?;
    let broker = t.broker.clone();
    let queue = QueueName::parse("apalis-release")?;
    const N: usize = 12;
    let ids = broker
        .enqueue_many(
            (0..N)
                .map(|i| noop(&queue, json!({"i": i}), None))
                .collect(),
        )
        .await?;
    let config = FaenaConfig {
        prefetch: 4,
        ..Default::default()
    };
    let worker = WorkerBuilder::new("apalis-release")
        .backend(FaenaBackend::<Value>::with_config(
            broker.clone(),
            queue.clone(),
            config,
        ))
        .concurrency(1)
        .build(slow);
    let (stop, signal) = stop_signal();
    let running = (stop, tokio::spawn(worker.run_until(signal)));
    // One job runs at a time while up to 4 more wait leased in the backend's buffer.
    wait_stats(
        &broker,
        &queue,
        "a first success with jobs leased ahead",
        |s| s.succeeded >= 1 && s.running >= 2,
    )
    .await?;
    stop_worker(running).await?;

    let s = broker.stats(&queue).await?;
    assert_eq!(s.running, 0, "nothing stays leased after a stop");
    assert_eq!((s.succeeded + s.pending) as usize, N);
    assert!(s.pending > 0, "the stop came before the queue drained");
    assert_eq!((s.dead, s.failed), (0, 0));
    let mut back = 0;
    for id in &ids {
        let rec = broker
            .task(id)
            .await?
            .with_context(|| format!("record of {id}"))?;
        match rec.state {
            TaskState::Succeeded => assert_eq!(rec.attempts, 1),
            TaskState::Pending => {
                assert_eq!(rec.attempts, 0, "a given-back job keeps its attempts");
                assert_eq!(rec.worker, None);
                back += 1;
            }
            other => panic!("{id} is {other}"),
        }
    }
    assert_eq!(back as u64, s.pending);
    // A second worker finishes the rest.
    let worker = WorkerBuilder::new("apalis-release-2")
        .backend(FaenaBackend::<Value>::new(broker.clone(), queue.clone()))
        .build(slow);
    let (stop, signal) = stop_signal();
    let running = (stop, tokio::spawn(worker.run_until(signal)));
    wait_stats(&broker, &queue, "every job SUCCEEDED", |s| {
        s.succeeded as usize >= N
    })
    .await?;
    stop_worker(running).await?;
    Ok(())
}

fn stat(stats: &[Statistic], title: &str) -> anyhow::Result<u64> {
    stats
        .iter()
        .find(|s| s.title == title)
        .with_context(|| format!("no statistic {title}"))?
        .value
        .parse()
        .with_context(|| format!("statistic {title} is not a number"))
}

fn filter(status: Option<Status>, page: u32, size: u32) -> Filter {
    Filter {
        status,
        page,
        page_size: Some(size),
    }
}

fn assert_board_compatible<B: Expose<Value, Durable> + FetchById>() {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_and_metrics_report_the_queue() -> anyhow::Result<()> {
    assert_board_compatible::<FaenaBackend<Value>>();
    let t = TestRedis::new("apalis_list")?;
    let broker = t.broker.clone();
    let queue = QueueName::parse("apalis-list")?;
    let other = QueueName::parse("apalis-other")?;
    let mut reqs: Vec<EnqueueRequest> = (0..5)
        .map(|i| noop(&queue, json!({"i": i}), None))
        .collect();
    reqs.push(EnqueueRequest {
        countdown: Some(3600.0),
        ..noop(&queue, json!({"later": true}), None)
    });
    reqs.push(noop(&other, json!({"elsewhere": true}), None));
    let ids = broker.enqueue_many(reqs).await?;
    // One job RUNNING and one DEAD, by hand.
    let Fetch::Jobs(running) = broker.fetch(&queue, "fake-worker", 1).await? else {
        anyhow::bail!("the queue is not paused");
    };
    let Fetch::Jobs(doomed) = broker.fetch(&queue, "fake-worker", 1).await? else {
        anyhow::bail!("the queue is not paused");
    };
    let (running_id, dead_id) = (running[0].id, doomed[0].id);
    broker
        .finish(
            &queue,
            &[doomed[0].outcome(OutcomeKind::Dead {
                error: "broken".into(),
                class: faena_core::jobs::ErrorClass::Permanent,
            })],
        )
        .await?;
    let here = WorkerRegistration::new(vec![queue.clone()], 4);
    let there = WorkerRegistration::new(vec![other.clone()], 2);
    broker.heartbeat(&here, 1).await?;
    broker.heartbeat(&there, 0).await?;

    let mut backend = FaenaBackend::<Value>::with_config(
        broker.clone(),
        queue.clone(),
        FaenaConfig {
            push_kind: Some("noop".into()),
            ..Default::default()
        },
    );

    // Queues and metrics.
    let queues = backend.list_queues().await?;
    assert_eq!(queues.len(), 2);
    let info = queues
        .iter()
        .find(|q| q.name == queue.as_str())
        .context("the queue is listed")?;
    assert_eq!(stat(&info.stats, "PENDING_JOBS")?, 3);
    assert_eq!(stat(&info.stats, "SCHEDULED_JOBS")?, 1);
    assert_eq!(stat(&info.stats, "RUNNING_JOBS")?, 1);
    assert_eq!(stat(&info.stats, "DEAD_JOBS")?, 1);
    assert_eq!(stat(&info.stats, "ENQUEUED_JOBS")?, 6);
    assert_eq!(info.workers, vec![here.id.clone()]);
    let by_queue = backend.fetch_by_queue().await?;
    assert_eq!(stat(&by_queue, "PENDING_JOBS")?, 3);
    assert_eq!(stat(&by_queue, "PAUSED")?, 0);
    let global = backend.global().await?;
    assert_eq!(stat(&global, "PENDING_JOBS")?, 4);
    assert_eq!(stat(&global, "QUEUES")?, 2);
    assert_eq!(stat(&global, "WORKERS")?, 2);

    // Tasks by status.
    let pending = backend
        .list_tasks(&filter(Some(Status::Pending), 1, 10))
        .await?;
    assert_eq!(pending.len(), 4);
    assert!(pending.iter().all(|t| t.status() == Status::Pending));
    let running = backend
        .list_tasks(&filter(Some(Status::Running), 1, 10))
        .await?;
    assert_eq!(running.len(), 1);
    assert_eq!(
        running[0].task_id().map(ToString::to_string),
        Some(running_id.to_string())
    );
    assert_eq!(running[0].status(), Status::Running);
    assert_eq!(running[0].lock_by(), Some("fake-worker"));
    let failed = backend
        .list_tasks(&filter(Some(Status::Failed), 1, 10))
        .await?;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].metadata().get("faena.error"), Some("broken"));
    assert_eq!(failed[0].metadata().get("faena.kind"), Some("noop"));
    assert!(backend
        .list_tasks(&filter(Some(Status::Done), 1, 10))
        .await?
        .is_empty());
    assert_eq!(backend.list_tasks(&filter(None, 1, 10)).await?.len(), 6);
    assert_eq!(backend.list_tasks(&filter(None, 2, 4)).await?.len(), 2);
    assert_eq!(backend.list_tasks(&filter(None, 0, 4)).await?.len(), 4);
    assert_eq!(
        backend.list_all_tasks(&filter(None, 1, 100)).await?.len(),
        7
    );

    // Workers.
    let workers = backend.list_workers().await?;
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].id, here.id);
    assert_eq!(workers[0].queue, queue.as_str());
    assert_eq!(workers[0].backend, "faena");
    assert!(workers[0].last_heartbeat > 0);
    assert_eq!(backend.list_all_workers().await?.len(), 2);

    // By id: this queue's tasks only.
    let dead = backend
        .fetch_by_id(&ApalisTaskId::from_string(dead_id))
        .await?
        .context("the DEAD task is found by id")?;
    assert_eq!(dead.status(), Status::Failed);
    assert_eq!(dead.args, json!({"i": 1}));
    assert!(backend
        .fetch_by_id(&ApalisTaskId::from_string(ids[6]))
        .await?
        .is_none());
    assert!(backend
        .fetch_by_id(&ApalisTaskId::from_string("nope".to_owned()))
        .await?
        .is_none());

    // Pushing through TaskSink enqueues a validated job.
    backend.push(json!({"pushed": true})).await?;
    let s = broker.stats(&queue).await?;
    assert_eq!((s.pending, s.enqueued), (4, 7));
    let mut kindless = FaenaBackend::<Value>::new(broker.clone(), queue.clone());
    assert!(
        kindless.push(json!({})).await.is_err(),
        "a push without a job kind is refused"
    );
    Ok(())
}
