//! The queues' history: per-minute outcome counters per queue and kind (succeeded, failed, retried,
//! dead) and enqueue-to-start latency histograms, kept in Redis for [`RETENTION`].
//!
//! The scripts write it (`lua/history.lua`, prepended to `finish.lua` and `maintain.lua`): each call
//! adds its batch's outcomes to the hash of the current minute (one `HINCRBY` per distinct field), so
//! the hot path pays no extra round trip. This module reads it back, summed over `step` minutes and,
//! when asked, over kinds and queues; percentiles come from the merged histograms.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use faena_core::QueueName;
use serde::Serialize;

use crate::{Broker, BrokerError, Result};

/// How long a minute of history is kept.
pub const RETENTION: chrono::Duration = chrono::Duration::days(7);

/// The most minutes one query may read (the retention, plus the minute being written).
pub const MAX_MINUTES: i64 = 7 * 24 * 60 + 1;

/// The latency buckets per octave (`floor(4 * log2(ms + 1))`).
const BUCKETS_PER_OCTAVE: f64 = 4.0;

/// The history's bucket of an enqueue-to-start latency of `ms` milliseconds: a quarter of an
/// octave, `floor(4 * log2(ms + 1))`. The worker computes it when it leases a job and sends it with
/// the outcome (`history.lua` counts it), so the broker's finish script does no arithmetic for it.
pub fn latency_bucket(ms: u64) -> u32 {
    (BUCKETS_PER_OCTAVE * ((ms + 1) as f64).log2()).floor() as u32
}

/// The largest latency (ms) bucket `b` holds: bucket b holds `ms` with
/// `b <= 4 * log2(ms + 1) < b + 1`, so every value in it is below `2^((b+1)/4) - 1`.
pub fn bucket_upper_ms(b: u32) -> u64 {
    let upper = 2f64.powf(f64::from(b + 1) / BUCKETS_PER_OCTAVE) - 1.0;
    upper.ceil() as u64
}

/// What to read: `[from, to)` cut into steps of `step_minutes`, one queue or all, one kind or all.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub queue: Option<QueueName>,
    pub kind: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step_minutes: u32,
}

/// One step of history: the outcomes recorded in `[at, at + step)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HistoryPoint {
    /// The step's first minute.
    pub at: DateTime<Utc>,
    pub succeeded: u64,
    /// Retried plus dead.
    pub failed: u64,
    /// Failed attempts that will run again (retry, or a lease taken back with attempts left).
    pub retried: u64,
    /// Failed attempts that left no attempt (DEAD).
    pub dead: u64,
    /// Attempts whose enqueue-to-start latency was recorded.
    pub latency_samples: u64,
    /// Median enqueue-to-start latency (ms; the upper bound of its bucket, at most 19 % above).
    pub latency_p50_ms: Option<u64>,
    /// 95th percentile of the enqueue-to-start latency (ms; same precision).
    pub latency_p95_ms: Option<u64>,
}

/// Counters of one step while they are summed.
#[derive(Default)]
struct Acc {
    succeeded: u64,
    failed: u64,
    retried: u64,
    dead: u64,
    buckets: BTreeMap<u32, u64>,
}

impl Acc {
    /// Adds one field of a minute's hash (`<kind>|<counter>`), when its kind is the one asked for.
    fn add(&mut self, field: &str, value: u64, kind: Option<&str>) {
        let Some((k, counter)) = field.rsplit_once('|') else {
            return;
        };
        if kind.is_some_and(|want| want != k) {
            return;
        }
        match counter {
            "s" => self.succeeded += value,
            "f" => self.failed += value,
            "r" => self.retried += value,
            "d" => self.dead += value,
            other => {
                if let Some(b) = other.strip_prefix('l').and_then(|b| b.parse::<u32>().ok()) {
                    *self.buckets.entry(b).or_default() += value;
                }
            }
        }
    }

    /// The upper bound of the bucket holding the `q` quantile (0 < q <= 1).
    fn quantile(&self, samples: u64, q: f64) -> Option<u64> {
        if samples == 0 {
            return None;
        }
        let rank = ((samples as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(bucket_upper_ms(*b));
            }
        }
        None
    }

    fn point(&self, at: DateTime<Utc>) -> HistoryPoint {
        let samples = self.buckets.values().sum();
        HistoryPoint {
            at,
            succeeded: self.succeeded,
            failed: self.failed,
            retried: self.retried,
            dead: self.dead,
            latency_samples: samples,
            latency_p50_ms: self.quantile(samples, 0.5),
            latency_p95_ms: self.quantile(samples, 0.95),
        }
    }
}

