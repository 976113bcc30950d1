//! Periodic schedules stored in PostgreSQL (`periodic_tasks`): the model, its validation and the
//! queries beat, the api and the CLI share.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use crate::jobs::{Catalog, EnqueueRequest};
use crate::schedule::{parse_tz, Schedule, ScheduleError};
use crate::schema::periodic_tasks;

/// One schedule as stored.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = periodic_tasks, check_for_backend(diesel::pg::Pg))]
pub struct PeriodicTask {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub args: serde_json::Value,
    pub queue: Option<String>,
    pub cron: Option<String>,
    pub interval_secs: Option<i64>,
    pub timezone: String,
    pub enabled: bool,
    pub one_off: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub total_run_count: i64,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PeriodicTask {
    pub fn schedule(&self) -> Result<Schedule, ScheduleError> {
        Schedule::from_parts(self.cron.as_deref(), self.interval_secs)
    }

    pub fn tz(&self) -> Result<Tz, ScheduleError> {
        parse_tz(&self.timezone)
    }

    /// The next tick after now (or after the last run when that is later), for listings.
    pub fn next_run_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let from = self.last_run_at.map_or(now, |l| l.max(now));
        self.schedule().ok()?.next_after(self.tz().ok()?, from)
    }

    /// The next `n` ticks after now (or after the last run when that is later), for the console.
    pub fn next_runs(&self, now: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let (Ok(schedule), Ok(tz)) = (self.schedule(), self.tz()) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(n);
        let mut from = self.last_run_at.map_or(now, |l| l.max(now));
        while out.len() < n {
            let Some(t) = schedule.next_after(tz, from) else {
                break;
            };
            out.push(t);
            from = t;
        }
        out
    }

    /// The idempotency key of one tick: a failover or a second beat can never enqueue a tick twice.
    pub fn tick_key(&self, tick: DateTime<Utc>) -> String {
        format!("periodic:{}:{}", self.name, tick.timestamp_millis())
    }

    /// The enqueue request of one tick.
    pub fn request(&self, tick: DateTime<Utc>) -> EnqueueRequest {
        EnqueueRequest {
            kind: self.kind.clone(),
            args: self.args.clone(),
            queue: self.queue.clone(),
            idempotency_key: Some(self.tick_key(tick)),
            ..Default::default()
        }
    }

    /// A one-line description of the schedule, for listings.
    pub fn schedule_text(&self) -> String {
        match (&self.cron, self.interval_secs) {
            (Some(c), _) => c.clone(),
            (None, Some(s)) => format!("every {s}s"),
            _ => "-".into(),
        }
    }
}

/// A new schedule, from the api's JSON or the CLI's flags.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPeriodic {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub args: Option<serde_json::Value>,
    #[serde(default)]
    pub queue: Option<String>,
    #[serde(default)]
    pub cron: Option<String>,
    #[serde(default)]
    pub interval_secs: Option<i64>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub one_off: Option<bool>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Changes to a schedule; absent fields stay as they are. Setting `cron` clears `interval_secs`
/// and the other way round.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeriodicPatch {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub args: Option<serde_json::Value>,
    #[serde(default)]
    pub queue: Option<String>,
    #[serde(default)]
    pub cron: Option<String>,
    #[serde(default)]
    pub interval_secs: Option<i64>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub one_off: Option<bool>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = periodic_tasks)]
struct Changes {
    kind: Option<String>,
    args: Option<serde_json::Value>,
    queue: Option<Option<String>>,
    cron: Option<Option<String>>,
    interval_secs: Option<Option<i64>>,
    timezone: Option<String>,
    enabled: Option<bool>,
    one_off: Option<bool>,
    expires_at: Option<Option<DateTime<Utc>>>,
    description: Option<String>,
    updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = periodic_tasks)]
struct Insert {
    name: String,
    kind: String,
    args: serde_json::Value,
    queue: Option<String>,
    cron: Option<String>,
    interval_secs: Option<i64>,
    timezone: String,
    enabled: bool,
    one_off: bool,
    expires_at: Option<DateTime<Utc>>,
    description: String,
}

