//! A consistency scan of one queue, for tests and debugging (O(queue): never on a hot path).
//!
//! The invariant (docs/job-states.md): an id is in at most one of pending, scheduled, leased, a
//! worker's inflight list and dead, at most once, and each of those holds it only while its record
//! is in the matching state. The one tolerated exception is a stale copy in the pending list (a
//! cancelled job, or one whose late success was recorded after a requeue): fetch drops it, and a
//! retry never pushes it again while it is there.

use std::collections::HashMap;

use faena_core::QueueName;

use crate::{Broker, Result};

impl Broker {
    /// Scans `queue` and describes every break of the invariant; empty when it holds. Not atomic:
    /// run it while nothing else changes the queue.
    pub async fn check_queue(&self, queue: &QueueName) -> Result<Vec<String>> {
        let k = self.queue_keys(queue);
        let mut conn = self.conn().await?;
        let mut places: HashMap<String, Vec<&'static str>> = HashMap::new();
        let pending: Vec<String> = redis::cmd("LRANGE")
            .arg(&k.pending)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        for id in pending {
            places.entry(id).or_default().push("pending");
        }
        for (key, name) in [
            (&k.scheduled, "scheduled"),
            (&k.leased, "leased"),
            (&k.dead, "dead"),
        ] {
            let ids: Vec<String> = redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await?;
            for id in ids {
                places.entry(id).or_default().push(name);
            }
        }
        // The worker's inflight lists share the queue's slot: on a cluster only its node is scanned.
        for key in conn.scan(&k.inflight("*"), Some(&k.pending)).await? {
            let ids: Vec<String> = redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await?;
            for id in ids {
                places.entry(id).or_default().push("inflight");
            }
        }
        let mut problems = Vec::new();
        let mut ids: Vec<&String> = places.keys().collect();
        ids.sort();
        for id in ids {
            let at = &places[id];
            if at.len() > 1 {
                problems.push(format!("{id} is in {} places: {at:?}", at.len()));
                continue;
            }
            let state: Option<String> = redis::cmd("HGET")
                .arg(k.task(id))
                .arg("state")
                .query_async(&mut conn)
                .await?;
            let ok = match (at[0], state.as_deref()) {
                // Stale copies that fetch drops: tolerated (see the module's documentation).
                // (A blocking fetch may park one in a worker's inflight list before fetch drops it.)
                ("pending" | "inflight", None | Some("CANCELLED" | "SUCCEEDED")) => true,
                ("pending" | "inflight", Some("PENDING")) => true,
                ("scheduled", Some("SCHEDULED")) => true,
                ("leased", Some("RUNNING")) => true,
                ("dead", Some("DEAD")) => true,
                _ => false,
            };
            if !ok {
                problems.push(format!(
                    "{id} is in {} but its record is {}",
                    at[0],
                    state.as_deref().unwrap_or("missing")
                ));
            }
        }
        Ok(problems)
    }
}
