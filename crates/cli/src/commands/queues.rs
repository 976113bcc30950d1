//! Queue commands: `faena queues`, `faena queue pause|resume|create`, `faena workers`,
//! `faena inspect active|scheduled|stats` and `faena purge`.

use std::io::Write;

use chrono::Utc;
use clap::Subcommand;
use faena_broker::TaskState;

use super::common::{broker, print_json, queue, say, CliSettings, Times};
use crate::exit;

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Pauses a queue (every partition of it): it accepts jobs and starts none until resumed.
    Pause { queue: String },
    /// Resumes a paused queue.
    Resume { queue: String },
    /// Creates a queue, or gives an existing one more partitions.
    Create {
        queue: String,
        /// Spread the queue's jobs over N partitions (N Redis Cluster slots, so up to N nodes);
        /// from 1 to 64, and never fewer than it has.
        #[arg(long, default_value_t = 1)]
        partitions: u16,
    },
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

/// `faena queues`: the statistics of every queue.
pub(crate) async fn queues(
    settings: &CliSettings,
    json: bool,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    let stats = broker(settings)?.all_stats().await?;
    if json {
        print_json(out, &stats)?;
    } else {
        writeln!(
            out,
            "{:<20} {:>6} {:>9} {:>10} {:>8} {:>6} {:>10} {:>8}",
            "QUEUE", "PAUSED", "PENDING", "SCHEDULED", "RUNNING", "DEAD", "SUCCEEDED", "FAILED"
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

/// `faena queue pause|resume|create`.
pub(crate) async fn pause_resume(
    settings: &CliSettings,
    command: QueueCommand,
    json: bool,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    let b = broker(settings)?;
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
        QueueCommand::Create {
            queue: q,
            partitions,
        } => {
            let had = b.set_partitions(&queue(&q)?, partitions).await?;
            let text = match (had, partitions) {
                (_, 1) => format!("queue {q} created"),
                (h, n) if h == n => format!("queue {q} already has {n} partitions"),
                (h, n) => format!(
                    "queue {q} has {n} partitions ({h} before): producers spread its jobs over them within {}s, and workers consuming it start on the new ones at their next heartbeat",
                    faena_broker::partitions::REFRESH.as_secs()
                ),
            };
            say(
                out,
                json,
                text,
                serde_json::json!({ "queue": q, "partitions": partitions, "previous": had }),
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

/// `faena workers`: the live workers and their heartbeats.
pub(crate) async fn workers(
    settings: &CliSettings,
    json: bool,
    times: &Times,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    let workers = broker(settings)?.workers().await?;
    if json {
        print_json(out, &workers)?;
    } else {
        writeln!(
            out,
            "{:<40} {:>7} {:>8} {:>11} {:<25} {:>10}  QUEUES",
            "WORKER", "PID", "RUNNING", "CONCURRENCY", "STARTED", "HEARTBEAT"
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
                "{:<40} {:>7} {:>8} {:>11} {:<25} {:>10}  {queues}",
                w.id,
                w.pid,
                w.running,
                w.concurrency,
                times.show(w.started_at),
                age
            )?;
        }
    }
    Ok(exit::OK)
}

/// `faena inspect ...`.
pub(crate) async fn inspect(
    settings: &CliSettings,
    what: InspectCommand,
    json: bool,
    times: &Times,
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
        all.extend(b.list_one(&q, state, 1000).await?);
    }
    if json {
        print_json(out, &all)?;
    } else {
        writeln!(
            out,
            "{:<26} {:<12} {:<14} {:>8} {:<25} WORKER",
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
                "{:<26} {:<12} {:<14} {:>8} {:<25} {}",
                r.id,
                r.queue,
                r.kind,
                format!("{}/{}", r.attempts, r.max_attempts),
                times.show(when),
                r.worker.as_deref().unwrap_or("-")
            )?;
        }
    }
    Ok(exit::OK)
}

/// `faena purge`: removes waiting or DEAD jobs of a queue, after a confirmation unless `yes`.
pub(crate) async fn purge(
    settings: &CliSettings,
    q: &str,
    state: &str,
    yes: bool,
    json: bool,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    let q = queue(q)?;
    let b = broker(settings)?;
    let s = b.total_stats(&q).await?;
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
