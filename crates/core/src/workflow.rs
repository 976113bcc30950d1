//! Workflows: chains (each step after the previous one succeeded, receiving its result), groups (N
//! jobs in parallel) and a callback on a group (one job once every member finished, receiving each
//! member's id, state and result). This module validates a request once into a [`NewWorkflow`];
//! the broker stores it and moves its progress inside its Lua scripts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::jobs::{Catalog, EnqueueError, EnqueueRequest, NewTask};
use crate::{QueueName, TaskId};

/// The most members of one group (a callback receives every member's result in one args object).
pub const MAX_GROUP: usize = 50_000;
/// The most steps of one chain.
pub const MAX_CHAIN: usize = 100;

/// What a group's callback does when a member ended DEAD or CANCELLED.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// The callback runs and sees the failed members in `members` (the default).
    #[default]
    Run,
    /// The callback does not run; the workflow ends FAILED.
    Skip,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Skip => "skip",
        }
    }
}

/// A workflow as it arrives from the api, the CLI or a job: `{"chain": [step, ...]}` or
/// `{"group": [step, ...], "callback": step, "on_failure": "run"|"skip"}`; each step is the body of
/// `POST /api/tasks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowRequest {
    /// Steps run one after another; each later step's args get `previous`, the result of the step
    /// before it.
    #[serde(default)]
    pub chain: Option<Vec<EnqueueRequest>>,
    /// Steps run in parallel.
    #[serde(default)]
    pub group: Option<Vec<EnqueueRequest>>,
    /// For a group: runs once every member finished; its args get `members`.
    #[serde(default)]
    pub callback: Option<EnqueueRequest>,
    /// For a group with a callback: `run` (default) or `skip` when a member failed.
    #[serde(default)]
    pub on_failure: Option<OnFailure>,
}

/// One member of a group as its callback receives it, in `members` (in the group's order):
/// `state` is SUCCEEDED, DEAD or CANCELLED, `result` the member's result (`null` when it failed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackMember {
    pub task_id: String,
    pub state: String,
    #[serde(default)]
    pub result: Option<serde_json::Value>,
}

impl CallbackMember {
    /// Whether the member succeeded.
    pub fn succeeded(&self) -> bool {
        self.state == "SUCCEEDED"
    }
}

/// The shape of a validated workflow.
#[derive(Debug, Clone)]
pub enum WorkflowShape {
    /// `steps[0]` is enqueued at once, each next one when the one before it succeeded.
    Chain,
    /// Every step is enqueued at once; the callback (if any) when all of them finished.
    Group {
        callback: Option<NewTask>,
        on_failure: OnFailure,
    },
}

/// A validated workflow, ready for the broker: every task has its id already.
#[derive(Debug, Clone)]
pub struct NewWorkflow {
    pub id: TaskId,
    /// The one queue every step (and the callback) lives in.
    pub queue: QueueName,
    pub steps: Vec<NewTask>,
    pub shape: WorkflowShape,
}

impl NewWorkflow {
    /// Every task id of the workflow in order: the steps, then the callback.
    pub fn task_ids(&self) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = self.steps.iter().map(|t| t.id).collect();
        if let WorkflowShape::Group {
            callback: Some(cb), ..
        } = &self.shape
        {
            ids.push(cb.id);
        }
        ids
    }

    /// Sets the owner (the user on whose behalf it is enqueued) of every task.
    pub fn with_owner(mut self, owner: Option<String>) -> Self {
        for t in &mut self.steps {
            t.owner.clone_from(&owner);
        }
        if let WorkflowShape::Group {
            callback: Some(cb), ..
        } = &mut self.shape
        {
            cb.owner = owner;
        }
        self
    }
}

/// A workflow that cannot be accepted: which step (`chain[1]`, `group[3]`, `callback`), which field,
/// and why. Stable [`WorkflowError::code`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkflowError {
    #[error("{step}: {source}")]
    Step {
        step: String,
        #[source]
        source: EnqueueError,
    },
    #[error("field `{field}`: {message}")]
    Invalid { field: String, message: String },
}