/// What can go wrong with a schedule. Every variant has a stable [`PeriodicError::code`].
#[derive(Debug, thiserror::Error)]
pub enum PeriodicError {
    #[error("no periodic task named `{0}`")]
    NotFound(String),
    #[error("a periodic task named `{0}` already exists")]
    Exists(String),
    #[error("field `{field}`: {message}")]
    Invalid { field: String, message: String },
    #[error("field `{field}`: {source}")]
    Schedule {
        field: &'static str,
        #[source]
        source: ScheduleError,
    },
    /// The database refused the data, or could not answer; the text is ours, never PostgreSQL's.
    #[error(transparent)]
    Db(#[from] crate::db::QueryError),
}

impl PeriodicError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Exists(_) => "already_exists",
            Self::Invalid { .. } => "invalid_field",
            Self::Schedule { .. } => "invalid_schedule",
            Self::Db(crate::db::QueryError::Refused(r)) => r.code(),
            Self::Db(crate::db::QueryError::Unavailable) => "database_error",
        }
    }

    pub fn field(&self) -> Option<String> {
        match self {
            Self::Invalid { field, .. } => Some(field.clone()),
            Self::Schedule { field, .. } => Some((*field).to_owned()),
            _ => None,
        }
    }
}

impl From<diesel::result::Error> for PeriodicError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

fn invalid(field: &str, message: impl Into<String>) -> PeriodicError {
    PeriodicError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn check_name(name: &str) -> Result<(), PeriodicError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid("name", format!("`{name}` is not a schedule name: use 1 to 100 characters of a-z, 0-9, `_`, `.`, `-`")))
    }
}

fn check_kind_args(
    catalog: &Catalog,
    kind: &str,
    args: &serde_json::Value,
    queue: Option<&str>,
) -> Result<(), PeriodicError> {
    let req = EnqueueRequest {
        kind: kind.into(),
        args: args.clone(),
        queue: queue.map(str::to_owned),
        ..Default::default()
    };
    catalog
        .prepare(req, Utc::now())
        .map(|_| ())
        .map_err(|e| invalid(&e.field().unwrap_or_else(|| "kind".into()), e.to_string()))
}

fn schedule_of(cron: Option<&str>, interval: Option<i64>) -> Result<Schedule, PeriodicError> {
    Schedule::from_parts(cron, interval).map_err(|source| PeriodicError::Schedule {
        field: if cron.is_some() {
            "cron"
        } else {
            "interval_secs"
        },
        source,
    })
}

fn tz_of(name: &str) -> Result<Tz, PeriodicError> {
    parse_tz(name).map_err(|source| PeriodicError::Schedule {
        field: "timezone",
        source,
    })
}

/// Every schedule, by name.
pub async fn list(conn: &mut AsyncPgConnection) -> Result<Vec<PeriodicTask>, PeriodicError> {
    Ok(periodic_tasks::table
        .order(periodic_tasks::name)
        .select(PeriodicTask::as_select())
        .load(conn)
        .await?)
}

/// One schedule by name.
pub async fn get(conn: &mut AsyncPgConnection, name: &str) -> Result<PeriodicTask, PeriodicError> {
    periodic_tasks::table
        .filter(periodic_tasks::name.eq(name))
        .select(PeriodicTask::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| PeriodicError::NotFound(name.to_owned()))
}

/// Adds a schedule after checking its name, kind, args, schedule and time zone.
pub async fn create(
    conn: &mut AsyncPgConnection,
    catalog: &Catalog,
    new: NewPeriodic,
) -> Result<PeriodicTask, PeriodicError> {
    check_name(&new.name)?;
    let args = new.args.unwrap_or_else(|| serde_json::json!({}));
    check_kind_args(catalog, &new.kind, &args, new.queue.as_deref())?;
    let schedule = schedule_of(new.cron.as_deref(), new.interval_secs)?;
    let timezone = new.timezone.unwrap_or_else(|| "America/Lima".into());
    tz_of(&timezone)?;
    let row = Insert {
        name: new.name.clone(),
        kind: new.kind,
        args,
        queue: new.queue.filter(|q| !q.is_empty()),
        cron: match &schedule {
            Schedule::Cron(c) => Some(c.as_str().to_owned()),
            Schedule::Every(_) => None,
        },
        interval_secs: new
            .interval_secs
            .filter(|_| matches!(schedule, Schedule::Every(_))),
        timezone,
        enabled: new.enabled.unwrap_or(true),
        one_off: new.one_off.unwrap_or(false),
        expires_at: new.expires_at,
        description: new.description.unwrap_or_default(),
    };
    match diesel::insert_into(periodic_tasks::table)
        .values(&row)
        .returning(PeriodicTask::as_returning())
        .get_result(conn)
        .await
    {
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Err(PeriodicError::Exists(new.name)),
        other => Ok(other?),
    }
}

