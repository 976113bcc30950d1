//! Partitioned queues (issue 19) on one Redis: a queue given N partitions takes jobs spread over
//! them (round robin, or by the idempotency key's hash so a key always meets its earlier job), a
//! worker naming the queue consumes every partition exactly once, partitions added while it runs
//! are consumed too, and pause, list, purge and workflows act on the queue as a whole.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use faena_broker::history::HistoryQuery;
use faena_broker::{PurgeTarget, TaskState, WorkflowState};
use faena_core::jobs::{EnqueueRequest, NoopArgs};
use faena_core::workflow::WorkflowRequest;
use faena_core::{QueueName, TaskId};
use faena_testkit::{wait_for, TestRedis};
use faena_worker::{spawn, Handlers, WorkerConfig};
use serde_json::json;

fn noop(queue: &str, i: usize, key: Option<String>) -> EnqueueRequest {
    EnqueueRequest {
        kind: "noop".into(),
        args: json!({ "i": i }),
        queue: Some(queue.into()),
        idempotency_key: key,
        ..Default::default()
    }
}

/// Jobs enqueued into each partition of `q`, by partition name.
async fn enqueued_by_partition(
    r: &TestRedis,
    q: &QueueName,
) -> anyhow::Result<HashMap<String, u64>> {
    let mut out = HashMap::new();
    for p in r.broker.expand(q).await? {
        out.insert(p.to_string(), r.broker.stats(&p).await?.enqueued);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_queue_spreads_its_jobs_and_a_worker_drains_every_partition_once(
) -> anyhow::Result<()> {
    let r = TestRedis::new("partitions")?;
    let q = QueueName::parse("orders")?;

    // Bad requests are refused with what to do, and change nothing.
    for (queue, n, says) in [
        ("orders.1", 4, "is a partition of `orders`"),
        ("orders", 0, "from 1 to 64"),
        ("orders", 65, "from 1 to 64"),
    ] {
        let e = r
            .broker
            .set_partitions(&QueueName::parse(queue)?, n)
            .await
            .err()
            .context("a bad partition count is refused")?;
        assert!(e.to_string().contains(says), "{e}");
        assert_eq!(e.code(), "invalid_request");
    }
    assert_eq!(r.broker.partition_count(&q).await?, 1);
    assert_eq!(r.broker.set_partitions(&q, 4).await?, 1, "it had one");
    let e = r
        .broker
        .set_partitions(&q, 2)
        .await
        .err()
        .context("a queue's partitions do not shrink")?;
    assert!(e.to_string().contains("cannot go down to 2"), "{e}");
    let names: Vec<String> = r
        .broker
        .expand(&q)
        .await?
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(names, ["orders", "orders.1", "orders.2", "orders.3"]);
    let known: HashSet<String> = r
        .broker
        .queues()
        .await?
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert!(
        names.iter().all(|n| known.contains(n)),
        "registered: {known:?}"
    );

    // 400 jobs without a key: round robin, exactly 100 per partition.
    let ids = r
        .broker
        .enqueue_many((0..400).map(|i| noop("orders", i, None)).collect())
        .await?;
    let spread = enqueued_by_partition(&r, &q).await?;
    assert_eq!(
        spread.values().copied().collect::<Vec<_>>(),
        [100; 4],
        "{spread:?}"
    );
    let rec = r.broker.task(&ids[1]).await?.context("a job by id")?;
    assert!(names.contains(&rec.queue), "{}", rec.queue);

    // A key lands by its hash: enqueued again (after other jobs moved the round robin on) it
    // meets its first job, whatever partition that is.
    let keyed: Vec<TaskId> = r
        .broker
        .enqueue_many(
            (0..8)
                .map(|i| noop("orders", i, Some(format!("sale-{i}"))))
                .collect(),
        )
        .await?;
    r.broker.enqueue(noop("orders", 99, None)).await?;
    let again: Vec<TaskId> = r
        .broker
        .enqueue_many(
            (0..8)
                .map(|i| noop("orders", i, Some(format!("sale-{i}"))))
                .collect(),
        )
        .await?;
    assert_eq!(
        keyed, again,
        "an idempotency key meets its job in its partition"
    );
    let keyed_in: HashSet<String> = {
        let mut s = HashSet::new();
        for id in &keyed {
            s.insert(r.broker.task(id).await?.context("a keyed job")?.queue);
        }
        s
    };
    assert!(
        keyed_in.len() > 1,
        "8 keys over 4 partitions use more than one: {keyed_in:?}"
    );
    // Named as a partition, a job goes exactly there.
    let direct = r.broker.enqueue(noop("orders.2", 0, None)).await?;
    assert_eq!(
        r.broker.task(&direct).await?.context("direct")?.queue,
        "orders.2"
    );
    let waiting = 400 + 8 + 1 + 1;
    assert_eq!(
        r.broker.list(&q, TaskState::Pending, 10_000).await?.len(),
        waiting,
        "listing the queue lists every partition"
    );

    // Pause reaches every partition, resume too.
    r.broker.pause(&q).await?;
    for p in r.broker.expand(&q).await? {
        assert!(r.broker.stats(&p).await?.paused, "{p} paused");
    }
    r.broker.resume(&q).await?;
    for p in r.broker.expand(&q).await? {
        assert!(!r.broker.stats(&p).await?.paused, "{p} resumed");
    }

    // A worker naming the queue consumes all four partitions, each job once.
    let seen = Arc::new(Mutex::new(Vec::<TaskId>::new()));
    let mut handlers = Handlers::default();
    let s = Arc::clone(&seen);
    handlers.register(move |NoopArgs(v): NoopArgs, ctx| {
        let s = Arc::clone(&s);
        async move {
            s.lock()
                .map_err(|_| faena_core::jobs::JobError::Permanent(anyhow::anyhow!("poisoned")))?
                .push(ctx.task_id);
            Ok(v)
        }
    });
    let worker = spawn(
        r.broker.clone(),
        handlers,
        WorkerConfig {
            queues: vec![q.clone()],
            concurrency: 16,
            stop_timeout: Duration::from_secs(10),
            // Long: a job found before this is found by the partition's own blocking wait.
            upkeep_interval: Duration::from_secs(60),
            heartbeat_interval: Duration::from_millis(500),
            unknown_kind_grace: Duration::from_secs(900),
        },
    );
    let ran = |n: usize| {
        let seen = Arc::clone(&seen);
        async move {
            wait_for(&format!("{n} runs"), Duration::from_secs(60), || async {
                let g = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                Ok((g.len() >= n).then(|| g.clone()))
            })
            .await
        }
    };
    let runs = ran(waiting).await?;
    assert_eq!(runs.len(), waiting);
    assert_eq!(
        runs.iter().collect::<HashSet<_>>().len(),
        waiting,
        "each job once"
    );

    // Two more partitions while the worker runs: producers use them at once (this process
    // forgot its counts), the worker starts on them at a heartbeat.
    assert_eq!(r.broker.set_partitions(&q, 6).await?, 4);
    let more = r
        .broker
        .enqueue_many((0..60).map(|i| noop("orders", i, None)).collect())
        .await?;
    let spread = enqueued_by_partition(&r, &q).await?;
    for p in ["orders.4", "orders.5"] {
        assert_eq!(spread.get(p), Some(&10), "{spread:?}");
    }
    let runs = ran(waiting + 60).await?;
    let once: HashSet<&TaskId> = runs.iter().collect();
    assert_eq!((runs.len(), once.len()), (waiting + 60, waiting + 60));
    assert!(more.iter().all(|id| once.contains(id)));

    // A workflow lives whole in one partition and runs there.
    let chain = r
        .broker
        .start_workflow(
            WorkflowRequest {
                chain: Some((0..3).map(|i| noop("orders", i, None)).collect()),
                ..Default::default()
            },
            None,
        )
        .await?;
    wait_for("the chain to succeed", Duration::from_secs(30), || async {
        Ok(r.broker
            .workflow(&chain.workflow_id)
            .await?
            .filter(|w| w.state == WorkflowState::Succeeded))
    })
    .await?;
    let mut chain_in = HashSet::new();
    for id in &chain.task_ids {
        chain_in.insert(r.broker.task(id).await?.context("a step")?.queue);
    }
    assert_eq!(chain_in.len(), 1, "{chain_in:?}");
    // The queue's history adds up its partitions' (once every outcome is recorded).
    let want = (waiting + 60 + 3) as u64;
    let got = wait_for(
        "the history of every run",
        Duration::from_secs(30),
        || async {
            let history = r
                .broker
                .history(&HistoryQuery {
                    queue: Some(q.clone()),
                    kind: Some("noop".into()),
                    from: Utc::now() - chrono::Duration::minutes(30),
                    to: Utc::now() + chrono::Duration::minutes(1),
                    step_minutes: 31,
                })
                .await?;
            let n = history.iter().map(|p| p.succeeded).sum::<u64>();
            Ok((n >= want).then_some(n))
        },
    )
    .await?;
    assert_eq!(got, want, "no run counted twice");

    // Purge empties every partition (with the worker stopped: a fetcher blocked on an empty
    // partition parks a job pushed there even while the queue is paused, out of the pending list).
    worker.shutdown().await;
    r.broker.pause(&q).await?;
    r.broker
        .enqueue_many((0..12).map(|i| noop("orders", i, None)).collect())
        .await?;
    assert_eq!(r.broker.purge(&q, PurgeTarget::Pending).await?, 12);
    for p in r.broker.expand(&q).await? {
        let st = r.broker.stats(&p).await?;
        assert_eq!((st.pending, st.running, st.dead), (0, 0, 0), "{p}");
        assert_eq!(r.broker.check_queue(&p).await?, Vec::<String>::new(), "{p}");
    }
    Ok(())
}
