//! Leases in Redis: one holder at a time per role (beat's leadership uses the role `beat`) or per
//! named lock (a sale being sent to SUNAT), and counters of events within a window (failed logins).
//! Their Lua is in `src/lua/lease_*.lua` and `count_in_window.lua`.

use std::time::Duration;

use crate::{scripts, Broker, Result};

impl Broker {
    /// Takes or renews the lease of `role` for `holder`; false when another holder has it.
    pub async fn acquire_leadership(
        &self,
        role: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool> {
        self.acquire_key(self.global.leader(role), holder, ttl)
            .await
    }

    /// Takes or renews the lock `name` for `holder` for `ttl`; false when another holder has it.
    /// The lock expires by itself if its holder dies.
    pub async fn acquire_lock(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        self.acquire_key(self.global.lock(name), holder, ttl).await
    }

    /// Gives the lock `name` up if `holder` has it.
    pub async fn release_lock(&self, name: &str, holder: &str) -> Result<()> {
        self.release_key(self.global.lock(name), holder).await
    }

    /// Counts one event under `name` in a window that starts with the first event; returns the
    /// count so far.
    pub async fn count_event(&self, name: &str, window: Duration) -> Result<u64> {
        let mut conn = self.conn().await?;
        let key = self.global.throttle(name);
        let mut cmd = scripts::evalsha(&scripts::COUNT_IN_WINDOW, &[&key]);
        cmd.arg(window.as_millis().max(1) as u64);
        Ok(scripts::run(&mut conn, &cmd).await?)
    }

    /// The events counted under `name` in its current window.
    pub async fn event_count(&self, name: &str) -> Result<u64> {
        let mut conn = self.conn().await?;
        let n: Option<u64> = redis::cmd("GET")
            .arg(self.global.throttle(name))
            .query_async(&mut conn)
            .await?;
        Ok(n.unwrap_or(0))
    }

    /// Forgets the events counted under `name`.
    pub async fn clear_events(&self, name: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: i64 = redis::cmd("DEL")
            .arg(self.global.throttle(name))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn acquire_key(&self, key: String, holder: &str, ttl: Duration) -> Result<bool> {
        let mut conn = self.conn().await?;
        let mut cmd = scripts::evalsha(&scripts::LEASE_ACQUIRE, &[&key]);
        cmd.arg(holder).arg(ttl.as_millis() as u64);
        let got: i64 = scripts::run(&mut conn, &cmd).await?;
        Ok(got == 1)
    }

    /// Gives the lease up if `holder` has it.
    pub async fn release_leadership(&self, role: &str, holder: &str) -> Result<()> {
        self.release_key(self.global.leader(role), holder).await
    }

    async fn release_key(&self, key: String, holder: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let mut cmd = scripts::evalsha(&scripts::LEASE_RELEASE, &[&key]);
        cmd.arg(holder);
        let _: i64 = scripts::run(&mut conn, &cmd).await?;
        Ok(())
    }

    /// The current holder of the lock `name`, if any.
    pub async fn lock_holder(&self, name: &str) -> Result<Option<String>> {
        let mut conn = self.conn().await?;
        Ok(redis::cmd("GET")
            .arg(self.global.lock(name))
            .query_async(&mut conn)
            .await?)
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
