//! faena-core: the queue kernel's shared ground: ids, queue names, the job contract, schedules and
//! the `periodic_tasks` model, settings, database and Redis pools, migrations, telemetry, metrics,
//! health and shutdown.
//!
//! Nothing here knows actix, Redis key names or the back office (SUNAT, users, sales): those live
//! in `faena-api`, `faena-broker` and `faena-shop`.

pub mod db;
pub mod domain;
pub mod health;
pub mod jobs;
pub mod metrics;
pub mod outbox;
pub mod periodic;
pub mod redis_pool;
pub mod schedule;
pub mod schema;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod urls;
pub mod workflow;

pub use domain::{QueueName, TaskId, MAX_PARTITIONS};
pub use settings::Settings;

/// The version every process reports (`/api/health`, `faena --version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
