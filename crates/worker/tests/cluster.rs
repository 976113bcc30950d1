//! Redis Cluster (issue 19): a cluster of three real `redis-server --cluster-enabled yes` primaries
//! owned by the test, three queues each on a different node, jobs drained exactly once through the
//! `redis+cluster://` URL; and every "all queues" read (stats, lookups by id, history, workflows,
//! the worker registry, the invariant scan, the cleanup) answered across the nodes. And a primary
//! killed with `kill -9` under load, its replica promoted, with `FAENA_REDIS_MIN_REPLICAS=1` and a
//! queue of 4 partitions over the three shards: no acknowledged job lost.

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

/// Jobs of the failover test: the 100,000 (see the test for the timings measured).
const FAILOVER_N: usize = 100_000;
/// Jobs per enqueue call of the failover test.
const FAILOVER_BATCH: usize = 1_000;

/// One execution seen by the failover test's handler.
struct Run {
    at: Instant,
    queue: String,
    attempt: u32,
}

/// What the failover test's handler saw: each task's executions, and the ids that ran per
/// idempotency key (the job number `i`).
#[derive(Default)]
struct Runs {
    by_id: HashMap<TaskId, Vec<Run>>,
    ids_by_key: HashMap<u64, HashSet<TaskId>>,
}

/// What the producer of the failover test got back.
struct Produced {
    /// `acked[i]`: the id the broker acknowledged for job `i` (idempotency key `job-i`).
    acked: Vec<TaskId>,
    /// Enqueue calls that failed as unavailable and were sent again, by the start of the error.
    retried: std::collections::BTreeMap<String, usize>,
}

