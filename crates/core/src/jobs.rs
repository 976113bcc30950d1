//! The job contract: kinds with stable names, typed args, per-kind defaults, retry policies,
//! handler outcomes, and the validation that turns an [`EnqueueRequest`] into a [`NewTask`].
//!
//! The api, beat and the CLI all enqueue through `faena_broker::Broker::enqueue`, which calls
//! [`Catalog::prepare`] here, so a request is validated the same way wherever it comes from.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{QueueName, TaskId};

/// Exponential backoff with jitter and a cap: `min(cap, base * factor^(attempt-1))`, then up to
/// `jitter` (a fraction) added at random so retries of many jobs do not stampede.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RetryPolicy {
    pub base: Duration,
    pub factor: f64,
    pub cap: Duration,
    pub jitter: f64,
}

impl RetryPolicy {
    /// The default: 1 s, 2 s, 4 s, ... capped at 1 hour, with up to 10 % jitter.
    pub const DEFAULT: Self = Self {
        base: Duration::from_secs(1),
        factor: 2.0,
        cap: Duration::from_secs(3600),
        jitter: 0.1,
    };

    /// The delay before the retry that follows failed attempt number `attempt` (1-based), without jitter.
    pub fn nominal_delay(&self, attempt: u32) -> Duration {
        let exp = self.factor.powi(attempt.saturating_sub(1).min(64) as i32);
        let secs = (self.base.as_secs_f64() * exp).min(self.cap.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// The delay with jitter applied: between `nominal` and `nominal * (1 + jitter)`, never above the cap.
    pub fn delay(&self, attempt: u32) -> Duration {
        let nominal = self.nominal_delay(attempt);
        let extra = rand::rng().random_range(0.0..=self.jitter.max(0.0));
        nominal.mul_f64(1.0 + extra).min(self.cap.max(nominal))
    }
}

/// What a job kind declares about itself.
#[derive(Clone, Copy)]
pub struct KindSpec {
    /// Stable name, used on the wire and in Redis; never a Rust type path.
    pub name: &'static str,
    /// Queue used when the enqueue does not name one.
    pub queue: &'static str,
    /// Attempts before the job is DEAD (an enqueue may override it).
    pub max_attempts: u32,
    pub retry: RetryPolicy,
    /// The longest one attempt may run before it counts as a failed attempt.
    pub time_limit: Duration,
    /// One line for `faena kinds` and the docs.
    pub description: &'static str,
    validate: fn(&serde_json::Value) -> Result<(), ArgsError>,
    unique_key: Option<fn(&serde_json::Value) -> Option<String>>,
}

impl fmt::Debug for KindSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindSpec")
            .field("name", &self.name)
            .field("queue", &self.queue)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

/// Typed arguments of a job kind.
pub trait JobArgs: Serialize + DeserializeOwned {
    /// The kind's stable name.
    const KIND: &'static str;
}

/// Parses args into their type, naming the offending field on failure.
pub fn parse_args<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, ArgsError> {
    serde_path_to_error::deserialize(value).map_err(ArgsError::from_path)
}

/// Parses args straight from their stored JSON text into their type (no intermediate
/// `serde_json::Value`), naming the offending field on failure.
pub fn parse_args_str<T: DeserializeOwned>(text: &str) -> Result<T, ArgsError> {
    let not_json = |e: &serde_json::Error| ArgsError {
        field: None,
        message: format!("the stored args are not JSON: {e}"),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        if e.inner().is_syntax() || e.inner().is_eof() {
            not_json(e.inner())
        } else {
            ArgsError::from_path(e)
        }
    })?;
    de.end().map_err(|e| not_json(&e))?;
    Ok(value)
}

fn validate_as<T: DeserializeOwned>(value: &serde_json::Value) -> Result<(), ArgsError> {
    parse_args::<T>(value).map(|_| ())
}

impl KindSpec {
    /// A spec with the defaults, for args of type `T`.
    pub const fn new<T: JobArgs>(queue: &'static str, description: &'static str) -> Self {
        Self {
            name: T::KIND,
            queue,
            max_attempts: 3,
            retry: RetryPolicy::DEFAULT,
            time_limit: Duration::from_secs(300),
            description,
            validate: validate_as::<T>,
            unique_key: None,
        }
    }

    pub const fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    pub const fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    pub const fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
        self
    }

    /// Jobs whose args give the same key are deduplicated like an idempotency key.
    pub const fn unique_by(mut self, key: fn(&serde_json::Value) -> Option<String>) -> Self {
        self.unique_key = Some(key);
        self
    }

    /// Checks args against the kind's type.
    pub fn validate(&self, args: &serde_json::Value) -> Result<(), ArgsError> {
        (self.validate)(args)
    }
}