/// Applies a patch after checking the resulting schedule.
pub async fn update(
    conn: &mut AsyncPgConnection,
    catalog: &Catalog,
    name: &str,
    patch: PeriodicPatch,
) -> Result<PeriodicTask, PeriodicError> {
    let current = get(conn, name).await?;
    if patch.cron.is_some() && patch.interval_secs.is_some() {
        return Err(PeriodicError::Schedule {
            field: "cron",
            source: ScheduleError::Ambiguous,
        });
    }
    let mut c = Changes {
        updated_at: Some(Utc::now()),
        ..Default::default()
    };
    if let Some(expr) = &patch.cron {
        let Schedule::Cron(parsed) = schedule_of(Some(expr), None)? else {
            return Err(PeriodicError::Schedule {
                field: "cron",
                source: ScheduleError::Ambiguous,
            });
        };
        c.cron = Some(Some(parsed.as_str().to_owned()));
        c.interval_secs = Some(None);
    }
    if let Some(secs) = patch.interval_secs {
        schedule_of(None, Some(secs))?;
        c.interval_secs = Some(Some(secs));
        c.cron = Some(None);
    }
    if let Some(tz) = &patch.timezone {
        tz_of(tz)?;
        c.timezone = Some(tz.clone());
    }
    if patch.kind.is_some() || patch.args.is_some() || patch.queue.is_some() {
        let kind = patch.kind.clone().unwrap_or(current.kind.clone());
        let args = patch.args.clone().unwrap_or(current.args.clone());
        let queue = patch
            .queue
            .clone()
            .or(current.queue.clone())
            .filter(|q| !q.is_empty());
        check_kind_args(catalog, &kind, &args, queue.as_deref())?;
        c.kind = patch.kind;
        c.args = patch.args;
        c.queue = patch.queue.map(|q| Some(q).filter(|q| !q.is_empty()));
    }
    c.enabled = patch.enabled;
    c.one_off = patch.one_off;
    c.expires_at = patch.expires_at.map(Some);
    c.description = patch.description;
    Ok(
        diesel::update(periodic_tasks::table.filter(periodic_tasks::name.eq(name)))
            .set(&c)
            .returning(PeriodicTask::as_returning())
            .get_result(conn)
            .await?,
    )
}

/// Deletes a schedule; false when there was none.
pub async fn delete(conn: &mut AsyncPgConnection, name: &str) -> Result<bool, PeriodicError> {
    Ok(
        diesel::delete(periodic_tasks::table.filter(periodic_tasks::name.eq(name)))
            .execute(conn)
            .await?
            > 0,
    )
}

/// Records that `tick` was enqueued: only the first caller for a tick counts (a later or concurrent
/// beat sees `false`). A one-off schedule is disabled after its run.
pub async fn record_run(
    conn: &mut AsyncPgConnection,
    name: &str,
    tick: DateTime<Utc>,
) -> Result<bool, PeriodicError> {
    use periodic_tasks::dsl as p;
    let n = diesel::update(
        p::periodic_tasks
            .filter(p::name.eq(name))
            .filter(p::last_run_at.is_null().or(p::last_run_at.lt(tick))),
    )
    .set((
        p::last_run_at.eq(tick),
        p::total_run_count.eq(p::total_run_count + 1),
        p::enabled.eq(diesel::dsl::not(p::one_off).and(p::enabled)),
    ))
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// Moves `last_run_at` forward without counting a run (missed ticks that were skipped).
pub async fn skip_to(
    conn: &mut AsyncPgConnection,
    name: &str,
    tick: DateTime<Utc>,
) -> Result<(), PeriodicError> {
    use periodic_tasks::dsl as p;
    diesel::update(
        p::periodic_tasks
            .filter(p::name.eq(name))
            .filter(p::last_run_at.is_null().or(p::last_run_at.lt(tick))),
    )
    .set(p::last_run_at.eq(tick))
    .execute(conn)
    .await?;
    Ok(())
}
