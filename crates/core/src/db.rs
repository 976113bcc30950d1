//! PostgreSQL: the diesel-async connection pool and the migrations embedded in every binary.

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
