//! Partitioned queues: one queue spread over several Redis Cluster slots.
//!
//! A queue with N partitions is N queues of the broker, `Q` (partition 0, the queue itself), `Q.1`,
//! ..., `Q.{N-1}`, each with its own hash tag, so on a cluster they land on different slots (and
//! nodes). Every script still touches one partition, so no call crosses slots. How many partitions
//! a queue has is one field of the process-wide hash `{prefix}:partitions`; every process reads it
//! and caches it for [`REFRESH`]. Producers place each job (by the hash of its idempotency key, so
//! a key always meets its earlier job; otherwise round robin); workers consume every partition, each
//! with a fetcher and a blocking wait of its own, so none starves and none is polled.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use faena_core::{QueueName, MAX_PARTITIONS};
use redis::AsyncCommands;

use crate::{Broker, BrokerError, Result};

/// How long a process trusts the partition counts it read: another process's
/// [`Broker::set_partitions`] reaches producers and workers within this (workers start the new
/// partitions' fetchers at their next heartbeat).
pub const REFRESH: Duration = Duration::from_secs(2);

type Counts = Arc<HashMap<String, u16>>;

/// The partition counts a process read last, and the round-robin cursor of its enqueues.
#[derive(Default)]
pub(crate) struct PartitionCache {
    read: RwLock<Option<(Instant, Counts)>>,
    next: AtomicUsize,
}

/// FNV-1a (64 bits): a stable hash of an idempotency key, the same in every process and release.
fn stable_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Broker {
    /// The partition count of every partitioned queue (queues with one are absent).
    pub(crate) async fn partition_counts(&self) -> Result<Counts> {
        if let Ok(read) = self.parts.read.read() {
            if let Some((at, counts)) = read.as_ref() {
                if at.elapsed() < REFRESH {
                    return Ok(Arc::clone(counts));
                }
            }
        }
        let mut conn = self.conn().await?;
        let raw: HashMap<String, u16> = conn.hgetall(&self.global.partitions).await?;
        let counts: Counts = Arc::new(raw.into_iter().filter(|(_, n)| *n > 1).collect());
        if let Ok(mut w) = self.parts.read.write() {
            *w = Some((Instant::now(), Arc::clone(&counts)));
        }
        Ok(counts)
    }

    /// How many partitions `queue`'s queue has (1 when it is not partitioned).
    pub async fn partition_count(&self, queue: &QueueName) -> Result<u16> {
        Ok(self
            .partition_counts()
            .await?
            .get(queue.base())
            .copied()
            .unwrap_or(1))
    }

    /// The broker queues a name stands for: every partition of a queue (the queue itself first),
    /// or just the one partition a `Q.N` name names.
    pub async fn expand(&self, queue: &QueueName) -> Result<Vec<QueueName>> {
        if queue.is_partition() {
            return Ok(vec![queue.clone()]);
        }
        Ok(queue.partitions(self.partition_count(queue).await?))
    }

    /// Gives `queue` `n` partitions (1 to [`MAX_PARTITIONS`]) and registers them, so workers that
    /// consume every queue find them. Returns the count it had. A queue's partitions can grow but
    /// not shrink: jobs waiting in a dropped partition would be consumed by no one.
    pub async fn set_partitions(&self, queue: &QueueName, n: u16) -> Result<u16> {
        if queue.is_partition() {
            return Err(BrokerError::Invalid(format!(
                "`{queue}` is a partition of `{}`: give the partitions of the queue itself",
                queue.base()
            )));
        }
        if !(1..=MAX_PARTITIONS).contains(&n) {
            return Err(BrokerError::Invalid(format!(
                "partitions must be from 1 to {MAX_PARTITIONS}, not {n}"
            )));
        }
        self.invalidate_partitions();
        let had = self.partition_count(queue).await?;
        if n < had {
            return Err(BrokerError::Invalid(format!(
                "queue `{queue}` has {had} partitions and cannot go down to {n}: jobs waiting in the others would be left behind"
            )));
        }
        let names: Vec<String> = queue.partitions(n).iter().map(|q| q.to_string()).collect();
        let groups = vec![vec![
            redis::Cmd::sadd(&self.global.queues, names),
            redis::Cmd::hset(&self.global.partitions, queue.as_str(), n),
        ]];
        self.query_by_slot(groups, Some("the partitions")).await?;
        self.invalidate_partitions();
        Ok(had)
    }

    /// The Redis Cluster hash slot `queue` (one partition) lives in, as the cluster computes it
    /// (`CLUSTER KEYSLOT`); `None` when Redis is not a cluster.
    pub async fn queue_slot(&self, queue: &QueueName) -> Result<Option<u16>> {
        if !self.is_cluster() {
            return Ok(None);
        }
        let mut conn = self.conn().await?;
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(self.queue_keys(queue).pending)
            .query_async(&mut conn)
            .await?;
        Ok(Some(slot))
    }

    /// Forgets the counts read, so the next use reads them again.
    fn invalidate_partitions(&self) {
        if let Ok(mut w) = self.parts.read.write() {
            *w = None;
        }
    }

    /// The partition a new job of `queue` goes to: the one its idempotency key hashes to, or the
    /// next in turn. A name that already names a partition stays as it is.
    pub(crate) fn place(&self, counts: &Counts, queue: &QueueName, key: Option<&str>) -> QueueName {
        if queue.is_partition() {
            return queue.clone();
        }
        let Some(&n) = counts.get(queue.as_str()) else {
            return queue.clone();
        };
        let i = match key {
            Some(k) => stable_hash(k) % u64::from(n),
            None => (self.parts.next.fetch_add(1, Ordering::Relaxed) % usize::from(n)) as u64,
        };
        queue.partition(i as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::stable_hash;

    #[test]
    fn the_key_hash_is_fnv1a() {
        // Published FNV-1a 64 test vectors: the placement of a key must never change.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash("foobar"), 0x8594_4171_f739_67e8);
    }
}
