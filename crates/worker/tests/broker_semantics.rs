//! Integration tests of the broker and the worker runtime against a real Redis, each under its own
//! key prefix: delivery, retries and their timing, delays, decode errors, idempotency, pause,
//! retention and graceful shutdown.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use faena_broker::TaskState;
use faena_core::jobs::{EnqueueRequest, FailArgs, NoopArgs, SleepArgs};
use faena_core::{QueueName, TaskId};
use faena_testkit::{wait_for, TestRedis};
use faena_worker::{spawn, Handlers, WorkerConfig};
use serde_json::json;

fn config(concurrency: usize) -> WorkerConfig {
    WorkerConfig {
        queues: vec![QueueName::default_queue()],
        concurrency,
        stop_timeout: Duration::from_secs(10),
        upkeep_interval: Duration::from_millis(100),
        heartbeat_interval: Duration::from_secs(1),
        unknown_kind_grace: Duration::from_secs(900),
    }
}

fn req(kind: &str, args: serde_json::Value) -> EnqueueRequest {
    EnqueueRequest {
        kind: kind.into(),
        args,
        ..Default::default()
    }
}

async fn state_of(r: &TestRedis, id: &TaskId) -> anyhow::Result<Option<faena_broker::TaskRecord>> {
    Ok(r.broker.task(id).await?)
}