fn minute_of(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis().div_euclid(60_000)
}

fn minute_start(m: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(m * 60_000)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

impl Broker {
    /// The history of `q.queue` (or of every known queue) in steps of `q.step_minutes` from the
    /// minute of `q.from` up to `q.to` (exclusive); a step with nothing recorded is all zeros.
    /// Reads one hash per queue and minute, in one pipeline.
    pub async fn history(&self, q: &HistoryQuery) -> Result<Vec<HistoryPoint>> {
        let first = minute_of(q.from);
        let end = minute_of(q.to - chrono::Duration::milliseconds(1)) + 1;
        if end <= first {
            return Err(BrokerError::Invalid(
                "the history's `from` must be before its `to`".into(),
            ));
        }
        if end - first > MAX_MINUTES {
            return Err(BrokerError::Invalid(format!(
                "the history keeps {} days: ask for at most {MAX_MINUTES} minutes",
                RETENTION.num_days()
            )));
        }
        let step = i64::from(q.step_minutes.max(1));
        let queues = match &q.queue {
            // A partitioned queue's history adds up its partitions'.
            Some(name) => self.expand(name).await?,
            None => self.queues().await?,
        };
        // One group per queue: each queue's minutes share its slot (`query_by_slot`).
        let groups: Vec<Vec<redis::Cmd>> = queues
            .iter()
            .map(|queue| {
                let k = self.queue_keys(queue);
                (first..end)
                    .map(|m| redis::Cmd::hgetall(k.history(m)))
                    .collect()
            })
            .collect();
        let minutes: Vec<BTreeMap<String, u64>> = if queues.is_empty() {
            Vec::new()
        } else {
            self.query_by_slot(groups, None)
                .await?
                .into_iter()
                .flatten()
                .map(redis::from_redis_value::<BTreeMap<String, u64>>)
                .collect::<std::result::Result<_, _>>()?
        };
        let steps = (end - first + step - 1) / step;
        let mut accs: Vec<Acc> = (0..steps).map(|_| Acc::default()).collect();
        let span = (end - first) as usize;
        for (i, fields) in minutes.iter().enumerate() {
            let offset = (i % span.max(1)) as i64;
            let Some(acc) = accs.get_mut((offset / step) as usize) else {
                continue;
            };
            for (field, value) in fields {
                acc.add(field, *value, q.kind.as_deref());
            }
        }
        Ok(accs
            .iter()
            .enumerate()
            .map(|(i, acc)| acc.point(minute_start(first + i as i64 * step)))
            .collect())
    }

    /// The bytes Redis uses for the history of `queue` from the minute of `from` up to `to`
    /// (`MEMORY USAGE` of each minute's hash, sampled exactly). For tests and capacity planning.
    pub async fn history_memory(
        &self,
        queue: &QueueName,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<u64> {
        let k = self.queue_keys(queue);
        let mut pipe = redis::pipe();
        let (first, end) = (minute_of(from), minute_of(to));
        for m in first..end {
            pipe.cmd("MEMORY")
                .arg("USAGE")
                .arg(k.history(m))
                .arg("SAMPLES")
                .arg(0);
        }
        if end <= first {
            return Ok(0);
        }
        let mut conn = self.conn().await?;
        let sizes: Vec<Option<u64>> = pipe.query_async(&mut conn).await?;
        Ok(sizes.into_iter().flatten().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_bound_holds_every_latency_of_the_bucket_within_a_fifth() {
        for ms in [0u64, 1, 2, 3, 7, 10, 99, 100, 1000, 4321, 60_000, 3_600_000] {
            let upper = bucket_upper_ms(latency_bucket(ms));
            assert!(upper >= ms, "{ms} ms is above its bucket's bound {upper}");
            assert!(
                (upper as f64) <= (ms as f64) * 1.19 + 1.0,
                "{ms} ms reads as {upper}"
            );
        }
    }

    #[test]
    fn quantiles_read_the_merged_histogram() {
        let mut acc = Acc::default();
        acc.add("noop|l0", 90, None);
        acc.add("noop|l40", 10, None);
        acc.add("other|l40", 1000, Some("noop"));
        acc.add("noop|s", 100, None);
        let p = acc.point(DateTime::<Utc>::UNIX_EPOCH);
        assert_eq!(p.succeeded, 100);
        assert_eq!(p.latency_samples, 100);
        assert_eq!(p.latency_p50_ms, Some(bucket_upper_ms(0)));
        assert_eq!(p.latency_p95_ms, Some(bucket_upper_ms(40)));
    }
}
