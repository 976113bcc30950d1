//! Workflows against a real Redis and in-process workers: a group's callback runs exactly once with
//! every member's result although three workers finish members at the same moment, a chain passes
//! each result to the next step, a failed member is listed (`on_failure: run`) or stops the callback
//! (`skip`), a cancelled member counts, and a job can start a workflow from its handler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faena_broker::{StepState, TaskState, WorkflowRecord, WorkflowState};
use faena_core::jobs::{EnqueueRequest, JobError, NoopArgs, SleepArgs};
use faena_core::workflow::{OnFailure, WorkflowRequest};
use faena_core::{QueueName, TaskId};
use faena_testkit::{wait_for, TestRedis};
use faena_worker::{spawn, Handlers, WorkerConfig, WorkerHandle};
use serde_json::{json, Value};

fn config(concurrency: usize) -> WorkerConfig {
    WorkerConfig {
        queues: vec![QueueName::default_queue()],
        concurrency,
        stop_timeout: Duration::from_secs(10),
        upkeep_interval: Duration::from_millis(100),
        heartbeat_interval: Duration::from_secs(1),
        unknown_kind_grace: Duration::from_secs(900),
    }
}

fn step(kind: &str, args: Value) -> EnqueueRequest {
    EnqueueRequest {
        kind: kind.into(),
        args,
        ..Default::default()
    }
}

/// Every execution of a `noop` (task id -> its args, once per execution).
type Runs = Arc<Mutex<HashMap<TaskId, Vec<Value>>>>;

/// The builtin handlers, with a `noop` that records each execution and returns its args.
fn counting_handlers(runs: &Runs) -> Handlers {
    let mut h = Handlers::builtin();
    let runs = Arc::clone(runs);
    h.register(move |NoopArgs(v): NoopArgs, ctx| {
        let runs = Arc::clone(&runs);
        async move {
            runs.lock()
                .map_err(|_| JobError::Permanent(anyhow::anyhow!("poisoned")))?
                .entry(ctx.task_id)
                .or_default()
                .push(v.clone());
            Ok(v)
        }
    });
    h
}

async fn wait_ended(
    r: &TestRedis,
    id: &TaskId,
    deadline: Duration,
) -> anyhow::Result<WorkflowRecord> {
    wait_for(&format!("workflow {id} to end"), deadline, || async {
        Ok(r.broker
            .workflow(id)
            .await?
            .filter(|w| w.state != WorkflowState::Running))
    })
    .await
}

