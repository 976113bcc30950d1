//! Leader leases in Redis: one holder at a time per role (beat uses the role `beat`).

use std::time::Duration;

use crate::{Broker, Result};

const ACQUIRE_OR_RENEW: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

impl Broker {
    /// Takes or renews the lease of `role` for `holder`; false when another holder has it.
    pub async fn acquire_leadership(
        &self,
        role: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let mut conn = self.conn().await?;
        let got: i64 = redis::Script::new(ACQUIRE_OR_RENEW)
            .key(self.global.leader(role))
            .arg(holder)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(got == 1)
    }

    /// Gives the lease up if `holder` has it.
    pub async fn release_leadership(&self, role: &str, holder: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: i64 = redis::Script::new(RELEASE)
            .key(self.global.leader(role))
            .arg(holder)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// The current holder of `role`, if any.
    pub async fn leader(&self, role: &str) -> Result<Option<String>> {
        let mut conn = self.conn().await?;
        Ok(redis::cmd("GET")
            .arg(self.global.leader(role))
            .query_async(&mut conn)
            .await?)
    }
}
