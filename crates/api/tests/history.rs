//! The queues' history (issue 18): ten simulated minutes of outcomes, on a clock the test moves,
//! read back from `GET /api/metrics/history` with exactly the test's own tally; a lease taken back
//! counts too; and a week of one busy queue stays under the memory bound the README documents.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use faena_broker::{Broker, Fetch, Outcome, OutcomeKind};
use faena_core::jobs::{EnqueueRequest, ErrorClass};
use faena_core::QueueName;
use faena_testkit::{wait_for, TestRedis};
use serde_json::Value;

/// Documented in the README (History): the bytes one queue's history takes per day when one kind
/// finishes jobs every minute with every outcome and three latency buckets.
const BYTES_PER_QUEUE_PER_DAY: u64 = 320 * 1024;

const MINUTE: i64 = 60_000;

fn t0() -> anyhow::Result<DateTime<Utc>> {
    Utc.with_ymd_and_hms(2026, 11, 30, 14, 0, 0)
        .single()
        .ok_or_else(|| anyhow::anyhow!("no such instant"))
}

/// The test's tally of one minute and kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    succeeded: u64,
    retried: u64,
    dead: u64,
}

/// Enqueues `n` jobs of `kind` on `queue` at the clock's time, moves the clock `latency_ms` on,
/// fetches them, and records `outcomes` (S, R or D, one per job) `finish_after_ms` later.
#[allow(clippy::too_many_arguments)]
async fn run_batch(
    broker: &Broker,
    clock: &AtomicI64,
    queue: &QueueName,
    kind: &str,
    outcomes: &[char],
    latency_ms: i64,
    finish_after_ms: i64,
) -> anyhow::Result<()> {
    let reqs = outcomes
        .iter()
        .map(|_| EnqueueRequest {
            kind: kind.into(),
            args: args(kind),
            queue: Some(queue.to_string()),
            max_attempts: Some(5),
            ..Default::default()
        })
        .collect();
    broker.enqueue_many(reqs).await?;
    clock.fetch_add(latency_ms, Ordering::Relaxed);
    let Fetch::Jobs(jobs) = broker.fetch(queue, "w-history", outcomes.len()).await? else {
        anyhow::bail!("the queue is paused");
    };
    anyhow::ensure!(jobs.len() == outcomes.len(), "leased {} jobs", jobs.len());
    clock.fetch_add(finish_after_ms, Ordering::Relaxed);
    let far = Utc::now() + chrono::Duration::days(365);
    let done: Vec<Outcome> = jobs
        .iter()
        .zip(outcomes)
        .map(|(j, code)| {
            j.outcome(match code {
                'S' => OutcomeKind::Succeeded {
                    result: "null".into(),
                },
                'R' => OutcomeKind::Retry {
                    error: "boom".into(),
                    class: ErrorClass::Retryable,
                    at: far,
                },
                _ => OutcomeKind::Dead {
                    error: "boom".into(),
                    class: ErrorClass::Permanent,
                },
            })
        })
        .collect();
    let report = broker.finish(queue, &done).await?;
    anyhow::ensure!(report.stale.is_empty(), "stale outcomes: {report:?}");
    Ok(())
}

/// Args each kind of the test accepts.
fn args(kind: &str) -> Value {
    match kind {
        "fail" => serde_json::json!({"fail_times": 1}),
        _ => Value::Null,
    }
}

fn num(p: &Value, field: &str) -> u64 {
    p[field].as_u64().unwrap_or(u64::MAX)
}