async fn stop(workers: Vec<WorkerHandle>) {
    for w in workers {
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_1000_drained_by_three_workers_runs_its_callback_once_with_every_result(
) -> anyhow::Result<()> {
    let r = TestRedis::new("wf_group")?;
    const N: usize = 1000;
    let started = r
        .broker
        .start_workflow(
            WorkflowRequest {
                group: Some((0..N).map(|i| step("noop", json!({ "i": i }))).collect()),
                callback: Some(step("noop", json!({ "label": "resumen" }))),
                ..Default::default()
            },
            None,
        )
        .await?;
    assert_eq!(started.task_ids.len(), N + 1);
    let callback = started.task_ids[N];
    let runs: Runs = Arc::default();
    let workers: Vec<WorkerHandle> = (0..3)
        .map(|_| spawn(r.broker.clone(), counting_handlers(&runs), config(16)))
        .collect();
    let wf = wait_ended(&r, &started.workflow_id, Duration::from_secs(60)).await?;
    stop(workers).await;

    assert_eq!(wf.state, WorkflowState::Succeeded);
    assert_eq!(wf.steps.len(), N);
    assert!(wf.steps.iter().all(|s| s.state == StepState::Succeeded));
    let cb = wf.callback.as_ref().map(|c| (c.task_id.clone(), c.state));
    assert_eq!(cb, Some((callback.to_string(), StepState::Succeeded)));

    let runs = runs.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    assert_eq!(runs.len(), N + 1, "every member and the callback ran");
    assert_eq!(
        runs.values().map(Vec::len).sum::<usize>(),
        N + 1,
        "each once"
    );
    let cb_args = &runs[&callback][0];
    assert_eq!(cb_args["label"], json!("resumen"));
    let members = cb_args["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), N);
    for (i, m) in members.iter().enumerate() {
        assert_eq!(
            m,
            &json!({"task_id": started.task_ids[i].to_string(), "state": "SUCCEEDED", "result": {"i": i}}),
            "member {i} in the group's order"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_three_passes_each_result_to_the_next_step() -> anyhow::Result<()> {
    let r = TestRedis::new("wf_chain")?;
    let started = r
        .broker
        .start_workflow(
            WorkflowRequest {
                chain: Some(vec![
                    step("noop", json!({"total": "10.50"})),
                    step("noop", json!({})),
                    step("noop", json!({"y": 2})),
                ]),
                ..Default::default()
            },
            None,
        )
        .await?;
    // Before a worker runs: the first step waits in the queue, the others wait for it.
    let wf = r
        .broker
        .workflow(&started.workflow_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no workflow"))?;
    let states: Vec<StepState> = wf.steps.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [StepState::Pending, StepState::Waiting, StepState::Waiting]
    );
    assert!(wf.callback.is_none());

    let runs: Runs = Arc::default();
    let w = spawn(r.broker.clone(), counting_handlers(&runs), config(4));
    let wf = wait_ended(&r, &started.workflow_id, Duration::from_secs(20)).await?;
    w.shutdown().await;
    assert_eq!(wf.state, WorkflowState::Succeeded);
    let last = r
        .broker
        .task(&started.task_ids[2])
        .await?
        .ok_or_else(|| anyhow::anyhow!("no last step"))?;
    assert_eq!(last.state, TaskState::Succeeded);
    assert_eq!(
        last.result,
        Some(json!({"previous": {"previous": {"total": "10.50"}}, "y": 2}))
    );
    let runs = runs.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    assert_eq!(runs.values().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1]);
    Ok(())
}

async fn group_with_a_failing_member(
    label: &str,
    on_failure: OnFailure,
) -> anyhow::Result<(
    TestRedis,
    faena_broker::WorkflowStarted,
    WorkflowRecord,
    Runs,
)> {
    let r = TestRedis::new(label)?;
    let started = r
        .broker
        .start_workflow(
            WorkflowRequest {
                group: Some(vec![
                    step("noop", json!({"tienda": "A"})),
                    step("fail", json!({"fail_times": 1, "permanent": true})),
                    step("noop", json!({"tienda": "C"})),
                ]),
                callback: Some(step("noop", json!({}))),
                on_failure: Some(on_failure),
                ..Default::default()
            },
            None,
        )
        .await?;
    let runs: Runs = Arc::default();
    let w = spawn(r.broker.clone(), counting_handlers(&runs), config(4));
    let wf = wait_ended(&r, &started.workflow_id, Duration::from_secs(20)).await?;
    w.shutdown().await;
    Ok((r, started, wf, runs))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_member_is_listed_to_the_callback_with_on_failure_run() -> anyhow::Result<()> {
    let (_r, started, wf, runs) = group_with_a_failing_member("wf_run", OnFailure::Run).await?;
    assert_eq!(wf.state, WorkflowState::Succeeded, "the callback succeeded");
    let states: Vec<StepState> = wf.steps.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [StepState::Succeeded, StepState::Dead, StepState::Succeeded]
    );
    let runs = runs.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let cb = &runs[&started.task_ids[3]];
    assert_eq!(cb.len(), 1);
    assert_eq!(
        cb[0]["members"],
        json!([
            {"task_id": started.task_ids[0].to_string(), "state": "SUCCEEDED", "result": {"tienda": "A"}},
            {"task_id": started.task_ids[1].to_string(), "state": "DEAD", "result": null},
            {"task_id": started.task_ids[2].to_string(), "state": "SUCCEEDED", "result": {"tienda": "C"}},
        ])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_member_stops_the_callback_with_on_failure_skip() -> anyhow::Result<()> {
    let (r, started, wf, runs) = group_with_a_failing_member("wf_skip", OnFailure::Skip).await?;
    assert_eq!(wf.state, WorkflowState::Failed);
    assert_eq!(
        wf.callback.as_ref().map(|c| c.state),
        Some(StepState::Skipped)
    );
    assert!(r.broker.task(&started.task_ids[3]).await?.is_none());
    let runs = runs.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    assert_eq!(
        runs.len(),
        2,
        "the two noop members ran, the callback did not"
    );
    assert!(!runs.contains_key(&started.task_ids[3]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_member_counts_and_the_workflow_keys_expire_with_its_records(
) -> anyhow::Result<()> {
    let r = TestRedis::with("wf_cancel", |s| {
        s.result_ttl = Duration::from_secs(30);
        s.dead_ttl = Duration::from_secs(60);
    })?;
    let started = r
        .broker
        .start_workflow(
            WorkflowRequest {
                group: Some(vec![
                    step("noop", json!({})),
                    EnqueueRequest {
                        countdown: Some(3600.0),
                        ..step("noop", json!({}))
                    },
                ]),
                callback: Some(step("noop", json!({}))),
                ..Default::default()
            },
            None,
        )
        .await?;
    assert_eq!(
        r.broker.cancel(&started.task_ids[1]).await?,
        Some(TaskState::Cancelled)
    );
    let runs: Runs = Arc::default();
    let w = spawn(r.broker.clone(), counting_handlers(&runs), config(2));
    let wf = wait_ended(&r, &started.workflow_id, Duration::from_secs(20)).await?;
    w.shutdown().await;
    assert_eq!(wf.state, WorkflowState::Succeeded);
    assert_eq!(wf.steps[1].state, StepState::Cancelled);
    {
        let runs = runs.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let members = &runs[&started.task_ids[2]][0]["members"];
        assert_eq!(members[1]["state"], json!("CANCELLED"));
    }
    // No workflow key outlives the workflow's records: every one expires within the result TTL.
    let ttls = r.broker.workflow_ttls(&started.workflow_id).await?;
    assert_eq!(ttls.len(), 3, "{ttls:?}");
    assert!(ttls.iter().all(|t| (1..=30_000).contains(t)), "{ttls:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_fans_out_a_group_with_a_callback_from_its_handler() -> anyhow::Result<()> {
    let r = TestRedis::new("wf_fanout")?;
    let runs: Runs = Arc::default();
    let mut h = counting_handlers(&runs);
    // A `sleep` that, instead of sleeping, starts a group of `ms` members with a callback.
    h.register(|a: SleepArgs, ctx| async move {
        let req = WorkflowRequest {
            group: Some(
                (0..a.ms)
                    .map(|i| step("noop", json!({ "tienda": i })))
                    .collect(),
            ),
            callback: Some(step("noop", json!({ "resumen": true }))),
            ..Default::default()
        };
        let started = ctx
            .broker
            .start_workflow(req, None)
            .await
            .map_err(|e| JobError::Retry(e.into()))?;
        Ok(json!({ "workflow_id": started.workflow_id }))
    });
    let parent = r.broker.enqueue(step("sleep", json!({ "ms": 4 }))).await?;
    let w = spawn(r.broker.clone(), h, config(4));
    let rec = wait_for(
        "the parent job to succeed",
        Duration::from_secs(20),
        || async {
            Ok(r.broker
                .task(&parent)
                .await?
                .filter(|t| t.state == TaskState::Succeeded))
        },
    )
    .await?;
    let wf_id = rec
        .result
        .as_ref()
        .and_then(|v| v["workflow_id"].as_str())
        .map(TaskId::parse)
        .transpose()?
        .ok_or_else(|| anyhow::anyhow!("no workflow id in {:?}", rec.result))?;
    let wf = wait_ended(&r, &wf_id, Duration::from_secs(20)).await?;
    w.shutdown().await;
    assert_eq!(wf.state, WorkflowState::Succeeded);
    assert_eq!(wf.steps.len(), 4);
    let runs = runs.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    assert_eq!(
        runs.values().map(Vec::len).sum::<usize>(),
        5,
        "4 members and the callback, once each"
    );
    Ok(())
}
