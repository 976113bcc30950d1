//! Where Redis is and how to connect to it: one server (`redis://`, `rediss://`), the primary that
//! Redis Sentinel names (`redis+sentinel://`), or a Redis Cluster (`redis+cluster://`); a
//! connection pool over any of them with timeouts that fail fast when Redis is down, and a shared
//! connection that follows a Sentinel failover or the cluster's slots by itself.
//!
//! Sentinel support is the `redis` crate's own (`redis::sentinel`): this module only parses the URL,
//! asks the crate for the current primary when it (re)connects, and forgets a connection that broke
//! or that answers as a replica (`READONLY` after a failover), so the next command asks again.
//!
//! Cluster support is the crate's too (`redis::cluster_async`): a `ClusterConnection` routes each
//! command, script call and pipeline to the node that holds its slot and follows `MOVED`/`ASK` and
//! failovers. A pipeline must stay within one slot (the crate sends it whole to one node); the
//! broker groups its commands by hash tag so it does. Commands that must see every node (a `SCAN`
//! of every key) go through [`SharedConnection::scan`].

use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, Cmd, ConnectionAddr, Pipeline, RedisError, RedisFuture, Value};
use tokio::sync::{Mutex, OnceCell};

pub use crate::urls::{
    is_cluster_url, is_sentinel_url, mask_sentinel_url, ClusterUrl, SentinelUrl, SENTINEL_PORT,
};

/// A pool that could not be built, or a Redis URL that cannot be used (an unreachable server only
/// shows at first use).
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

/// The pool of Redis connections every process uses for its short commands.
pub type Pool = managed::Pool<RedisManager>;
/// A connection taken from [`Pool`] (dereferences to a [`RedisConnection`]).
pub type PooledConnection = managed::Object<RedisManager>;
/// Why a connection could not be taken from the pool.
pub type PoolError = managed::PoolError<RedisError>;

/// Where Redis is: parsed once from `REDIS_URL`.
#[derive(Clone)]
pub enum RedisTarget {
    /// One server: `redis://`, `rediss://`, `redis+unix://`, `unix://`.
    Direct(Box<redis::Client>),
    /// The primary of a Sentinel-monitored service: `redis+sentinel://` or `rediss+sentinel://`.
    Sentinel(Arc<SentinelTarget>),
    /// A Redis Cluster: `redis+cluster://` or `rediss+cluster://`.
    Cluster(Arc<ClusterTarget>),
}

/// A Redis Cluster: the crate's clients, and the one connection (to every node, multiplexed) that
/// every short command of the process shares, made at first use.
pub struct ClusterTarget {
    /// Short commands: [`RESPONSE_TIMEOUT`] per attempt and overall, few retries, so callers fail
    /// fast (the api answers 503) while a node is down.
    short: ClusterClient,
    /// Blocking commands (`BLMOVE`): no response timeout; each waiter has a connection of its own.
    blocking: ClusterClient,
    shared: OnceCell<ClusterConnection>,
    nodes: String,
}

impl ClusterTarget {
    /// The shared connection, connected at the first call (a failed first connection is tried
    /// again by the next call; once made, the crate reconnects to nodes by itself).
    async fn connection(&self) -> Result<ClusterConnection, RedisError> {
        self.shared
            .get_or_try_init(|| async {
                self.short
                    .get_async_connection_with_config(
                        ClusterConfig::new()
                            .set_connection_timeout(CONNECT_TIMEOUT)
                            .set_response_timeout(RESPONSE_TIMEOUT),
                    )
                    .await
            })
            .await
            .cloned()
    }
}

/// A Sentinel-monitored service: the crate's client, asked for the primary at each (re)connection.
pub struct SentinelTarget {
    client: Mutex<SentinelClient>,
    service: String,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisTarget::Direct(_) => f.write_str("RedisTarget::Direct"),
            RedisTarget::Sentinel(s) => write!(f, "RedisTarget::Sentinel({})", s.service),
            RedisTarget::Cluster(c) => write!(f, "RedisTarget::Cluster({})", c.nodes),
        }
    }
}