#[tokio::test]
async fn ten_simulated_minutes_read_back_exactly_per_minute_and_kind() -> anyhow::Result<()> {
    let app = common::spawn_app("history").await?;
    let clock = Arc::new(AtomicI64::new(0));
    let broker = app.redis.same_prefix()?.with_manual_clock(clock.clone());
    let queue = QueueName::parse("hist")?;
    let start = t0()?;
    // The test's own tally, per minute and kind.
    let mut tally: BTreeMap<(i64, &str), Tally> = BTreeMap::new();
    let mut latency: BTreeMap<i64, i64> = BTreeMap::new();
    for minute in 0..10i64 {
        // A different mix each minute, two kinds, and one batch finishing in the next minute's
        // first second counted there (its finish time decides the minute).
        for (kind, seed) in [("noop", 3), ("fail", 7)] {
            let outcomes: Vec<char> = (0..(minute * seed) % 11 + 1)
                .map(|i| match (i + minute) % 5 {
                    0..=2 => 'S',
                    3 => 'R',
                    _ => 'D',
                })
                .collect();
            let lat = 40 * (minute + 1);
            latency.insert(minute, lat);
            clock.store(
                start.timestamp_millis() + minute * MINUTE + 1_000,
                Ordering::Relaxed,
            );
            run_batch(&broker, &clock, &queue, kind, &outcomes, lat, 20_000).await?;
            let t = tally.entry((minute, kind)).or_default();
            for c in &outcomes {
                match c {
                    'S' => t.succeeded += 1,
                    'R' => t.retried += 1,
                    _ => t.dead += 1,
                }
            }
        }
        // Enqueued and started at second 50 of this minute, finished in the next one (waiting as
        // long as the next minute's jobs).
        clock.store(
            start.timestamp_millis() + minute * MINUTE + 50_000,
            Ordering::Relaxed,
        );
        run_batch(
            &broker,
            &clock,
            &queue,
            "noop",
            &['S', 'S'],
            40 * (minute + 2),
            10_500,
        )
        .await?;
        tally.entry((minute + 1, "noop")).or_default().succeeded += 2;
    }

    let from = start.to_rfc3339();
    let to = (start + chrono::Duration::minutes(11)).to_rfc3339();
    for kind in ["noop", "fail"] {
        let (status, body) = app
            .get(&format!(
                "/api/metrics/history?queue=hist&kind={kind}&from={}&to={}&step=1m",
                urlencode(&from),
                urlencode(&to)
            ))
            .await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["step_minutes"], 1);
        let points = body["points"].as_array().cloned().unwrap_or_default();
        assert_eq!(points.len(), 11, "{body}");
        for (minute, p) in points.iter().enumerate() {
            let minute = minute as i64;
            let want = tally.get(&(minute, kind)).copied().unwrap_or_default();
            let at = (start + chrono::Duration::minutes(minute))
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            assert_eq!(p["at"].as_str(), Some(at.as_str()), "{p}");
            assert_eq!(
                num(p, "succeeded"),
                want.succeeded,
                "{kind} minute {minute}: {p}"
            );
            assert_eq!(
                num(p, "retried"),
                want.retried,
                "{kind} minute {minute}: {p}"
            );
            assert_eq!(num(p, "dead"), want.dead, "{kind} minute {minute}: {p}");
            assert_eq!(
                num(p, "failed"),
                want.retried + want.dead,
                "{kind} {minute}: {p}"
            );
            let samples = want.succeeded + want.retried + want.dead;
            assert_eq!(
                num(p, "latency_samples"),
                samples,
                "{kind} minute {minute}: {p}"
            );
            if minute < 10 {
                // Every job of the minute waited the same: both percentiles are its bucket's bound.
                let lat = latency[&minute] as u64;
                for q in ["latency_p50_ms", "latency_p95_ms"] {
                    let got = num(p, q);
                    assert!(
                        got >= lat && (got as f64) <= lat as f64 * 1.19 + 1.0,
                        "{kind} minute {minute}: {q} {got} for {lat} ms"
                    );
                }
            }
        }
    }

    // Every kind summed, five minutes a step: two points, each the sum of the tally's minutes.
    let (status, body) = app
        .get(&format!(
            "/api/metrics/history?queue=hist&from={}&to={}&step=5",
            urlencode(&from),
            urlencode(&(start + chrono::Duration::minutes(10)).to_rfc3339())
        ))
        .await?;
    assert_eq!(status, 200, "{body}");
    let points = body["points"].as_array().cloned().unwrap_or_default();
    assert_eq!(points.len(), 2, "{body}");
    for (i, p) in points.iter().enumerate() {
        let range = (i as i64 * 5)..(i as i64 * 5 + 5);
        let sum = |f: fn(&Tally) -> u64| -> u64 {
            tally
                .iter()
                .filter(|((m, _), _)| range.contains(m))
                .map(|(_, t)| f(t))
                .sum()
        };
        assert_eq!(num(p, "succeeded"), sum(|t| t.succeeded), "{p}");
        assert_eq!(num(p, "retried"), sum(|t| t.retried), "{p}");
        assert_eq!(num(p, "dead"), sum(|t| t.dead), "{p}");
    }
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn a_lease_taken_back_counts_as_retried_then_dead() -> anyhow::Result<()> {
    let redis = TestRedis::with("history_lease", |c| {
        c.lease = Duration::from_millis(300);
    })?;
    let clock = Arc::new(AtomicI64::new(t0()?.timestamp_millis()));
    let broker = redis.broker.clone().with_manual_clock(clock.clone());
    let queue = QueueName::parse("hist")?;
    broker
        .enqueue(EnqueueRequest {
            kind: "noop".into(),
            queue: Some("hist".into()),
            max_attempts: Some(2),
            ..Default::default()
        })
        .await?;
    let mut taken_back = 0;
    for _ in 0..2 {
        let Fetch::Jobs(jobs) = broker.fetch(&queue, "w-gone", 1).await? else {
            anyhow::bail!("the queue is paused");
        };
        assert_eq!(jobs.len(), 1);
        // The worker vanishes: upkeep takes the lease back once it expires (on Redis's clock).
        taken_back += wait_for("the lease taken back", Duration::from_secs(10), || async {
            let r = broker.maintain(&queue, 100).await?;
            Ok((r.requeued + r.dead > 0).then_some(r.requeued + r.dead))
        })
        .await?;
    }
    assert_eq!(taken_back, 2);
    let points = broker
        .history(&faena_broker::history::HistoryQuery {
            queue: Some(queue),
            kind: Some("noop".into()),
            from: t0()?,
            to: t0()? + chrono::Duration::minutes(1),
            step_minutes: 1,
        })
        .await?;
    assert_eq!(points.len(), 1);
    let p = &points[0];
    assert_eq!(
        (p.succeeded, p.retried, p.dead, p.failed),
        (0, 1, 1, 2),
        "{p:?}"
    );
    assert_eq!(p.latency_samples, 0, "no attempt finished, none measured");
    Ok(())
}

