//! The worker process: settings, telemetry, checks at start, then the runtime until a signal.

use faena_broker::Broker;
use faena_core::{db, redis_pool, telemetry, QueueName, Settings};

use crate::{runtime, Handlers, WorkerConfig};

/// Runs the worker process with optional command-line overrides.
pub async fn run(queues: Option<Vec<QueueName>>, concurrency: Option<usize>) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    telemetry::init(&settings);
    if let Some(addr) = settings.metrics_bind {
        faena_core::metrics::serve(addr).map_err(anyhow::Error::msg)?;
        tracing::info!(%addr, "serving /metrics");
    }
    db::ensure_migrated(settings.database_url()).await?;
    let pool = redis_pool::create_pool(settings.redis_url(), settings.redis_pool_size)?;
    let broker = Broker::new(
        pool,
        settings.redis_url(),
        settings.broker.clone(),
        faena_shop::jobs::catalog(),
    )?;
    let mut config = WorkerConfig::from_settings(&settings.worker);
    if let Some(q) = queues {
        config.queues = q;
    }
    if let Some(c) = concurrency {
        anyhow::ensure!(
            (1..=10_000).contains(&c),
            "--concurrency {c} is not from 1 to 10000"
        );
        config.concurrency = c;
    }
    let pg = db::create_pool(settings.database_url(), settings.db_pool_size)?;
    apply_summary_time(&pg, &settings).await;
    let handlers = Handlers::production(pg.clone(), broker.clone(), &settings);
    // Jobs written in a transaction (a sale's send) reach Redis through the outbox.
    let (relay_stop, relay_rx) = tokio::sync::watch::channel(false);
    let relay = tokio::spawn(faena_broker::relay::run(broker.clone(), pg, relay_rx));
    let handle = runtime::spawn(broker, handlers, config);
    let stopper = handle.stopper();
    tokio::spawn(async move {
        faena_core::shutdown::signal().await;
        let _ = stopper.send(true);
        let _ = relay_stop.send(true);
    });
    handle.join().await;
    let _ = relay.await;
    Ok(())
}

/// Writes `FAENA_SUNAT_SUMMARY_TIME` into beat's `build-sunat-summaries` schedule. A failure is
/// logged, not fatal: the schedule keeps its time and every other job runs.
async fn apply_summary_time(pg: &db::PgPool, settings: &Settings) {
    let at = settings.sunat.summary_time;
    let result = match pg.get().await {
        Ok(mut conn) => faena_shop::summaries::apply_schedule_time(&mut conn, at)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(true) => {
            tracing::info!(%at, "the build-sunat-summaries schedule now runs at FAENA_SUNAT_SUMMARY_TIME")
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(%at, error = %e, "could not set the build-sunat-summaries schedule's time")
        }
    }
}
