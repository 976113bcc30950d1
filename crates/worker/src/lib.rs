//! faena-worker: runs jobs. The handlers of every kind live here; the broker hands out leased jobs.

pub mod handlers;
pub mod process;
pub mod report_jobs;
pub mod runtime;
pub mod sunat_job;

pub use handlers::{Handlers, JobContext};
pub use runtime::{spawn, WorkerConfig, WorkerHandle};
