//! The beat measurement: the delay from each tick of an every-second schedule to the end of its
//! enqueue, with beat in-process on a fresh database and under its own Redis key prefix.

use std::time::Duration;

use faena_broker::Broker;
use faena_core::settings::BrokerSettings;
use faena_core::Settings;

/// Runs beat in-process on a fresh database with one every-second schedule and reports the delay
/// from each tick's time to the end of its enqueue.
pub(crate) async fn tick_delay(seconds: u64, settings: &Settings) -> anyhow::Result<()> {
    if seconds == 0 {
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
    tokio::time::sleep(Duration::from_secs(seconds)).await;
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
