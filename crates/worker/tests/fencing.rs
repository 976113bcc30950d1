//! Every outcome belongs to one attempt (issue 13), against a real Redis under a key prefix of its
//! own: a stale attempt's acknowledgement, renewal and give-back change nothing; a stopping worker
//! keeps its leases while its jobs finish and stops them at the timeout; a worker whose lease was
//! taken stops that job; a cancelled job retried runs once. A probe counts every start and end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use faena_broker::{Broker, Fetch, OutcomeKind, TaskState};
use faena_core::jobs::{EnqueueRequest, SleepArgs};
use faena_core::{QueueName, TaskId};
use faena_testkit::{wait_for, TestRedis};
use faena_worker::{spawn, Handlers, JobContext, WorkerConfig, WorkerHandle};
use serde_json::json;

/// How many times an attempt started and ended.
type StartsEnds = (u32, u32);

/// Starts and ends of executions, by task id and attempt.
#[derive(Clone, Default)]
struct Probe(Arc<Mutex<HashMap<(TaskId, u32), StartsEnds>>>);

impl Probe {
    /// Starts and ends of every attempt of `id`, added up.
    fn get(&self, id: &TaskId) -> (u32, u32) {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.iter()
            .filter(|((t, _), _)| t == id)
            .fold((0, 0), |acc, (_, v)| (acc.0 + v.0, acc.1 + v.1))
    }

    /// Starts and ends of attempt `attempt` of `id`.
    fn attempt(&self, id: &TaskId, attempt: u32) -> (u32, u32) {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&(*id, attempt)).copied().unwrap_or_default()
    }

    fn bump(&self, ctx: &JobContext, start: u32, end: u32) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry((ctx.task_id, ctx.attempt)).or_default();
        e.0 += start;
        e.1 += end;
    }

    /// `sleep {ms}` that records its start and, if it gets there, its end. Attempts after the
    /// first sleep 10 ms, so a test can see a re-run end.
    fn handlers(&self) -> Handlers {
        let mut h = Handlers::default();
        let probe = self.clone();
        h.register(move |a: SleepArgs, ctx: JobContext| {
            let probe = probe.clone();
            async move {
                probe.bump(&ctx, 1, 0);
                let ms = if ctx.attempt == 1 { a.ms } else { 10 };
                tokio::time::sleep(Duration::from_millis(ms)).await;
                probe.bump(&ctx, 0, 1);
                Ok(json!({ "slept_ms": ms, "attempt": ctx.attempt }))
            }
        });
        h
    }
}

fn config(concurrency: usize, stop_timeout: Duration) -> WorkerConfig {
    WorkerConfig {
        queues: vec![QueueName::default_queue()],
        concurrency,
        stop_timeout,
        upkeep_interval: Duration::from_millis(100),
        heartbeat_interval: Duration::from_millis(300),
        unknown_kind_grace: Duration::from_secs(900),
    }
}

fn sleep_req(ms: u64) -> EnqueueRequest {
    EnqueueRequest {
        kind: "sleep".into(),
        args: json!({ "ms": ms }),
        ..Default::default()
    }
}

fn short_lease(label: &str) -> anyhow::Result<TestRedis> {
    TestRedis::with(label, |s| s.lease = Duration::from_secs(1))
}

async fn record(b: &Broker, id: &TaskId) -> anyhow::Result<faena_broker::TaskRecord> {
    b.task(id).await?.context("the task record")
}

async fn stale_count(r: &TestRedis) -> anyhow::Result<u64> {
    let keys = r.broker.queue_keys(&QueueName::default_queue());
    let mut conn = r.broker.pool().get().await?;
    let n: Option<u64> = redis::cmd("HGET")
        .arg(&keys.stats)
        .arg("stale")
        .query_async(&mut *conn)
        .await?;
    Ok(n.unwrap_or(0))
}

