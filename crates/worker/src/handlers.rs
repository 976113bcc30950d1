//! The registry of job handlers by kind name. It knows no job: the handlers live in `jobs/`, which
//! registers them here (`Handlers::production`, `all`, `builtin` are defined there).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use faena_core::jobs::{parse_args_str, JobArgs, JobError};
use serde_json::Value;

/// What a handler learns about the attempt it runs.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub task_id: faena_core::TaskId,
    /// This attempt's lease token: with the task id it names the attempt (e.g. as a lock holder,
    /// so a later attempt of the same task cannot take over the lock of an earlier one).
    pub token: faena_broker::LeaseToken,
    pub kind: String,
    pub queue: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
    pub max_attempts: u32,
    /// The broker, so a job can enqueue work of its own: jobs, or a workflow
    /// (`ctx.broker.start_workflow(...)`, e.g. a group with a callback to fan work out).
    pub broker: faena_broker::Broker,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Value, JobError>> + Send>>;
type ErasedHandler = Arc<dyn Fn(&str, JobContext) -> Result<BoxFuture, JobError> + Send + Sync>;

/// The handlers a worker runs, by kind name.
#[derive(Clone, Default)]
pub struct Handlers {
    map: HashMap<&'static str, ErasedHandler>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kinds: Vec<_> = self.map.keys().collect();
        kinds.sort();
        f.debug_struct("Handlers").field("kinds", &kinds).finish()
    }
}

impl Handlers {
    /// Registers a handler for the kind of `A`. Args that do not decode into `A` make the job DEAD
    /// with a decode error: they would not decode on a retry either.
    pub fn register<A, F, Fut>(&mut self, handler: F) -> &mut Self
    where
        A: JobArgs + Send + 'static,
        F: Fn(A, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, JobError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: ErasedHandler = Arc::new(move |text: &str, ctx| {
            // Decoded once, from the stored text straight into the handler's type.
            let args: A = parse_args_str(text).map_err(|e| {
                JobError::Permanent(anyhow::anyhow!(
                    "decode error: args do not match kind `{}`: {e}",
                    A::KIND
                ))
            })?;
            let handler = Arc::clone(&handler);
            Ok(Box::pin(async move { handler(args, ctx).await }) as BoxFuture)
        });
        self.map.insert(A::KIND, erased);
        self
    }

    /// Starts the handler of `kind` with its args as stored (JSON text); `None` when no handler is
    /// registered for it, `Some(Err)` when the args do not decode into its type.
    pub(crate) fn start(
        &self,
        kind: &str,
        args: &str,
        ctx: JobContext,
    ) -> Option<Result<BoxFuture, JobError>> {
        self.map.get(kind).map(|h| h(args, ctx))
    }

    /// The registered kind names.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut k: Vec<_> = self.map.keys().copied().collect();
        k.sort_unstable();
        k
    }
}
