//! What every consumer of a queue shares: the native runtime of `faena-worker` and the apalis
//! adapter of `faena-apalis` both lease jobs, guard attempts, decide outcomes and keep their
//! queues through these functions, so a rule about retries, time limits or leases is written once.
//!
//! - [`decide_outcome`]: **how a retry is decided** (the kind's policy, the attempts left).
//! - [`guard_attempt`]: the time limit and panic catching around one attempt.
//! - [`FetchLoop`]: one lease of a batch, the blocking wait on an empty queue, the pauses.
//! - [`upkeep_queue`], [`heartbeat_and_reap`], [`renew_leases`], [`record_outcomes`]: upkeep.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use faena_core::jobs::{ErrorClass, KindSpec, RetryPolicy};
use faena_core::{QueueName, TaskId};
use futures::FutureExt;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::{Broker, Fetch, Lease, LeasedJob, Outcome, OutcomeKind, Waiter, WorkerRegistration};

/// The time limit of an attempt of a kind the catalog does not know.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(300);

/// How one attempt ended, before the retry rules are applied.
#[derive(Debug)]
pub enum AttemptEnd {
    /// The handler succeeded; its result as JSON text.
    Succeeded(String),
    /// A failure worth another attempt: retried after `retry_after` (else the kind's policy)
    /// while attempts remain, DEAD (class `retryable`) on the last one.
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
    /// A failure no retry can fix: DEAD at once with this class.
    Fatal { error: String, class: ErrorClass },
    /// Run again after this delay without using an attempt.
    Snooze(Duration),
}

fn in_future(d: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(d).unwrap_or_default()
}

/// Decides what the broker records for one attempt of a job of kind `spec` (`None`: a kind the
/// catalog does not know, which gets [`RetryPolicy::DEFAULT`]), attempt `attempt` of `max_attempts`.
pub fn decide_outcome(
    spec: Option<&KindSpec>,
    attempt: u32,
    max_attempts: u32,
    end: AttemptEnd,
) -> OutcomeKind {
    match end {
        AttemptEnd::Succeeded(result) => OutcomeKind::Succeeded { result },
        AttemptEnd::Snooze(d) => OutcomeKind::Snooze {
            until: in_future(d),
        },
        AttemptEnd::Fatal { error, class } => {
            warn!(error = %error, class = class.as_str(), "DEAD");
            OutcomeKind::Dead { error, class }
        }
        AttemptEnd::Failed { error, .. } if attempt >= max_attempts => {
            warn!(error = %error, "failed on its last attempt: DEAD");
            OutcomeKind::Dead {
                error,
                class: ErrorClass::Retryable,
            }
        }
        AttemptEnd::Failed { error, retry_after } => {
            let delay = retry_after.unwrap_or_else(|| {
                spec.map_or(RetryPolicy::DEFAULT, |s| s.retry)
                    .delay(attempt)
            });
            info!(error = %error, retry_in = ?delay, "failed; will retry");
            OutcomeKind::Retry {
                error,
                class: ErrorClass::Retryable,
                at: in_future(delay),
            }
        }
    }
}

