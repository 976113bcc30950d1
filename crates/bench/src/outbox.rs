//! The transactional outbox on a fresh database: how fast a relay moves a backlog to Redis, and
//! commit-to-start through the outbox at a steady rate, each job written in a transaction of its
//! own by this process, which runs a relay as the api does and wakes it after each commit; a
//! `faena-worker` process runs the jobs (its own relay polls as well).

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use faena_broker::Broker;
use faena_core::TaskId;

fn noop(i: usize) -> faena_core::jobs::EnqueueRequest {
    faena_core::jobs::EnqueueRequest {
        kind: "noop".into(),
        args: serde_json::json!({ "i": i }),
        ..Default::default()
    }
}

/// `backlog` rows relayed by one in-process relay; then `rate` jobs/s for `seconds` through the
/// outbox with a worker process relaying and running them.
pub(crate) async fn measure(
    b: &Broker,
    redis_url: &str,
    prefix: &str,
    worker: &std::path::Path,
    backlog: usize,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<()> {
    if backlog == 0 && rate == 0 {
        return Ok(());
    }
    let db = faena_testkit::TestDb::new("benchoutbox").await?;
    let pool = faena_core::db::create_pool(&db.url, 4)?;
    let catalog = faena_shop::jobs::catalog();

    // Throughput: a backlog written in transactions of 100, then drained.
    {
        let mut conn = pool.get().await?;
        for chunk in (0..backlog).collect::<Vec<_>>().chunks(100) {
            let catalog = &catalog;
            diesel_async::AsyncConnection::transaction::<(), anyhow::Error, _>(
                &mut *conn,
                async move |conn| {
                    for &i in chunk {
                        faena_core::outbox::enqueue_in_tx(conn, catalog, noop(i), None).await?;
                    }
                    Ok(())
                },
            )
            .await?;
        }
        let t = Instant::now();
        let moved = faena_broker::relay::drain(b, &pool).await?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "outbox relay:   {:>9.0} jobs/s  ({moved} rows moved to Redis in {secs:.2} s, {} per transaction)",
            moved as f64 / secs,
            faena_broker::relay::BATCH
        );
    }

    // Latency: one transaction per job at a steady rate, relayed here (as the api does) and run by
    // a worker process.
    let (stop_relay, relay_rx) = tokio::sync::watch::channel(false);
    let relay = tokio::spawn(faena_broker::relay::run(b.clone(), pool.clone(), relay_rx));
    let mut child = Command::new(worker)
        .args(["--queues", "default"])
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", redis_url)
        .env("FAENA_REDIS_PREFIX", prefix)
        .env("FAENA_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", worker.display()))?;
    let mut conn = pool.get().await?;
    // Measured once the worker runs (its start is not the relay's latency): one job through first.
    let warm = faena_core::outbox::enqueue_in_tx(&mut conn, &catalog, noop(0), None).await?;
    faena_core::outbox::committed();
    let start = Instant::now();
    while b.task(&warm).await?.and_then(|r| r.started_at).is_none() {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "the worker did not relay and start a first outbox job"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let n = (rate * seconds) as usize;
    let mut committed: HashMap<TaskId, DateTime<Utc>> = HashMap::with_capacity(n);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..n {
        tick.tick().await;
        // One statement outside an explicit transaction is its own transaction: this commits.
        let id = faena_core::outbox::enqueue_in_tx(&mut conn, &catalog, noop(i), None).await?;
        faena_core::outbox::committed();
        committed.insert(id, Utc::now());
    }
    let start = Instant::now();
    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    let mut left: Vec<TaskId> = committed.keys().copied().collect();
    while !left.is_empty() {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(120),
            "{} outbox jobs did not start",
            left.len()
        );
        let mut still = Vec::new();
        for id in left {
            match b.task(&id).await?.and_then(|r| r.started_at) {
                Some(s) => hist.record((s - committed[&id]).num_milliseconds().max(0) as u64)?,
                None => still.push(id),
            }
        }
        left = still;
        if !left.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let _ = stop_relay.send(true);
    let _ = relay.await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    println!(
        "outbox latency: p50 {} ms, p99 {} ms, max {} ms  (commit to start, {} jobs at {}/s, one transaction each, relayed in-process as the api does)",
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.max(),
        hist.len(),
        rate
    );
    Ok(())
}
