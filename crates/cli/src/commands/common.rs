//! What several commands share: connections to Redis and PostgreSQL, queue names, and output
//! (a sentence or its JSON, pretty JSON, times).

use std::io::Write;

use chrono::{DateTime, Utc};
use faena_broker::Broker;
use faena_core::settings::{OptionalUrls, Settings};
use faena_core::{db, redis_pool, QueueName};

/// The CLI's settings: each command requires only the URLs it connects to (`crate::Command::uses`).
pub(crate) type CliSettings = Settings<OptionalUrls>;

/// The broker of the settings' Redis, knowing every job kind of this build.
pub(crate) fn broker(settings: &CliSettings) -> anyhow::Result<Broker> {
    let url = settings.redis_url()?;
    let pool = redis_pool::create_pool(url, settings.redis_pool_size)?;
    Ok(Broker::new(
        pool,
        url,
        settings.broker.clone(),
        faena_shop::jobs::catalog(),
    )?)
}

/// One PostgreSQL connection for a command, with an error that says what to check.
pub(crate) async fn pg(settings: &CliSettings) -> anyhow::Result<db::PooledConnection> {
    let url = settings.database_url()?;
    let pool = db::create_pool(url, 1)?;
    pool.get().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot connect to PostgreSQL at {}: {e}. Is it running? `faena check-infra` checks both dependencies",
            faena_core::settings::mask_password(url)
        )
    })
}

/// A queue name from the command line.
pub(crate) fn queue(name: &str) -> anyhow::Result<QueueName> {
    QueueName::parse(name).map_err(|e| anyhow::anyhow!(e))
}

/// Writes `text`, or `value` as JSON when `--json` was given.
pub(crate) fn say(
    out: &mut (impl Write + ?Sized),
    json: bool,
    text: impl std::fmt::Display,
    value: serde_json::Value,
) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        writeln!(out, "{text}")?;
    }
    Ok(())
}

/// Writes `v` as pretty JSON.
pub(crate) fn print_json(out: &mut impl Write, v: &impl serde::Serialize) -> anyhow::Result<()> {
    writeln!(out, "{}", serde_json::to_string_pretty(v)?)?;
    Ok(())
}

/// A time in UTC to the millisecond, or `-`.
pub(crate) fn fmt_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or("-".into(), |t| {
        t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
    })
}
