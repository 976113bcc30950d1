//! PostgreSQL: the diesel-async connection pool, the migrations embedded in every binary, and
//! [`QueryError`], which sorts a failed query into the caller's fault or the database's.

use std::fmt;
use std::time::Duration;

use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// How long a caller waits for a free connection before the pool answers "unavailable".
pub const POOL_WAIT: Duration = Duration::from_secs(10);

/// The pool every process uses.
pub type PgPool = Pool<AsyncPgConnection>;

/// A connection taken from [`PgPool`].
pub type PooledConnection = diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>;

/// The migrations under `migrations/`, compiled into the binaries.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// A database operation that failed at start or during migration.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot build the PostgreSQL pool: {0}")]
    Pool(String),
    #[error(
        "cannot connect to PostgreSQL at {url}: {message}. Is it running? `just up` starts one"
    )]
    Connect { url: String, message: String },
    #[error("migration failed: {0}")]
    Migration(String),
    #[error(
        "the database has {0} pending migration(s): run `faena migrate` first (it is idempotent)"
    )]
    Pending(usize),
}

/// Builds the pool. Connections are opened lazily and re-opened after PostgreSQL comes back.
pub fn create_pool(url: &str, size: usize) -> Result<PgPool, DbError> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(deadpool::Runtime::Tokio1)
        // A burst (a hundred sales at one till opening) queues for a connection rather than failing
        // at once: transactions on one hot row run one at a time, so the queue drains at their pace.
        // Health checks bound their own wait (`health::CHECK_TIMEOUT`).
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(Duration::from_secs(2)))
        .recycle_timeout(Some(Duration::from_secs(1)))
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

fn with_harness<T: Send + 'static>(
    url: &str,
    f: impl FnOnce(&mut AsyncConnectionWrapper<AsyncPgConnection>) -> Result<T, DbError>
        + Send
        + 'static,
) -> impl std::future::Future<Output = Result<T, DbError>> {
    let url = url.to_owned();
    async move {
        tokio::task::spawn_blocking(move || {
            use diesel::Connection;
            let mut conn =
                AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url).map_err(|e| {
                    DbError::Connect {
                        url: crate::settings::mask_password(&url),
                        message: e.to_string(),
                    }
                })?;
            f(&mut conn)
        })
        .await
        .map_err(|e| DbError::Migration(format!("migration task panicked: {e}")))?
    }
}

/// Applies pending migrations; returns the versions applied (empty when up to date).
pub async fn run_migrations(url: &str) -> Result<Vec<String>, DbError> {
    with_harness(url, |conn| {
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| DbError::Migration(e.to_string()))?;
        Ok(applied.iter().map(ToString::to_string).collect())
    })
    .await
}

/// Fails with [`DbError::Pending`] when the database is behind the binary's migrations.
pub async fn ensure_migrated(url: &str) -> Result<(), DbError> {
    let pending = with_harness(url, |conn| {
        let pending = MigrationHarness::<Pg>::pending_migrations(conn, MIGRATIONS)
            .map_err(|e| DbError::Migration(e.to_string()))?;
        Ok(pending.len())
    })
    .await?;
    if pending > 0 {
        return Err(DbError::Pending(pending));
    }
    Ok(())
}

/// The number of migrations compiled in (for `faena migrate` output).
pub fn known_migrations() -> usize {
    MigrationSource::<Pg>::migrations(&MIGRATIONS).map_or(0, |m| m.len())
}

/// A failed query, sorted by whose fault it is: what every error enum that wraps diesel's holds
/// (`ShopError::Db`, `SaleError::Db`, `AuthError::Db`, `ReportError::Db`, `PeriodicError::Db`).
///
/// Its `Display` is ours and never quotes PostgreSQL, whose text can hold SQL, table and constraint
/// names and a row's values: [`QueryError::from`] logs that text (target `faena::db`) and keeps
/// only what a client may read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The data broke a rule of the schema, or PostgreSQL cannot store one of its values: the
    /// caller's fault, and sending it again unchanged will not help (400 or 409 at the api).
    #[error("{0}")]
    Refused(Refusal),
    /// PostgreSQL could not do it: no connection, a timeout, a deadlock, or anything not sorted
    /// above (503 at the api).
    #[error("the database could not complete the request; try again shortly")]
    Unavailable,
}

/// The kind of rule the data broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A `CHECK` constraint (SQLSTATE 23514).
    Check,
    /// A `NOT NULL` column (23502).
    NotNull,
    /// A unique key (23505).
    Unique,
    /// A foreign key (23503) or a restriction (23001).
    ForeignKey,
    /// An exclusion constraint (23P01).
    Exclusion,
    /// A data exception (class 22): a number beyond its column's range, a date PostgreSQL cannot
    /// hold, text it cannot store.
    Data,
}

impl Rule {
    /// True when the data conflicts with other stored data (409), false when it is wrong by
    /// itself (400).
    pub fn is_conflict(self) -> bool {
        matches!(self, Self::Unique | Self::ForeignKey | Self::Exclusion)
    }
}

