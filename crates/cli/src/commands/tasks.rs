//! Task commands: `faena enqueue`, `faena kinds` and `faena tasks show|list|retry|cancel`.

use std::io::Write;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use faena_broker::{TaskRecord, TaskState};
use faena_core::jobs::EnqueueRequest;
use faena_core::workflow::WorkflowRequest;
use faena_core::TaskId;

use super::common::{broker, print_json, queue, say, CliSettings, Times};
use crate::exit;

// No doc comment of its own: the help of `faena enqueue` is the `Command::Enqueue` variant's.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
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
    /// Then run KIND (args `{"previous": <this job's result>}`) once this job succeeded: a chain.
    /// Repeat for a longer chain. Prints the workflow's id, then each step's task id.
    #[arg(long, value_name = "KIND", conflicts_with_all = ["count", "idempotency_key"])]
    then: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum WorkflowsCommand {
    /// Show a workflow's state and each step's (and its callback's) task and state.
    Show { id: String },
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

/// `faena enqueue`: one job, or `--count` copies in batches of 10,000; prints their ids.
pub(crate) async fn enqueue(
    settings: &CliSettings,
    a: EnqueueArgs,
    json: bool,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    let EnqueueArgs {
        kind,
        args,
        count,
        countdown,
        eta,
        queue,
        max_attempts,
        idempotency_key,
        then,
    } = a;
    let args: serde_json::Value =
        serde_json::from_str(&args).with_context(|| format!("--args is not JSON: {args}"))?;
    let req = EnqueueRequest {
        kind,
        args,
        queue,
        countdown,
        eta,
        max_attempts,
        idempotency_key,
    };
    let b = broker(settings)?;
    if !then.is_empty() {
        let queue = req.queue.clone();
        let mut chain = vec![req];
        chain.extend(then.into_iter().map(|kind| EnqueueRequest {
            kind,
            queue: queue.clone(),
            ..Default::default()
        }));
        let wf = WorkflowRequest {
            chain: Some(chain),
            ..Default::default()
        };
        let started = b.start_workflow(wf, None).await?;
        if json {
            print_json(out, &started)?;
        } else {
            writeln!(out, "workflow {}", started.workflow_id)?;
            for id in started.task_ids {
                writeln!(out, "{id}")?;
            }
        }
        return Ok(exit::OK);
    }
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

/// `faena workflows show ID`.
pub(crate) async fn workflows(
    settings: &CliSettings,
    command: WorkflowsCommand,
    json: bool,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    let WorkflowsCommand::Show { id } = command;
    let b = broker(settings)?;
    let wid = TaskId::parse(&id)
        .map_err(|_| anyhow::anyhow!("`{id}` is not a workflow id (a ULID of 26 characters)"))?;
    let Some(w) = b.workflow(&wid).await? else {
        say(
            out,
            json,
            format!("no workflow {id}: it never existed or expired with its tasks' records"),
            serde_json::Value::Null,
        )?;
        return Ok(exit::FAILED);
    };
    if json {
        print_json(out, &w)?;
        return Ok(exit::OK);
    }
    writeln!(out, "workflow {}  {}", w.id, word(&w.state))?;
    for (i, s) in w.steps.iter().enumerate() {
        writeln!(out, "  {i:>5}  {}  {}", s.task_id, word(&s.state))?;
    }
    if let Some(c) = &w.callback {
        writeln!(out, "  callback  {}  {}", c.task_id, word(&c.state))?;
    }
    Ok(exit::OK)
}

/// The word the api answers for a state (`SUCCEEDED`, `WAITING`), for the CLI's lines.
fn word(state: &impl serde::Serialize) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `faena kinds`: the job kinds this build knows.
pub(crate) fn kinds(json: bool, out: &mut (impl Write + Send)) -> anyhow::Result<u8> {
    if json {
        let kinds: Vec<_> = faena_shop::jobs::catalog()
            .kinds()
            .iter()
            .map(|k| serde_json::json!({ "name": k.name, "queue": k.queue, "max_attempts": k.max_attempts,
                "time_limit_secs": k.time_limit.as_secs(), "retry": k.retry, "description": k.description }))
            .collect();
        print_json(out, &kinds)?;
    } else {
        for k in faena_shop::jobs::catalog().kinds() {
            writeln!(
                out,
                "{:<12} queue={:<10} max_attempts={:<3} {}",
                k.name, k.queue, k.max_attempts, k.description
            )?;
        }
    }
    Ok(exit::OK)
}

/// `faena tasks ...`.
pub(crate) async fn run(
    settings: &CliSettings,
    command: TasksCommand,
    json: bool,
    times: &Times,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    let b = broker(settings)?;
    match command {
        TasksCommand::Show { id } => {
            match b.task(&task_id(&id)?).await? {
                Some(r) if json => print_json(out, &r).map(|_| exit::OK),
                Some(r) => print_record(out, &r, times).map(|_| exit::OK),
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
            let total = b.total_stats(&q).await?.dead;
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

fn print_record(out: &mut impl Write, r: &TaskRecord, times: &Times) -> anyhow::Result<()> {
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
    writeln!(out, "enqueued_at:  {}", times.show(r.enqueued_at))?;
    writeln!(out, "started_at:   {}", times.show(r.started_at))?;
    writeln!(out, "finished_at:  {}", times.show(r.finished_at))?;
    writeln!(out, "next_run_at:  {}", times.show(r.next_run_at))?;
    writeln!(out, "worker:       {}", r.worker.as_deref().unwrap_or("-"))?;
    Ok(())
}

fn task_id(id: &str) -> anyhow::Result<TaskId> {
    TaskId::parse(id).map_err(|e| anyhow::anyhow!(e))
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
