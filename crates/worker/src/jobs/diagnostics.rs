//! The kernel's diagnostic kinds: `noop` returns its args, `sleep` sleeps, `fail` fails its first
//! attempts. For tests, benchmarks and smoke checks of a deployment.

use std::time::Duration;

use faena_core::jobs::{FailArgs, JobError, NoopArgs, SleepArgs};

use crate::handlers::{Handlers, JobContext};

/// Registers `noop`, `sleep` and `fail`.
pub fn register(h: &mut Handlers) {
    h.register(|NoopArgs(v): NoopArgs, _ctx| async move { Ok(v) });
    h.register(|a: SleepArgs, _ctx| async move {
        tokio::time::sleep(Duration::from_millis(a.ms)).await;
        Ok(serde_json::json!({ "slept_ms": a.ms }))
    });
    h.register(|a: FailArgs, ctx: JobContext| async move {
        if ctx.attempt <= a.fail_times {
            let err = anyhow::anyhow!(
                "fail: attempt {} of the first {} that fail",
                ctx.attempt,
                a.fail_times
            );
            return Err(if a.permanent {
                JobError::Permanent(err)
            } else {
                JobError::Retry(err)
            });
        }
        Ok(serde_json::json!({ "succeeded_on_attempt": ctx.attempt }))
    });
}