#[tokio::test]
async fn a_week_of_one_busy_queue_stays_under_the_documented_bound() -> anyhow::Result<()> {
    let redis = TestRedis::new("history_week")?;
    let clock = Arc::new(AtomicI64::new(0));
    let broker = redis.broker.clone().with_manual_clock(clock.clone());
    let queue = QueueName::parse("week")?;
    let start = t0()?;
    let minutes = 7 * 24 * 60;
    for m in 0..minutes {
        // Every outcome every minute, with latencies in three buckets: two jobs wait 2000 ms, one
        // 90 ms and one 3 ms.
        let at = start.timestamp_millis() + m * MINUTE + 1_000;
        for (offset, n) in [(0, 2), (1_910, 1), (1_997, 1)] {
            clock.store(at + offset, Ordering::Relaxed);
            let reqs = (0..n)
                .map(|_| EnqueueRequest {
                    kind: "noop".into(),
                    queue: Some("week".into()),
                    max_attempts: Some(5),
                    ..Default::default()
                })
                .collect();
            broker.enqueue_many(reqs).await?;
        }
        clock.store(at + 2_000, Ordering::Relaxed);
        let Fetch::Jobs(jobs) = broker.fetch(&queue, "w-week", 4).await? else {
            anyhow::bail!("the queue is paused");
        };
        anyhow::ensure!(jobs.len() == 4, "leased {} jobs", jobs.len());
        let far = Utc::now() + chrono::Duration::days(365);
        let done: Vec<Outcome> = jobs
            .iter()
            .zip([0, 1, 2, 3])
            .map(|(j, i)| {
                j.outcome(match i {
                    0 | 1 => OutcomeKind::Succeeded {
                        result: "null".into(),
                    },
                    2 => OutcomeKind::Retry {
                        error: "boom".into(),
                        class: ErrorClass::Retryable,
                        at: far,
                    },
                    _ => OutcomeKind::Dead {
                        error: "boom".into(),
                        class: ErrorClass::Permanent,
                    },
                })
            })
            .collect();
        broker.finish(&queue, &done).await?;
    }
    let end = start + chrono::Duration::minutes(minutes);
    let bytes = broker.history_memory(&queue, start, end).await?;
    let per_day = bytes / 7;
    println!("history of one queue: {bytes} bytes for 7 days, {per_day} bytes a day");
    assert!(
        per_day <= BYTES_PER_QUEUE_PER_DAY,
        "{per_day} bytes a day, over the documented {BYTES_PER_QUEUE_PER_DAY}"
    );
    // Every minute is there, with its exact counts.
    let points = broker
        .history(&faena_broker::history::HistoryQuery {
            queue: Some(queue),
            kind: None,
            from: start,
            to: end,
            step_minutes: 1440,
        })
        .await?;
    assert_eq!(points.len(), 7);
    for p in &points {
        assert_eq!(
            (p.succeeded, p.retried, p.dead),
            (2 * 1440, 1440, 1440),
            "{p:?}"
        );
        assert_eq!(p.latency_samples, 4 * 1440);
        // Of 3, 90, 2000 and 2000 ms the median (the second) is 90 ms and the 95th percentile
        // 2000 ms, each read as the bound of its bucket (at most 19 % above).
        let p50 = p.latency_p50_ms.unwrap_or(u64::MAX);
        assert!((90..=108).contains(&p50), "{p:?}");
        let p95 = p.latency_p95_ms.unwrap_or(u64::MAX);
        assert!((2000..=2380).contains(&p95), "{p:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_bad_history_query_names_its_parameter() -> anyhow::Result<()> {
    let app = common::spawn_app("history_bad").await?;
    for (query, field) in [
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("step=5s", "step"),
        ("queue=a%20b", "queue"),
        ("kind=nope", "kind"),
        ("from=2026-11-01T00:00:00Z&to=2026-11-20T00:00:00Z", "from"),
        ("from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "from"),
    ] {
        let (status, body) = app.get(&format!("/api/metrics/history?{query}")).await?;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let (status, _) = app
        .send_as(None, reqwest::Method::GET, "/api/metrics/history", None)
        .await?;
    assert_eq!(status, 401);
    Ok(())
}
