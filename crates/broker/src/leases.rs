//! Leases in Redis: one holder at a time per role (beat's leadership uses the role `beat`) or per
//! named lock (a sale being sent to SUNAT), and counters of events within a window (failed logins).
//! Their Lua is in `src/lua/lease_*.lua`, `reserve_in_window.lua` and `give_back_event.lua`.

use std::time::Duration;

use crate::{scripts, Broker, Result};

/// At most `max` events under `name` in a window ([`Broker::reserve_events`]).
#[derive(Debug, Clone, Copy)]
pub struct EventLimit<'a> {
    pub name: &'a str,
    pub max: u64,
}

/// What [`Broker::reserve_events`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// One event was counted under every name.
    Counted,
    /// Nothing was counted: the limit at `index` is reached; its window ends in `retry_after`.
    Refused { index: usize, retry_after: Duration },
}

fn window_ms(window: Duration) -> u64 {
    u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1)
}

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

    /// Counts one event under every limit's name if each is below its maximum, else under none,
    /// atomically (failed logins, counted before the password is checked: of many attempts at once,
    /// exactly as many as a limit leaves get through). Each counter's window starts with its first
    /// event. An attempt that turns out not to be a failure gives its event back with
    /// [`Broker::give_back_event`].
    pub async fn reserve_events(
        &self,
        limits: &[EventLimit<'_>],
        window: Duration,
    ) -> Result<Admission> {
        let keys: Vec<String> = limits
            .iter()
            .map(|l| self.global.throttle(l.name))
            .collect();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut cmd = scripts::evalsha(&scripts::RESERVE_IN_WINDOW, &key_refs);
        cmd.arg(window_ms(window));
        for l in limits {
            cmd.arg(l.max);
        }
        let mut conn = self.conn().await?;
        let (at, left_ms): (usize, u64) = scripts::run(&mut conn, &cmd).await?;
        Ok(match at.checked_sub(1) {
            None => Admission::Counted,
            Some(index) => Admission::Refused {
                index,
                retry_after: Duration::from_millis(left_ms),
            },
        })
    }

    /// Takes back one event counted under `name` by [`Broker::reserve_events`]; the window keeps
    /// its deadline.
    pub async fn give_back_event(&self, name: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let cmd = scripts::evalsha(&scripts::GIVE_BACK_EVENT, &[&self.global.throttle(name)]);
        let _: i64 = scripts::run(&mut conn, &cmd).await?;
        Ok(())
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
