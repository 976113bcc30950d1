//! What several commands share: connections to Redis and PostgreSQL, queue names, and output
//! (a sentence or its JSON, pretty JSON, times).

use std::io::Write;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
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

/// How times a person reads are printed: to the second, with the zone's abbreviation or offset
/// (`2026-12-01 20:00:00 -05`), in the business zone (`TZ`) or a schedule's own, or in UTC with
/// `--utc`. JSON always has UTC RFC 3339 times.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Times {
    /// The business zone; `None` with `--utc`.
    zone: Option<Tz>,
}

impl Times {
    pub(crate) fn new(business: Tz, utc: bool) -> Self {
        Self {
            zone: (!utc).then_some(business),
        }
    }

    /// `t` in the business zone (UTC with `--utc`), or `-`.
    pub(crate) fn show(&self, t: Option<DateTime<Utc>>) -> String {
        match self.zone {
            Some(zone) => Self::show_in(t, zone),
            None => t.map_or("-".into(), |t| {
                t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
            }),
        }
    }

    /// `t` in `zone` (a schedule's own; UTC with `--utc`), or `-`.
    pub(crate) fn show_zoned(&self, t: Option<DateTime<Utc>>, zone: Tz) -> String {
        match self.zone {
            Some(_) => Self::show_in(t, zone),
            None => self.show(t),
        }
    }

    fn show_in(t: Option<DateTime<Utc>>, zone: Tz) -> String {
        t.map_or("-".into(), |t| {
            t.with_timezone(&zone)
                .format("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        })
    }
}
