//! The workflow measurement: a group of N `noop` members with a callback, drained by the bench's
//! worker process; the time from the start of the enqueue to the callback's start (its record's
//! `started_at`), and how long the enqueue itself took.

use std::time::{Duration, Instant};

use chrono::Utc;
use faena_broker::Broker;
use faena_core::jobs::EnqueueRequest;
use faena_core::workflow::WorkflowRequest;

/// Runs one group of `members` with a callback through the running worker; prints one line.
pub(crate) async fn group_with_callback(b: &Broker, members: usize) -> anyhow::Result<()> {
    if members == 0 {
        return Ok(());
    }
    let step = |args: serde_json::Value| EnqueueRequest {
        kind: "noop".into(),
        args,
        ..Default::default()
    };
    let req = WorkflowRequest {
        group: Some(
            (0..members)
                .map(|i| step(serde_json::json!({ "i": i })))
                .collect(),
        ),
        callback: Some(step(serde_json::json!({}))),
        ..Default::default()
    };
    let wall = Utc::now();
    let t = Instant::now();
    let started = b.start_workflow(req, None).await?;
    let enqueue = t.elapsed();
    let callback = started
        .task_ids
        .last()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("the workflow answered no callback id"))?;
    let begun = loop {
        if let Some(at) = b.task(&callback).await?.and_then(|r| r.started_at) {
            break at;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(300),
            "the callback of a {members}-member group did not start within 300 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let to_callback = (begun - wall).num_milliseconds();
    println!(
        "workflow:       {:>9} ms  enqueue to callback start ({members} noop members and a callback; \
         enqueue {:.0} ms, {:.0} members/s)",
        to_callback,
        enqueue.as_secs_f64() * 1000.0,
        members as f64 / (to_callback.max(1) as f64 / 1000.0)
    );
    Ok(())
}
