//! Redis Cluster (issue 19): a cluster of three real `redis-server --cluster-enabled yes` primaries
//! owned by the test, three queues each on a different node, jobs drained exactly once through the
//! `redis+cluster://` URL; and every "all queues" read (stats, lookups by id, history, workflows,
//! the worker registry, the invariant scan, the cleanup) answered across the nodes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use faena_broker::history::HistoryQuery;
use faena_broker::{TaskState, WorkflowState};
use faena_core::jobs::{EnqueueRequest, NoopArgs};
use faena_core::workflow::WorkflowRequest;
use faena_core::{QueueName, TaskId};
use faena_testkit::{wait_for, ClusterSet, TestRedis};
use faena_worker::{spawn, Handlers, WorkerConfig};
use serde_json::json;

/// Jobs drained by the test (the 100,000 take about ten times as long in a debug build on
/// the 2-core test machine; `docs/scaling.md` gives both timings).
const N: usize = 10_000;

fn noop_in(queue: &QueueName, i: usize) -> EnqueueRequest {
    EnqueueRequest {
        kind: "noop".into(),
        args: json!({ "i": i }),
        queue: Some(queue.to_string()),
        ..Default::default()
    }
}

/// One queue name per node of `cluster`, found by asking the cluster where each queue's slot is.
async fn a_queue_on_each_node(
    cluster: &ClusterSet,
    r: &TestRedis,
) -> anyhow::Result<Vec<QueueName>> {
    let mut found: Vec<Option<QueueName>> = vec![None; cluster.nodes.len()];
    for i in 0..500 {
        let q = QueueName::parse(&format!("q{i}"))?;
        let node = cluster.node_of(&r.broker.queue_keys(&q).pending).await?;
        found[node].get_or_insert(q);
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    found
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .context("no queue name landed on some node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_primary_cluster_drains_queues_on_every_node_exactly_once() -> anyhow::Result<()> {
    let cluster = ClusterSet::start(3).await?;
    let r = TestRedis::on(&cluster.url(), "cluster", |_| {})?;
    assert!(r.broker.is_cluster());
    let queues = a_queue_on_each_node(&cluster, &r).await?;

    let seen = Arc::new(Mutex::new((0usize, HashSet::<TaskId>::new())));
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
    // The worker starts on empty queues: its fetchers block in BLMOVE, each on its queue's node.
    let worker = spawn(
        r.broker.clone(),
        handlers,
        WorkerConfig {
            queues: queues.clone(),
            concurrency: 64,
            stop_timeout: Duration::from_secs(10),
            upkeep_interval: Duration::from_millis(200),
            heartbeat_interval: Duration::from_secs(1),
            unknown_kind_grace: Duration::from_secs(900),
        },
    );
    let registered = wait_for(
        "the worker in the registry",
        Duration::from_secs(10),
        || async { Ok(r.broker.workers().await?.into_iter().next()) },
    )
    .await?;
    assert_eq!(registered.queues.len(), 3, "{registered:?}");

    // One job in each queue, picked up from the blocking wait.
    let first: Vec<EnqueueRequest> = queues.iter().map(|q| noop_in(q, 0)).collect();
    let first_ids = r.broker.enqueue_many(first).await?;
    for id in &first_ids {
        let rec = wait_for(
            "a first job to succeed",
            Duration::from_secs(10),
            || async {
                Ok(r.broker
                    .task(id)
                    .await?
                    .filter(|t| t.state == TaskState::Succeeded))
            },
        )
        .await?;
        assert_eq!(rec.attempts, 1);
    }

    // Then N more, each call mixing the three queues (and so three slots and nodes).
    let started = Instant::now();
    let mut ids = Vec::with_capacity(N);
    for batch in (0..N).collect::<Vec<_>>().chunks(2_000) {
        let reqs = batch.iter().map(|&i| noop_in(&queues[i % 3], i)).collect();
        ids.extend(r.broker.enqueue_many(reqs).await?);
    }
    let enqueued_in = started.elapsed();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), N);
    let expected: Vec<u64> = (0..3)
        .map(|q| (0..N).filter(|i| i % 3 == q).count() as u64 + 1)
        .collect();
    let stats = wait_for("every job to succeed", Duration::from_secs(300), || async {
        let all = r.broker.all_stats().await?;
        let done = all.len() == 3
            && all.iter().all(|s| s.running == 0 && s.pending == 0)
            && all.iter().map(|s| s.succeeded).sum::<u64>() >= N as u64 + 3;
        Ok(done.then_some(all))
    })
    .await?;
    let drained_in = started.elapsed();
    eprintln!("cluster: {N} jobs enqueued in {enqueued_in:?}, drained in {drained_in:?}");

    // Exactly once, per queue and in all.
    {
        let g = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        assert_eq!(g.0, N + 3, "no job ran twice");
        assert_eq!(g.1.len(), N + 3, "every job ran");
    }
    let by_name: HashMap<String, _> = stats.iter().map(|s| (s.queue.clone(), s)).collect();
    for (q, want) in queues.iter().zip(&expected) {
        let s = by_name.get(q.as_str()).context("a queue's stats")?;
        // (`stale` is left out: a renewal that crosses a job's acknowledgement counts one.)
        assert_eq!(
            (s.enqueued, s.succeeded, s.failed, s.dead),
            (*want, *want, 0, 0),
            "{q}"
        );
        assert_eq!(r.broker.check_queue(q).await?, Vec::<String>::new(), "{q}");
    }
    // Each node holds one queue's keys.
    for i in 0..3 {
        assert!(cluster.keys_on(i).await? > 0, "node {i} holds nothing");
    }
    // A lookup by id finds a job on any node; the history adds up every queue's minutes.
    for id in [ids[0], ids[1], ids[2]] {
        let rec = r.broker.task(&id).await?.context("a job by id")?;
        assert_eq!(rec.state, TaskState::Succeeded);
    }
    let history = r
        .broker
        .history(&HistoryQuery {
            queue: None,
            kind: Some("noop".into()),
            from: Utc::now() - chrono::Duration::minutes(30),
            to: Utc::now() + chrono::Duration::minutes(1),
            step_minutes: 31,
        })
        .await?;
    assert_eq!(
        history.iter().map(|p| p.succeeded).sum::<u64>(),
        N as u64 + 3
    );

    // A chain on the third queue: its workflow keys share the queue's slot; found across queues.
    let chain = r
        .broker
        .start_workflow(
            WorkflowRequest {
                chain: Some((0..3).map(|i| noop_in(&queues[2], i)).collect()),
                ..Default::default()
            },
            None,
        )
        .await?;
    let wf = wait_for("the chain to succeed", Duration::from_secs(20), || async {
        Ok(r.broker
            .workflow(&chain.workflow_id)
            .await?
            .filter(|w| w.state == WorkflowState::Succeeded))
    })
    .await?;
    assert_eq!(wf.steps.len(), 3);

    // Pause and resume reach the queue's node and the process-wide set's.
    r.broker.pause(&queues[1]).await?;
    assert!(r.broker.stats(&queues[1]).await?.paused);
    r.broker.resume(&queues[1]).await?;
    assert!(!r.broker.stats(&queues[1]).await?.paused);

    worker.shutdown().await;
    let before: u64 = [
        cluster.keys_on(0).await?,
        cluster.keys_on(1).await?,
        cluster.keys_on(2).await?,
    ]
    .iter()
    .sum();
    assert_eq!(r.broker.destroy_all_keys().await?, before);
    for i in 0..3 {
        assert_eq!(cluster.keys_on(i).await?, 0, "node {i} after the cleanup");
    }
    Ok(())
}