/// Enqueues jobs `0..n` in batches, every fifth to `plain` and the others to `orders` (spread over
/// its partitions by their idempotency keys), sending again a batch that fails as unavailable:
/// the same keys, so what a failed call wrote is not enqueued twice. `progress` counts the jobs
/// acknowledged so far.
async fn produce(
    broker: faena_broker::Broker,
    orders: QueueName,
    plain: QueueName,
    n: usize,
    progress: Arc<std::sync::atomic::AtomicUsize>,
) -> anyhow::Result<Produced> {
    let mut acked = Vec::with_capacity(n);
    let mut retried = std::collections::BTreeMap::new();
    for first in (0..n).step_by(FAILOVER_BATCH) {
        let reqs: Vec<EnqueueRequest> = (first..(first + FAILOVER_BATCH).min(n))
            .map(|i| EnqueueRequest {
                kind: "noop".into(),
                args: json!({ "i": i }),
                queue: Some(if i % 5 == 4 { &plain } else { &orders }.to_string()),
                idempotency_key: Some(format!("job-{i}")),
                ..Default::default()
            })
            .collect();
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            match broker.enqueue_many(reqs.clone()).await {
                Ok(ids) => {
                    acked.extend(ids);
                    progress.store(acked.len(), std::sync::atomic::Ordering::SeqCst);
                    break;
                }
                Err(faena_broker::BrokerError::Unavailable(e)) => {
                    anyhow::ensure!(
                        Instant::now() < until,
                        "jobs {first}.. not acknowledged within 60 s: {e}"
                    );
                    let what: String = e.chars().take(40).collect();
                    *retried.entry(what).or_insert(0) += 1;
                    // A pause before sending the batch again (not a wait for a state).
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Produced { acked, retried })
}

/// Issue 19: three primaries with a replica each, `FAENA_REDIS_MIN_REPLICAS=1`, a queue with 4
/// partitions spread over the three shards and a plain queue; 100,000 jobs enqueued while a worker
/// drains them, and the primary of one shard (the one that also holds the process-wide keys:
/// the queue set, the partition counts, the worker registry) killed with `kill -9` a third of the
/// way through. Its replica is promoted; the killed node is started again and comes back as the
/// new primary's replica (until then a `WAIT 1` on that shard cannot be answered, so its writes are
/// not acknowledged: with one replica per shard that is the price of `FAENA_REDIS_MIN_REPLICAS=1`).
///
/// Every acknowledged job runs. A job may run twice only if its first run started before the kill
/// on the killed shard: its lease was on the old primary and is not waited for (leases are not
/// replicated before the job starts; `docs/scaling.md`), so the promoted replica hands it out
/// again. A job enqueued by a call that failed may also have run (it was written but not
/// acknowledged); the retried call either finds it by its idempotency key or, when the failover
/// lost it, enqueues it anew: counted, not failed.
///
/// Measured on the 2-core test machine, debug build (ten runs): the replica promoted 3.2 to 4.5 s
/// after the kill (`cluster-node-timeout` 2 s), the killed node a replica again 8.3 to 10 s after
/// it; the 100,000 jobs acknowledged after 13 to 21 s and drained after 25 to 38 s; the whole test
/// 36 to 57 s. No job ran twice in those runs (the allowance above was never used).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_loses_no_acknowledged_job_of_a_partitioned_queue() -> anyhow::Result<()> {
    let mut cluster = ClusterSet::start_with_replicas(3, 1).await?;
    let r = TestRedis::on(&cluster.url(), "failover", |s| {
        s.min_replicas = 1;
        s.replica_timeout = Duration::from_millis(1000);
    })?;
    // The shard to kill: the one with the process-wide keys, so the kill also takes away the
    // queue set, the partition counts and the worker registry for a while.
    let killed = cluster.node_of(&r.broker.global_keys().queues).await?;
    let mut orders = None;
    for i in 0..500 {
        let q = QueueName::parse(&format!("orders{i}"))?;
        let mut shards = HashSet::new();
        for p in q.partitions(4) {
            shards.insert(cluster.node_of(&r.broker.queue_keys(&p).pending).await?);
        }
        if shards.len() == 3 {
            orders = Some(q);
            break;
        }
    }
    let orders = orders.context("no queue name whose 4 partitions cover the 3 shards")?;
    let mut plain = None;
    for i in 0..500 {
        let q = QueueName::parse(&format!("plain{i}"))?;
        if cluster.node_of(&r.broker.queue_keys(&q).pending).await? != killed {
            plain = Some(q);
            break;
        }
    }
    let plain = plain.context("no plain queue name off the killed shard")?;
    assert_eq!(r.broker.set_partitions(&orders, 4).await?, 1);
    let partitions = r.broker.expand(&orders).await?;
    assert_eq!(partitions.len(), 4, "{partitions:?}");
    let mut on_killed = HashSet::new();
    for p in &partitions {
        if cluster.node_of(&r.broker.queue_keys(p).pending).await? == killed {
            on_killed.insert(p.to_string());
        }
    }
    assert!(!on_killed.is_empty());

    let runs = Arc::new(Mutex::new(Runs::default()));
    let mut handlers = Handlers::default();
    let seen = Arc::clone(&runs);
    handlers.register(move |NoopArgs(v): NoopArgs, ctx| {
        let seen = Arc::clone(&seen);
        async move {
            let at = Instant::now();
            let mut g = seen
                .lock()
                .map_err(|_| faena_core::jobs::JobError::Permanent(anyhow::anyhow!("poisoned")))?;
            g.by_id.entry(ctx.task_id).or_default().push(Run {
                at,
                queue: ctx.queue.clone(),
                attempt: ctx.attempt,
            });
            if let Some(i) = v.get("i").and_then(serde_json::Value::as_u64) {
                g.ids_by_key.entry(i).or_default().insert(ctx.task_id);
            }
            Ok(v)
        }
    });
    let worker = spawn(
        r.broker.clone(),
        handlers,
        WorkerConfig {
            queues: vec![orders.clone(), plain.clone()],
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
    assert_eq!(registered.queues.len(), 2, "{registered:?}");

    let started = Instant::now();
    let progress = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let producer = tokio::spawn(produce(
        r.broker.clone(),
        orders.clone(),
        plain.clone(),
        FAILOVER_N,
        Arc::clone(&progress),
    ));
    wait_for(
        "a third of the jobs acknowledged",
        Duration::from_secs(120),
        || async {
            Ok(
                (progress.load(std::sync::atomic::Ordering::SeqCst) >= FAILOVER_N / 3)
                    .then_some(()),
            )
        },
    )
    .await?;
    let ran_before_kill = runs
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .by_id
        .len();
    let old = cluster.kill9_primary(killed).await?;
    // Every lease the old primary handed out was handed out before this instant.
    let killed_at = Instant::now();
    let acked_at_kill = progress.load(std::sync::atomic::Ordering::SeqCst);
    let new = cluster
        .wait_promoted(killed, old, Duration::from_secs(30))
        .await?;
    let promoted_in = killed_at.elapsed();
    let promoted_wall = Utc::now();
    // The killed node back, as the new primary's replica (its nodes.conf tells it where it was).
    cluster.node_mut(old)?.restart().await?;
    cluster
        .wait_replica_linked(old, Duration::from_secs(30))
        .await?;
    let replica_back_in = killed_at.elapsed();

    let produced = tokio::time::timeout(Duration::from_secs(300), producer)
        .await
        .context("the producer did not finish")???;
    let enqueued_in = started.elapsed();
    let acked = produced.acked;
    assert_eq!(acked.len(), FAILOVER_N);
    let acked_set: HashSet<TaskId> = acked.iter().copied().collect();
    assert_eq!(acked_set.len(), FAILOVER_N, "one id per idempotency key");

    // Every acknowledged job runs; then nothing is left waiting or running in any partition.
    wait_for(
        "every acknowledged job to run",
        Duration::from_secs(180),
        || async {
            let g = runs.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            Ok(acked
                .iter()
                .all(|id| g.by_id.contains_key(id))
                .then_some(()))
        },
    )
    .await?;
    let queues: Vec<QueueName> = partitions.iter().chain([&plain]).cloned().collect();
    wait_for("every queue drained", Duration::from_secs(60), || async {
        for q in &queues {
            let s = r.broker.stats(q).await?;
            if s.pending + s.scheduled + s.running > 0 {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await?;
    let drained_in = started.elapsed();
    // The worker drained without a restart, and its registry entry lives on the promoted primary
    // (the killed shard held the registry): a heartbeat newer than the promotion.
    wait_for(
        "a heartbeat after the promotion",
        Duration::from_secs(10),
        || async {
            let workers = r.broker.workers().await?;
            Ok(workers
                .iter()
                .any(|w| w.last_heartbeat.is_some_and(|t| t > promoted_wall))
                .then_some(()))
        },
    )
    .await?;
    // No attempt failed on the shards that stayed up, and none died anywhere. On the killed
    // shard an attempt leased by the old primary may have failed (its lease taken back once it
    // expired while the promoted shard, with no replica yet, acknowledged no outcome): the job ran
    // again, which the check of every second run below allows only for jobs first started there
    // before the kill.
    let mut failed_on_killed = 0;
    for q in &queues {
        let s = r.broker.stats(q).await?;
        assert_eq!(s.dead, 0, "{q}: {s:?}");
        if on_killed.contains(q.as_str()) {
            failed_on_killed += s.failed;
        } else {
            assert_eq!(s.failed, 0, "{q} is on a shard that stayed up: {s:?}");
        }
    }
    // Each acknowledged job is recorded as succeeded (its outcome reached the promoted replica,
    // or was recorded again there): its state read in the partition it ran in, one pipeline per
    // 1,000 jobs of a partition (`Broker::task` looks in every queue: minutes for 100,000 ids).
    let mut by_queue: HashMap<QueueName, Vec<TaskId>> = HashMap::new();
    {
        let g = runs.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        for id in &acked {
            let q = &g
                .by_id
                .get(id)
                .and_then(|rs| rs.first())
                .context("a run")?
                .queue;
            by_queue.entry(QueueName::parse(q)?).or_default().push(*id);
        }
    }
    let nodes: Vec<String> = cluster
        .nodes
        .iter()
        .chain(cluster.replicas.iter().flatten())
        .map(|n| n.url())
        .collect();
    let mut conn = redis::cluster::ClusterClient::new(nodes)?
        .get_async_connection()
        .await?;
    let mut not_done = Vec::new();
    for (q, ids) in &by_queue {
        let keys = r.broker.queue_keys(q);
        for chunk in ids.chunks(1_000) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.hget(keys.task(&id.to_string()), "state");
            }
            let states: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
            for (id, state) in chunk.iter().zip(states) {
                if state.as_deref().and_then(TaskState::parse) != Some(TaskState::Succeeded) {
                    not_done.push((*id, q.clone(), state));
                }
            }
        }
    }
    assert!(
        not_done.is_empty(),
        "{} acknowledged jobs not succeeded: {:?}",
        not_done.len(),
        &not_done[..not_done.len().min(10)]
    );

    worker.shutdown().await;
    let g = runs.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut twice = 0;
    for (id, rs) in &g.by_id {
        if rs.len() < 2 {
            continue;
        }
        twice += 1;
        let first = rs.iter().min_by_key(|r| r.at).context("a run")?;
        assert!(
            first.at <= killed_at && on_killed.contains(&first.queue),
            "{id} ran {} times though its first run ({}, attempt {}, {:?} after the kill) was not \
             leased from the killed primary",
            rs.len(),
            first.queue,
            first.attempt,
            first.at.checked_duration_since(killed_at)
        );
    }
    let unacked_ran = g.by_id.keys().filter(|id| !acked_set.contains(id)).count();
    let keys_run_under_two_ids = g.ids_by_key.values().filter(|ids| ids.len() > 1).count();
    eprintln!(
        "cluster failover: {FAILOVER_N} jobs ({acked_at_kill} acknowledged and {ran_before_kill} run \
         at the kill of {old}); {new} promoted in {promoted_in:?}, {old} a replica again after \
         {replica_back_in:?}; enqueued in {enqueued_in:?} (calls sent again: {:?}), drained in \
         {drained_in:?}; {twice} ran twice, {failed_on_killed} attempts failed on the killed shard, \
         {unacked_ran} unacknowledged ids ran ({keys_run_under_two_ids} keys under two ids)",
        produced.retried
    );
    Ok(())
}
