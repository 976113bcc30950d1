//! faena-core: settings, domain types, the job contract, database and Redis pools shared by every process.
//!
//! Nothing here knows actix or Redis key names; those live in `faena-api` and `faena-broker`.

pub mod auth;
pub mod db;
pub mod domain;
pub mod files;
pub mod health;
pub mod insights;
pub mod jobs;
pub mod metrics;
pub mod periodic;
pub mod redis_pool;
pub mod reports;
pub mod retention;
pub mod sales;
pub mod schedule;
pub mod schema;
pub mod settings;
pub mod shop;
pub mod shutdown;
pub mod telemetry;

pub use domain::{QueueName, TaskId};
pub use settings::Settings;

/// The version every process reports (`/api/health`, `faena --version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