/// What the database refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: Rule,
    /// The column at fault, when PostgreSQL names it (`NOT NULL`) or the constraint has the name
    /// PostgreSQL gives by default: `<table>_<column>_check`, `_key`, `_fkey` or `_excl`.
    pub column: Option<String>,
}

impl Refusal {
    /// A stable code: `conflict` for a conflict with stored data, else `invalid_value`.
    pub fn code(&self) -> &'static str {
        if self.rule.is_conflict() {
            "conflict"
        } else {
            "invalid_value"
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.rule, self.column.as_deref()) {
            (Rule::Check, Some(c)) => write!(
                f,
                "`{c}` has a value the stored data's rules do not allow; correct it and send again"
            ),
            (Rule::Check, None) => f.write_str(
                "the values break a rule of the stored data; correct them and send again",
            ),
            (Rule::NotNull, Some(c)) => write!(f, "`{c}` is required"),
            (Rule::NotNull, None) => f.write_str("a required value is missing"),
            (Rule::Unique, Some(c)) => {
                write!(f, "another record already has this `{c}`; choose another")
            }
            (Rule::Unique, None) => f.write_str("another record already has these values"),
            (Rule::ForeignKey, Some(c)) => write!(
                f,
                "`{c}` refers to a record that does not exist, or the record is still in use"
            ),
            (Rule::ForeignKey, None) => f.write_str(
                "the request refers to a record that does not exist, or the record is still in use",
            ),
            (Rule::Exclusion, _) => f.write_str("the request conflicts with a stored record"),
            (Rule::Data, Some(c)) => write!(
                f,
                "`{c}` has a value the database cannot store (too large, out of range, or bad \
                 text); correct it and send again"
            ),
            (Rule::Data, None) => f.write_str(
                "a value is one the database cannot store: a number or amount too large, a date \
                 out of range, or text it cannot hold; correct it and send again",
            ),
        }
    }
}

/// PostgreSQL's messages of the data exceptions (SQLSTATE class 22) a request can cause, lower
/// case. diesel-async hands over the SQLSTATE of constraint violations only (as
/// `DatabaseErrorKind`), so these are known by their English text; under a non-English
/// `lc_messages` they answer 503 (still in our words) instead of 400.
const DATA_EXCEPTIONS: &[&str] = &[
    // integer, bigint, smallint, value, date/time field value, timestamp, date (22003, 22008)
    "out of range",
    "numeric field overflow",              // 22003
    "value too long for type",             // 22001
    "invalid input syntax for type",       // 22P02
    "invalid input value for enum",        // 22P02
    "invalid byte sequence for encoding",  // 22021
    "has no equivalent in encoding",       // 22P05
    "unsupported unicode escape sequence", // 22P05
    "division by zero",                    // 22012
];

fn is_data_exception(message: &str) -> bool {
    let m = message.to_lowercase();
    DATA_EXCEPTIONS.iter().any(|d| m.contains(d))
}

/// The column an error names, or that its constraint's default name holds.
fn column_of(info: &dyn diesel::result::DatabaseErrorInformation) -> Option<String> {
    if let Some(c) = info.column_name() {
        return Some(c.to_owned());
    }
    let rest = info
        .constraint_name()?
        .strip_prefix(info.table_name()?)?
        .strip_prefix('_')?;
    ["_check", "_key", "_fkey", "_excl"]
        .iter()
        .find_map(|suffix| rest.strip_suffix(suffix))
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
}

impl From<diesel::result::Error> for QueryError {
    /// Sorts `e` and logs PostgreSQL's own text, which goes no further.
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        let refusal = match &e {
            E::DatabaseError(kind, info) => {
                let rule = match kind {
                    K::CheckViolation => Some(Rule::Check),
                    K::NotNullViolation => Some(Rule::NotNull),
                    K::UniqueViolation => Some(Rule::Unique),
                    K::ForeignKeyViolation | K::RestrictViolation => Some(Rule::ForeignKey),
                    K::ExclusionViolation => Some(Rule::Exclusion),
                    _ if is_data_exception(info.message()) => Some(Rule::Data),
                    _ => None,
                };
                rule.map(|rule| {
                    tracing::warn!(
                        target: "faena::db",
                        table = info.table_name(),
                        constraint = info.constraint_name(),
                        column = info.column_name(),
                        error = info.message(),
                        "the database refused the data"
                    );
                    Refusal {
                        rule,
                        column: column_of(info.as_ref()),
                    }
                })
            }
            // A value diesel could not encode for PostgreSQL (a date before 4713 BC...).
            E::SerializationError(m) => {
                tracing::warn!(target: "faena::db", error = %m, "a value cannot be sent to the database");
                Some(Refusal {
                    rule: Rule::Data,
                    column: None,
                })
            }
            _ => None,
        };
        match refusal {
            Some(r) => Self::Refused(r),
            None => {
                tracing::warn!(target: "faena::db", error = %e, "a query failed");
                Self::Unavailable
            }
        }
    }
}