/// Runs one attempt under the kind's time limit, catching a panic. `Err` says which of the two
/// ended it; both count as a failed attempt.
pub async fn guard_attempt<T>(
    spec: Option<&KindSpec>,
    attempt: impl Future<Output = T>,
) -> Result<T, String> {
    let limit = spec.map_or(DEFAULT_TIME_LIMIT, |s| s.time_limit);
    match tokio::time::timeout(limit, std::panic::AssertUnwindSafe(attempt).catch_unwind()).await {
        Err(_) => Err(format!("time limit of {limit:?} exceeded")),
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            Err(format!("handler panicked: {msg}"))
        }
        Ok(Ok(r)) => Ok(r),
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// What one step of a [`FetchLoop`] gave.
#[derive(Debug)]
pub enum Fetched<P> {
    /// Jobs now leased to the worker (never empty), with the permits they run under.
    Jobs(Vec<LeasedJob>, P),
    /// Nothing this time (the queue was empty, paused, or Redis failed): take permits again.
    Nothing,
    /// The stop flag was raised.
    Stop,
}

/// A fetcher's state: its blocking connection and its backoff after errors.
#[derive(Debug)]
pub struct FetchLoop {
    waiter: Waiter,
    backoff: Duration,
    wait_timeout: Duration,
}

impl FetchLoop {
    /// `wait_timeout` bounds the blocking wait on an empty queue, and so how long a stop waits.
    pub fn new(wait_timeout: Duration) -> Self {
        Self {
            waiter: Waiter::default(),
            backoff: Duration::from_millis(100),
            wait_timeout,
        }
    }

    /// Leases up to `n` jobs of `q`, holding `permits` (the caller's free slots) for them. When none
    /// is leased the permits are given up first, so an idle worker holds no slot while it waits: on an
    /// empty queue it blocks in `BLMOVE` (a job pushed meanwhile is parked for the next step); on a
    /// paused queue it waits 500 ms; after an error it backs off.
    #[allow(clippy::too_many_arguments)]
    pub async fn step<P>(
        &mut self,
        broker: &Broker,
        q: &QueueName,
        worker_id: &str,
        permits: P,
        n: usize,
        stop: &mut watch::Receiver<bool>,
    ) -> Fetched<P> {
        let fetched = broker.fetch(q, worker_id, n).await;
        let permits_or = match fetched {
            Ok(Fetch::Jobs(jobs)) if !jobs.is_empty() => {
                self.backoff = Duration::from_millis(100);
                return Fetched::Jobs(jobs, permits);
            }
            other => {
                drop(permits);
                other
            }
        };
        let pause = match permits_or {
            Ok(Fetch::Jobs(_)) => {
                self.backoff = Duration::from_millis(100);
                // Not raced against the stop signal: an abandoned BLMOVE could still park an id
                // after the release at close. `wait_timeout` bounds how long a stop waits.
                match broker
                    .wait_for_job_with(&mut self.waiter, q, worker_id, self.wait_timeout)
                    .await
                {
                    Ok(_) => return Fetched::Nothing,
                    Err(e) => {
                        warn!(queue = %q, error = %e, "blocking wait failed; reconnecting");
                        Duration::from_millis(500)
                    }
                }
            }
            Ok(Fetch::Paused) => Duration::from_millis(500),
            Err(e) => {
                let wait = self.backoff;
                warn!(queue = %q, error = %e, "fetch failed; retrying in {:?}", wait);
                self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
                wait
            }
        };
        tokio::select! {
            _ = stopped(stop) => Fetched::Stop,
            _ = tokio::time::sleep(pause) => Fetched::Nothing,
        }
    }
}

/// Runs upkeep passes over one queue (due jobs promoted, expired leases taken back), in bounded
/// chunks while a pass was full; returns when its next scheduled job is due (ms), if any.
pub async fn upkeep_queue(broker: &Broker, q: &QueueName) -> Option<i64> {
    let mut next_due = None;
    for _ in 0..50 {
        match broker.maintain(q, 1000).await {
            Ok(r) => {
                next_due = r.next_due_ms;
                if r.shifted > 0 {
                    warn!(queue = %q, leases = r.shifted, stall = ?broker.stall_after(),
                        "no upkeep ran for longer than the stall (Redis paused or every worker stopped): running leases moved forward by the gap");
                }
                if r.requeued > 0 || r.dead > 0 {
                    info!(queue = %q, requeued = r.requeued, dead = r.dead, "took back jobs whose lease expired");
                }
                if r.promoted < 1000 && r.requeued < 1000 {
                    break;
                }
            }
            Err(e) => {
                warn!(queue = %q, error = %e, "upkeep failed");
                break;
            }
        }
    }
    next_due
}

/// Refreshes the worker's registry entry and takes back ids parked by workers that stopped
/// sending heartbeats.
pub async fn heartbeat_and_reap(broker: &Broker, reg: &WorkerRegistration, running: usize) {
    if let Err(e) = broker.heartbeat(reg, running).await {
        warn!(error = %e, "heartbeat failed");
    }
    match broker.reap_dead_workers().await {
        Ok(n) if n > 0 => info!(requeued = n, "took back ids parked by dead workers"),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "reaping dead workers failed"),
    }
}

