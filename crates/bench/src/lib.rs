//! `faena-bench`: the load generator behind `just bench`. It measures the broker against the Redis of
//! REDIS_URL (or of `--redis-url`: one server, Sentinel or a cluster) under its own key prefix
//! (deleted at the end) and prints one line per measurement: here the broker and one worker process;
//! the shop, SUNAT signing and beat measurements in their modules.

mod beat;
mod hist;
mod outbox;
mod shop;
mod signing;
mod workflows;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use faena_broker::Broker;
use faena_core::jobs::EnqueueRequest;
use faena_core::settings::BrokerSettings;
use faena_core::{QueueName, Settings};

/// Measures enqueue, drain and latency of the broker and one worker process.
#[derive(Debug, Parser)]
pub struct Args {
    /// Jobs for the batch-enqueue and drain measurements.
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    /// Jobs for the single-enqueue measurement.
    #[arg(long, default_value_t = 20_000)]
    single: usize,
    /// Rate of the latency measurement (jobs/s) and its length (s).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Worker concurrency for the drain.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Length of the beat measurement (s): tick-to-enqueue delay of an every-second schedule.
    #[arg(long, default_value_t = 60)]
    beat_seconds: u64,
    /// Checkouts per checkout measurement (0 skips them).
    #[arg(long, default_value_t = 4000)]
    checkouts: usize,
    /// Sales for the sales measurement, 16 callers on one series (0 skips it).
    #[arg(long, default_value_t = 2000)]
    sales: usize,
    /// Receipts for the signing measurement (0 skips it).
    #[arg(long, default_value_t = 200)]
    receipts: usize,
    /// Outbox backlog relayed in the outbox throughput measurement (0 skips the outbox part).
    #[arg(long, default_value_t = 20_000)]
    outbox_backlog: usize,
    /// Rate (jobs/s) of the outbox latency measurement, for `--seconds`.
    #[arg(long, default_value_t = 500)]
    outbox_rate: u64,
    /// Members of the workflow measurement: a group with a callback, enqueue to callback start
    /// (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    group: usize,
    /// The worker binary (default: next to this one).
    #[arg(long)]
    worker_bin: Option<std::path::PathBuf>,
    /// Redis to measure, instead of REDIS_URL's (for this process and the worker processes it
    /// starts): `redis://`, `redis+sentinel://` or `redis+cluster://host:port,host:port,...`.
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// Partitions of the bench's queue (`default`), set before the first enqueue: with more than
    /// one, its jobs spread over that many slots (on a cluster, over the nodes) and the worker
    /// consumes every partition.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=i64::from(faena_core::MAX_PARTITIONS)))]
    partitions: u16,
}

/// The settings from the environment (and `.env`, as every process reads them), with REDIS_URL
/// replaced by `--redis-url` when given.
fn settings(redis_url: Option<&str>) -> anyhow::Result<Settings> {
    let Some(url) = redis_url else {
        return Ok(Settings::from_env()?);
    };
    let _ = dotenvy::dotenv();
    let mut vars: HashMap<String, String> = std::env::vars().collect();
    vars.insert("REDIS_URL".into(), url.to_owned());
    Ok(Settings::from_map(&vars)?)
}

