//! The `faena` CLI: commands as a library so tests can call them; `main.rs` only parses and exits.

use std::io::Write;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use faena_broker::{Broker, TaskRecord, TaskState};
use faena_core::jobs::EnqueueRequest;
use faena_core::{db, health, redis_pool, QueueName, Settings, TaskId};

/// Faena's operator CLI: migrate, check infrastructure, enqueue and inspect jobs.
#[derive(Debug, Parser)]
#[command(name = "faena", version, about)]
pub struct Cli {
    /// Print JSON instead of tables and sentences (every command).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending database migrations (idempotent).
    Migrate,
    /// Check PostgreSQL and Redis; exits 1 when one is down.
    CheckInfra,
    /// Enqueue a job (or --count copies, in batches).
    Enqueue {
        /// The job kind, e.g. noop, sleep, fail.
        kind: String,
        /// Args as JSON.
        #[arg(long, default_value = "{}")]
        args: String,
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Seconds from now.
        #[arg(long, conflicts_with = "eta")]
        countdown: Option<f64>,
        /// An RFC 3339 time, e.g. 2026-12-01T09:00:00-05:00.
        #[arg(long)]
        eta: Option<DateTime<Utc>>,
        #[arg(long)]
        queue: Option<String>,
        #[arg(long)]
        max_attempts: Option<u32>,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Inspect or act on tasks.
    Tasks {
        #[command(subcommand)]
        command: TasksCommand,
    },
    /// Queue statistics.
    Queues,
    /// Pause or resume a queue.
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Live workers.
    Workers,
    /// The job kinds this build knows.
    Kinds,
    /// Celery-style inspection: running tasks, scheduled tasks, stats.
    Inspect {
        #[command(subcommand)]
        what: InspectCommand,
    },
    /// Remove waiting (pending and scheduled) or DEAD jobs of a queue.
    Purge {
        queue: String,
        #[arg(long, value_parser = ["pending", "dead"], default_value = "pending")]
        state: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Print shell completions: `faena completions bash > /etc/bash_completion.d/faena`.
    Completions { shell: clap_complete::Shell },
    /// Periodic schedules (beat applies changes within a second).
    Periodic {
        #[command(subcommand)]
        command: PeriodicCommand,
    },
    /// Sales and their SUNAT receipts.
    Sales {
        #[command(subcommand)]
        command: SalesCommand,
    },
    /// Users of the api. Passwords are read from a prompt, or from the first line of stdin when
    /// it is not a terminal; never from the command line.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Stored reports (the worker's report jobs make them).
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// The daily report of SUNAT sends of a date, as a table.
    Daily {
        /// The business date, YYYY-MM-DD (default: today in TZ).
        #[arg(long)]
        date: Option<String>,
        /// Generate (or regenerate) it now instead of reading the stored one.
        #[arg(long)]
        generate: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SalesCommand {
    /// A sale with its items, SUNAT state and every attempt.
    Show { id: i64 },
    /// Queue the sale's send to SUNAT (the worker's `sunat` queue).
    Send { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user: `faena users create ana --role seller`.
    Create {
        username: String,
        /// admin or seller.
        #[arg(long)]
        role: String,
    },
    /// Every user with role and state.
    List,
    /// Set a new password (revokes the user's refresh tokens).
    SetPassword { username: String },
    /// Change a user's role.
    SetRole {
        username: String,
        #[arg(long)]
        role: String,
    },
    /// Disable a user: logins and refreshes fail, refresh tokens are revoked.
    Disable { username: String },
    /// Enable a disabled user.
    Enable { username: String },
}

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

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Show one task's record.
    Show { id: String },
    /// List tasks of a queue in a state (pending, scheduled, running, dead).
    List {
        #[arg(long, default_value = "default")]
        queue: String,
        #[arg(long, default_value = "pending")]
        state: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Put a DEAD or CANCELLED task back to PENDING, or every DEAD task of a queue.
    Retry {
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        id: Option<String>,
        #[arg(long)]
        all_dead: bool,
        #[arg(long, default_value = "default")]
        queue: String,
    },
    /// Cancel a PENDING or SCHEDULED task.
    Cancel { id: String },
}

#[derive(Debug, Subcommand)]
pub enum InspectCommand {
    /// Tasks running now, in every queue.
    Active,
    /// Tasks waiting for their time (delayed or retrying), in every queue.
    Scheduled,
    /// Queues and workers.
    Stats,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    Pause { queue: String },
    Resume { queue: String },
}

/// Exit codes: 0 success, 1 a check failed or a thing was not found, 2 bad input or settings.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
}

fn broker(settings: &Settings) -> anyhow::Result<Broker> {
    let pool = redis_pool::create_pool(settings.redis_url(), settings.redis_pool_size)?;
    Ok(Broker::new(
        pool,
        settings.redis_url(),
        settings.broker.clone(),
        faena_shop::jobs::catalog(),
    )?)
}

/// One PostgreSQL connection for a command, with an error that says what to check.
async fn pg(settings: &Settings) -> anyhow::Result<db::PooledConnection> {
    let pool = db::create_pool(settings.database_url(), 1)?;
    pool.get().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot connect to PostgreSQL at {}: {e}. Is it running? `faena check-infra` checks both dependencies",
            faena_core::settings::mask_password(settings.database_url())
        )
    })
}

/// Writes `text`, or `value` as JSON when `--json` was given.
fn say(
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

fn print_json(out: &mut impl Write, v: &impl serde::Serialize) -> anyhow::Result<()> {
    writeln!(out, "{}", serde_json::to_string_pretty(v)?)?;
    Ok(())
}

fn queue(name: &str) -> anyhow::Result<QueueName> {
    QueueName::parse(name).map_err(|e| anyhow::anyhow!(e))
}

fn task_id(id: &str) -> anyhow::Result<TaskId> {
    TaskId::parse(id).map_err(|e| anyhow::anyhow!(e))
}

fn fmt_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or("-".into(), |t| {
        t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
    })
}

fn print_record(out: &mut impl Write, r: &TaskRecord) -> anyhow::Result<()> {
    writeln!(out, "id:           {}", r.id)?;
    writeln!(out, "state:        {}", r.state)?;
    writeln!(out, "kind:         {}", r.kind)?;
    writeln!(out, "queue:        {}", r.queue)?;
    writeln!(out, "args:         {}", r.args)?;
    writeln!(out, "attempts:     {}/{}", r.attempts, r.max_attempts)?;
    if let Some(res) = &r.result {
        writeln!(out, "result:       {res}")?;
    }
    if let Some(e) = &r.error {
        writeln!(
            out,
            "last error:   {e} ({})",
            r.error_class.as_deref().unwrap_or("-")
        )?;
    }
    writeln!(out, "enqueued_at:  {}", fmt_time(r.enqueued_at))?;
    writeln!(out, "started_at:   {}", fmt_time(r.started_at))?;
    writeln!(out, "finished_at:  {}", fmt_time(r.finished_at))?;
    writeln!(out, "next_run_at:  {}", fmt_time(r.next_run_at))?;
    writeln!(out, "worker:       {}", r.worker.as_deref().unwrap_or("-"))?;
    Ok(())
}

fn unreachable_completions() -> anyhow::Result<u8> {
    anyhow::bail!("completions are printed before settings are read")
}

fn progress(total: u64, what: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({per_sec})")
    {
        bar.set_style(style);
    }
    bar.set_message(what);
    bar
}

async fn inspect(
    settings: &Settings,
    what: InspectCommand,
    json: bool,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    let b = broker(settings)?;
    let state = match what {
        InspectCommand::Active => TaskState::Running,
        InspectCommand::Scheduled => TaskState::Scheduled,
        InspectCommand::Stats => {
            let (queues, workers) = (b.all_stats().await?, b.workers().await?);
            if json {
                print_json(
                    out,
                    &serde_json::json!({ "queues": queues, "workers": workers }),
                )?;
            } else {
                writeln!(
                    out,
                    "{} live worker(s), {} running job(s)",
                    workers.len(),
                    workers.iter().map(|w| w.running).sum::<u32>()
                )?;
                for q in queues {
                    writeln!(out, "queue {}: pending {} scheduled {} running {} dead {} succeeded {} failed {}{}",
                        q.queue, q.pending, q.scheduled, q.running, q.dead, q.succeeded, q.failed, if q.paused { " (paused)" } else { "" })?;
                }
            }
            return Ok(exit::OK);
        }
    };
    let mut all = Vec::new();
    for q in b.queues().await? {
        all.extend(b.list(&q, state, 1000).await?);
    }
    if json {
        print_json(out, &all)?;
    } else {
        writeln!(
            out,
            "{:<26} {:<12} {:<14} {:>8} {:<24} WORKER",
            "ID",
            "QUEUE",
            "KIND",
            "ATTEMPTS",
            if state == TaskState::Running {
                "STARTED"
            } else {
                "NEXT RUN"
            }
        )?;
        for r in all {
            let when = if state == TaskState::Running {
                r.started_at
            } else {
                r.next_run_at
            };
            writeln!(
                out,
                "{:<26} {:<12} {:<14} {:>8} {:<24} {}",
                r.id,
                r.queue,
                r.kind,
                format!("{}/{}", r.attempts, r.max_attempts),
                fmt_time(when),
                r.worker.as_deref().unwrap_or("-")
            )?;
        }
    }
    Ok(exit::OK)
}

/// Runs a command, writing to `out`; returns the exit code.
pub async fn run(cli: Cli, out: &mut (impl Write + Send)) -> anyhow::Result<u8> {
    if let Command::Completions { shell } = cli.command {
        let mut cmd = <Cli as clap::CommandFactory>::command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "faena", &mut buf);
        out.write_all(&buf)?;
        return Ok(exit::OK);
    }
    let json = cli.json;
    let settings = Settings::from_env()?;
    match cli.command {
        Command::Migrate => {
            let applied = db::run_migrations(settings.database_url()).await?;
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
        Command::CheckInfra => check_infra(&settings, json, out).await,
        Command::Enqueue {
            kind,
            args,
            count,
            countdown,
            eta,
            queue,
            max_attempts,
            idempotency_key,
        } => {
            let args: serde_json::Value = serde_json::from_str(&args)
                .with_context(|| format!("--args is not JSON: {args}"))?;
            let req = EnqueueRequest {
                kind,
                args,
                queue,
                countdown,
                eta,
                max_attempts,
                idempotency_key,
            };
            let b = broker(&settings)?;
            let bar = progress(count as u64, "enqueuing");
            if count < 10_000 {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let mut done = 0;
            while done < count {
                let n = (count - done).min(10_000);
                let ids = b.enqueue_many(vec![req.clone(); n]).await?;
                if json {
                    for id in ids {
                        writeln!(out, "{}", serde_json::json!({ "task_id": id }))?;
                    }
                } else {
                    for id in ids {
                        writeln!(out, "{id}")?;
                    }
                }
                done += n;
                bar.inc(n as u64);
            }
            bar.finish_and_clear();
            Ok(exit::OK)
        }
        Command::Tasks { command } => tasks(&settings, command, json, out).await,
        Command::Queues => {
            let stats = broker(&settings)?.all_stats().await?;
            if json {
                print_json(out, &stats)?;
            } else {
                writeln!(
                    out,
                    "{:<20} {:>6} {:>9} {:>10} {:>8} {:>6} {:>10} {:>8}",
                    "QUEUE",
                    "PAUSED",
                    "PENDING",
                    "SCHEDULED",
                    "RUNNING",
                    "DEAD",
                    "SUCCEEDED",
                    "FAILED"
                )?;
                for s in stats {
                    writeln!(
                        out,
                        "{:<20} {:>6} {:>9} {:>10} {:>8} {:>6} {:>10} {:>8}",
                        s.queue,
                        if s.paused { "yes" } else { "no" },
                        s.pending,
                        s.scheduled,
                        s.running,
                        s.dead,
                        s.succeeded,
                        s.failed
                    )?;
                }
            }
            Ok(exit::OK)
        }
        Command::Queue { command } => {
            let b = broker(&settings)?;
            match command {
                QueueCommand::Pause { queue: q } => {
                    b.pause(&queue(&q)?).await?;
                    say(
                        out,
                        json,
                        format!("queue {q} paused: it accepts jobs and starts none until resumed"),
                        serde_json::json!({ "queue": q, "paused": true }),
                    )?;
                }
                QueueCommand::Resume { queue: q } => {
                    b.resume(&queue(&q)?).await?;
                    say(
                        out,
                        json,
                        format!("queue {q} resumed"),
                        serde_json::json!({ "queue": q, "paused": false }),
                    )?;
                }
            }
            Ok(exit::OK)
        }
        Command::Workers => {
            let workers = broker(&settings)?.workers().await?;
            if json {
                print_json(out, &workers)?;
            } else {
                writeln!(
                    out,
                    "{:<40} {:>7} {:>8} {:>11} {:>10}  QUEUES",
                    "WORKER", "PID", "RUNNING", "CONCURRENCY", "HEARTBEAT"
                )?;
                let now = Utc::now();
                for w in workers {
                    let age = w
                        .last_heartbeat
                        .map_or("-".into(), |t| format!("{}s ago", (now - t).num_seconds()));
                    let queues = if w.queues.is_empty() {
                        "(all)".into()
                    } else {
                        w.queues.join(",")
                    };
                    writeln!(
                        out,
                        "{:<40} {:>7} {:>8} {:>11} {:>10}  {queues}",
                        w.id, w.pid, w.running, w.concurrency, age
                    )?;
                }
            }
            Ok(exit::OK)
        }
        Command::Periodic { command } => periodic_cmd(&settings, command, json, out).await,
        Command::Users { command } => users_cmd(&settings, command, json, out).await,
        Command::Sales { command } => sales_cmd(&settings, command, json, out).await,
        Command::Report { command } => report_cmd(&settings, command, json, out).await,
        Command::Inspect { what } => inspect(&settings, what, json, out).await,
        Command::Purge {
            queue: q,
            state,
            yes,
        } => {
            let q = queue(&q)?;
            let b = broker(&settings)?;
            let s = b.stats(&q).await?;
            let (target, count) = if state == "dead" {
                (faena_broker::PurgeTarget::Dead, s.dead)
            } else {
                (faena_broker::PurgeTarget::Pending, s.pending + s.scheduled)
            };
            if !yes {
                eprint!("remove about {count} {state} job(s) of queue {q}? [y/N] ");
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    say(
                        out,
                        json,
                        "nothing removed",
                        serde_json::json!({ "queue": q.as_str(), "removed": 0 }),
                    )?;
                    return Ok(exit::FAILED);
                }
            }
            let removed = b.purge(&q, target).await?;
            say(
                out,
                json,
                format!("removed {removed} {state} job(s) from queue {q}"),
                serde_json::json!({ "queue": q.as_str(), "state": state, "removed": removed }),
            )?;
            Ok(exit::OK)
        }
        Command::Completions { .. } => unreachable_completions(),
        Command::Kinds if json => {
            let kinds: Vec<_> = faena_shop::jobs::catalog()
                .kinds()
                .iter()
                .map(|k| serde_json::json!({ "name": k.name, "queue": k.queue, "max_attempts": k.max_attempts,
                    "time_limit_secs": k.time_limit.as_secs(), "retry": k.retry, "description": k.description }))
                .collect();
            print_json(out, &kinds)?;
            Ok(exit::OK)
        }
        Command::Kinds => {
            for k in faena_shop::jobs::catalog().kinds() {
                writeln!(
                    out,
                    "{:<12} queue={:<10} max_attempts={:<3} {}",
                    k.name, k.queue, k.max_attempts, k.description
                )?;
            }
            Ok(exit::OK)
        }
    }
}

async fn tasks(
    settings: &Settings,
    command: TasksCommand,
    json: bool,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    let b = broker(settings)?;
    match command {
        TasksCommand::Show { id } => {
            match b.task(&task_id(&id)?).await? {
                Some(r) if json => print_json(out, &r).map(|_| exit::OK),
                Some(r) => print_record(out, &r).map(|_| exit::OK),
                None => {
                    say(out, json, format!("no task {id}: it never existed or its record expired after the retention"),
                    serde_json::Value::Null)?;
                    Ok(exit::FAILED)
                }
            }
        }
        TasksCommand::List {
            queue: q,
            state,
            limit,
        } => {
            let state = TaskState::parse(&state).ok_or_else(|| {
                anyhow::anyhow!("--state {state} is not one of pending, scheduled, running, dead")
            })?;
            let records = b.list(&queue(&q)?, state, limit).await?;
            if json {
                print_json(out, &records)?;
            } else {
                writeln!(
                    out,
                    "{:<26} {:<10} {:<14} {:>8}  ARGS",
                    "ID", "STATE", "KIND", "ATTEMPTS"
                )?;
                for r in records {
                    writeln!(
                        out,
                        "{:<26} {:<10} {:<14} {:>8}  {}",
                        r.id,
                        r.state,
                        r.kind,
                        format!("{}/{}", r.attempts, r.max_attempts),
                        r.args
                    )?;
                }
            }
            Ok(exit::OK)
        }
        TasksCommand::Retry { id: Some(id), .. } => report_action(
            out,
            json,
            &id,
            b.retry(&task_id(&id)?).await?,
            TaskState::Pending,
        ),
        TasksCommand::Retry {
            id: None, queue: q, ..
        } => {
            let q = queue(&q)?;
            let total = b.stats(&q).await?.dead;
            let bar = progress(total, "retrying DEAD jobs");
            let mut retried = 0;
            // Bounded: each pass removes what it looked at from the dead set.
            for _ in 0..(total / 1000 + 2) {
                let (looked, n) = b.retry_dead(&q, 1000).await?;
                retried += n;
                bar.inc(looked);
                if looked == 0 {
                    break;
                }
            }
            bar.finish_and_clear();
            say(
                out,
                json,
                format!("{retried} DEAD job(s) of queue {q} are PENDING again"),
                serde_json::json!({ "queue": q.as_str(), "retried": retried }),
            )?;
            Ok(exit::OK)
        }
        TasksCommand::Cancel { id } => report_action(
            out,
            json,
            &id,
            b.cancel(&task_id(&id)?).await?,
            TaskState::Cancelled,
        ),
    }
}

fn report_action(
    out: &mut impl Write,
    json: bool,
    id: &str,
    after: Option<TaskState>,
    wanted: TaskState,
) -> anyhow::Result<u8> {
    let value = serde_json::json!({ "id": id, "state": after.map(TaskState::as_str), "done": after == Some(wanted) });
    match after {
        None => {
            say(out, json, format!("no task {id}"), value)?;
            Ok(exit::FAILED)
        }
        Some(s) if s == wanted => {
            say(out, json, format!("task {id} is now {s}"), value)?;
            Ok(exit::OK)
        }
        Some(s) => {
            say(out, json, format!("task {id} is {s}: nothing done"), value)?;
            Ok(exit::FAILED)
        }
    }
}

async fn check_infra(
    settings: &Settings,
    json: bool,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    let db = db::create_pool(settings.database_url(), 1)?;
    let redis = redis_pool::create_pool(settings.redis_url(), 1)?;
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
            faena_core::settings::mask_password(settings.database_url())
        )?;
        writeln!(out, "   Status: {}\n", status(&report.database))?;
        writeln!(out, "QUEUE (Redis)\n{}", "-".repeat(30))?;
        writeln!(
            out,
            "   URL: {}",
            faena_core::settings::mask_password(settings.redis_url())
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

async fn sales_cmd(
    settings: &Settings,
    command: SalesCommand,
    json: bool,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    use faena_shop::sales;
    let mut conn = pg(settings).await?;
    match command {
        SalesCommand::Show { id } => {
            let sale = match sales::get_sale(&mut conn, id).await {
                Ok(s) => s,
                Err(e @ sales::SaleError::NotFound { .. }) => {
                    eprintln!("faena: {e}");
                    return Ok(exit::FAILED);
                }
                Err(e) => return Err(e.into()),
            };
            if json {
                print_json(out, &sale)?;
                return Ok(exit::OK);
            }
            writeln!(out, "sale:         {} ({})", sale.id, sale.number)?;
            writeln!(
                out,
                "document:     {} {} issued {}",
                if sale.doc_type == "01" {
                    "factura"
                } else {
                    "boleta"
                },
                sale.number,
                sale.issue_date
            )?;
            writeln!(
                out,
                "customer:     {} {} {}",
                sale.customer_doc_type, sale.customer_doc_number, sale.customer_name
            )?;
            for i in &sale.items {
                writeln!(
                    out,
                    "  {:>4} x {:<30} {:>10} {:>10}",
                    i.quantity, i.description, i.unit_price, i.line_total
                )?;
            }
            writeln!(
                out,
                "totals:       subtotal {} IGV {} total {} {}",
                sale.subtotal, sale.igv, sale.total, sale.currency
            )?;
            writeln!(
                out,
                "SUNAT:        {} ({}) code {} {}",
                sale.sunat.status,
                sale.sunat.outcome.as_deref().unwrap_or("-"),
                sale.sunat.code.as_deref().unwrap_or("-"),
                sale.sunat.description.as_deref().unwrap_or("")
            )?;
            for s in &sale.sunat.submissions {
                writeln!(
                    out,
                    "  attempt {} at {}: {} {} ({} ms, HTTP {})",
                    s.attempt,
                    fmt_time(Some(s.started_at)),
                    s.outcome,
                    s.code.as_deref().unwrap_or("-"),
                    s.duration_ms,
                    s.http_status.map_or("-".into(), |h| h.to_string())
                )?;
            }
            if let Some(pdf) = &sale.files.pdf {
                writeln!(
                    out,
                    "pdf:          {}",
                    settings.files_dir.join(pdf).display()
                )?;
            }
            Ok(exit::OK)
        }
        SalesCommand::Send { id } => {
            let row = match sales::sale_row(&mut conn, id).await {
                Ok(r) => r,
                Err(e @ sales::SaleError::NotFound { .. }) => {
                    eprintln!("faena: {e}");
                    return Ok(exit::FAILED);
                }
                Err(e) => return Err(e.into()),
            };
            if let Err(why) = sales::check_sendable(&row) {
                eprintln!("faena: {why}");
                return Ok(exit::FAILED);
            }
            let task_id = broker(settings)?
                .enqueue(EnqueueRequest {
                    kind: "send_sale_to_sunat".into(),
                    args: serde_json::json!({ "sale_id": id }),
                    ..Default::default()
                })
                .await?;
            say(
                out,
                json,
                format!(
                    "queued the send of sale {id} ({}-{}) to SUNAT: task {task_id}",
                    row.series, row.correlative
                ),
                serde_json::json!({
                    "task_id": task_id, "sale_id": id, "correlative": row.correlative,
                }),
            )?;
            Ok(exit::OK)
        }
    }
}

async fn report_cmd(
    settings: &Settings,
    command: ReportCommand,
    json: bool,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    use faena_shop::reports::{self, ReceiptCounts};
    let ReportCommand::Daily { date, generate } = command;
    let date = match date {
        Some(d) => reports::parse_date("--date", &d)?,
        None => Utc::now().with_timezone(&settings.tz).date_naive(),
    };
    let mut conn = pg(settings).await?;
    let view = if generate {
        reports::generate_daily_report(&mut conn, date, settings.tz, &settings.files_dir).await?
    } else {
        match reports::get_daily_report(&mut conn, date).await? {
            Some(v) => v,
            None => {
                eprintln!(
                    "faena: no daily SUNAT report for {date} yet. Generate it with \
                     `faena report daily --date {date} --generate`, or let a worker do it: \
                     `faena enqueue sunat_daily_report --args '{{\"date\":\"{date}\"}}'`"
                );
                return Ok(exit::FAILED);
            }
        }
    };
    if json {
        print_json(out, &view)?;
        return Ok(exit::OK);
    }
    let r = &view.report;
    writeln!(
        out,
        "SUNAT daily report {} ({}), generated {}",
        r.date,
        r.timezone,
        fmt_time(Some(view.generated_at))
    )?;
    writeln!(
        out,
        "{:<28} {:>6} {:>8} {:>8} {:>6} {:>7} {:>9} {:>9} {:>14} {:>14}",
        "",
        "issued",
        "accepted",
        "rejected",
        "error",
        "pending",
        "cancelled",
        "success%",
        "billed PEN",
        "accepted PEN"
    )?;
    let mut line = |label: &str, c: &ReceiptCounts| {
        writeln!(
            out,
            "{:<28} {:>6} {:>8} {:>8} {:>6} {:>7} {:>9} {:>9} {:>14} {:>14}",
            label,
            c.issued,
            c.accepted,
            c.rejected,
            c.error,
            c.pending,
            c.cancelled,
            c.success_pct,
            c.total_billed,
            c.total_accepted
        )
    };
    line("all", &r.totals)?;
    for s in &r.by_seller {
        let label = match &s.seller_name {
            Some(n) => format!("seller {} ({n})", s.seller_id),
            None => format!("seller {}", s.seller_id),
        };
        line(&label, &s.counts)?;
    }
    for d in &r.by_doc_type {
        line(&format!("{} ({})", d.name, d.doc_type), &d.counts)?;
    }
    if let Some(csv) = &view.csv_path {
        writeln!(out, "csv: {}", settings.files_dir.join(csv).display())?;
    }
    Ok(exit::OK)
}

/// A password from a prompt (twice) on a terminal, else the first line of stdin.
fn read_password(username: &str) -> anyhow::Result<secrecy::SecretString> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {username}: "))?;
        let again = rpassword::prompt_password("again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ; nothing changed");
        Ok(first.into())
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        let pw = line.trim_end_matches(['\n', '\r']).to_owned();
        anyhow::ensure!(
            !pw.is_empty(),
            "no password on stdin: pipe it in (`printf '%s\\n' \"$PW\" | faena users create ...`) or run in a terminal to be prompted"
        );
        Ok(pw.into())
    }
}