/// Extends the leases a worker holds on `q`; returns the ids whose lease is lost (expired and taken
/// back, or leased again): the caller stops their attempts and acknowledges none of them. A failed
/// renewal loses nothing yet (the leases run until their deadline) and returns no id.
pub async fn renew_leases(broker: &Broker, q: &QueueName, leases: &[Lease]) -> Vec<TaskId> {
    match broker.renew(q, leases).await {
        Ok(lost) => {
            if !lost.is_empty() {
                faena_core::metrics::stale_outcomes(q.as_str(), lost.len() as u64);
                warn!(queue = %q, jobs = ?lost, "lost the lease of running jobs (expired or leased again): stopping them without an acknowledgement");
            }
            lost
        }
        Err(e) => {
            warn!(queue = %q, error = %e, "lease renewal failed");
            Vec::new()
        }
    }
}

/// How often a consumer renews its leases: a third of the lease, at least every 100 ms.
pub fn renew_interval(broker: &Broker) -> Duration {
    (broker.settings().lease / 3).max(Duration::from_millis(100))
}

/// Records outcomes, retrying while Redis refuses them: losing them would run finished jobs
/// again. With `give_up_after` it stops trying after that long (the leases then expire and the
/// jobs run again); returns whether they were recorded.
pub async fn record_outcomes(
    broker: &Broker,
    q: &QueueName,
    outcomes: &[Outcome],
    give_up_after: Option<Duration>,
) -> bool {
    let start = Instant::now();
    let mut backoff = Duration::from_millis(50);
    loop {
        match broker.finish(q, outcomes).await {
            Ok(report) => {
                if !report.stale.is_empty() {
                    faena_core::metrics::stale_outcomes(q.as_str(), report.stale.len() as u64);
                    for (id, current) in &report.stale {
                        let ours = outcomes.iter().find(|o| o.id == *id).map(|o| o.token);
                        warn!(queue = %q, task_id = %id, token = ?ours, current = ?current,
                            "ignored the outcome of an attempt that lost its lease (stale token)");
                    }
                }
                return true;
            }
            Err(e) if give_up_after.is_none_or(|limit| start.elapsed() < limit) => {
                warn!(queue = %q, error = %e, jobs = outcomes.len(), "could not record outcomes; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                error!(queue = %q, error = %e, jobs = outcomes.len(),
                    "giving up recording outcomes; the leases will expire and the jobs run again");
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_policy_until_the_last_attempt() {
        let end = || AttemptEnd::Failed {
            error: "boom".into(),
            retry_after: None,
        };
        match decide_outcome(None, 1, 3, end()) {
            OutcomeKind::Retry { class, at, .. } => {
                assert_eq!(class, ErrorClass::Retryable);
                let wait = (at - Utc::now()).num_milliseconds();
                assert!((0..=1200).contains(&wait), "{wait} ms");
            }
            other => panic!("expected a retry, got {other:?}"),
        }
        assert!(matches!(
            decide_outcome(None, 3, 3, end()),
            OutcomeKind::Dead {
                class: ErrorClass::Retryable,
                ..
            }
        ));
        let fatal = AttemptEnd::Fatal {
            error: "bad".into(),
            class: ErrorClass::Decode,
        };
        assert!(matches!(
            decide_outcome(None, 1, 3, fatal),
            OutcomeKind::Dead {
                class: ErrorClass::Decode,
                ..
            }
        ));
        let after = AttemptEnd::Failed {
            error: "later".into(),
            retry_after: Some(Duration::from_secs(60)),
        };
        match decide_outcome(None, 1, 3, after) {
            OutcomeKind::Retry { at, .. } => {
                let wait = (at - Utc::now()).num_seconds();
                assert!((58..=60).contains(&wait), "{wait} s");
            }
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_attempt_is_bounded_and_its_panic_caught() {
        let spec = faena_core::jobs::SLEEP.time_limit(Duration::from_millis(20));
        let slow = guard_attempt(Some(&spec), tokio::time::sleep(Duration::from_secs(5))).await;
        assert!(slow.is_err_and(|e| e.contains("time limit")));
        let panicky = guard_attempt(Some(&spec), async { panic!("oops") }).await;
        assert_eq!(panicky, Err::<(), _>("handler panicked: oops".into()));
        assert_eq!(guard_attempt(None, async { 7 }).await, Ok(7));
    }
}