/// The crate's Sentinel client for a parsed URL.
fn sentinel_client(u: &SentinelUrl) -> Result<SentinelClient, RedisError> {
    let addrs = u.sentinels.iter().map(|(host, port)| {
        if u.tls {
            ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.clone(), *port)
        }
    });
    let mut b = SentinelClientBuilder::new(addrs, &u.service, SentinelServerType::Master)?
        .set_client_to_redis_db(u.db);
    if u.tls {
        b = b
            .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
    }
    if let Some(u) = &u.username {
        b = b.set_client_to_redis_username(u);
    }
    if let Some(p) = &u.password {
        b = b.set_client_to_redis_password(p);
    }
    if let Some(u) = &u.sentinel_username {
        b = b.set_client_to_sentinel_username(u);
    }
    if let Some(p) = &u.sentinel_password {
        b = b.set_client_to_sentinel_password(p);
    }
    b.build()
}

/// The crate's cluster client for a parsed URL; `response_timeout` bounds each attempt and the
/// whole of a command (retries included) when set.
fn cluster_client(
    u: &ClusterUrl,
    response_timeout: Option<Duration>,
) -> Result<ClusterClient, RedisError> {
    let scheme = if u.tls { "rediss" } else { "redis" };
    let nodes: Vec<String> = u
        .nodes
        .iter()
        .map(|(host, port)| {
            if host.contains(':') {
                format!("{scheme}://[{host}]:{port}")
            } else {
                format!("{scheme}://{host}:{port}")
            }
        })
        .collect();
    let mut b = ClusterClientBuilder::new(nodes)
        .connection_timeout(CONNECT_TIMEOUT)
        .retries(3)
        .min_retry_wait(50)
        .max_retry_wait(500);
    if let Some(t) = response_timeout {
        b = b.response_timeout(t);
    }
    if u.tls {
        b = b.tls(redis::TlsMode::Secure);
    }
    if let Some(user) = &u.username {
        b = b.username(user);
    }
    if let Some(p) = &u.password {
        b = b.password(p);
    }
    b.build()
}

impl RedisTarget {
    /// Parses `REDIS_URL`; nothing connects yet.
    pub fn parse(url: &str) -> Result<Self, RedisPoolError> {
        let fail = |message: String| RedisPoolError {
            url: crate::urls::mask_password(url),
            message,
        };
        if is_cluster_url(url) {
            let parsed = ClusterUrl::parse(url).map_err(|e| fail(format!("expected {e}")))?;
            let nodes = parsed
                .nodes
                .iter()
                .map(|(h, p)| format!("{h}:{p}"))
                .collect::<Vec<_>>()
                .join(",");
            Ok(RedisTarget::Cluster(Arc::new(ClusterTarget {
                short: cluster_client(&parsed, Some(RESPONSE_TIMEOUT))
                    .map_err(|e| fail(e.to_string()))?,
                blocking: cluster_client(&parsed, None).map_err(|e| fail(e.to_string()))?,
                shared: OnceCell::new(),
                nodes,
            })))
        } else if is_sentinel_url(url) {
            let parsed = SentinelUrl::parse(url).map_err(|e| fail(format!("expected {e}")))?;
            let client = sentinel_client(&parsed).map_err(|e| fail(e.to_string()))?;
            Ok(RedisTarget::Sentinel(Arc::new(SentinelTarget {
                client: Mutex::new(client),
                service: parsed.service,
            })))
        } else {
            Ok(RedisTarget::Direct(Box::new(
                redis::Client::open(url).map_err(|e| fail(e.to_string()))?,
            )))
        }
    }

    /// True when the primary is found through Sentinels.
    pub fn is_sentinel(&self) -> bool {
        matches!(self, RedisTarget::Sentinel(_))
    }