async fn users_cmd(
    settings: &Settings,
    command: UsersCommand,
    json: bool,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    use faena_shop::auth::{self, Role, Username};
    let mut conn = pg(settings).await?;
    let show = |u: &auth::User| {
        serde_json::json!({
            "id": u.id, "username": u.username, "role": u.role().as_str(), "active": u.active,
            "created_at": u.created_at,
        })
    };
    let user = match command {
        UsersCommand::List => {
            let users = auth::list_users(&mut conn).await?;
            if json {
                print_json(out, &users.iter().map(show).collect::<Vec<_>>())?;
            } else {
                writeln!(
                    out,
                    "{:<6} {:<24} {:<8} {:<8} CREATED",
                    "ID", "USERNAME", "ROLE", "ACTIVE"
                )?;
                for u in &users {
                    writeln!(
                        out,
                        "{:<6} {:<24} {:<8} {:<8} {}",
                        u.id,
                        u.username,
                        u.role().as_str(),
                        if u.active { "yes" } else { "no" },
                        fmt_time(Some(u.created_at))
                    )?;
                }
            }
            return Ok(exit::OK);
        }
        UsersCommand::Create { username, role } => {
            let name = Username::parse(&username)?;
            let role = Role::parse(&role)?;
            let pw = read_password(&username)?;
            auth::create_user(&mut conn, &name, pw, role).await?
        }
        UsersCommand::SetPassword { username } => {
            let pw = read_password(&username)?;
            auth::update_user(&mut conn, &username, Some(pw), None, None).await?
        }
        UsersCommand::SetRole { username, role } => {
            let role = Role::parse(&role)?;
            auth::update_user(&mut conn, &username, None, Some(role), None).await?
        }
        UsersCommand::Disable { username } => {
            auth::update_user(&mut conn, &username, None, None, Some(false)).await?
        }
        UsersCommand::Enable { username } => {
            auth::update_user(&mut conn, &username, None, None, Some(true)).await?
        }
    };
    say(
        out,
        json,
        format!(
            "user {} (id {}): role {}, {}",
            user.username,
            user.id,
            user.role().as_str(),
            if user.active { "active" } else { "disabled" }
        ),
        show(&user),
    )?;
    Ok(exit::OK)
}

