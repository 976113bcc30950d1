//! Schedules of periodic jobs: a cron expression (seconds field optional) or a fixed interval, in a
//! time zone. Ticks are deterministic (cron times, or multiples of the interval since the Unix epoch),
//! so every beat computes the same tick times and the idempotency key `name + tick` dedupes them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A cron expression that parsed. Five fields (`min hour dom month dow`) get a `0` seconds field.
/// Days of the week are 1-7 with Sunday = 1, or names (`Sun`, `Mon-Fri`): names are clearer.
#[derive(Debug, Clone)]
pub struct CronExpr {
    normalised: String,
    schedule: cron::Schedule,
}

impl CronExpr {
    pub fn parse(expr: &str) -> Result<Self, ScheduleError> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let normalised = match fields.len() {
            5 => format!("0 {}", fields.join(" ")),
            6 | 7 => fields.join(" "),
            n => {
                return Err(ScheduleError::Cron {
                    expr: expr.to_owned(),
                    message: format!(
                        "it has {n} fields; give 5 (min hour day month weekday) or 6 with seconds first, such as `0 */30 * * * *`"
                    ),
                })
            }
        };
        let schedule = cron::Schedule::from_str(&normalised).map_err(|e| ScheduleError::Cron {
            expr: expr.to_owned(),
            message: e.to_string(),
        })?;
        if schedule.upcoming(Utc).next().is_none() {
            return Err(ScheduleError::Cron {
                expr: expr.to_owned(),
                message: "it never fires".into(),
            });
        }
        Ok(Self {
            normalised,
            schedule,
        })
    }

    /// The expression with its seconds field.
    pub fn as_str(&self) -> &str {
        &self.normalised
    }
}

/// When a periodic job fires.
#[derive(Debug, Clone)]
pub enum Schedule {
    Cron(Box<CronExpr>),
    Every(Duration),
}

/// A schedule, cron expression or time zone that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("cron expression `{expr}` is not valid: {message}")]
    Cron { expr: String, message: String },
    #[error("time zone `{0}` is not an IANA zone name such as America/Lima")]
    TimeZone(String),
    #[error("interval {0} s is not valid: give a whole number of seconds from 1 to 31536000")]
    Interval(i64),
    #[error("give exactly one of a cron expression and an interval")]
    Ambiguous,
}

/// Parses an IANA time zone name.
pub fn parse_tz(name: &str) -> Result<Tz, ScheduleError> {
    Tz::from_str(name.trim()).map_err(|_| ScheduleError::TimeZone(name.to_owned()))
}

impl Schedule {
    /// Builds a schedule from the stored columns.
    pub fn from_parts(
        cron: Option<&str>,
        interval_secs: Option<i64>,
    ) -> Result<Self, ScheduleError> {
        match (cron, interval_secs) {
            (Some(c), None) => Ok(Self::Cron(Box::new(CronExpr::parse(c)?))),
            (None, Some(s)) if (1..=31_536_000).contains(&s) => {
                Ok(Self::Every(Duration::from_secs(s as u64)))
            }
            (None, Some(s)) => Err(ScheduleError::Interval(s)),
            _ => Err(ScheduleError::Ambiguous),
        }
    }

