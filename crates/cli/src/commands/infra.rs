//! Infrastructure commands: `faena migrate` and `faena check-infra`.

use std::io::Write;

use faena_core::{db, health, redis_pool};

use super::common::{print_json, say, CliSettings};
use crate::exit;

/// `faena migrate`: applies pending migrations and says which (or that none were pending).
pub(crate) async fn migrate(
    settings: &CliSettings,
    json: bool,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    let applied = db::run_migrations(settings.database_url()?).await?;
    let text = if applied.is_empty() {
        format!(
            "database is up to date ({} migrations)",
            db::known_migrations()
        )
    } else {
        let lines: Vec<String> = applied.iter().map(|v| format!("applied {v}")).collect();
        format!(
            "{}\n{} migration(s) applied",
            lines.join("\n"),
            applied.len()
        )
    };
    say(
        out,
        json,
        text,
        serde_json::json!({ "applied": applied, "known": db::known_migrations() }),
    )?;
    Ok(exit::OK)
}

/// `faena check-infra`: PostgreSQL and Redis with their latency; FAILED when one is down.
pub(crate) async fn check_infra(
    settings: &CliSettings,
    json: bool,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    let (db_url, redis_url) = (settings.database_url()?, settings.redis_url()?);
    let db = db::create_pool(db_url, 1)?;
    let redis = redis_pool::create_pool(redis_url, 1)?;
    let report = health::check(&db, &redis).await;
    if json {
        print_json(out, &report)?;
    } else {
        let line = "=".repeat(50);
        let status = |h: &health::DependencyHealth| match &h.error {
            None => format!("✓ Connected ({:.1}ms)", h.latency_ms),
            Some(e) => format!("✗ Down: {e}"),
        };
        writeln!(
            out,
            "{line}\n Faena {} - Infrastructure Health Check\n{line}\n",
            faena_core::VERSION
        )?;
        writeln!(out, "DATABASE (PostgreSQL)\n{}", "-".repeat(30))?;
        writeln!(
            out,
            "   URL: {}",
            faena_core::settings::mask_password(db_url)
        )?;
        writeln!(out, "   Status: {}\n", status(&report.database))?;
        writeln!(out, "QUEUE (Redis)\n{}", "-".repeat(30))?;
        writeln!(
            out,
            "   URL: {}",
            faena_core::settings::mask_password(redis_url)
        )?;
        writeln!(out, "   Key prefix: {}", settings.broker.prefix)?;
        writeln!(out, "   Status: {}\n", status(&report.redis))?;
        if report.ok() {
            writeln!(out, " ✓ All systems operational")?;
        } else {
            writeln!(
                out,
                " ✗ Down: {}. Start it (`just up` starts local ones) or fix the URL.",
                report.down().join(", ")
            )?;
        }
    }
    Ok(if report.ok() { exit::OK } else { exit::FAILED })
}
