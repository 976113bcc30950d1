//! `faena-beat`: thin entry point; the logic lives in the library.

use std::process::ExitCode;

use faena_broker::Broker;
use faena_core::{db, redis_pool, telemetry, Settings};

async fn start() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    telemetry::init(&settings);
    if let Some(addr) = settings.metrics_bind {
        faena_core::metrics::serve(addr).map_err(anyhow::Error::msg)?;
    }
    db::ensure_migrated(settings.database_url()).await?;
    let pg = db::create_pool(settings.database_url(), 2)?;
    let pool = redis_pool::create_pool(settings.redis_url(), 4)?;
    let broker = Broker::new(
        pool,
        settings.redis_url(),
        settings.broker.clone(),
        faena_catalog::catalog(),
    )?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        faena_core::shutdown::signal().await;
        let _ = tx.send(true);
    });
    let config = faena_beat::BeatConfig {
        lease_ttl: settings.beat_lease,
        ..faena_beat::BeatConfig::default()
    };
    faena_beat::run(broker, pg, config, rx).await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match start().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faena-beat: {e:#}");
            ExitCode::FAILURE
        }
    }
}