    /// The first tick strictly after `after`.
    ///
    /// In the hour a daylight-saving change repeats, the cron crate may yield the earlier of two
    /// ambiguous times, which can be at or before `after`: such ticks are skipped, so ticks always
    /// move forward (a beat never fires one twice).
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Cron(c) => c
                .schedule
                .after(&after.with_timezone(&tz))
                .take(1_000)
                .map(|t| t.with_timezone(&Utc))
                .find(|t| *t > after),
            Self::Every(d) => {
                let step = d.as_millis() as i64;
                let next = (after.timestamp_millis().div_euclid(step) + 1) * step;
                Utc.timestamp_millis_opt(next).single()
            }
        }
    }

    /// The last tick at or before `now` that is after `since`, and how many ticks fell in `(since, now]`
    /// (counting stops at 100000).
    pub fn missed(
        &self,
        tz: Tz,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> (Option<DateTime<Utc>>, u64) {
        let mut last = None;
        let mut count = 0u64;
        let mut t = since;
        while let Some(next) = self.next_after(tz, t) {
            if next > now || count >= 100_000 {
                break;
            }
            last = Some(next);
            count += 1;
            t = next;
        }
        (last, count)
    }

    /// The time between `tick` and the tick after it: the default grace period of a missed tick.
    pub fn period_after(&self, tz: Tz, tick: DateTime<Utc>) -> chrono::Duration {
        self.next_after(tz, tick)
            .map_or(chrono::Duration::zero(), |n| n - tick)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cron(c) => write!(f, "cron {}", c.as_str()),
            Self::Every(d) => write!(f, "every {}s", d.as_secs()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap()
    }

    #[test]
    fn five_fields_get_seconds_and_bad_ones_are_refused() {
        assert_eq!(
            CronExpr::parse("*/30 * * * *").unwrap().as_str(),
            "0 */30 * * * *"
        );
        let err = CronExpr::parse("61 * * * *").unwrap_err().to_string();
        assert!(err.contains("`61 * * * *`"), "{err}");
        assert!(CronExpr::parse("* *")
            .unwrap_err()
            .to_string()
            .contains("2 fields"));
        assert!(parse_tz("Mars/Base").is_err());
    }

    #[test]
    fn cron_ticks_follow_the_zone_including_dst() {
        // 23:00 in Lima (UTC-5, no DST) is 04:00 UTC.
        let daily = Schedule::from_parts(Some("0 0 23 * * *"), None).unwrap();
        let next = daily
            .next_after(chrono_tz::America::Lima, utc("2026-11-23T12:00:00Z"))
            .unwrap();
        assert_eq!(next, utc("2026-11-24T04:00:00Z"));
        // New York switches to DST on 2026-03-08: 02:30 local does not exist that day.
        let ny = chrono_tz::America::New_York;
        let at_9 = Schedule::from_parts(Some("0 0 9 * * *"), None).unwrap();
        assert_eq!(
            at_9.next_after(ny, utc("2026-03-07T15:00:00Z")).unwrap(),
            utc("2026-03-08T13:00:00Z")
        );
        assert_eq!(
            at_9.next_after(ny, utc("2026-03-06T15:00:00Z")).unwrap(),
            utc("2026-03-07T14:00:00Z")
        );
    }

    #[test]
    fn cron_ticks_move_strictly_forward_across_both_dst_changes() {
        let every_quarter = Schedule::from_parts(Some("0 */15 * * * *"), None).unwrap();
        let at_0130 = Schedule::from_parts(Some("0 30 1 * * *"), None).unwrap();
        let cases = [
            // New York: spring forward 2026-03-08 02:00 -> 03:00; fall back 2026-11-01 02:00 -> 01:00.
            (chrono_tz::America::New_York, "2026-03-08T05:00:00Z"),
            (chrono_tz::America::New_York, "2026-11-01T04:00:00Z"),
            // Madrid: spring forward 2026-03-29 02:00 -> 03:00; fall back 2026-10-25 03:00 -> 02:00.
            (chrono_tz::Europe::Madrid, "2026-03-28T23:00:00Z"),
            (chrono_tz::Europe::Madrid, "2026-10-24T23:00:00Z"),
        ];
        for (tz, start) in cases {
            for schedule in [&every_quarter, &at_0130] {
                let mut t = utc(start);
                for step in 0..24 {
                    let next = schedule.next_after(tz, t).unwrap();
                    assert!(
                        next > t,
                        "{tz} {schedule}: step {step}: {next} is not after {t}"
                    );
                    assert!(
                        next - t <= chrono::Duration::hours(25),
                        "{tz} {schedule}: step {step}: a gap of {}",
                        next - t
                    );
                    t = next;
                }
            }
        }
    }

    #[test]
    fn intervals_are_anchored_to_the_epoch_and_missed_ticks_counted() {
        let every = Schedule::from_parts(None, Some(60)).unwrap();
        let tz = chrono_tz::UTC;
        assert_eq!(
            every.next_after(tz, utc("2026-01-01T00:00:30Z")).unwrap(),
            utc("2026-01-01T00:01:00Z")
        );
        let (last, n) = every.missed(tz, utc("2026-01-01T00:00:00Z"), utc("2026-01-01T00:05:30Z"));
        assert_eq!((last, n), (Some(utc("2026-01-01T00:05:00Z")), 5));
        assert!(Schedule::from_parts(None, Some(0)).is_err());
        assert!(Schedule::from_parts(Some("* * * * *"), Some(5)).is_err());
    }
}