/// Args that do not match their kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct ArgsError {
    /// The path of the offending field, such as `ms` or `items[2].quantity`.
    pub field: Option<String>,
    pub message: String,
}

impl ArgsError {
    fn from_path(e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = e.path().to_string();
        Self {
            field: if path == "." { None } else { Some(path) },
            message: e.into_inner().to_string(),
        }
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn stored_text_decodes_once_and_errors_say_which_kind_of_wrong() {
        let ok: SleepArgs = parse_args_str(r#"{"ms": 5}"#).expect("valid args");
        assert_eq!(ok.ms, 5);
        let wrong = parse_args_str::<SleepArgs>(r#"{"ms": "x"}"#).expect_err("a string");
        assert_eq!(wrong.field.as_deref(), Some("ms"));
        let garbage = parse_args_str::<SleepArgs>("{not json").expect_err("not JSON");
        assert!(garbage.message.contains("not JSON"), "{garbage}");
        let trailing = parse_args_str::<SleepArgs>(r#"{"ms": 5} x"#).expect_err("trailing");
        assert!(trailing.message.contains("not JSON"), "{trailing}");
    }
}

/// `noop`: returns its args. Any JSON value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NoopArgs(pub serde_json::Value);
impl JobArgs for NoopArgs {
    const KIND: &'static str = "noop";
}

/// `sleep {ms}`: sleeps, then succeeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SleepArgs {
    pub ms: u64,
}
impl JobArgs for SleepArgs {
    const KIND: &'static str = "sleep";
}

/// `fail {fail_times, permanent?}`: fails its first `fail_times` attempts, then succeeds.
/// With `permanent: true` the failure is permanent (DEAD at once).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailArgs {
    pub fail_times: u32,
    #[serde(default)]
    pub permanent: bool,
}
impl JobArgs for FailArgs {
    const KIND: &'static str = "fail";
}

/// The diagnostic kinds: every Faena process knows them, whatever its application.
pub const NOOP: KindSpec = KindSpec::new::<NoopArgs>(
    "default",
    "Returns its args. For tests, benchmarks and smoke checks.",
);
/// `sleep {ms}`.
pub const SLEEP: KindSpec =
    KindSpec::new::<SleepArgs>("default", "Sleeps `ms` milliseconds, then succeeds.");
/// `fail {fail_times, permanent?}`.
pub const FAIL: KindSpec = KindSpec::new::<FailArgs>(
    "default",
    "Fails its first `fail_times` attempts (permanently with `permanent: true`), then succeeds.",
);

/// The kernel's own kinds. An application's catalog lists them with its own (see
/// `faena_shop::jobs::KINDS`).
pub const DIAGNOSTIC_KINDS: &[KindSpec] = &[NOOP, SLEEP, FAIL];

/// The set of job kinds a process knows. A process builds its own and hands it to whoever needs it
/// (the broker, beat, the api), the way River registers kinds; there is no global default.
#[derive(Debug, Clone, Copy)]
pub struct Catalog {
    kinds: &'static [KindSpec],
}

/// A request to enqueue one job, as it arrives from the api, beat or the CLI.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    /// The job kind's stable name (`noop`, `sleep`, ...).
    pub kind: String,
    /// The kind's arguments; each kind checks its own.
    #[serde(default)]
    pub args: serde_json::Value,
    /// The queue; the kind's default when absent.
    #[serde(default)]
    pub queue: Option<String>,
    /// Seconds from now.
    #[serde(default)]
    pub countdown: Option<f64>,
    #[serde(default)]
    pub eta: Option<DateTime<Utc>>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// A validated job, ready for the broker.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: TaskId,
    pub kind: &'static str,
    pub queue: QueueName,
    /// The args, serialized once.
    pub args: String,
    /// When it may start; `None` means now.
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: u32,
    pub idempotency_key: Option<String>,
    /// The user on whose behalf it was enqueued (the api sets it; sellers see only their own).
    pub owner: Option<String>,
}

/// The longest countdown accepted (about a year), so a typo cannot park a job forever.
pub const MAX_DELAY_SECS: f64 = 366.0 * 86_400.0;
/// The most attempts a job may have.
pub const MAX_ATTEMPTS: u32 = 1000;

/// An enqueue request that cannot be accepted. Every variant has a stable [`EnqueueError::code`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnqueueError {
    #[error("unknown job kind `{kind}`: known kinds are {known}")]
    UnknownKind { kind: String, known: String },
    #[error("args do not match kind `{kind}`: {source}")]
    InvalidArgs {
        kind: String,
        #[source]
        source: ArgsError,
    },
    #[error("field `{field}`: {message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
}

