//! faena-worker: runs jobs. The handlers of every kind live in `jobs/`; `handlers.rs` is the
//! registry they go into; `runtime.rs` fetches leased jobs from the broker and runs them.

pub mod handlers;
pub mod jobs;
pub mod process;
pub mod runtime;

pub use handlers::{Handlers, JobContext};
pub use runtime::{spawn, WorkerConfig, WorkerHandle};
