//! Test harness shared by the integration tests: each test gets its own Redis key prefix and, when
//! it needs one, its own freshly created and migrated PostgreSQL database; both are removed at the end.

use std::future::Future;
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use faena_broker::Broker;
use faena_core::settings::BrokerSettings;

/// The Redis URL tests use: `FAENA_TEST_REDIS_URL`, else `REDIS_URL`, else the loopback default.
pub fn redis_url() -> String {
    std::env::var("FAENA_TEST_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The PostgreSQL URL tests derive their databases from: `FAENA_TEST_DATABASE_URL`, else
/// `DATABASE_URL`, else the loopback default.
pub fn database_url() -> String {
    std::env::var("FAENA_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A unique name for this test's data.
pub fn unique(label: &str) -> String {
    format!(
        "t_{label}_{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    )
}

/// An isolated broker: its own key prefix, deleted on drop.
pub struct TestRedis {
    pub broker: Broker,
    pub prefix: String,
    pub url: String,
}

impl TestRedis {
    /// A broker with default settings under a fresh prefix.
    pub fn new(label: &str) -> anyhow::Result<Self> {
        Self::with(label, |_| {})
    }

    /// A broker whose settings the test adjusts (short leases, short retention...).
    pub fn with(label: &str, tweak: impl FnOnce(&mut BrokerSettings)) -> anyhow::Result<Self> {
        Self::on(&redis_url(), label, tweak)
    }

    /// Like [`TestRedis::with`], on the Redis at `url` (an [`OwnRedis`]).
    pub fn on(
        url: &str,
        label: &str,
        tweak: impl FnOnce(&mut BrokerSettings),
    ) -> anyhow::Result<Self> {
        let url = url.to_owned();
        let prefix = unique(label);
        let mut cfg = BrokerSettings {
            prefix: prefix.clone(),
            ..BrokerSettings::default()
        };
        tweak(&mut cfg);
        let pool = faena_core::redis_pool::create_pool(&url, 32)?;
        Ok(Self {
            broker: Broker::new(pool, &url, cfg, faena_catalog::catalog())?,
            prefix,
            url,
        })
    }

    /// A second broker handle over the same prefix and settings (another "process").
    pub fn same_prefix(&self) -> anyhow::Result<Broker> {
        let pool = faena_core::redis_pool::create_pool(&self.url, 32)?;
        Ok(Broker::new(
            pool,
            &self.url,
            self.broker.settings().clone(),
            faena_catalog::catalog(),
        )?)
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        // Synchronous cleanup so it runs even when the test panicked.
        let pattern = self.broker.global_keys().all_pattern();
        if let Ok(client) = redis::Client::open(self.url.as_str()) {
            if let Ok(mut conn) = client.get_connection() {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(&pattern)
                    .query(&mut conn)
                    .unwrap_or_default();
                for chunk in keys.chunks(1000) {
                    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut conn);
                }
            }
        }
    }
}

/// A fresh, migrated database, dropped on drop.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin_url: String,
}

fn with_db(url: &str, db: &str) -> String {
    match url.rfind('/') {
        Some(i) if url[..i].contains("://") && url[i + 1..].split('?').count() >= 1 => {
            let query = url[i + 1..]
                .split_once('?')
                .map(|(_, q)| format!("?{q}"))
                .unwrap_or_default();
            format!("{}/{db}{query}", &url[..i])
        }
        _ => format!("{url}/{db}"),
    }
}

impl TestDb {
    pub async fn new(label: &str) -> anyhow::Result<Self> {
        let admin_url = with_db(&database_url(), "postgres");
        let name = unique(label);
        let mut conn = AsyncPgConnection::establish(&admin_url).await?;
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await?;
        let url = with_db(&admin_url, &name);
        faena_core::db::run_migrations(&url).await?;
        Ok(Self {
            name,
            url,
            admin_url,
        })
    }

    /// A database with no migrations applied (for testing the refusal to start).
    pub async fn empty(label: &str) -> anyhow::Result<Self> {
        let admin_url = with_db(&database_url(), "postgres");
        let name = unique(label);
        let mut conn = AsyncPgConnection::establish(&admin_url).await?;
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await?;
        let url = with_db(&admin_url, &name);
        Ok(Self {
            name,
            url,
            admin_url,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        // A thread with its own runtime: Drop may run inside a runtime that cannot block.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = AsyncPgConnection::establish(&admin).await {
                    let _ = diesel::sql_query(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    ))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// Polls `check` until it returns `Some`, or fails after `deadline` with `what` in the message.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if start.elapsed() > deadline {
            anyhow::bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A private redis-server on a free loopback port, for tests that stop, kill, pause and start Redis
/// under a running process. Stopped and its directory removed on drop.
pub struct OwnRedis {
    port: u16,
    child: Option<std::process::Child>,
    dir: std::path::PathBuf,
    password: Option<String>,
    durable: bool,
    /// More `redis-server` arguments (`--replicaof ...`).
    extra: Vec<String>,
    /// A Sentinel's configuration (written to its directory; Sentinel rewrites it).
    sentinel_conf: Option<String>,
}

impl OwnRedis {
    /// Starts one and waits until it answers.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(None).await
    }

    /// Starts one that requires `password` (`requirepass`).
    pub async fn start_with_password(password: &str) -> anyhow::Result<Self> {
        Self::start_with(Some(password.to_owned())).await
    }

    /// Starts one that logs every write before answering (`appendonly yes`, `appendfsync always`):
    /// after a `kill -9` and [`OwnRedis::restart`] it has every write it acknowledged.
    pub async fn start_durable() -> anyhow::Result<Self> {
        let mut r = Self::unstarted(None)?;
        r.durable = true;
        r.restart().await?;
        Ok(r)
    }

    async fn start_with(password: Option<String>) -> anyhow::Result<Self> {
        let mut r = Self::unstarted(password)?;
        r.restart().await?;
        Ok(r)
    }

    fn unstarted(password: Option<String>) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        Ok(Self {
            port,
            child: None,
            dir: std::env::temp_dir().join(unique("redis")),
            password,
            durable: false,
            extra: Vec::new(),
            sentinel_conf: None,
        })
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL (with the password, when it has one).
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Starts it again on the same port and waits until it answers: empty, or for a durable one
    /// with what its append-only file holds.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let persistence: &[&str] = if self.durable {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        let mut cmd = std::process::Command::new("redis-server");
        if let Some(conf) = &self.sentinel_conf {
            let path = self.dir.join("sentinel.conf");
            if !path.exists() {
                std::fs::write(&path, conf)?;
            }
            cmd.arg(&path).arg("--sentinel");
        }
        let child = cmd
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(persistence)
            .arg("--dir")
            .arg(&self.dir)
            .args(
                self.password
                    .iter()
                    .flat_map(|p| ["--requirepass".to_owned(), p.clone()]),
            )
            .args(&self.extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run redis-server (install redis-server): {e}"))?;
        self.child = Some(child);
        let url = self.url();
        wait_for(
            "the private redis to answer",
            Duration::from_secs(10),
            || async {
                Ok(redis::Client::open(url.as_str())?
                    .get_multiplexed_async_connection()
                    .await
                    .is_ok()
                    .then_some(()))
            },
        )
        .await
    }

    /// Sends `signal` (`-STOP`, `-CONT`, `-9`...) to the server with kill(1).
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let child = self
            .child
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the private redis is not running"))?;
        let status = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill {signal} of redis-server failed");
        Ok(())
    }

    /// `kill -9`, and waits for it to be gone.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.signal("-9")?;
        if let Some(mut c) = self.child.take() {
            c.wait()?;
        }
        Ok(())
    }

    /// Kills it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A Sentinel-monitored Redis on loopback: one primary, `replicas` replicas and `sentinels`
/// Sentinels (quorum: a majority), each a private `redis-server` owned by the test.
pub struct SentinelSet {
    /// The data nodes; the first started as the primary (after a failover, ask
    /// [`SentinelSet::primary_port`]).
    pub nodes: Vec<OwnRedis>,
    pub sentinels: Vec<OwnRedis>,
    pub service: String,
}

impl SentinelSet {
    /// Starts the nodes, then the Sentinels, and waits until every Sentinel knows every replica
    /// and the other Sentinels. Sentinels declare a node down after 1 s.
    pub async fn start(replicas: usize, sentinels: usize) -> anyhow::Result<Self> {
        let service = "faena".to_owned();
        let mut nodes = vec![OwnRedis::start_with(None).await?];
        let primary = nodes[0].port;
        for _ in 0..replicas {
            let mut r = OwnRedis::unstarted(None)?;
            r.extra = vec![
                "--replicaof".into(),
                "127.0.0.1".into(),
                primary.to_string(),
            ];
            r.restart().await?;
            nodes.push(r);
        }
        let quorum = sentinels / 2 + 1;
        let mut sents = Vec::new();
        for _ in 0..sentinels {
            let mut s = OwnRedis::unstarted(None)?;
            s.sentinel_conf = Some(format!(
                "sentinel monitor {service} 127.0.0.1 {primary} {quorum}\n\
                 sentinel down-after-milliseconds {service} 1000\n\
                 sentinel failover-timeout {service} 4000\n\
                 sentinel parallel-syncs {service} 2\n"
            ));
            s.restart().await?;
            sents.push(s);
        }
        let set = Self {
            nodes,
            sentinels: sents,
            service,
        };
        for s in &set.sentinels {
            let url = s.url();
            let service = set.service.clone();
            wait_for(
                "each Sentinel to see every replica and Sentinel",
                Duration::from_secs(30),
                || {
                    let (url, service) = (url.clone(), service.clone());
                    async move {
                        let mut c = redis::Client::open(url.as_str())?
                            .get_multiplexed_async_connection()
                            .await?;
                        let reps: Vec<redis::Value> = redis::cmd("SENTINEL")
                            .arg("REPLICAS")
                            .arg(&service)
                            .query_async(&mut c)
                            .await?;
                        let others: Vec<redis::Value> = redis::cmd("SENTINEL")
                            .arg("SENTINELS")
                            .arg(&service)
                            .query_async(&mut c)
                            .await?;
                        Ok((reps.len() == replicas && others.len() + 1 == sentinels).then_some(()))
                    }
                },
            )
            .await?;
        }
        Ok(set)
    }

    /// `redis+sentinel://` URL naming every Sentinel.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{}", hosts.join(","), self.service)
    }

    /// The primary's port as the first Sentinel that answers names it.
    pub async fn primary_port(&self) -> anyhow::Result<u16> {
        for s in &self.sentinels {
            let Ok(client) = redis::Client::open(s.url().as_str()) else {
                continue;
            };
            let Ok(mut c) = client.get_multiplexed_async_connection().await else {
                continue;
            };
            let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(&self.service)
                .query_async(&mut c)
                .await?;
            if let Some((_, port)) = addr {
                return Ok(port);
            }
        }
        anyhow::bail!("no Sentinel names a primary")
    }

    /// The data node listening on `port`.
    pub fn node_mut(&mut self, port: u16) -> anyhow::Result<&mut OwnRedis> {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .ok_or_else(|| anyhow::anyhow!("no node of the set listens on {port}"))
    }
}

/// A Redis Cluster on loopback: `primaries` private `redis-server --cluster-enabled yes` processes,
/// the 16384 slots split evenly between them in order (`CLUSTER ADDSLOTSRANGE`, `CLUSTER MEET`),
/// each with its data and `nodes.conf` under its own temporary directory. Stopped on drop.
pub struct ClusterSet {
    /// The primaries; `nodes[i]` holds the slots `ranges[i]`.
    pub nodes: Vec<OwnRedis>,
    /// The first and last slot of each primary.
    pub ranges: Vec<(u16, u16)>,
}

async fn cluster_info(url: &str) -> anyhow::Result<String> {
    let mut c = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    Ok(redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut c)
        .await?)
}

impl ClusterSet {
    /// Starts the primaries, gives each its slots, introduces them and waits until every node
    /// says `cluster_state:ok` and knows every other.
    pub async fn start(primaries: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(primaries > 0, "a cluster needs a primary");
        let mut nodes = Vec::new();
        for _ in 0..primaries {
            let mut n = OwnRedis::unstarted(None)?;
            // The bus port is port + 10000 by default, which may be taken or past 65535.
            let bus = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            n.extra = [
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &bus.to_string(),
                "--cluster-node-timeout",
                "2000",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            n.restart().await?;
            nodes.push((n, bus));
        }
        let per = 16384 / primaries;
        let mut ranges = Vec::new();
        for i in 0..primaries {
            let first = i * per;
            let last = if i + 1 == primaries {
                16383
            } else {
                (i + 1) * per - 1
            };
            ranges.push((first as u16, last as u16));
        }
        for ((n, _), (first, last)) in nodes.iter().zip(&ranges) {
            let mut c = redis::Client::open(n.url().as_str())?
                .get_multiplexed_async_connection()
                .await?;
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(*first)
                .arg(*last)
                .query_async(&mut c)
                .await?;
        }
        if let Some(((first, _), others)) = nodes.split_first() {
            let mut c = redis::Client::open(first.url().as_str())?
                .get_multiplexed_async_connection()
                .await?;
            for (n, bus) in others {
                let _: () = redis::cmd("CLUSTER")
                    .arg("MEET")
                    .arg("127.0.0.1")
                    .arg(n.port)
                    .arg(*bus)
                    .query_async(&mut c)
                    .await?;
            }
        }
        let set = Self {
            nodes: nodes.into_iter().map(|(n, _)| n).collect(),
            ranges,
        };
        for n in &set.nodes {
            let url = n.url();
            wait_for(
                "every cluster node to know the others and serve every slot",
                Duration::from_secs(30),
                || {
                    let url = url.clone();
                    async move {
                        let info = cluster_info(&url).await?;
                        let ok = info.contains("cluster_state:ok")
                            && info.contains(&format!("cluster_known_nodes:{primaries}\r"))
                            && info.contains("cluster_slots_ok:16384");
                        Ok(ok.then_some(()))
                    }
                },
            )
            .await?;
        }
        Ok(set)
    }

    /// `redis+cluster://` URL naming every node.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The index in [`ClusterSet::nodes`] of the primary that holds `key`'s slot (asked of the
    /// cluster with `CLUSTER KEYSLOT`).
    pub async fn node_of(&self, key: &str) -> anyhow::Result<usize> {
        // (`first()` would be diesel's `RunQueryDsl::first` here.)
        let first = <[_]>::first(&self.nodes).ok_or_else(|| anyhow::anyhow!("no node"))?;
        let mut c = redis::Client::open(first.url().as_str())?
            .get_multiplexed_async_connection()
            .await?;
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut c)
            .await?;
        self.ranges
            .iter()
            .position(|(a, b)| (*a..=*b).contains(&slot))
            .ok_or_else(|| anyhow::anyhow!("slot {slot} is nobody's"))
    }

    /// How many keys node `i` holds (`DBSIZE` on it alone).
    pub async fn keys_on(&self, i: usize) -> anyhow::Result<u64> {
        let n = self
            .nodes
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("no node {i}"))?;
        let mut c = redis::Client::open(n.url().as_str())?
            .get_multiplexed_async_connection()
            .await?;
        Ok(redis::cmd("DBSIZE").query_async(&mut c).await?)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::with_db;

    #[test]
    fn database_names_are_swapped() {
        assert_eq!(
            with_db("postgres://u@h:5432/faena", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_db("postgres://u@h/faena?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