impl EnqueueError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownKind { .. } => "unknown_kind",
            Self::InvalidArgs { .. } => "invalid_args",
            Self::InvalidField { .. } => "invalid_field",
        }
    }

    /// The offending field, when there is one.
    pub fn field(&self) -> Option<String> {
        match self {
            Self::UnknownKind { .. } => Some("kind".into()),
            Self::InvalidArgs { source, .. } => Some(
                source
                    .field
                    .as_ref()
                    .map_or("args".into(), |f| format!("args.{f}")),
            ),
            Self::InvalidField { field, .. } => Some((*field).into()),
        }
    }
}

impl Catalog {
    /// A catalog over the given kinds.
    pub const fn new(kinds: &'static [KindSpec]) -> Self {
        Self { kinds }
    }

    /// Looks a kind up by name.
    pub fn get(&self, kind: &str) -> Option<&'static KindSpec> {
        self.kinds.iter().find(|k| k.name == kind)
    }

    /// Every kind.
    pub fn kinds(&self) -> &'static [KindSpec] {
        self.kinds
    }

    fn known(&self) -> String {
        self.kinds
            .iter()
            .map(|k| k.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Validates a request against its kind and fills in the kind's defaults.
    pub fn prepare(
        &self,
        req: EnqueueRequest,
        now: DateTime<Utc>,
    ) -> Result<NewTask, EnqueueError> {
        let spec = self
            .get(&req.kind)
            .ok_or_else(|| EnqueueError::UnknownKind {
                kind: req.kind.clone(),
                known: self.known(),
            })?;
        let args = if req.args.is_null() && spec.validate(&req.args).is_err() {
            serde_json::Value::Object(Default::default())
        } else {
            req.args
        };
        spec.validate(&args)
            .map_err(|source| EnqueueError::InvalidArgs {
                kind: spec.name.into(),
                source,
            })?;
        let queue = match req.queue.as_deref() {
            None | Some("") => QueueName::parse(spec.queue),
            Some(q) => QueueName::parse(q),
        }
        .map_err(|e| EnqueueError::InvalidField {
            field: "queue",
            message: e.to_string(),
        })?;
        let run_at = match (req.countdown, req.eta) {
            (Some(_), Some(_)) => {
                return Err(EnqueueError::InvalidField {
                    field: "countdown",
                    message:
                        "give either `countdown` (seconds from now) or `eta` (a time), not both"
                            .into(),
                })
            }
            (Some(secs), None) => {
                if !secs.is_finite() || !(0.0..=MAX_DELAY_SECS).contains(&secs) {
                    return Err(EnqueueError::InvalidField {
                        field: "countdown",
                        message: format!(
                            "{secs} is not a number of seconds from 0 to {MAX_DELAY_SECS}"
                        ),
                    });
                }
                (secs > 0.0).then(|| now + chrono::Duration::milliseconds((secs * 1000.0) as i64))
            }
            (None, Some(eta)) => {
                if (eta - now).num_seconds() as f64 > MAX_DELAY_SECS {
                    return Err(EnqueueError::InvalidField {
                        field: "eta",
                        message: format!("{eta} is more than a year away"),
                    });
                }
                (eta > now).then_some(eta)
            }
            (None, None) => None,
        };
        let max_attempts = req.max_attempts.unwrap_or(spec.max_attempts);
        if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
            return Err(EnqueueError::InvalidField {
                field: "max_attempts",
                message: format!("{max_attempts} is not from 1 to {MAX_ATTEMPTS}"),
            });
        }
        let idempotency_key = match req.idempotency_key {
            Some(k) if k.is_empty() || k.len() > 200 => {
                return Err(EnqueueError::InvalidField {
                    field: "idempotency_key",
                    message: "give 1 to 200 characters".into(),
                })
            }
            Some(k) => Some(k),
            None => spec
                .unique_key
                .and_then(|f| f(&args))
                .map(|k| format!("{}:{k}", spec.name)),
        };
        let args = serde_json::to_string(&args).map_err(|e| EnqueueError::InvalidArgs {
            kind: spec.name.into(),
            source: ArgsError {
                field: None,
                message: e.to_string(),
            },
        })?;
        Ok(NewTask {
            id: TaskId::new(),
            kind: spec.name,
            queue,
            args,
            run_at,
            max_attempts,
            idempotency_key,
            owner: None,
        })
    }
}

/// How a handler's attempt ended when it did not succeed.
#[derive(Debug)]
pub enum JobError {
    /// Try again later, following the kind's retry policy, while attempts remain.
    Retry(anyhow::Error),
    /// Never retry: the job is DEAD at once.
    Permanent(anyhow::Error),
    /// Run again after this delay without using an attempt.
    Snooze(Duration),
}

