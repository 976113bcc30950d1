//! Workflows in Redis: starting one (`wf_start.lua`) and reading its progress. The progress itself
//! moves only inside the scripts that end a task (`lua/workflow.lua`, prepended to finish, maintain
//! and admin), so a callback starts exactly once however its members finish.

use std::collections::HashMap;

use chrono::Utc;
use faena_core::jobs::NewTask;
use faena_core::workflow::{NewWorkflow, WorkflowRequest, WorkflowShape};
use faena_core::TaskId;
use serde::Serialize;

use crate::record::TaskState;
use crate::{now_ms, scripts, Broker, BrokerError, Result, ENQUEUE_CHUNK};

/// What `POST /api/workflows` answers: the workflow's id and every task id, in order (the steps,
/// then the callback).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowStarted {
    #[schema(value_type = String, example = "01JD0000000000000000000000")]
    pub workflow_id: TaskId,
    #[schema(value_type = Vec<String>)]
    pub task_ids: Vec<TaskId>,
}

/// Where a workflow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkflowState {
    /// Some step (or the callback) has not finished.
    Running,
    /// Every step succeeded (a chain), or the callback succeeded, or a group without a callback
    /// had no failed member.
    Succeeded,
    /// A chain step failed, the callback failed, a member failed with `on_failure: skip`, or a group
    /// without a callback had a failed member.
    Failed,
}

/// The state of one step: a task's state, or `WAITING` (a later chain step or a callback not yet
/// started) or `SKIPPED` (one that never will).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepState {
    Waiting,
    Pending,
    Scheduled,
    Running,
    Succeeded,
    Dead,
    Cancelled,
    Skipped,
}

impl From<TaskState> for StepState {
    fn from(s: TaskState) -> Self {
        match s {
            TaskState::Pending => Self::Pending,
            TaskState::Scheduled => Self::Scheduled,
            TaskState::Running => Self::Running,
            TaskState::Succeeded => Self::Succeeded,
            TaskState::Dead => Self::Dead,
            TaskState::Cancelled => Self::Cancelled,
        }
    }
}

/// One step of a workflow as `GET /api/workflows/{id}` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowStep {
    pub task_id: String,
    pub state: StepState,
}

/// A workflow's progress.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowRecord {
    pub id: String,
    pub state: WorkflowState,
    pub steps: Vec<WorkflowStep>,
    /// A group's callback (absent for a chain and a group without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<WorkflowStep>,
}

/// The args of a task the workflow starts later, stored in the workflow's hash under `<p><j>`.
fn later_task(fields: &mut Vec<String>, p: [&str; 5], j: &str, t: &NewTask) {
    let owner = t.owner.clone().unwrap_or_default();
    for (name, value) in p.iter().zip([
        t.id.to_string(),
        t.kind.to_owned(),
        t.args.clone(),
        t.max_attempts.to_string(),
        owner,
    ]) {
        fields.push(format!("{name}{j}"));
        fields.push(value);
    }
}

impl Broker {
    /// Validates a workflow request and starts it; `owner` is recorded on every task.
    pub async fn start_workflow(
        &self,
        req: WorkflowRequest,
        owner: Option<String>,
    ) -> Result<WorkflowStarted> {
        let wf = self.catalog().prepare_workflow(req, Utc::now())?;
        self.enqueue_workflow(wf.with_owner(owner)).await
    }

    /// Stores a validated workflow and enqueues the tasks that start now (a chain's first step,
    /// every member of a group), in chunks of [`ENQUEUE_CHUNK`] pipelined together.
    /// A workflow of a partitioned queue lives whole in one partition (its scripts touch one slot).
    pub async fn enqueue_workflow(&self, mut wf: NewWorkflow) -> Result<WorkflowStarted> {
        let counts = self.partition_counts().await?;
        wf.queue = self.place(&counts, &wf.queue, None);
        let now = now_ms();
        let k = self.queue_keys(&wf.queue);
        let task_ids = wf.task_ids();
        let mut header: Vec<String> = Vec::new();
        let mut push = |f: &str, v: String| {
            header.push(f.to_owned());
            header.push(v);
        };
        push("n", wf.steps.len().to_string());
        push("state", "RUNNING".into());
        push("queue", wf.queue.to_string());
        push("created_at", now.to_string());
        let now_steps: &[NewTask] = match &wf.shape {
            WorkflowShape::Chain => {
                push("type", "chain".into());
                for (j, t) in wf.steps.iter().enumerate().skip(1) {
                    later_task(&mut header, ["id", "k", "a", "m", "o"], &j.to_string(), t);
                }
                &wf.steps[..1]
            }
            WorkflowShape::Group {
                callback,
                on_failure,
            } => {
                push("type", "group".into());
                push("on_failure", on_failure.as_str().into());
                push("done", "0".into());
                push("failed", "0".into());
                if let Some(cb) = callback {
                    later_task(&mut header, ["cb", "ck", "ca", "cm", "co"], "", cb);
                }
                &wf.steps
            }
        };
        let step_ids: Vec<String> = wf.steps.iter().map(|t| t.id.to_string()).collect();
        // The queue set's slot is not the queue's: a group of its own (`query_by_slot`).
        let registered = vec![redis::Cmd::sadd(
            &self.global_keys().queues,
            wf.queue.as_str(),
        )];
        let mut starts = Vec::new();
        let chunks: Vec<(usize, &[NewTask])> = now_steps
            .chunks(ENQUEUE_CHUNK)
            .enumerate()
            .map(|(c, ch)| (c * ENQUEUE_CHUNK, ch))
            .collect();
        for (c, (from, chunk)) in chunks.iter().enumerate() {
            let mut cmd =
                scripts::evalsha(&scripts::WF_START, &[&k.pending, &k.scheduled, &k.stats]);
            cmd.arg(now)
                .arg(&k.base)
                .arg(wf.queue.as_str())
                .arg(wf.id.to_string());
            if c == 0 {
                cmd.arg(header.len()).arg(&header);
            } else {
                cmd.arg(0);
            }
            // The step ids are listed with the chunk that enqueues them (all at once for a chain).
            let listed: &[String] = match wf.shape {
                WorkflowShape::Chain => &step_ids,
                WorkflowShape::Group { .. } => &step_ids[*from..*from + chunk.len()],
            };
            cmd.arg(listed.len()).arg(listed);
            for (i, t) in chunk.iter().enumerate() {
                cmd.arg(t.id.to_string())
                    .arg(from + i)
                    .arg(t.kind)
                    .arg(&t.args)
                    .arg(t.max_attempts)
                    .arg(t.run_at.map_or(0, |d| d.timestamp_millis()))
                    .arg(t.owner.as_deref().unwrap_or(""));
            }
            starts.push(cmd);
        }
        let replies: Vec<redis::Value> = self
            .query_by_slot(vec![registered, starts], Some("the workflow's enqueue"))
            .await?
            .into_iter()
            .skip(1)
            .flatten()
            .collect();
        let added: Vec<u64> = redis::from_redis_value(redis::Value::Array(replies))?;
        let total: u64 = added.iter().sum();
        if total != now_steps.len() as u64 {
            return Err(BrokerError::Redis(format!(
                "the workflow script enqueued {total} of {} tasks",
                now_steps.len()
            )));
        }
        Ok(WorkflowStarted {
            workflow_id: wf.id,
            task_ids,
        })
    }

