//! What the broker tells about tasks and queues: task records, states and queue statistics.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

/// The state of a task. See `docs/job-states.md` for the transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    Pending,
    Scheduled,
    Running,
    Succeeded,
    Dead,
    Cancelled,
}

impl TaskState {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "PENDING" => Self::Pending,
            "SCHEDULED" => Self::Scheduled,
            "RUNNING" => Self::Running,
            "SUCCEEDED" => Self::Succeeded,
            "DEAD" => Self::Dead,
            "CANCELLED" => Self::Cancelled,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Scheduled => "SCHEDULED",
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Dead => "DEAD",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// True for states a task never leaves on its own.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Dead | Self::Cancelled)
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The record of one task, as `GET /api/tasks/{id}` and `faena tasks show` present it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskRecord {
    pub id: String,
    pub state: TaskState,
    pub kind: String,
    pub queue: String,
    pub args: serde_json::Value,
    pub attempts: u32,
    pub max_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    pub enqueued_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub worker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The user on whose behalf it was enqueued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Every counted attempt that ended (succeeded, retried or dead, a lease taken back included),
    /// oldest first, also those before an operator's retry. A snooze or a job given back at
    /// shutdown used no attempt and is not listed; nor is the attempt running now.
    pub attempt_log: Vec<AttemptEntry>,
}

/// How one attempt of a task ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    Succeeded,
    /// Failed with attempts left: retried later (or its lease was taken back and it was requeued).
    Retried,
    Dead,
}

/// One ended attempt of a task, from its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AttemptEntry {
    /// The attempt's number (1 for the first; it starts again at 1 after an operator's retry).
    pub attempt: u32,
    pub worker: String,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub outcome: AttemptOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    /// The error's first 300 bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AttemptEntry {
    /// Reads `attempt|worker|started_at|ended_at|outcome|class|error` (`lua/history.lua`,
    /// `attempt_entry`); `None` when it is not one.
    fn parse(v: &str) -> Option<Self> {
        let mut p = v.splitn(7, '|');
        let attempt = p.next()?.parse().ok()?;
        let worker = p.next()?.to_owned();
        let started_at = ms(p.next().map(str::to_owned).as_ref());
        let ended_at = ms(p.next().map(str::to_owned).as_ref());
        let outcome = match p.next()? {
            "S" => AttemptOutcome::Succeeded,
            "R" => AttemptOutcome::Retried,
            "D" => AttemptOutcome::Dead,
            _ => return None,
        };
        let some = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
        Some(Self {
            attempt,
            worker,
            started_at,
            ended_at,
            outcome,
            error_class: some(p.next()),
            error: some(p.next()),
        })
    }
}

fn ms(v: Option<&String>) -> Option<DateTime<Utc>> {
    v.and_then(|s| s.parse::<i64>().ok())
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
}

fn json(v: Option<&String>) -> Option<serde_json::Value> {
    v.map(|s| serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.clone())))
}

impl TaskRecord {
    /// Builds a record from the task's Redis hash; `None` when the hash is empty or unreadable.
    pub(crate) fn from_hash(id: &str, h: &HashMap<String, String>) -> Option<Self> {
        let state = TaskState::parse(h.get("state")?)?;
        let num = |k: &str| h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        Some(Self {
            id: id.to_owned(),
            state,
            kind: h.get("kind").cloned().unwrap_or_default(),
            queue: h.get("queue").cloned().unwrap_or_default(),
            args: json(h.get("args")).unwrap_or(serde_json::Value::Null),
            attempts: num("attempts"),
            max_attempts: num("max_attempts"),
            result: json(h.get("result")),
            error: h.get("error").cloned(),
            error_class: h.get("error_class").cloned(),
            enqueued_at: ms(h.get("enqueued_at")),
            started_at: ms(h.get("started_at")),
            finished_at: ms(h.get("finished_at")),
            next_run_at: ms(h.get("next_run_at")),
            worker: h.get("worker").cloned(),
            idempotency_key: h.get("idempotency_key").cloned(),
            owner: h.get("owner").cloned(),
            attempt_log: attempt_log(h, state),
        })
    }
}

