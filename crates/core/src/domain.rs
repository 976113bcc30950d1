//! Domain newtypes that are parsed once at the boundary: task ids and queue names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A task id: a ULID, so ids sort by creation time and never collide across processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaskId(ulid::Ulid);

impl TaskId {
    /// A fresh id.
    pub fn new() -> Self {
        Self(ulid::Ulid::new())
    }

    /// Parses a task id given by a user (26 characters of Crockford base32).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let t = s.trim();
        // 26 base32 characters hold 130 bits; a ULID has 128, so the first one is at most 7.
        // (The ulid crate would silently drop the excess bits: `Z...` would read as `7...`.)
        if t.as_bytes().first().is_some_and(|c| *c > b'7') {
            return Err(DomainError::InvalidTaskId(s.to_owned()));
        }
        ulid::Ulid::from_string(t)
            .map(Self)
            .map_err(|_| DomainError::InvalidTaskId(s.to_owned()))
    }
}

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A task id goes to Redis as its 26-character text, the form every script and record uses.
impl redis::ToRedisArgs for TaskId {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + redis::RedisWrite,
    {
        out.write_arg_fmt(self.0);
    }
}

impl FromStr for TaskId {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for TaskId {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<TaskId> for String {
    fn from(id: TaskId) -> Self {
        id.to_string()
    }
}

/// A queue name: 1 to 64 characters of `[a-z0-9_-]`, so it is safe inside Redis key names and URLs,
/// optionally followed by `.N`, partition N (1 to [`MAX_PARTITIONS`] - 1) of a partitioned queue.
/// Partition 0 of a queue is the queue itself, so partitioning a queue never moves its jobs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QueueName(String);

impl QueueName {
    /// The queue used when neither the enqueue nor the job kind names one.
    pub const DEFAULT: &'static str = "default";

    /// Parses a queue name (`orders`) or the name of one of its partitions (`orders.3`).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let (base, part) = match s.split_once('.') {
            Some((base, n)) => (base, Some(n)),
            None => (s, None),
        };
        let base_ok = !base.is_empty()
            && base.len() <= 64
            && base
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        // `.N` with no sign, no leading zero, 1 <= N < MAX_PARTITIONS (`.0` is the queue itself).
        let part_ok = part.is_none_or(|n| {
            !n.starts_with('0')
                && n.bytes().all(|b| b.is_ascii_digit())
                && n.parse::<u16>()
                    .is_ok_and(|n| (1..MAX_PARTITIONS).contains(&n))
        });
        if base_ok && part_ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::InvalidQueueName(s.to_owned()))
        }
    }

    /// The `default` queue.
    pub fn default_queue() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The queue this name belongs to: `orders` for `orders.3` and for `orders`.
    pub fn base(&self) -> &str {
        self.0.split_once('.').map_or(&self.0, |(base, _)| base)
    }

    /// Which partition of its queue this name is: 0 for the queue itself.
    pub fn partition_index(&self) -> u16 {
        self.0
            .split_once('.')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0)
    }

    /// True for `orders.3`, false for `orders`.
    pub fn is_partition(&self) -> bool {
        self.0.contains('.')
    }

    /// Partition `i` of this name's queue: the queue itself for 0, `<queue>.<i>` otherwise.
    /// `i` must be below [`MAX_PARTITIONS`] (callers take it modulo the queue's partitions).
    pub fn partition(&self, i: u16) -> Self {
        debug_assert!(
            i < MAX_PARTITIONS,
            "partition {i} of at most {MAX_PARTITIONS}"
        );
        match i {
            0 => Self(self.base().to_owned()),
            i => Self(format!("{}.{i}", self.base())),
        }
    }

    /// Every partition of this name's queue when it has `n` of them: the queue itself first.
    pub fn partitions(&self, n: u16) -> Vec<Self> {
        (0..n.clamp(1, MAX_PARTITIONS))
            .map(|i| self.partition(i))
            .collect()
    }
}

/// The most partitions a queue may have (`faena queue create --partitions N`).
pub const MAX_PARTITIONS: u16 = 64;

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for QueueName {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for QueueName {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<QueueName> for String {
    fn from(q: QueueName) -> Self {
        q.0
    }
}

/// A value that does not parse into a domain type.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DomainError {
    #[error(
        "`{0}` is not a task id: expected a 26-character ULID such as 01JD6Z8Y3K0000000000000000"
    )]
    InvalidTaskId(String),
    #[error("`{0}` is not a queue name: use 1 to 64 characters of a-z, 0-9, `_` or `-` (a partition of a queue adds `.N`, N from 1 to 63)")]
    InvalidQueueName(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_checked() {
        assert!(QueueName::parse("sunat").is_ok());
        assert!(QueueName::parse("reports-2").is_ok());
        assert_eq!(
            QueueName::parse("Bad Queue"),
            Err(DomainError::InvalidQueueName("Bad Queue".into()))
        );
        assert!(QueueName::parse("").is_err());
        assert!(QueueName::parse("a{b}").is_err());
        assert!(QueueName::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn partition_names_are_the_queue_then_dot_n() -> Result<(), DomainError> {
        let q = QueueName::parse("orders")?;
        assert_eq!(q.partition(0), q);
        assert_eq!(q.partition(3).as_str(), "orders.3");
        assert_eq!(QueueName::parse("orders.3")?.base(), "orders");
        assert_eq!(QueueName::parse("orders.3")?.partition_index(), 3);
        assert_eq!(q.partition_index(), 0);
        assert_eq!(
            QueueName::parse("orders.3")?.partition(1).as_str(),
            "orders.1"
        );
        assert_eq!(
            q.partitions(3)
                .iter()
                .map(QueueName::as_str)
                .collect::<Vec<_>>(),
            ["orders", "orders.1", "orders.2"]
        );
        assert_eq!(
            q.partitions(0),
            std::slice::from_ref(&q),
            "a queue is at least itself"
        );
        for bad in [
            "orders.0",
            "orders.01",
            "orders.64",
            "orders.",
            ".1",
            "orders.1.2",
            "orders.-1",
            "orders.x",
        ] {
            assert!(QueueName::parse(bad).is_err(), "{bad}");
        }
        assert!(QueueName::parse("orders.63").is_ok());
        Ok(())
    }

    #[test]
    fn out_of_range_task_ids_are_refused() {
        assert!(TaskId::parse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ").is_ok());
        assert!(TaskId::parse("8ZZZZZZZZZZZZZZZZZZZZZZZZZ").is_err());
        assert!(TaskId::parse("ZZZZZZZZZZZZZZZZZZZZZZZZZZ").is_err());
        assert!(TaskId::parse("zzzzzzzzzzzzzzzzzzzzzzzzzz").is_err());
    }

    #[test]
    fn task_ids_round_trip() {
        let id = TaskId::new();
        assert_eq!(TaskId::parse(&id.to_string()), Ok(id));
        assert!(TaskId::parse("not-an-id").is_err());
    }
}