async fn wait_state(
    r: &TestRedis,
    id: &TaskId,
    state: TaskState,
    deadline: Duration,
) -> anyhow::Result<faena_broker::TaskRecord> {
    wait_for(&format!("task {id} to be {state}"), deadline, || async {
        Ok(state_of(r, id).await?.filter(|t| t.state == state))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_noop_jobs_run_exactly_once() -> anyhow::Result<()> {
    let r = TestRedis::new("drain")?;
    const N: usize = 100_000;
    let reqs: Vec<_> = (0..N).map(|i| req("noop", json!({ "i": i }))).collect();
    let ids = r.broker.enqueue_many(reqs).await?;
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        N,
        "every job got its own id"
    );
    let q = QueueName::default_queue();
    assert_eq!(r.broker.stats(&q).await?.pending, N as u64);

    let seen = Arc::new(Mutex::new((0usize, HashSet::new())));
    let mut handlers = Handlers::default();
    let s = Arc::clone(&seen);
    handlers.register(move |NoopArgs(v): NoopArgs, ctx| {
        let s = Arc::clone(&s);
        async move {
            let mut g = s
                .lock()
                .map_err(|_| faena_core::jobs::JobError::Permanent(anyhow::anyhow!("poisoned")))?;
            g.0 += 1;
            g.1.insert(ctx.task_id);
            Ok(v)
        }
    });
    let worker = spawn(r.broker.clone(), handlers, config(64));
    let stats = wait_for("all jobs to succeed", Duration::from_secs(120), || async {
        let s = r.broker.stats(&q).await?;
        Ok((s.succeeded >= N as u64 && s.running == 0).then_some(s))
    })
    .await?;
    worker.shutdown().await;
    assert_eq!(stats.succeeded, N as u64);
    assert_eq!((stats.pending, stats.dead, stats.failed), (0, 0, 0));
    let g = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    assert_eq!(g.0, N, "no job ran twice");
    assert_eq!(g.1.len(), N, "every job ran");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_job_runs_max_attempts_with_policy_delays_then_is_dead() -> anyhow::Result<()> {
    let r = TestRedis::new("retry")?;
    let starts = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let mut handlers = Handlers::builtin();
    let s = Arc::clone(&starts);
    handlers.register(move |a: FailArgs, ctx| {
        let s = Arc::clone(&s);
        async move {
            s.lock()
                .map_err(|_| faena_core::jobs::JobError::Permanent(anyhow::anyhow!("poisoned")))?
                .push(Instant::now());
            if ctx.attempt <= a.fail_times {
                let e = anyhow::anyhow!("boom on attempt {}", ctx.attempt);
                return Err(if a.permanent {
                    faena_core::jobs::JobError::Permanent(e)
                } else {
                    faena_core::jobs::JobError::Retry(e)
                });
            }
            Ok(json!("ok"))
        }
    });
    let worker = spawn(r.broker.clone(), handlers, config(4));
    let mut req1 = req("fail", json!({"fail_times": 10}));
    req1.max_attempts = Some(3);
    let id = r.broker.enqueue(req1).await?;
    let rec = wait_state(&r, &id, TaskState::Dead, Duration::from_secs(20)).await?;
    assert_eq!(rec.attempts, 3);
    assert_eq!(rec.error.as_deref(), Some("boom on attempt 3"));
    assert_eq!(rec.error_class.as_deref(), Some("retryable"));
    let times = starts
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    assert_eq!(times.len(), 3, "exactly 3 runs");
    let policy = faena_core::jobs::RetryPolicy::DEFAULT;
    for (i, pair) in times.windows(2).enumerate() {
        let actual = pair[1] - pair[0];
        let nominal = policy.nominal_delay(i as u32 + 1);
        let upper = nominal.mul_f64(1.0 + policy.jitter) + Duration::from_millis(250);
        assert!(
            actual >= nominal && actual <= upper,
            "delay {i}: {actual:?} not within {nominal:?}..{upper:?}"
        );
    }

    starts
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clear();
    let id = r
        .broker
        .enqueue(req("fail", json!({"fail_times": 5, "permanent": true})))
        .await?;
    let rec = wait_state(&r, &id, TaskState::Dead, Duration::from_secs(10)).await?;
    assert_eq!(
        (rec.attempts, rec.error_class.as_deref()),
        (1, Some("permanent"))
    );
    assert_eq!(
        starts
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .len(),
        1,
        "a permanent error runs once"
    );

    let id = r
        .broker
        .enqueue(req("fail", json!({"fail_times": 1})))
        .await?;
    let rec = wait_state(&r, &id, TaskState::Succeeded, Duration::from_secs(10)).await?;
    assert_eq!(rec.attempts, 2);
    assert_eq!(rec.result, Some(json!("ok")));
    worker.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_job_starts_within_a_second_of_its_eta() -> anyhow::Result<()> {
    let r = TestRedis::new("eta")?;
    let started = Arc::new(Mutex::new(Vec::new()));
    let mut handlers = Handlers::default();
    let s = Arc::clone(&started);
    handlers.register(move |NoopArgs(v): NoopArgs, _ctx| {
        let s = Arc::clone(&s);
        async move {
            if let Ok(mut g) = s.lock() {
                g.push(Utc::now());
            }
            Ok(v)
        }
    });
    let worker = spawn(r.broker.clone(), handlers, config(4));
    let mut rq = req("noop", json!({}));
    let eta = Utc::now() + chrono::Duration::milliseconds(1500);
    rq.eta = Some(eta);
    let id = r.broker.enqueue(rq).await?;
    let rec = state_of(&r, &id).await?.context("record")?;
    assert_eq!(rec.state, TaskState::Scheduled);
    wait_state(&r, &id, TaskState::Succeeded, Duration::from_secs(10)).await?;
    let at = started.lock().map_err(|_| anyhow::anyhow!("poisoned"))?[0];
    let lateness = at - eta;
    assert!(
        lateness >= chrono::Duration::zero(),
        "started {lateness} before its eta"
    );
    assert!(
        lateness <= chrono::Duration::seconds(1),
        "started {lateness} after its eta"
    );
    worker.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_payload_goes_dead_and_others_run() -> anyhow::Result<()> {
    let r = TestRedis::new("decode")?;
    let q = QueueName::default_queue();
    // A job whose args do not match its kind, written by hand as a buggy producer would.
    let bad = r.broker.enqueue(req("sleep", json!({"ms": 1}))).await?;
    let keys = r.broker.queue_keys(&q);
    let mut conn = r.broker.pool().get().await?;
    let _: () = redis::cmd("HSET")
        .arg(keys.task(&bad.to_string()))
        .arg("args")
        .arg(r#"{"ms":"abc"}"#)
        .query_async(&mut *conn)
        .await?;
    let garbage = r.broker.enqueue(req("noop", json!({}))).await?;
    let _: () = redis::cmd("HSET")
        .arg(keys.task(&garbage.to_string()))
        .arg("args")
        .arg("{not json")
        .query_async(&mut *conn)
        .await?;
    let good: Vec<TaskId> = r
        .broker
        .enqueue_many((0..10).map(|i| req("noop", json!(i))).collect())
        .await?;
    let worker = spawn(r.broker.clone(), Handlers::builtin(), config(4));
    let rec = wait_state(&r, &bad, TaskState::Dead, Duration::from_secs(10)).await?;
    assert_eq!(rec.error_class.as_deref(), Some("decode"));
    assert!(
        rec.error.as_deref().unwrap_or("").contains("field `ms`"),
        "{:?}",
        rec.error
    );
    assert_eq!(rec.attempts, 1);
    let rec = wait_state(&r, &garbage, TaskState::Dead, Duration::from_secs(10)).await?;
    assert!(
        rec.error.as_deref().unwrap_or("").contains("not JSON"),
        "{:?}",
        rec.error
    );
    for id in &good {
        wait_state(&r, id, TaskState::Succeeded, Duration::from_secs(10)).await?;
    }
    worker.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_returns_the_first_id_and_enqueues_nothing() -> anyhow::Result<()> {
    let r = TestRedis::new("idem")?;
    let mut a = req("noop", json!({"n": 1}));
    a.idempotency_key = Some("order-42".into());
    let first = r.broker.enqueue(a.clone()).await?;
    let second = r.broker.enqueue(a.clone()).await?;
    assert_eq!(first, second);
    let in_batch = r.broker.enqueue_many(vec![a.clone(), a]).await?;
    assert_eq!(in_batch, vec![first, first]);
    let s = r.broker.stats(&QueueName::default_queue()).await?;
    assert_eq!((s.pending, s.enqueued), (1, 1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_queue_accepts_and_starts_nothing_until_resumed() -> anyhow::Result<()> {
    let r = TestRedis::new("pause")?;
    let q = QueueName::default_queue();
    r.broker.pause(&q).await?;
    let ids = r
        .broker
        .enqueue_many((0..5).map(|i| req("noop", json!(i))).collect())
        .await?;
    let worker = spawn(r.broker.clone(), Handlers::builtin(), config(4));
    wait_for(
        "the worker to register",
        Duration::from_secs(10),
        || async { Ok((!r.broker.workers().await?.is_empty()).then_some(())) },
    )
    .await?;
    // While paused, nothing may start: check repeatedly for a while.
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        let s = r.broker.stats(&q).await?;
        assert!(s.paused);
        assert_eq!(
            (s.pending, s.running, s.succeeded),
            (5, 0, 0),
            "a paused queue started a job"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    r.broker.resume(&q).await?;
    for id in &ids {
        wait_state(&r, id, TaskState::Succeeded, Duration::from_secs(10)).await?;
    }
    worker.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_records_expire_after_the_retention() -> anyhow::Result<()> {
    let r = TestRedis::with("retention", |c| {
        c.result_ttl = Duration::from_secs(1);
        c.dead_ttl = Duration::from_secs(60);
    })?;
    let worker = spawn(r.broker.clone(), Handlers::builtin(), config(4));
    let ok = r.broker.enqueue(req("noop", json!({}))).await?;
    let mut d = req("fail", json!({"fail_times": 1, "permanent": true}));
    d.max_attempts = Some(1);
    let dead = r.broker.enqueue(d).await?;
    wait_state(&r, &ok, TaskState::Succeeded, Duration::from_secs(10)).await?;
    wait_state(&r, &dead, TaskState::Dead, Duration::from_secs(10)).await?;
    wait_for(
        "the succeeded record to expire",
        Duration::from_secs(10),
        || async { Ok(state_of(&r, &ok).await?.is_none().then_some(())) },
    )
    .await?;
    // DEAD records are kept longer, and can be retried.
    let rec = state_of(&r, &dead).await?.context("dead record kept")?;
    assert_eq!(rec.state, TaskState::Dead);
    assert_eq!(r.broker.retry(&dead).await?, Some(TaskState::Pending));
    let rec = wait_state(&r, &dead, TaskState::Dead, Duration::from_secs(10)).await?;
    assert_eq!(rec.attempts, 1, "a retried job starts its attempts again");
    worker.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_running_jobs_and_leaves_the_rest_pending() -> anyhow::Result<()>
{
    let r = TestRedis::new("shutdown")?;
    let q = QueueName::default_queue();
    let ids = r
        .broker
        .enqueue_many((0..6).map(|_| req("sleep", json!({"ms": 700}))).collect())
        .await?;
    let worker = spawn(r.broker.clone(), Handlers::builtin(), config(2));
    wait_for("two jobs running", Duration::from_secs(10), || async {
        Ok((r.broker.stats(&q).await?.running == 2).then_some(()))
    })
    .await?;
    worker.shutdown().await;
    let s = r.broker.stats(&q).await?;
    assert_eq!((s.succeeded, s.running, s.pending), (2, 0, 4), "{s:?}");
    let mut states = Vec::new();
    for id in &ids {
        let rec = state_of(&r, id).await?.context("record")?;
        states.push((rec.state, rec.attempts));
    }
    assert_eq!(
        states
            .iter()
            .filter(|s| **s == (TaskState::Succeeded, 1))
            .count(),
        2
    );
    assert_eq!(
        states
            .iter()
            .filter(|s| **s == (TaskState::Pending, 0))
            .count(),
        4,
        "{states:?}"
    );
    assert!(
        r.broker.workers().await?.is_empty(),
        "a stopped worker leaves the registry"
    );
    // A new worker picks the rest up.
    let worker = spawn(r.broker.clone(), Handlers::builtin(), config(4));
    for id in &ids {
        wait_state(&r, id, TaskState::Succeeded, Duration::from_secs(10)).await?;
    }
    worker.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_job_never_runs() -> anyhow::Result<()> {
    let r = TestRedis::new("cancel")?;
    let id = r.broker.enqueue(req("noop", json!({}))).await?;
    let later = r.broker.enqueue(req("noop", json!({}))).await?;
    assert_eq!(r.broker.cancel(&id).await?, Some(TaskState::Cancelled));
    let worker = spawn(r.broker.clone(), Handlers::builtin(), config(2));
    wait_state(&r, &later, TaskState::Succeeded, Duration::from_secs(10)).await?;
    let rec = state_of(&r, &id).await?.context("record")?;
    assert_eq!((rec.state, rec.attempts), (TaskState::Cancelled, 0));
    worker.shutdown().await;
    let _ = SleepArgs { ms: 0 };
    Ok(())
}

/// `FAENA_REDIS_MIN_REPLICAS`: on a Redis without replicas no enqueue is acknowledged. The job is
/// written on the primary, but the caller gets "unavailable" (the api's 503) naming the setting,
/// after the replica timeout and not later.
#[tokio::test]
async fn min_replicas_refuses_to_acknowledge_what_no_replica_holds() -> anyhow::Result<()> {
    let r = TestRedis::with("min_replicas", |c| {
        c.min_replicas = 1;
        c.replica_timeout = Duration::from_millis(100);
    })?;
    let started = Instant::now();
    let err = r
        .broker
        .enqueue(req("noop", json!({})))
        .await
        .expect_err("no replica can hold the enqueue");
    let took = started.elapsed();
    assert_eq!(err.code(), "broker_unavailable", "{err}");
    assert!(
        err.to_string().contains("FAENA_REDIS_MIN_REPLICAS"),
        "the error names the setting: {err}"
    );
    assert!(took >= Duration::from_millis(100), "WAIT waited: {took:?}");
    let plain = r.same_prefix()?;
    let stats = plain.stats(&QueueName::default_queue()).await?;
    assert_eq!(
        stats.pending, 1,
        "the job is on the primary, unacknowledged"
    );
    Ok(())
}

/// A write waiting for replicas holds its own connection: while one enqueue is blocked in `WAIT`
/// (no replica will ever answer here), the same broker's other commands are answered at once
/// instead of queueing behind it on the shared connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waiting_for_replicas_holds_back_no_other_command() -> anyhow::Result<()> {
    let r = TestRedis::with("wait_own_conn", |c| {
        c.min_replicas = 1;
        c.replica_timeout = Duration::from_secs(30);
    })?;
    let q = QueueName::default_queue();
    let broker = r.broker.clone();
    let mut waiting = tokio::spawn(async move { broker.enqueue(req("noop", json!({}))).await });
    // The enqueue is written and blocked in WAIT once its job is pending.
    let plain = r.same_prefix()?;
    wait_for("the enqueue written", Duration::from_secs(10), || async {
        Ok((plain.stats(&q).await?.pending == 1).then_some(()))
    })
    .await?;
    // Then the waiting broker itself answers a read, and a fetch, while the WAIT goes on.
    for _ in 0..3 {
        tokio::select! {
            biased;
            done = &mut waiting => anyhow::bail!("the enqueue ended before the read: {done:?}"),
            stats = r.broker.stats(&q) => assert_eq!(stats?.pending, 1),
        }
    }
    tokio::select! {
        biased;
        done = &mut waiting => anyhow::bail!("the enqueue ended before the fetch: {done:?}"),
        fetched = r.broker.fetch(&q, "w-test", 1) => {
            assert!(matches!(fetched?, faena_broker::Fetch::Jobs(j) if j.len() == 1));
        }
    }
    waiting.abort();
    Ok(())
}

/// `next_run_at` is when a job runs next: a retry sets it, the lease of its next attempt clears
/// it (fetch.lua), and nothing writes it back, so the record of a retried job that then succeeded
/// has none; a batch of outcomes of two kinds and two latencies is recorded whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_sets_next_run_at_and_its_next_lease_clears_it() -> anyhow::Result<()> {
    use faena_broker::{Fetch, OutcomeKind};
    use faena_core::jobs::ErrorClass;
    let r = TestRedis::new("nextrun")?;
    let q = QueueName::default_queue();
    let ids = r
        .broker
        .enqueue_many(vec![req("noop", json!({})), req("sleep", json!({"ms": 1}))])
        .await?;
    let Fetch::Jobs(jobs) = r.broker.fetch(&q, "w-test", 10).await? else {
        anyhow::bail!("the queue is not paused");
    };
    assert_eq!(jobs.len(), 2);
    let noop = jobs
        .iter()
        .find(|j| j.id == ids[0])
        .context("the noop job")?;
    let sleep = jobs
        .iter()
        .find(|j| j.id == ids[1])
        .context("the sleep job")?;
    // One retry due at once, one success, in one finish call (two groups of the history).
    let report = r
        .broker
        .finish(
            &q,
            &[
                noop.outcome(OutcomeKind::Retry {
                    error: "try again".into(),
                    class: ErrorClass::Retryable,
                    at: Utc::now() - chrono::Duration::seconds(1),
                }),
                sleep.outcome(OutcomeKind::Succeeded {
                    result: "null".into(),
                }),
            ],
        )
        .await?;
    assert_eq!((report.succeeded, report.retried, report.dead), (1, 1, 0));
    let retried = state_of(&r, &ids[0]).await?.context("the retried record")?;
    assert_eq!(retried.state, TaskState::Scheduled);
    assert!(retried.next_run_at.is_some(), "a retry sets next_run_at");
    let done = state_of(&r, &ids[1])
        .await?
        .context("the succeeded record")?;
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(done.next_run_at, None);

    // Due: upkeep makes it PENDING, the next fetch leases it and clears next_run_at.
    r.broker.maintain(&q, 100).await?;
    let Fetch::Jobs(again) = r.broker.fetch(&q, "w-test", 10).await? else {
        anyhow::bail!("the queue is not paused");
    };
    let second = again.first().context("the retried job leased again")?;
    assert_eq!((second.id, second.attempt), (ids[0], 2));
    let running = state_of(&r, &ids[0]).await?.context("the running record")?;
    assert_eq!(running.state, TaskState::Running);
    assert_eq!(running.next_run_at, None, "a RUNNING job has no next run");
    let report = r
        .broker
        .finish(
            &q,
            &[second.outcome(OutcomeKind::Succeeded {
                result: "null".into(),
            })],
        )
        .await?;
    assert_eq!(report.succeeded, 1);
    let done = state_of(&r, &ids[0]).await?.context("the record")?;
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(done.next_run_at, None);
    let stats = r.broker.stats(&q).await?;
    assert_eq!((stats.succeeded, stats.retried), (2, 1));
    Ok(())
}