    /// A workflow's progress; `None` when it never existed or expired with its tasks' records.
    pub async fn workflow(&self, id: &TaskId) -> Result<Option<WorkflowRecord>> {
        let queues = self.queues().await?;
        if queues.is_empty() {
            return Ok(None);
        }
        let wid = id.to_string();
        let groups = queues
            .iter()
            .map(|q| {
                vec![redis::Cmd::hgetall(format!(
                    "{}wf:{wid}",
                    self.queue_keys(q).base
                ))]
            })
            .collect();
        let hashes = self
            .query_by_slot(groups, None)
            .await?
            .into_iter()
            .flatten()
            .map(redis::from_redis_value::<HashMap<String, String>>)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut conn = self.conn().await?;
        let Some((queue, h)) = queues
            .iter()
            .zip(hashes)
            .find(|(_, h)| h.contains_key("type"))
        else {
            return Ok(None);
        };
        let k = self.queue_keys(queue);
        let wk = format!("{}wf:{wid}", k.base);
        let state = match h.get("state").map(String::as_str) {
            Some("SUCCEEDED") => WorkflowState::Succeeded,
            Some("FAILED") => WorkflowState::Failed,
            _ => WorkflowState::Running,
        };
        let ids: Vec<String> = redis::cmd("LRANGE")
            .arg(format!("{wk}:ids"))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        let mut all: Vec<(String, String)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i.to_string()))
            .collect();
        if let Some(cb) = h.get("cb") {
            all.push((cb.clone(), "cb".into()));
        }
        // A task's state: its record's, or (its record expired) the one it ended in.
        let mut pipe = redis::pipe();
        for (id, idx) in &all {
            pipe.hget(k.task(id), "state")
                .hget(format!("{wk}:res"), idx);
        }
        let answers: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        let later = if state == WorkflowState::Running {
            StepState::Waiting
        } else {
            StepState::Skipped
        };
        let mut steps: Vec<WorkflowStep> = all
            .iter()
            .zip(answers.chunks_exact(2))
            .map(|((id, _), a)| {
                let ended = a[1].as_deref().and_then(|e| {
                    serde_json::from_str::<serde_json::Value>(e)
                        .ok()?
                        .get("state")?
                        .as_str()
                        .and_then(TaskState::parse)
                });
                let state = a[0]
                    .as_deref()
                    .and_then(TaskState::parse)
                    .or(ended)
                    .map_or(later, StepState::from);
                WorkflowStep {
                    task_id: id.clone(),
                    state,
                }
            })
            .collect();
        let callback = h.contains_key("cb").then(|| steps.pop()).flatten();
        Ok(Some(WorkflowRecord {
            id: wid,
            state,
            steps,
            callback,
        }))
    }

    /// The time left (ms) of each of a workflow's keys (`-1`: no expiry yet, while it runs), for
    /// checks that no workflow key outlives its tasks' records. Empty when it does not exist.
    pub async fn workflow_ttls(&self, id: &TaskId) -> Result<Vec<i64>> {
        let mut out = Vec::new();
        let mut conn = self.conn().await?;
        for q in self.queues().await? {
            let wk = format!("{}wf:{id}", self.queue_keys(&q).base);
            for key in [wk.clone(), format!("{wk}:ids"), format!("{wk}:res")] {
                let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await?;
                if ttl != -2 {
                    out.push(ttl);
                }
            }
        }
        Ok(out)
    }
}
