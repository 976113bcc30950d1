//! `faena-bench`: the load generator behind `just bench`. It measures the broker against the Redis of
//! REDIS_URL under its own key prefix (deleted at the end) and prints one line per measurement.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use clap::Parser;
use faena_broker::Broker;
use faena_core::jobs::EnqueueRequest;
use faena_core::settings::BrokerSettings;
use faena_core::{QueueName, Settings};

/// Measures enqueue, drain and latency of the broker and one worker process.
#[derive(Debug, Parser)]
struct Args {
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
    /// The worker binary (default: next to this one).
    #[arg(long)]
    worker_bin: Option<std::path::PathBuf>,
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
        if b.stats(q).await?.succeeded >= n {
            return Ok(Instant::now());
        }
        anyhow::ensure!(start.elapsed() < limit, "timed out waiting for {n} jobs");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = Settings::from_env()?;
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
    let result = run(&args, &settings, &b, &q, &prefix).await;
    b.destroy_all_keys().await?;
    result
}

async fn run(
    args: &Args,
    settings: &Settings,
    b: &Broker,
    q: &QueueName,
    prefix: &str,
) -> anyhow::Result<()> {
    println!(
        "faena-bench {} | {} cores | redis {}",
        faena_core::VERSION,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        faena_core::settings::mask_password(settings.redis_url())
    );

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
        if b.stats(q).await?.succeeded > 0 {
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
    let _ = Utc::now();
    checkouts(args).await?;
    sales(args).await?;
    signing(args)?;
    beat_delay(args, settings).await
}

/// `n` products with practically endless stock at `price`; their ids.
async fn seed_products(
    pool: &faena_core::db::PgPool,
    n: usize,
    price: &str,
) -> anyhow::Result<Vec<i64>> {
    let mut conn = pool.get().await?;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let p = faena_shop::shop::create_product(
            &mut conn,
            faena_shop::shop::NewProduct {
                sku: format!("B-{i}"),
                name: format!("bench {i}"),
                unit_price: price.parse()?,
                stock: 1_000_000_000,
                low_stock_threshold: 0,
            },
        )
        .await?;
        ids.push(p.id);
    }
    Ok(ids)
}

/// The latencies (microseconds) of every caller of a measurement, in one histogram.
async fn collect(
    mut set: tokio::task::JoinSet<anyhow::Result<Vec<u64>>>,
) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    while let Some(r) = set.join_next().await {
        for l in r?? {
            hist.record(l)?;
        }
    }
    Ok(hist)
}

/// Prints a latency histogram (microseconds) as a rate and percentiles.
fn report(label: &str, hist: &hdrhistogram::Histogram<u64>, secs: f64, what: &str) {
    println!(
        "{label}: {:>6.0} {what}/s, p50 {:.2} ms, p99 {:.2} ms  ({} {what})",
        hist.len() as f64 / secs,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.len()
    );
}

/// Sales per second through `faena_shop::sales::create_sale` (the api's code without HTTP): 16
/// callers on one series, so every sale waits for the series' counter row of the previous one.
async fn sales(args: &Args) -> anyhow::Result<()> {
    if args.sales == 0 {
        return Ok(());
    }
    let db = faena_testkit::TestDb::new("benchsales").await?;
    let pool = faena_core::db::create_pool(&db.url, 17)?;
    let ids = seed_products(&pool, 100, "2.50").await?;
    let per_task = args.sales / 16;
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for task in 0..16usize {
        let pool = pool.clone();
        let ids = ids.clone();
        set.spawn(async move {
            let mut conn = pool.get().await?;
            let seller = faena_shop::sales::Seller {
                user_id: format!("{task}"),
                is_admin: false,
            };
            let defaults = faena_shop::sales::SaleDefaults::default();
            let mut lat = Vec::with_capacity(per_task);
            for n in 0..per_task {
                let req = faena_shop::sales::NewSale {
                    items: Some(vec![faena_shop::sales::SaleItemInput {
                        product_id: ids[(task * 13 + n) % ids.len()],
                        quantity: 2,
                    }]),
                    ..Default::default()
                };
                let s = Instant::now();
                faena_shop::sales::create_sale(&mut conn, &seller, &req, &defaults).await?;
                lat.push(s.elapsed().as_micros() as u64);
            }
            Ok::<_, anyhow::Error>(lat)
        });
    }
    let hist = collect(set).await?;
    report(
        "sales (one series, 16 callers)",
        &hist,
        t.elapsed().as_secs_f64(),
        "sales",
    );
    Ok(())
}