/// The `at:<lease token>` fields of a record, in token order (the order the attempts started), and
/// for a SUCCEEDED task its last attempt, which `finish.lua` does not write as an entry: the record's
/// own fields are that attempt (a SUCCEEDED task never runs again). It replaces an entry of the same
/// token (a lease taken back whose late success counted).
fn attempt_log(h: &HashMap<String, String>, state: TaskState) -> Vec<AttemptEntry> {
    let mut entries: Vec<(u64, AttemptEntry)> = h
        .iter()
        .filter_map(|(k, v)| {
            let token = k.strip_prefix("at:")?.parse().ok()?;
            Some((token, AttemptEntry::parse(v)?))
        })
        .collect();
    if state == TaskState::Succeeded {
        if let Some(token) = h.get("token").and_then(|t| t.parse::<u64>().ok()) {
            entries.retain(|(t, _)| *t != token);
            entries.push((
                token,
                AttemptEntry {
                    attempt: h.get("attempts").and_then(|v| v.parse().ok()).unwrap_or(0),
                    worker: h.get("worker").cloned().unwrap_or_default(),
                    started_at: ms(h.get("started_at")),
                    ended_at: ms(h.get("finished_at")),
                    outcome: AttemptOutcome::Succeeded,
                    error_class: None,
                    error: None,
                },
            ));
        }
    }
    entries.sort_by_key(|(t, _)| *t);
    entries.into_iter().map(|(_, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_succeeded_task_lists_its_last_attempt_from_the_record() {
        let h: HashMap<String, String> = [
            ("state", "SUCCEEDED"),
            ("token", "7"),
            ("attempts", "2"),
            ("worker", "w2"),
            ("started_at", "1500"),
            ("finished_at", "1700"),
            ("at:3", "1|w1|500|600|R|retryable|boom"),
            // A lease taken back (retried) whose late success then counted: the success wins.
            ("at:7", "2|w2|1500|1600|R|lease_expired|lease expired"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let rec = TaskRecord::from_hash("t", &h).expect("a record");
        assert_eq!(rec.attempt_log.len(), 2);
        assert_eq!(rec.attempt_log[0].outcome, AttemptOutcome::Retried);
        assert_eq!(rec.attempt_log[0].error.as_deref(), Some("boom"));
        let last = &rec.attempt_log[1];
        assert_eq!(last.outcome, AttemptOutcome::Succeeded);
        assert_eq!((last.attempt, last.worker.as_str()), (2, "w2"));
        assert_eq!(last.started_at.map(|t| t.timestamp_millis()), Some(1500));
        assert_eq!(last.ended_at.map(|t| t.timestamp_millis()), Some(1700));
        assert_eq!(
            (last.error.as_ref(), last.error_class.as_ref()),
            (None, None)
        );
    }

    #[test]
    fn attempt_entries_read_in_token_order_with_errors_that_hold_bars() {
        let h: HashMap<String, String> = [
            ("state", "DEAD"),
            ("at:12", "2|w2|1000|2000|D|permanent|bad | input"),
            ("at:9", "1|w1|500|600|R|retryable|"),
            ("at:x", "garbage"),
            ("at:13", "not|an|entry"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let rec = TaskRecord::from_hash("t", &h).expect("a record");
        assert_eq!(rec.attempt_log.len(), 2);
        assert_eq!(rec.attempt_log[0].attempt, 1);
        assert_eq!(rec.attempt_log[0].worker, "w1");
        assert_eq!(rec.attempt_log[0].outcome, AttemptOutcome::Retried);
        assert_eq!(rec.attempt_log[0].error, None);
        assert_eq!(rec.attempt_log[1].outcome, AttemptOutcome::Dead);
        assert_eq!(rec.attempt_log[1].error.as_deref(), Some("bad | input"));
        assert_eq!(
            rec.attempt_log[1].started_at.map(|t| t.timestamp_millis()),
            Some(1000)
        );
    }
}

/// Counters and sizes of one queue; every number is O(1) to read.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct QueueStats {
    pub queue: String,
    pub paused: bool,
    /// Ids waiting in the pending list (cancelled ids still in the list count until a worker drops them).
    pub pending: u64,
    pub scheduled: u64,
    pub running: u64,
    pub dead: u64,
    /// Attempts that succeeded, since the queue was created.
    pub succeeded: u64,
    /// Attempts that failed (retried or dead), since the queue was created.
    pub failed: u64,
    pub retried: u64,
    pub enqueued: u64,
    /// Acknowledgements and renewals refused because their attempt had lost its lease (fencing):
    /// each is an attempt whose outcome did not count.
    pub stale: u64,
}

impl QueueStats {
    /// Adds `other`'s sizes and counters to these (a queue's partitions, or every queue); paused
    /// when either is. The name stays this one's.
    pub fn add(&mut self, other: &QueueStats) {
        self.paused |= other.paused;
        self.pending += other.pending;
        self.scheduled += other.scheduled;
        self.running += other.running;
        self.dead += other.dead;
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.retried += other.retried;
        self.enqueued += other.enqueued;
        self.stale += other.stale;
    }
}

/// A live worker process, from the registry.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerInfo {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub queues: Vec<String>,
    pub concurrency: u32,
    pub running: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub last_heartbeat: Option<DateTime<Utc>>,
}

impl WorkerInfo {
    pub(crate) fn from_hash(id: &str, h: &HashMap<String, String>) -> Self {
        let num = |k: &str| h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        Self {
            id: id.to_owned(),
            host: h.get("host").cloned().unwrap_or_default(),
            pid: num("pid"),
            queues: h
                .get("queues")
                .map(|q| {
                    q.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            concurrency: num("concurrency"),
            running: num("running"),
            started_at: ms(h.get("started_at")),
            last_heartbeat: ms(h.get("last_heartbeat")),
        }
    }
}