/// Runs every measurement, then deletes the bench's Redis keys (also when a measurement failed).
pub async fn run(args: Args) -> anyhow::Result<()> {
    let settings = settings(args.redis_url.as_deref())?;
    faena_core::db::run_migrations(settings.database_url()).await?;
    let prefix = format!(
        "bench_{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    );
    let cfg = BrokerSettings {
        prefix: prefix.clone(),
        ..settings.broker.clone()
    };
    let pool = faena_core::redis_pool::create_pool(settings.redis_url(), 64)?;
    let b = Broker::new(pool, settings.redis_url(), cfg, faena_shop::jobs::catalog())?;
    let q = QueueName::default_queue();
    let result = measure(&args, &settings, &b, &q, &prefix).await;
    b.destroy_all_keys().await?;
    result
}

fn noop(i: usize) -> EnqueueRequest {
    EnqueueRequest {
        kind: "noop".into(),
        args: serde_json::json!({ "i": i }),
        ..Default::default()
    }
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn wait_succeeded(
    b: &Broker,
    q: &QueueName,
    n: u64,
    limit: Duration,
) -> anyhow::Result<Instant> {
    let start = Instant::now();
    loop {
        if b.total_stats(q).await?.succeeded >= n {
            return Ok(Instant::now());
        }
        anyhow::ensure!(start.elapsed() < limit, "timed out waiting for {n} jobs");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The broker and worker measurements (batch enqueue, drain, latency, peak RSS, single enqueue), then
/// the shop, signing and beat ones.
async fn measure(
    args: &Args,
    settings: &Settings,
    b: &Broker,
    q: &QueueName,
    prefix: &str,
) -> anyhow::Result<()> {
    println!(
        "faena-bench {} | {} cores | redis {}{}{}",
        faena_core::VERSION,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        faena_core::settings::mask_password(settings.redis_url()),
        if args.partitions > 1 {
            format!(" | {} partitions", args.partitions)
        } else {
            String::new()
        },
        match settings.broker.min_replicas {
            0 => String::new(),
            n => format!(" | FAENA_REDIS_MIN_REPLICAS={n}"),
        }
    );
    if args.partitions > 1 {
        b.set_partitions(q, args.partitions).await?;
        if b.is_cluster() {
            // Where the partitions landed: the hash tags (and so the slots) depend on the prefix.
            let mut slots = Vec::new();
            for p in q.partitions(args.partitions) {
                let slot = b.queue_slot(&p).await?.unwrap_or_default();
                slots.push(format!("{p} {slot}"));
            }
            println!(
                "partition slots: {} (CLUSTER SLOTS says which node serves each)",
                slots.join(", ")
            );
        }
    }

    // 1. Batch enqueue.
    let reqs: Vec<_> = (0..args.jobs).map(noop).collect();
    let t = Instant::now();
    for chunk in reqs.chunks(10_000) {
        b.enqueue_many(chunk.to_vec()).await?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "batch enqueue:  {:>9.0} jobs/s  ({} jobs in {:.2} s, batches of 10000)",
        args.jobs as f64 / secs,
        args.jobs,
        secs
    );

    // 2. Drain by one worker process.
    let exe = match &args.worker_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("faena-worker"),
    };
    let mut cmd = Command::new(&exe);
    cmd.args(["--queues", q.as_str()])
        .env("REDIS_URL", settings.redis_url())
        .env("FAENA_REDIS_PREFIX", prefix)
        .env("FAENA_LOG", "warn")
        .stdout(Stdio::null());
    if let Some(c) = args.concurrency {
        cmd.args(["--concurrency", &c.to_string()]);
    }
    let t = Instant::now();
    let mut worker = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    let pid = worker.id();
    let first = loop {
        if b.total_stats(q).await?.succeeded > 0 {
            break Instant::now();
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(30),
            "the worker did not start"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let done = wait_succeeded(b, q, args.jobs as u64, Duration::from_secs(300)).await?;
    let total = (done - t).as_secs_f64();
    let steady = (done - first).as_secs_f64();
    println!("drain:          {:>9.0} jobs/s  ({} noop jobs in {:.2} s from first success; {:.2} s including worker start)",
        args.jobs as f64 / steady, args.jobs, steady, total);

    // 3. Latency at a steady rate, with the worker idle-waiting.
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let n = (args.rate * args.seconds) as usize;
    let mut ids = Vec::with_capacity(n);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..n {
        tick.tick().await;
        ids.push(b.enqueue(noop(i)).await?);
    }
    wait_succeeded(b, q, (args.jobs + n) as u64, Duration::from_secs(120)).await?;
    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    for id in &ids {
        if let Some(rec) = b.task(id).await? {
            if let (Some(e), Some(s)) = (rec.enqueued_at, rec.started_at) {
                hist.record((s - e).num_milliseconds().max(0) as u64)?;
            }
        }
    }
    println!("latency:        p50 {} ms, p99 {} ms, max {} ms  (enqueue to start, {} jobs at {}/s, ms resolution)",
        hist.value_at_quantile(0.5), hist.value_at_quantile(0.99), hist.max(), hist.len(), args.rate);

    // 3b. A group with a callback, drained by the same worker.
    workflows::group_with_callback(b, args.group).await?;

    let rss = peak_rss_kib(pid);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = worker.wait();
    match rss {
        Some(kib) => println!("worker peak RSS: {:.1} MB (VmHWM)", kib as f64 / 1024.0),
        None => println!("worker peak RSS: unavailable (no /proc)"),
    }

    // 4. Single enqueue, sequential and with 32 concurrent callers.
    let t = Instant::now();
    for i in 0..args.single {
        b.enqueue(noop(i)).await?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "single enqueue: {:>9.0} jobs/s  (sequential, {} jobs)",
        args.single as f64 / secs,
        args.single
    );
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..32 {
        let b = b.clone();
        let per = args.single / 32;
        set.spawn(async move {
            for i in 0..per {
                b.enqueue(noop(w * per + i)).await?;
            }
            Ok::<_, faena_broker::BrokerError>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "single enqueue: {:>9.0} jobs/s  (32 concurrent callers, {} jobs)",
        (args.single / 32 * 32) as f64 / secs,
        args.single / 32 * 32
    );
    outbox::measure(
        b,
        settings.redis_url(),
        prefix,
        &exe,
        args.outbox_backlog,
        args.outbox_rate,
        args.seconds,
    )
    .await?;
    shop::checkouts(args.checkouts).await?;
    shop::sales(args.sales).await?;
    signing::sign_boletas(args.receipts)?;
    beat::tick_delay(args.beat_seconds, settings).await
}
