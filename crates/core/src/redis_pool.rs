//! The Redis connection pool (deadpool-redis) with timeouts that fail fast when Redis is down.

use std::time::Duration;

use deadpool_redis::{Manager, Pool, Runtime, Timeouts};
use redis::AsyncConnectionConfig;

/// A pool that could not be built (a bad URL; an unreachable server only shows at first use).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the Redis pool for {url}: {message}")]
pub struct RedisPoolError {
    url: String,
    message: String,
}

/// How long a command may take before the pool's connection gives up on it.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Builds a pool of `size` multiplexed connections. Connections are made lazily and remade after
/// Redis comes back, so processes recover from a Redis restart on their own.
pub fn create_pool(url: &str, size: usize) -> Result<Pool, RedisPoolError> {
    let masked = || crate::settings::mask_password(url);
    let manager =
        Manager::new_with_config(url, connection_config()).map_err(|e| RedisPoolError {
            url: masked(),
            message: e.to_string(),
        })?;
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(Duration::from_secs(2)),
            create: Some(CONNECT_TIMEOUT * 2),
            recycle: Some(Duration::from_secs(1)),
        })
        .build()
        .map_err(|e| RedisPoolError {
            url: masked(),
            message: e.to_string(),
        })
}

/// The connection settings used for pooled connections.
pub fn connection_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
}