    /// True for a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisTarget::Cluster(_))
    }

    /// A connection for short commands: a new multiplexed one to the server or to the primary the
    /// Sentinels name now; for a cluster, the process's shared cluster connection.
    pub async fn connect(
        &self,
        cfg: &AsyncConnectionConfig,
    ) -> Result<RedisConnection, RedisError> {
        match self {
            RedisTarget::Cluster(c) => Ok(RedisConnection::Cluster(c.connection().await?)),
            _ => Ok(RedisConnection::Single(self.connect_single(cfg).await?)),
        }
    }

    /// A connection of its own for blocking commands (no response timeout): a new multiplexed one,
    /// or for a cluster a new cluster connection (a blocked command holds its node connection,
    /// so it cannot share one), which routes the command to the node of its key.
    pub async fn connect_blocking(&self) -> Result<RedisConnection, RedisError> {
        match self {
            RedisTarget::Cluster(c) => Ok(RedisConnection::Cluster(
                c.blocking
                    .get_async_connection_with_config(
                        ClusterConfig::new().set_connection_timeout(Duration::from_secs(2)),
                    )
                    .await?,
            )),
            _ => {
                let cfg = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(None);
                Ok(RedisConnection::Single(self.connect_single(&cfg).await?))
            }
        }
    }

    async fn connect_single(
        &self,
        cfg: &AsyncConnectionConfig,
    ) -> Result<MultiplexedConnection, RedisError> {
        match self {
            RedisTarget::Cluster(c) => Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a Redis Cluster has no single server to connect to",
                c.nodes.clone(),
            ))),
            RedisTarget::Direct(client) => {
                client
                    .get_multiplexed_async_connection_with_config(cfg)
                    .await
            }
            RedisTarget::Sentinel(s) => {
                // The crate asks each Sentinel in turn for the primary's address; bounded so a
                // Sentinel that accepts and never answers cannot hold every caller.
                let client = tokio::time::timeout(CONNECT_TIMEOUT * 3, async {
                    s.client.lock().await.async_get_client().await
                })
                .await
                .map_err(|_| {
                    RedisError::from((
                        redis::ErrorKind::Io,
                        "no Sentinel named the primary in time",
                        s.service.clone(),
                    ))
                })??;
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(cfg)
                    .await?;
                // Between a failover and the Sentinels' next answer the old primary may still be
                // named; it answers as a replica, and writes would fail with READONLY.
                if !is_primary(&mut conn).await? {
                    return Err(RedisError::from((
                        redis::ErrorKind::Io,
                        "the server the Sentinels named is not the primary (a failover is under way)",
                        s.service.clone(),
                    )));
                }
                Ok(conn)
            }
        }
    }

    /// The connection every short command of a process shares: for one server the crate's
    /// reconnecting `ConnectionManager`; under Sentinel a connection that asks the Sentinels
    /// again after it broke or found itself on a replica.
    pub fn shared(&self) -> Result<SharedConnection, RedisError> {
        match self {
            RedisTarget::Direct(client) => {
                let mcfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                Ok(SharedConnection::Direct(
                    ConnectionManager::new_lazy_with_config((**client).clone(), mcfg)?,
                ))
            }
            RedisTarget::Sentinel(_) => Ok(SharedConnection::Sentinel(FollowingConnection {
                target: self.clone(),
                current: Arc::new(Mutex::new(None)),
                db: 0,
            })),
            RedisTarget::Cluster(c) => Ok(SharedConnection::Cluster(LazyCluster {
                target: Arc::clone(c),
            })),
        }
    }
}

async fn is_primary(conn: &mut MultiplexedConnection) -> Result<bool, RedisError> {
    let role: Vec<Value> = redis::cmd("ROLE").query_async(conn).await?;
    Ok(
        matches!(role.first(), Some(Value::BulkString(b)) if b == b"master")
            || matches!(role.first(), Some(Value::SimpleString(s)) if s == "master"),
    )
}

/// True when an error means the connection is no use any more (broken, or on a replica).
fn needs_new_connection(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.code() == Some("READONLY")
        || e.code() == Some("LOADING")
}

/// The shared connection of a process (see [`RedisTarget::shared`]).
#[derive(Clone)]
pub enum SharedConnection {
    Direct(ConnectionManager),
    Sentinel(FollowingConnection),
    Cluster(LazyCluster),
}

/// The cluster connection a [`ClusterTarget`] shares, connected at its first command.
#[derive(Clone)]
pub struct LazyCluster {
    target: Arc<ClusterTarget>,
}

impl ConnectionLike for LazyCluster {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            self.target
                .connection()
                .await?
                .req_packed_command(cmd)
                .await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.target
                .connection()
                .await?
                .req_packed_commands(cmd, offset, count)
                .await
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// The address a cluster connection names a node by (`host:port`), as routing wants it.
fn node_route(addr: &str) -> Option<RoutingInfo> {
    let (host, port) = addr.rsplit_once(':')?;
    Some(RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
        host: host.to_owned(),
        port: port.parse().ok()?,
    }))
}