async fn periodic_cmd(
    settings: &Settings,
    command: PeriodicCommand,
    json: bool,
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
                fmt_time(t.next_run_at(Utc::now()))
            );
            say(out, json, text, serde_json::to_value(t)?)?;
            Ok(exit::OK)
        };
    match command {
        PeriodicCommand::List => {
            let rows = periodic::list(&mut conn).await?;
            if json {
                let now = Utc::now();
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
                    "{:<30} {:<18} {:<16} {:<8} {:<24} {:<24} {:>5}",
                    "NAME", "SCHEDULE", "TZ", "ENABLED", "LAST RUN", "NEXT RUN", "RUNS"
                )?;
                for t in rows {
                    let enabled = match (t.enabled, catalog.get(&t.kind).is_some()) {
                        (_, false) => "no kind",
                        (true, true) => "yes",
                        (false, true) => "no",
                    };
                    writeln!(
                        out,
                        "{:<30} {:<18} {:<16} {:<8} {:<24} {:<24} {:>5}",
                        t.name,
                        t.schedule_text(),
                        t.timezone,
                        enabled,
                        fmt_time(t.last_run_at),
                        fmt_time(t.next_run_at(Utc::now())),
                        t.total_run_count
                    )?;
                }
                writeln!(out, "(\"no kind\": this build has no job kind `{{kind}}` for it yet; beat skips it)")?;
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
                &id,
                serde_json::json!({ "task_id": id, "periodic_task": name }),
            )?;
            Ok(exit::OK)
        }
    }
}
