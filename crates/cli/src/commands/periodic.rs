//! Periodic schedules: `faena periodic list|enable|disable|set|add|delete|run` (beat applies changes
//! within a second).

use std::io::Write;

use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;

use super::common::{broker, pg, print_json, say, CliSettings, Times};
use crate::exit;

#[derive(Debug, Subcommand)]
pub enum PeriodicCommand {
    /// Every schedule with its next run.
    List,
    Enable {
        name: String,
    },
    Disable {
        name: String,
    },
    /// Change a schedule's timing.
    Set {
        name: String,
        /// A cron expression: 5 fields, or 6 with seconds first (`0 */30 * * * *`).
        #[arg(long, conflicts_with = "every", required_unless_present_any = ["every", "tz"])]
        cron: Option<String>,
        /// An interval in seconds.
        #[arg(long)]
        every: Option<i64>,
        /// An IANA time zone, e.g. America/Lima.
        #[arg(long)]
        tz: Option<String>,
    },
    /// Add a schedule.
    Add {
        name: String,
        #[arg(long)]
        kind: String,
        #[arg(long, default_value = "{}")]
        args: String,
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, conflicts_with = "every", required_unless_present = "every")]
        cron: Option<String>,
        #[arg(long)]
        every: Option<i64>,
        #[arg(long)]
        tz: Option<String>,
        /// Run once, then disable.
        #[arg(long)]
        one_off: bool,
        #[arg(long, default_value = "")]
        description: String,
    },
    Delete {
        name: String,
    },
    /// Enqueue the schedule's job now.
    Run {
        name: String,
    },
}

/// `faena periodic ...`.
pub(crate) async fn run(
    settings: &CliSettings,
    command: PeriodicCommand,
    json: bool,
    times: &Times,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    use faena_core::periodic::{self, NewPeriodic, PeriodicPatch};
    let mut conn = pg(settings).await?;
    let catalog = faena_shop::jobs::catalog();
    let changed =
        |out: &mut (dyn Write + Send), t: &periodic::PeriodicTask| -> anyhow::Result<u8> {
            let text = format!(
                "{}: {} in {}, {}; next run {}",
                t.name,
                t.schedule_text(),
                t.timezone,
                if t.enabled { "enabled" } else { "disabled" },
                shown(times, t, t.next_run_at(Utc::now()))
            );
            say(out, json, text, serde_json::to_value(t)?)?;
            Ok(exit::OK)
        };
    match command {
        PeriodicCommand::List => {
            let rows = periodic::list(&mut conn).await?;
            let now = Utc::now();
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|t| serde_json::json!({
                        "task": t, "next_run_at": t.next_run_at(now), "kind_registered": catalog.get(&t.kind).is_some()
                    }))
                    .collect();
                print_json(out, &v)?;
            } else {
                writeln!(
                    out,
                    "{:<30} {:<18} {:<16} {:<8} {:<25} {:<25} {:>5}",
                    "NAME", "SCHEDULE", "TZ", "ENABLED", "LAST RUN", "NEXT RUN", "RUNS"
                )?;
                let mut unknown: Vec<&str> = Vec::new();
                for t in &rows {
                    let known = catalog.get(&t.kind).is_some();
                    if !known && !unknown.contains(&t.kind.as_str()) {
                        unknown.push(&t.kind);
                    }
                    let enabled = match (t.enabled, known) {
                        (_, false) => "no kind",
                        (true, true) => "yes",
                        (false, true) => "no",
                    };
                    writeln!(
                        out,
                        "{:<30} {:<18} {:<16} {:<8} {:<25} {:<25} {:>5}",
                        t.name,
                        t.schedule_text(),
                        t.timezone,
                        enabled,
                        shown(times, t, t.last_run_at),
                        shown(times, t, t.next_run_at(now)),
                        t.total_run_count
                    )?;
                }
                if !unknown.is_empty() {
                    writeln!(
                        out,
                        "(\"no kind\": this build has no job kind {} for it yet; beat skips it)",
                        unknown
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )?;
                }
            }
            Ok(exit::OK)
        }
        PeriodicCommand::Enable { name } => {
            let t = periodic::update(
                &mut conn,
                &catalog,
                &name,
                PeriodicPatch {
                    enabled: Some(true),
                    ..Default::default()
                },
            )
            .await?;
            changed(out, &t)
        }
        PeriodicCommand::Disable { name } => {
            let t = periodic::update(
                &mut conn,
                &catalog,
                &name,
                PeriodicPatch {
                    enabled: Some(false),
                    ..Default::default()
                },
            )
            .await?;
            changed(out, &t)
        }
        PeriodicCommand::Set {
            name,
            cron,
            every,
            tz,
        } => {
            let patch = PeriodicPatch {
                cron,
                interval_secs: every,
                timezone: tz,
                ..Default::default()
            };
            let t = periodic::update(&mut conn, &catalog, &name, patch).await?;
            changed(out, &t)
        }
        PeriodicCommand::Add {
            name,
            kind,
            args,
            queue,
            cron,
            every,
            tz,
            one_off,
            description,
        } => {
            let args: serde_json::Value = serde_json::from_str(&args)
                .with_context(|| format!("--args is not JSON: {args}"))?;
            let new = NewPeriodic {
                name,
                kind,
                args: Some(args),
                queue,
                cron,
                interval_secs: every,
                timezone: tz,
                one_off: Some(one_off),
                description: Some(description),
                ..Default::default()
            };
            let t = periodic::create(&mut conn, &catalog, new).await?;
            changed(out, &t)
        }
        PeriodicCommand::Delete { name } => {
            if periodic::delete(&mut conn, &name).await? {
                say(
                    out,
                    json,
                    format!("deleted {name}"),
                    serde_json::json!({ "deleted": name }),
                )?;
                Ok(exit::OK)
            } else {
                say(
                    out,
                    json,
                    format!("no periodic task named {name}"),
                    serde_json::json!({ "deleted": null }),
                )?;
                Ok(exit::FAILED)
            }
        }
        PeriodicCommand::Run { name } => {
            let t = periodic::get(&mut conn, &name).await?;
            let mut req = t.request(Utc::now());
            req.idempotency_key = None;
            let id = broker(settings)?.enqueue(req).await?;
            say(
                out,
                json,
                id,
                serde_json::json!({ "task_id": id, "periodic_task": name }),
            )?;
            Ok(exit::OK)
        }
    }
}

/// A time of schedule `t` in its own zone (UTC with `--utc`).
fn shown(
    times: &Times,
    t: &faena_core::periodic::PeriodicTask,
    at: Option<chrono::DateTime<Utc>>,
) -> String {
    match t.tz() {
        Ok(zone) => times.show_zoned(at, zone),
        // Never stored (the zone is checked on every write); shown in the business zone.
        Err(_) => times.show(at),
    }
}