/// Why an attempt did not succeed, as stored with the task record (`error_class`) and shown by the
/// CLI and the api. The broker's upkeep writes one more, `lease_expired`, from Lua.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// A failure worth another attempt (the handler's `Retry`, a panic, a time limit).
    Retryable,
    /// A failure no retry can fix (the handler's `Permanent`, apalis' `AbortError`).
    Permanent,
    /// The stored args do not decode into the handler's type.
    Decode,
    /// No handler for the job's kind in the worker that leased it.
    UnknownKind,
}

impl ErrorClass {
    /// The stable name on the wire and in Redis.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Retryable => "retryable",
            Self::Permanent => "permanent",
            Self::Decode => "decode",
            Self::UnknownKind => "unknown_kind",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retry(e) | Self::Permanent(e) => write!(f, "{e:#}"),
            Self::Snooze(d) => write!(f, "snoozed for {d:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(kind: &str, args: serde_json::Value) -> EnqueueRequest {
        EnqueueRequest {
            kind: kind.into(),
            args,
            ..Default::default()
        }
    }

    #[test]
    fn unknown_kind_lists_the_known_ones() {
        let err = Catalog::new(DIAGNOSTIC_KINDS)
            .prepare(req("nope", json!({})), Utc::now())
            .unwrap_err();
        assert_eq!(err.code(), "unknown_kind");
        assert!(err.to_string().contains("noop, sleep, fail"), "{err}");
    }

    #[test]
    fn bad_args_name_the_field() {
        let err = Catalog::new(DIAGNOSTIC_KINDS)
            .prepare(req("sleep", json!({"ms": "x"})), Utc::now())
            .unwrap_err();
        assert_eq!(err.code(), "invalid_args");
        assert_eq!(err.field().as_deref(), Some("args.ms"));
        let err = Catalog::new(DIAGNOSTIC_KINDS)
            .prepare(req("sleep", json!({})), Utc::now())
            .unwrap_err();
        assert!(err.to_string().contains("missing field `ms`"), "{err}");
        let err = Catalog::new(DIAGNOSTIC_KINDS)
            .prepare(
                req("fail", json!({"fail_times": 1, "extra": 2})),
                Utc::now(),
            )
            .unwrap_err();
        assert!(err.to_string().contains("extra"), "{err}");
    }

    #[test]
    fn defaults_and_overrides() -> Result<(), EnqueueError> {
        let now = Utc::now();
        let t = Catalog::new(DIAGNOSTIC_KINDS).prepare(req("noop", json!([1, 2])), now)?;
        assert_eq!(
            (t.kind, t.queue.as_str(), t.max_attempts),
            ("noop", "default", 3)
        );
        assert_eq!(t.args, "[1,2]");
        assert!(t.run_at.is_none());
        let mut r = req("sleep", json!({"ms": 5}));
        r.queue = Some("slow".into());
        r.countdown = Some(2.5);
        r.max_attempts = Some(7);
        let t = Catalog::new(DIAGNOSTIC_KINDS).prepare(r, now)?;
        assert_eq!(t.queue.as_str(), "slow");
        assert_eq!(t.max_attempts, 7);
        assert_eq!(t.run_at, Some(now + chrono::Duration::milliseconds(2500)));
        Ok(())
    }

    #[test]
    fn countdown_and_eta_conflict() {
        let mut r = req("noop", json!({}));
        r.countdown = Some(1.0);
        r.eta = Some(Utc::now());
        let err = Catalog::new(DIAGNOSTIC_KINDS)
            .prepare(r, Utc::now())
            .unwrap_err();
        assert_eq!(err.field().as_deref(), Some("countdown"));
        let mut r = req("noop", json!({}));
        r.max_attempts = Some(0);
        assert!(Catalog::new(DIAGNOSTIC_KINDS)
            .prepare(r, Utc::now())
            .is_err());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            base: Duration::from_secs(1),
            factor: 2.0,
            cap: Duration::from_secs(5),
            jitter: 0.1,
        };
        assert_eq!(p.nominal_delay(1), Duration::from_secs(1));
        assert_eq!(p.nominal_delay(3), Duration::from_secs(4));
        assert_eq!(p.nominal_delay(10), Duration::from_secs(5));
        for attempt in 1..6 {
            let d = p.delay(attempt);
            assert!(
                d >= p.nominal_delay(attempt)
                    && d <= p.nominal_delay(attempt).mul_f64(1.1) + Duration::from_millis(1)
            );
        }
    }
}