impl WorkflowError {
    /// A stable machine-readable code: the step's own (`unknown_kind`, `invalid_args`,
    /// `invalid_field`) or `invalid_workflow`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Step { source, .. } => source.code(),
            Self::Invalid { .. } => "invalid_workflow",
        }
    }

    /// The offending field, with its step: `group[3].args.ms`, `callback.queue`, `chain`.
    pub fn field(&self) -> Option<String> {
        Some(match self {
            Self::Step { step, source } => match source.field() {
                Some(f) => format!("{step}.{f}"),
                None => step.clone(),
            },
            Self::Invalid { field, .. } => field.clone(),
        })
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> WorkflowError {
    WorkflowError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn step_err(step: &str, field: &'static str, message: impl Into<String>) -> WorkflowError {
    WorkflowError::Step {
        step: step.to_owned(),
        source: EnqueueError::InvalidField {
            field,
            message: message.into(),
        },
    }
}

/// Validates one step. `adds` names the field the workflow adds to its args when it starts it
/// later (`previous` for a chain's later steps, `members` for a callback): such a step starts
/// later, so it takes no countdown or eta, and its args must be an object without that field.
fn prepare_step(
    catalog: &Catalog,
    step: &str,
    mut req: EnqueueRequest,
    now: DateTime<Utc>,
    adds: Option<&'static str>,
) -> Result<NewTask, WorkflowError> {
    if req.idempotency_key.is_some() {
        return Err(step_err(
            step,
            "idempotency_key",
            "a workflow's steps take no idempotency key (an earlier job holding the key would not \
             belong to the workflow); remove it",
        ));
    }
    if let Some(name) = adds {
        if req.countdown.is_some() || req.eta.is_some() {
            let field = if req.countdown.is_some() {
                "countdown"
            } else {
                "eta"
            };
            return Err(step_err(
                step,
                field,
                "this step starts when the workflow reaches it, so it takes no countdown or eta",
            ));
        }
        if req.args.is_null() {
            req.args = serde_json::Value::Object(Default::default());
        }
        let Some(obj) = req.args.as_object() else {
            return Err(step_err(
                step,
                "args",
                format!("give a JSON object: the workflow adds `{name}` to it"),
            ));
        };
        if obj.contains_key(name) {
            return Err(step_err(
                step,
                "args",
                format!("`{name}` is the workflow's to fill in; rename that field"),
            ));
        }
        // The kind must accept the field the workflow will add.
        let mut probe = req.clone();
        if let Some(o) = probe.args.as_object_mut() {
            o.insert(name.to_owned(), serde_json::Value::Null);
        }
        catalog
            .prepare(probe, now)
            .map_err(|source| WorkflowError::Step {
                step: step.to_owned(),
                source,
            })?;
    }
    catalog
        .prepare(req, now)
        .map_err(|source| WorkflowError::Step {
            step: step.to_owned(),
            source,
        })
}

impl Catalog {
    /// Validates a workflow: its shape, then every step against its kind. Every step and the
    /// callback must live in one queue (see `docs/decisions.md`: a workflow's progress moves in
    /// the same script call as its tasks' states, which cannot span two queues' Cluster slots).
    pub fn prepare_workflow(
        &self,
        req: WorkflowRequest,
        now: DateTime<Utc>,
    ) -> Result<NewWorkflow, WorkflowError> {
        let (name, list, shape_is_chain) = match (req.chain, req.group) {
            (Some(_), Some(_)) => {
                return Err(invalid("chain", "give either `chain` or `group`, not both"))
            }
            (None, None) => {
                return Err(invalid(
                    "chain",
                    "give `chain` (steps one after another) or `group` (steps in parallel)",
                ))
            }
            (Some(c), None) => ("chain", c, true),
            (None, Some(g)) => ("group", g, false),
        };
        if shape_is_chain && (req.callback.is_some() || req.on_failure.is_some()) {
            let field = if req.callback.is_some() {
                "callback"
            } else {
                "on_failure"
            };
            return Err(invalid(
                field,
                "a chain takes no callback or on_failure; its last step is its end",
            ));
        }
        let max = if shape_is_chain { MAX_CHAIN } else { MAX_GROUP };
        if list.is_empty() || list.len() > max {
            return Err(invalid(
                name,
                format!("give 1 to {max} steps, not {}", list.len()),
            ));
        }
        let mut steps = Vec::with_capacity(list.len());
        for (i, r) in list.into_iter().enumerate() {
            let adds = (shape_is_chain && i > 0).then_some("previous");
            steps.push(prepare_step(self, &format!("{name}[{i}]"), r, now, adds)?);
        }
        let callback = match req.callback {
            Some(cb) => Some(prepare_step(self, "callback", cb, now, Some("members"))?),
            None => None,
        };
        if req.on_failure.is_some() && callback.is_none() {
            return Err(invalid(
                "on_failure",
                "on_failure says what the callback does; give a callback too",
            ));
        }
        let queue = steps[0].queue.clone();
        let others = steps
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("{name}[{i}]"), t))
            .chain(callback.iter().map(|t| ("callback".to_owned(), t)));
        for (step, t) in others {
            if t.queue != queue {
                return Err(step_err(
                    &step,
                    "queue",
                    format!(
                        "every step of a workflow runs in one queue; {name}[0] runs in `{queue}` \
                         and this step in `{}`: give it `\"queue\": \"{queue}\"`",
                        t.queue
                    ),
                ));
            }
        }
        let shape = if shape_is_chain {
            WorkflowShape::Chain
        } else {
            WorkflowShape::Group {
                callback,
                on_failure: req.on_failure.unwrap_or_default(),
            }
        };
        Ok(NewWorkflow {
            id: TaskId::new(),
            queue,
            steps,
            shape,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::DIAGNOSTIC_KINDS;
    use serde_json::json;

    fn step(kind: &str, args: serde_json::Value) -> EnqueueRequest {
        EnqueueRequest {
            kind: kind.into(),
            args,
            ..Default::default()
        }
    }

    #[test]
    fn errors_name_the_step_and_the_field() {
        let c = Catalog::new(DIAGNOSTIC_KINDS);
        let now = Utc::now();
        let bad_args = WorkflowRequest {
            group: Some(vec![
                step("noop", json!({})),
                step("sleep", json!({"ms": "x"})),
            ]),
            ..Default::default()
        };
        let e = c.prepare_workflow(bad_args, now).expect_err("bad args");
        assert_eq!(e.code(), "invalid_args");
        assert_eq!(e.field().as_deref(), Some("group[1].args.ms"));

        let mut other_queue = step("noop", json!({}));
        other_queue.queue = Some("elsewhere".into());
        let cross = WorkflowRequest {
            group: Some(vec![step("noop", json!({}))]),
            callback: Some(other_queue),
            ..Default::default()
        };
        let e = c.prepare_workflow(cross, now).expect_err("two queues");
        assert_eq!(e.field().as_deref(), Some("callback.queue"));

        let both = WorkflowRequest {
            chain: Some(vec![step("noop", json!({}))]),
            group: Some(vec![step("noop", json!({}))]),
            ..Default::default()
        };
        let e = c.prepare_workflow(both, now).expect_err("both shapes");
        assert_eq!(e.code(), "invalid_workflow");

        let strict = WorkflowRequest {
            chain: Some(vec![
                step("noop", json!({})),
                step("sleep", json!({"ms": 1})),
            ]),
            ..Default::default()
        };
        let e = c
            .prepare_workflow(strict, now)
            .expect_err("sleep refuses `previous`");
        assert_eq!(e.field().as_deref(), Some("chain[1].args.previous"));
    }

    #[test]
    fn a_valid_group_keeps_its_order_and_queue() -> Result<(), WorkflowError> {
        let c = Catalog::new(DIAGNOSTIC_KINDS);
        let wf = c.prepare_workflow(
            WorkflowRequest {
                group: Some((0..3).map(|i| step("noop", json!({ "i": i }))).collect()),
                callback: Some(step("noop", json!(null))),
                on_failure: Some(OnFailure::Skip),
                ..Default::default()
            },
            Utc::now(),
        )?;
        assert_eq!(wf.steps.len(), 3);
        assert_eq!(wf.task_ids().len(), 4);
        assert_eq!(wf.queue.as_str(), "default");
        assert_eq!(wf.steps[2].args, r#"{"i":2}"#);
        match wf.shape {
            WorkflowShape::Group {
                callback: Some(cb),
                on_failure,
            } => {
                assert_eq!(cb.args, "{}");
                assert_eq!(on_failure, OnFailure::Skip);
            }
            other => panic!("not a group with a callback: {other:?}"),
        }
        Ok(())
    }
}