/// `SCAN cursor MATCH pattern COUNT 1000`.
fn scan_cmd(cursor: u64, pattern: &str) -> Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000);
    cmd
}

impl SharedConnection {
    /// True on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, SharedConnection::Cluster(_))
    }

    /// Every key matching `pattern` (a `SCAN` loop, never `KEYS`). With `slot_of`, only the keys of
    /// that key's hash slot are looked for: on a cluster only its node is scanned. Without it, on a
    /// cluster every primary is scanned, each with its own cursor. For tests, cleanup and debugging
    /// (O(keys)).
    pub async fn scan(
        &mut self,
        pattern: &str,
        slot_of: Option<&str>,
    ) -> Result<Vec<String>, RedisError> {
        let mut out = Vec::new();
        let SharedConnection::Cluster(lazy) = self else {
            let mut cursor = 0;
            loop {
                let (next, keys): (u64, Vec<String>) =
                    scan_cmd(cursor, pattern).query_async(self).await?;
                out.extend(keys);
                if next == 0 {
                    return Ok(out);
                }
                cursor = next;
            }
        };
        let mut conn = lazy.target.connection().await?;
        let routes: Vec<RoutingInfo> = match slot_of {
            Some(key) => vec![RoutingInfo::SingleNode(
                SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master)),
            )],
            None => {
                // Without a response policy the crate answers a map of node address -> reply:
                // the addresses of the primaries.
                let each = conn
                    .route_command(
                        redis::cmd("PING"),
                        RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
                    )
                    .await?;
                let Value::Map(nodes) = each else {
                    return Err(RedisError::from((
                        redis::ErrorKind::Client,
                        "a PING of every primary did not answer per node",
                    )));
                };
                nodes
                    .iter()
                    .filter_map(|(addr, _)| {
                        redis::from_redis_value_ref::<String>(addr)
                            .ok()
                            .and_then(|a| node_route(&a))
                    })
                    .collect()
            }
        };
        for route in routes {
            let mut cursor = 0;
            loop {
                let reply = conn
                    .route_command(scan_cmd(cursor, pattern), route.clone())
                    .await?;
                let (next, keys): (u64, Vec<String>) = redis::from_redis_value(reply)?;
                out.extend(keys);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(out)
    }
}

/// A multiplexed connection to the Sentinels' current primary, remade on the next command after it
/// broke or found itself on a replica. Clones share the connection.
#[derive(Clone)]
pub struct FollowingConnection {
    target: RedisTarget,
    current: Arc<Mutex<Option<MultiplexedConnection>>>,
    db: i64,
}

impl FollowingConnection {
    async fn connection(&mut self) -> Result<MultiplexedConnection, RedisError> {
        let mut current = self.current.lock().await;
        if let Some(c) = &*current {
            return Ok(c.clone());
        }
        let c = self.target.connect_single(&connection_config()).await?;
        *current = Some(c.clone());
        Ok(c)
    }

    async fn forget_if_broken(&self, e: &RedisError) {
        if needs_new_connection(e) {
            *self.current.lock().await = None;
        }
    }
}

impl ConnectionLike for FollowingConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut conn = self.connection().await?;
            let result = conn.req_packed_command(cmd).await;
            if let Err(e) = &result {
                self.forget_if_broken(e).await;
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut conn = self.connection().await?;
            let result = conn.req_packed_commands(cmd, offset, count).await;
            if let Err(e) = &result {
                self.forget_if_broken(e).await;
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.db
    }
}

impl ConnectionLike for SharedConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            SharedConnection::Direct(c) => c.req_packed_command(cmd),
            SharedConnection::Sentinel(c) => c.req_packed_command(cmd),
            SharedConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            SharedConnection::Direct(c) => c.req_packed_commands(cmd, offset, count),
            SharedConnection::Sentinel(c) => c.req_packed_commands(cmd, offset, count),
            SharedConnection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            SharedConnection::Direct(c) => c.get_db(),
            SharedConnection::Sentinel(c) => c.get_db(),
            SharedConnection::Cluster(c) => c.get_db(),
        }
    }
}