/// Time to build, sign (RSA-2048, SHA-1) and zip one boleta's UBL XML, on one core.
fn signing(args: &Args) -> anyhow::Result<()> {
    use faena_sunat::document::{Company, Customer, DocumentType, Line, Receipt, Ruc, Series};
    if args.receipts == 0 {
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("faena-bench-cert-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cert = faena_sunat::testcert::generate(&dir, "bench")?;
    let signer = faena_sunat::Signer::from_pkcs12(&cert.p12_path, &"bench".to_owned().into())?;
    let _ = std::fs::remove_dir_all(&dir);
    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    let t = Instant::now();
    for n in 0..args.receipts {
        let receipt = Receipt {
            company: Company {
                ruc: Ruc::parse("20100066603")?,
                legal_name: "Bench S.A.C.".into(),
                address: "Lima".into(),
                establishment_code: "0000".into(),
            },
            doc_type: DocumentType::Boleta,
            series: Series::parse("B001")?,
            correlative: n as i64 + 1,
            issue_date: Utc::now().date_naive(),
            issue_time: Utc::now().time(),
            customer: Customer::anonymous(),
            currency: "PEN".into(),
            lines: (0..5)
                .map(|i| Line {
                    code: format!("P-{i}"),
                    description: format!("Producto {i}"),
                    quantity: i + 1,
                    unit_price: "3.50".parse().unwrap_or_default(),
                })
                .collect(),
        };
        let s = Instant::now();
        faena_sunat::prepare(&receipt, &signer)?;
        hist.record(s.elapsed().as_micros() as u64)?;
    }
    report(
        "sign + zip a 5-line boleta (one core)",
        &hist,
        t.elapsed().as_secs_f64(),
        "receipts",
    );
    Ok(())
}

/// Checkouts per second and latency, through `faena_shop::shop::checkout` (the api's code without
/// HTTP), from 16 concurrent callers each with its own connection: one hot product, then 1,000 products.
async fn checkouts(args: &Args) -> anyhow::Result<()> {
    if args.checkouts == 0 {
        return Ok(());
    }
    let db = faena_testkit::TestDb::new("benchshop").await?;
    let pool = faena_core::db::create_pool(&db.url, 17)?;
    let ids = seed_products(&pool, 1001, "10.00").await?;
    for (label, spread) in [("one hot product", 1usize), ("1,000 products", 1000)] {
        let per_task = args.checkouts / 16;
        let t = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for task in 0..16usize {
            let pool = pool.clone();
            let ids = ids.clone();
            set.spawn(async move {
                let mut conn = pool.get().await?;
                let mut lat = Vec::with_capacity(per_task);
                for n in 0..per_task {
                    let product_id = ids[if spread == 1 {
                        0
                    } else {
                        1 + (task * 7919 + n * 31) % 1000
                    }];
                    let req = faena_shop::shop::CheckoutRequest {
                        items: vec![faena_shop::shop::CheckoutItem {
                            product_id,
                            quantity: 1,
                        }],
                    };
                    let s = Instant::now();
                    faena_shop::shop::checkout(&mut conn, &req, Duration::from_secs(900), None)
                        .await?;
                    lat.push(s.elapsed().as_micros() as u64);
                }
                Ok::<_, anyhow::Error>(lat)
            });
        }
        let hist = collect(set).await?;
        report(
            &format!("checkout ({label}, 16 callers)"),
            &hist,
            t.elapsed().as_secs_f64(),
            "checkouts",
        );
    }
    Ok(())
}

/// Runs beat in-process on a fresh database with one every-second schedule and reports the delay
/// from each tick's time to the end of its enqueue.
async fn beat_delay(args: &Args, settings: &Settings) -> anyhow::Result<()> {
    if args.beat_seconds == 0 {
        return Ok(());
    }
    let db = faena_testkit::TestDb::new("bench").await?;
    let pool = faena_core::db::create_pool(&db.url, 2)?;
    {
        let mut conn = pool.get().await?;
        let new = faena_core::periodic::NewPeriodic {
            name: "bench-every-second".into(),
            kind: "noop".into(),
            interval_secs: Some(1),
            ..Default::default()
        };
        faena_core::periodic::create(&mut conn, &faena_shop::jobs::catalog(), new).await?;
    }
    let prefix = format!(
        "bench_{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    );
    let cfg = BrokerSettings {
        prefix,
        ..settings.broker.clone()
    };
    let redis = faena_core::redis_pool::create_pool(settings.redis_url(), 4)?;
    let b = Broker::new(
        redis,
        settings.redis_url(),
        cfg,
        faena_shop::jobs::catalog(),
    )?;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let beat = tokio::spawn(faena_beat::run(
        b.clone(),
        pool,
        faena_beat::BeatConfig::default(),
        rx,
    ));
    tokio::time::sleep(Duration::from_secs(args.beat_seconds)).await;
    let _ = stop.send(true);
    let report = beat.await?;
    b.destroy_all_keys().await?;
    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    for d in &report.delays_us {
        hist.record(*d)?;
    }
    println!(
        "beat tick delay: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms  ({} ticks of an every-second schedule)",
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
        hist.len()
    );
    Ok(())
}
