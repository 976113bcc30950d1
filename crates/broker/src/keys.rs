//! Redis key names. The only place in Faena that knows them.
//!
//! Every key of a queue starts with the hash tag `{<prefix>:q:<queue>}` so a queue lives in one Redis
//! Cluster slot and its Lua scripts never cross slots. Process-wide keys (the queue set, the worker
//! registry) use the tag `{<prefix>}`.

use faena_core::QueueName;

/// The key names of one queue.
#[derive(Debug, Clone)]
pub struct QueueKeys {
    /// `{p:q:name}:`: the prefix of every key of the queue; task records are `<base>t:<id>`.
    pub base: String,
    pub pending: String,
    pub scheduled: String,
    pub leased: String,
    pub dead: String,
    pub stats: String,
    pub paused: String,
}

impl QueueKeys {
    pub fn new(prefix: &str, queue: &QueueName) -> Self {
        let base = format!("{{{prefix}:q:{queue}}}:");
        Self {
            pending: format!("{base}pending"),
            scheduled: format!("{base}scheduled"),
            leased: format!("{base}leased"),
            dead: format!("{base}dead"),
            stats: format!("{base}stats"),
            paused: format!("{base}paused"),
            base,
        }
    }

    /// The record of one task.
    pub fn task(&self, id: &str) -> String {
        format!("{}t:{id}", self.base)
    }

    /// The history hash of one minute (ms since the epoch / 60000): per-kind outcome counters and
    /// latency buckets. `finish.lua` and `maintain.lua` build the same name from `base` (`history.lua`).
    pub fn history(&self, minute: i64) -> String {
        format!("{}h:{minute}", self.base)
    }

    /// The list a blocking fetch parks an id in before the fetch script leases it.
    pub fn inflight(&self, worker: &str) -> String {
        format!("{}inflight:{worker}", self.base)
    }

    /// A pattern that matches every key of the queue (for tests' cleanup and `purge`).
    pub fn pattern(&self) -> String {
        // `{` and `}` are not glob characters, `[` would be; queue names cannot hold either.
        format!("{}*", self.base)
    }
}

/// Process-wide keys.
#[derive(Debug, Clone)]
pub struct GlobalKeys {
    /// Set of queue names that ever received a job.
    pub queues: String,
    /// Zset of worker ids scored by their last heartbeat (ms).
    pub workers: String,
    /// Hash of queue name -> partitions, for the queues that have more than one.
    pub partitions: String,
    prefix: String,
}

impl GlobalKeys {
    pub fn new(prefix: &str) -> Self {
        Self {
            queues: format!("{{{prefix}}}:queues"),
            workers: format!("{{{prefix}}}:workers"),
            partitions: format!("{{{prefix}}}:partitions"),
            prefix: prefix.to_owned(),
        }
    }

    /// The info hash of one worker.
    pub fn worker(&self, id: &str) -> String {
        format!("{{{}}}:worker:{id}", self.prefix)
    }

    /// A lease key for leader election (beat).
    pub fn leader(&self, role: &str) -> String {
        format!("{{{}}}:leader:{role}", self.prefix)
    }

    /// A named lock (e.g. one send of a sale at a time).
    pub fn lock(&self, name: &str) -> String {
        format!("{{{}}}:lock:{name}", self.prefix)
    }

    /// A counter of events within a window (failed logins per user or address).
    pub fn throttle(&self, name: &str) -> String {
        format!("{{{}}}:throttle:{name}", self.prefix)
    }

    /// Every key under the prefix, for tests' cleanup.
    pub fn all_pattern(&self) -> String {
        format!("{{{}*", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_share_one_hash_tag() -> Result<(), faena_core::domain::DomainError> {
        let k = QueueKeys::new("faena", &QueueName::parse("sunat")?);
        for key in [
            &k.pending,
            &k.scheduled,
            &k.leased,
            &k.dead,
            &k.stats,
            &k.paused,
            &k.task("X"),
            &k.history(29_000_000),
            &k.inflight("w"),
        ] {
            assert!(key.starts_with("{faena:q:sunat}:"), "{key}");
        }
        Ok(())
    }
}