/// Makes the lease of `id` expire now and has upkeep take it back (re-queued, PENDING).
async fn expire_lease(r: &TestRedis, id: &TaskId) -> anyhow::Result<()> {
    let q = QueueName::default_queue();
    let keys = r.broker.queue_keys(&q);
    wait_for(
        "upkeep to take the lease back",
        Duration::from_secs(10),
        || async {
            let mut conn = r.broker.pool().get().await?;
            // A renewal between these two calls puts the deadline back: then try again.
            let _: i64 = redis::cmd("ZADD")
                .arg(&keys.leased)
                .arg("XX")
                .arg(0)
                .arg(id)
                .query_async(&mut *conn)
                .await?;
            let report = r.broker.maintain(&q, 100).await?;
            Ok((report.requeued == 1).then_some(()))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_attempt_can_neither_finish_renew_nor_give_back() -> anyhow::Result<()> {
    let r = short_lease("stale")?;
    let q = QueueName::default_queue();
    let id = r.broker.enqueue(sleep_req(10)).await?;
    let Fetch::Jobs(a) = r.broker.fetch(&q, "worker-a", 1).await? else {
        anyhow::bail!("paused");
    };
    let a = a.into_iter().next().context("A leased the job")?;
    expire_lease(&r, &id).await?;
    let Fetch::Jobs(b) = r.broker.fetch(&q, "worker-b", 1).await? else {
        anyhow::bail!("paused");
    };
    let b = b.into_iter().next().context("B leased the job again")?;
    assert_eq!((b.id, b.attempt), (id, 2));
    assert_ne!(a.token, b.token, "each lease has its own token");

    // A wakes up: its renewal is refused, its success and its failure are ignored, its give-back too.
    assert_eq!(r.broker.renew(&q, &[a.lease()]).await?, vec![id]);
    let success = a.outcome(OutcomeKind::Succeeded {
        result: "\"from A\"".into(),
    });
    let report = r.broker.finish(&q, &[success]).await?;
    assert_eq!(report.succeeded, 0);
    assert_eq!(report.stale, vec![(id, Some(b.token))]);
    let failure = a.outcome(OutcomeKind::Dead {
        error: "A gave up".into(),
        class: faena_core::jobs::ErrorClass::Permanent,
    });
    assert_eq!(r.broker.finish(&q, &[failure]).await?.stale.len(), 1);
    assert_eq!(r.broker.release(&q, "worker-a", &[a.lease()]).await?, 0);
    let rec = record(&r.broker, &id).await?;
    assert_eq!((rec.state, rec.attempts), (TaskState::Running, 2));
    assert_eq!(
        r.broker.stats(&q).await?.running,
        1,
        "B still holds its lease"
    );

    // B's attempt is the live one.
    assert!(r.broker.renew(&q, &[b.lease()]).await?.is_empty());
    let done = b.outcome(OutcomeKind::Succeeded {
        result: "\"from B\"".into(),
    });
    assert_eq!(r.broker.finish(&q, &[done]).await?.succeeded, 1);
    let rec = record(&r.broker, &id).await?;
    assert_eq!(rec.state, TaskState::Succeeded);
    assert_eq!(rec.result, Some(json!("from B")));
    assert_eq!(
        stale_count(&r).await?,
        3,
        "one renewal and two outcomes were stale"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_lease_was_taken_stops_that_job_without_acknowledging() -> anyhow::Result<()>
{
    let r = short_lease("taken")?;
    let q = QueueName::default_queue();
    let probe = Probe::default();
    let id = r.broker.enqueue(sleep_req(30_000)).await?;
    let worker = spawn(
        r.broker.clone(),
        probe.handlers(),
        config(1, Duration::from_secs(5)),
    );
    wait_for("the job to start", Duration::from_secs(10), || async {
        Ok((probe.get(&id).0 == 1).then_some(()))
    })
    .await?;
    // As if the worker had been paused past its lease and the job was leased again: by another
    // worker (the fetch below), or by this one once it has stopped the attempt it lost.
    expire_lease(&r, &id).await?;
    let Fetch::Jobs(thief) = r.broker.fetch(&q, "worker-b", 1).await? else {
        anyhow::bail!("paused");
    };
    match thief.into_iter().next() {
        Some(thief) => {
            // The worker's next renewal finds the lease lost and stops the job long before its 30 s.
            wait_for(
                "the worker to stop the job it lost",
                Duration::from_secs(10),
                || async {
                    let workers = r.broker.workers().await?;
                    Ok(workers
                        .iter()
                        .any(|w| w.id == worker.id && w.running == 0)
                        .then_some(()))
                },
            )
            .await?;
            let rec = record(&r.broker, &id).await?;
            assert_eq!((rec.state, rec.attempts), (TaskState::Running, 2));
            let done = thief.outcome(OutcomeKind::Succeeded {
                result: "\"thief\"".into(),
            });
            assert_eq!(r.broker.finish(&q, &[done]).await?.succeeded, 1);
            let rec = record(&r.broker, &id).await?;
            assert_eq!(rec.result, Some(json!("thief")));
        }
        None => {
            // The worker stopped its first attempt and leased the job again itself.
            wait_for(
                "the second attempt to succeed",
                Duration::from_secs(10),
                || async {
                    Ok((record(&r.broker, &id).await?.state == TaskState::Succeeded).then_some(()))
                },
            )
            .await?;
            assert_eq!(probe.attempt(&id, 2), (1, 1));
        }
    }
    worker.shutdown().await;
    assert_eq!(
        probe.attempt(&id, 1),
        (1, 0),
        "the first attempt started once, never ended"
    );
    let rec = record(&r.broker, &id).await?;
    assert_eq!((rec.state, rec.attempts), (TaskState::Succeeded, 2));
    Ok(())
}

async fn running_count(b: &Broker) -> anyhow::Result<u64> {
    Ok(b.stats(&QueueName::default_queue()).await?.running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_keeps_its_leases_while_its_jobs_finish() -> anyhow::Result<()> {
    // Jobs of 2.5 s, leases of 1 s, a second worker ready to take any lease that lapses.
    let r = short_lease("drain")?;
    let probe = Probe::default();
    let ids = r
        .broker
        .enqueue_many((0..4).map(|_| sleep_req(2_500)).collect())
        .await?;
    let first = spawn(
        r.broker.clone(),
        probe.handlers(),
        config(4, Duration::from_secs(20)),
    );
    wait_for("four jobs running", Duration::from_secs(10), || async {
        Ok((running_count(&r.broker).await? == 4).then_some(()))
    })
    .await?;
    let second = spawn(
        r.same_prefix()?,
        probe.handlers(),
        config(4, Duration::from_secs(20)),
    );
    first.shutdown().await;
    for id in &ids {
        let rec = record(&r.broker, id).await?;
        assert_eq!(
            (rec.state, rec.attempts),
            (TaskState::Succeeded, 1),
            "{id} ran once, by the stopping worker"
        );
        assert_eq!(probe.get(id), (1, 1), "{id}");
    }
    second.shutdown().await;
    assert_eq!(stale_count(&r).await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_stop_timeout_jobs_are_stopped_and_given_back() -> anyhow::Result<()> {
    let r = short_lease("timeout")?;
    let probe = Probe::default();
    let id = r.broker.enqueue(sleep_req(60_000)).await?;
    let stop_timeout = Duration::from_secs(1);
    let worker: WorkerHandle = spawn(r.broker.clone(), probe.handlers(), config(2, stop_timeout));
    wait_for("the job to start", Duration::from_secs(10), || async {
        Ok((probe.get(&id).0 == 1).then_some(()))
    })
    .await?;
    let asked = Instant::now();
    worker.shutdown().await;
    let took = asked.elapsed();
    assert!(
        took <= stop_timeout + Duration::from_secs(5),
        "the stop took {took:?}"
    );
    let rec = record(&r.broker, &id).await?;
    assert_eq!(
        (rec.state, rec.attempts),
        (TaskState::Pending, 0),
        "given back with its attempt"
    );
    assert_eq!(probe.get(&id), (1, 0), "stopped, never acknowledged");
    assert_eq!(running_count(&r.broker).await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_retried_runs_exactly_once() -> anyhow::Result<()> {
    let r = TestRedis::new("cancel_retry")?;
    let q = QueueName::default_queue();
    let keys = r.broker.queue_keys(&q);
    let probe = Probe::default();
    r.broker.pause(&q).await?;
    // Cancelled while its id sits in the pending list, then retried before any fetch.
    let kept = r.broker.enqueue(sleep_req(1)).await?;
    assert_eq!(r.broker.cancel(&kept).await?, Some(TaskState::Cancelled));
    assert_eq!(r.broker.retry(&kept).await?, Some(TaskState::Pending));
    let pending: Vec<String> = {
        let mut conn = r.broker.pool().get().await?;
        redis::cmd("LRANGE")
            .arg(&keys.pending)
            .arg(0)
            .arg(-1)
            .query_async(&mut *conn)
            .await?
    };
    let kept_text = kept.to_string();
    assert_eq!(
        pending.iter().filter(|p| **p == kept_text).count(),
        1,
        "{pending:?}"
    );
    // Cancelled, dropped by a fetch, then retried: it must be pushed again.
    let dropped = r.broker.enqueue(sleep_req(1)).await?;
    assert_eq!(r.broker.cancel(&dropped).await?, Some(TaskState::Cancelled));
    r.broker.resume(&q).await?;
    let worker = spawn(
        r.broker.clone(),
        probe.handlers(),
        config(2, Duration::from_secs(5)),
    );
    wait_for(
        "the first job to succeed",
        Duration::from_secs(10),
        || async {
            Ok((record(&r.broker, &kept).await?.state == TaskState::Succeeded).then_some(()))
        },
    )
    .await?;
    wait_for(
        "the cancelled id to leave the list",
        Duration::from_secs(10),
        || async { Ok((r.broker.stats(&q).await?.pending == 0).then_some(())) },
    )
    .await?;
    assert_eq!(r.broker.retry(&dropped).await?, Some(TaskState::Pending));
    wait_for(
        "the retried job to succeed",
        Duration::from_secs(10),
        || async {
            Ok((record(&r.broker, &dropped).await?.state == TaskState::Succeeded).then_some(()))
        },
    )
    .await?;
    worker.shutdown().await;
    assert_eq!(probe.get(&kept), (1, 1));
    assert_eq!(probe.get(&dropped), (1, 1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_this_worker_does_not_know_waits_for_one_that_does() -> anyhow::Result<()> {
    let r = TestRedis::new("unknown_kind")?;
    let stock_alerts = || EnqueueRequest {
        kind: "stock_alerts".into(),
        args: json!({}),
        ..Default::default()
    };
    // An old worker, without the kind: it snoozes the job, using no attempt.
    let waiting = r.broker.enqueue(stock_alerts()).await?;
    let old = spawn(
        r.broker.clone(),
        Handlers::builtin(),
        WorkerConfig {
            unknown_kind_grace: Duration::from_secs(3),
            ..config(2, Duration::from_secs(5))
        },
    );
    wait_for(
        "the old worker to snooze it",
        Duration::from_secs(10),
        || async {
            let rec = record(&r.broker, &waiting).await?;
            Ok((rec.state == TaskState::Scheduled && rec.attempts == 0).then_some(()))
        },
    )
    .await?;
    old.shutdown().await;
    // A new worker that knows the kind runs it.
    let mut h = Handlers::default();
    h.register(|_: faena_catalog::StockAlertsArgs, _ctx: JobContext| async move {
        Ok(json!({ "ran": true }))
    });
    let new = spawn(r.same_prefix()?, h, config(2, Duration::from_secs(5)));
    wait_for(
        "the new worker to run it",
        Duration::from_secs(15),
        || async {
            Ok((record(&r.broker, &waiting).await?.state == TaskState::Succeeded).then_some(()))
        },
    )
    .await?;
    new.shutdown().await;
    assert_eq!(record(&r.broker, &waiting).await?.attempts, 1);

    // Past the grace, nobody will: DEAD with `unknown_kind`.
    let lost = r.broker.enqueue(stock_alerts()).await?;
    let strict = spawn(
        r.broker.clone(),
        Handlers::builtin(),
        WorkerConfig {
            unknown_kind_grace: Duration::ZERO,
            ..config(2, Duration::from_secs(5))
        },
    );
    wait_for("the job to be DEAD", Duration::from_secs(10), || async {
        Ok((record(&r.broker, &lost).await?.state == TaskState::Dead).then_some(()))
    })
    .await?;
    strict.shutdown().await;
    let rec = record(&r.broker, &lost).await?;
    assert_eq!(rec.error_class.as_deref(), Some("unknown_kind"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_never_removes_a_running_job() -> anyhow::Result<()> {
    let r = TestRedis::new("purge_running")?;
    let q = QueueName::default_queue();
    let keys = r.broker.queue_keys(&q);
    let running = r.broker.enqueue(sleep_req(1)).await?;
    let Fetch::Jobs(leased) = r.broker.fetch(&q, "worker-a", 1).await? else {
        anyhow::bail!("paused");
    };
    assert_eq!(leased.len(), 1);
    let waiting = r.broker.enqueue(sleep_req(1)).await?;
    let later = r
        .broker
        .enqueue(EnqueueRequest {
            countdown: Some(3600.0),
            ..sleep_req(1)
        })
        .await?;
    // A stale copy of the running job's id in the pending list (as a requeue then a late success
    // can leave): the purge must skip its record.
    {
        let mut conn = r.broker.pool().get().await?;
        let _: i64 = redis::cmd("RPUSH")
            .arg(&keys.pending)
            .arg(running)
            .query_async(&mut *conn)
            .await?;
    }
    let removed = r
        .broker
        .purge(&q, faena_broker::PurgeTarget::Pending)
        .await?;
    assert_eq!(removed, 2, "the pending and the scheduled job");
    assert!(r.broker.task(&waiting).await?.is_none());
    assert!(r.broker.task(&later).await?.is_none());
    let rec = record(&r.broker, &running).await?;
    assert_eq!(rec.state, TaskState::Running);
    let s = r.broker.stats(&q).await?;
    assert_eq!((s.pending, s.scheduled, s.running), (0, 0, 1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_operations_keep_every_id_in_one_place() -> anyhow::Result<()> {
    let r = TestRedis::new("invariant")?;
    let q = QueueName::default_queue();
    let check = |step: &'static str| {
        let b = r.broker.clone();
        let q = q.clone();
        async move {
            let problems = b.check_queue(&q).await?;
            anyhow::ensure!(problems.is_empty(), "after {step}: {problems:?}");
            Ok::<_, anyhow::Error>(())
        }
    };
    r.broker.pause(&q).await?;
    let mut reqs: Vec<EnqueueRequest> = (0..900).map(|_| sleep_req(1)).collect();
    reqs.extend((0..100).map(|_| EnqueueRequest {
        countdown: Some(3600.0),
        ..sleep_req(1)
    }));
    let ids = r.broker.enqueue_many(reqs).await?;
    check("enqueue").await?;
    for id in &ids[..200] {
        r.broker.cancel(id).await?;
    }
    for id in &ids[900..950] {
        r.broker.cancel(id).await?;
    }
    check("cancel").await?;
    for id in ids[..100].iter().chain(&ids[900..925]) {
        assert_eq!(r.broker.retry(id).await?, Some(TaskState::Pending), "{id}");
    }
    check("retry").await?;
    let probe = Probe::default();
    let worker = spawn(
        r.broker.clone(),
        probe.handlers(),
        config(4, Duration::from_secs(5)),
    );
    r.broker.resume(&q).await?;
    wait_for("some jobs to run", Duration::from_secs(20), || async {
        Ok((r.broker.stats(&q).await?.succeeded >= 100).then_some(()))
    })
    .await?;
    r.broker.pause(&q).await?;
    wait_for(
        "the running jobs to end",
        Duration::from_secs(20),
        || async { Ok((running_count(&r.broker).await? == 0).then_some(())) },
    )
    .await?;
    check("pause while running").await?;
    let purged = r
        .broker
        .purge(&q, faena_broker::PurgeTarget::Pending)
        .await?;
    check("purge").await?;
    worker.shutdown().await;
    check("stop").await?;
    // Counts add up: every job ran at most once, and each one either ran, was cancelled, or was
    // purged (the retried ones counted once).
    let mut ran = 0u64;
    for id in &ids {
        let (starts, ends) = probe.get(id);
        assert!(
            starts <= 1 && ends == starts,
            "{id}: {starts} starts, {ends} ends"
        );
        ran += u64::from(ends);
    }
    let cancelled = 100 + 25; // cancelled and not retried: ids[100..200] and ids[925..950]
    assert_eq!(
        ran + cancelled + purged,
        ids.len() as u64,
        "ran {ran}, cancelled {cancelled}, purged {purged}"
    );
    Ok(())
}