/// A connection of the pool, or a blocking one ([`RedisTarget::connect_blocking`]): to one server,
/// or to a cluster (every node, each command routed to its slot's node).
#[derive(Clone)]
pub enum RedisConnection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(c) => c.req_packed_command(cmd),
            RedisConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(c) => c.req_packed_commands(cmd, offset, count),
            RedisConnection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(c) => c.get_db(),
            RedisConnection::Cluster(c) => c.get_db(),
        }
    }
}

/// Makes the pool's connections: to the server, to the primary the Sentinels name, or to a
/// cluster. Each is a connection of its own (never the process's shared one), so a command that
/// blocks its connection (`WAIT`) holds back nobody else's.
pub struct RedisManager {
    target: RedisTarget,
    config: AsyncConnectionConfig,
}

impl std::fmt::Debug for RedisManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisManager")
            .field("target", &self.target)
            .finish()
    }
}

impl managed::Manager for RedisManager {
    type Type = RedisConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<RedisConnection, RedisError> {
        match &self.target {
            RedisTarget::Cluster(c) => Ok(RedisConnection::Cluster(
                c.short
                    .get_async_connection_with_config(
                        ClusterConfig::new()
                            .set_connection_timeout(CONNECT_TIMEOUT)
                            .set_response_timeout(RESPONSE_TIMEOUT),
                    )
                    .await?,
            )),
            _ => self.target.connect(&self.config).await,
        }
    }

    async fn recycle(&self, conn: &mut RedisConnection, m: &Metrics) -> RecycleResult<RedisError> {
        // A connection given back moments ago is taken as it is: its users drop one that failed
        // (`discard`), and a round trip per checkout would double the cost of a waiting write.
        if m.last_used() < RECHECK_AFTER {
            return Ok(());
        }
        let conn = match conn {
            // The crate's cluster connection reconnects to its nodes and follows the slots by
            // itself; a PING would reach every primary and fail while one fails over.
            RedisConnection::Cluster(_) => return Ok(()),
            RedisConnection::Single(c) => c,
        };
        if self.target.is_sentinel() {
            // After a failover the old primary may be back as a replica: such a connection is
            // dropped so the next one asks the Sentinels.
            return match is_primary(conn).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(RecycleError::message("the server is a replica now")),
                Err(e) => Err(RecycleError::Backend(e)),
            };
        }
        let pong: String = redis::cmd("PING").query_async(conn).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(RecycleError::message("unexpected answer to PING"))
        }
    }
}

/// Builds a pool of `size` multiplexed connections. Connections are made lazily and remade after
/// Redis comes back (or, under Sentinel, after a failover), so processes recover on their own.
pub fn create_pool(url: &str, size: usize) -> Result<Pool, RedisPoolError> {
    let target = RedisTarget::parse(url)?;
    create_pool_for(target, size).map_err(|message| RedisPoolError {
        url: crate::urls::mask_password(url),
        message,
    })
}

/// Builds a pool over an already parsed target.
pub fn create_pool_for(target: RedisTarget, size: usize) -> Result<Pool, String> {
    let manager = RedisManager {
        target,
        config: connection_config(),
    };
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(deadpool::Runtime::Tokio1)
        .timeouts(managed::Timeouts {
            wait: Some(Duration::from_secs(2)),
            create: Some(CONNECT_TIMEOUT * 4),
            recycle: Some(Duration::from_secs(1)),
        })
        .build()
        .map_err(|e| e.to_string())
}

/// How long a pooled connection may sit unused before its next checkout checks it (`PING`, or
/// under Sentinel `ROLE`).
const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// Drops a pooled connection instead of giving it back: after an error it may be broken or, under
/// Sentinel, on a replica, and the next caller should not be the one to find out.
pub fn discard(conn: PooledConnection) {
    drop(managed::Object::take(conn));
}

/// The target a pool connects to (the broker builds its other connections from it).
pub fn pool_target(pool: &Pool) -> RedisTarget {
    pool.manager().target.clone()
}

/// The connection settings used for pooled connections.
pub fn connection_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
}
