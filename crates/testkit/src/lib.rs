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

    /// Each data node's port and what `ROLE` says of it (its role, and for a replica the primary
    /// it follows and its link state), for a failing test's message.
    pub async fn describe(&self) -> String {
        let mut out = Vec::new();
        for n in &self.nodes {
            let role = async {
                let mut c = redis::Client::open(n.url().as_str())?
                    .get_multiplexed_async_connection()
                    .await?;
                let v: redis::Value = redis::cmd("ROLE").query_async(&mut c).await?;
                Ok::<_, anyhow::Error>(format!("{v:?}"))
            };
            let said = tokio::time::timeout(Duration::from_secs(2), role)
                .await
                .map_or_else(
                    |_| "no answer in 2 s".to_owned(),
                    |r| r.unwrap_or_else(|e| e.to_string()),
                );
            out.push(format!("{}: {said}", n.port));
        }
        out.join("; ")
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
/// each with its data and `nodes.conf` under its own temporary directory, and optionally replicas
/// of each (`CLUSTER REPLICATE`). Nodes declare a peer failed after 2 s (`cluster-node-timeout`).
/// Stopped on drop.
///
/// A *shard* is one slot range with its primary and replicas: `nodes[i]`, `replicas[i]` and
/// `ranges[i]` at first. After a failover the primary of shard `i` is another process: ask
/// [`ClusterSet::primary_port`].
pub struct ClusterSet {
    /// The primaries as started; `nodes[i]` holds the slots `ranges[i]` until a failover.
    pub nodes: Vec<OwnRedis>,
    /// The first and last slot of each shard.
    pub ranges: Vec<(u16, u16)>,
    /// The replicas started for each shard (`replicas[i]` replicate `nodes[i]`).
    pub replicas: Vec<Vec<OwnRedis>>,
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

/// One server's answer to a command without arguments after `words` (`CLUSTER MYID`, `ROLE`...).
async fn ask<T: redis::FromRedisValue>(url: &str, words: &[&str]) -> anyhow::Result<T> {
    let mut c = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let mut cmd = redis::cmd(words[0]);
    for w in &words[1..] {
        cmd.arg(*w);
    }
    Ok(cmd.query_async(&mut c).await?)
}

/// A `redis-server` of a cluster, not started: its own bus port (the default, port + 10000, may be
/// taken or past 65535) and a short node timeout so a failover takes a few seconds.
fn cluster_node() -> anyhow::Result<(OwnRedis, u16)> {
    let mut n = OwnRedis::unstarted(None)?;
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
    Ok((n, bus))
}

/// A line of `CLUSTER NODES`: `id addr flags master ping pong epoch link slot...`.
struct NodeLine {
    port: u16,
    flags: Vec<String>,
    epoch: u64,
    slots: Vec<(u16, u16)>,
}

fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let addr = f.get(1)?.split('@').next()?;
            let port = addr.rsplit(':').next()?.parse().ok()?;
            let flags = f.get(2)?.split(',').map(str::to_owned).collect();
            let epoch = f.get(6)?.parse().ok()?;
            let slots = f
                .iter()
                .skip(8)
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|a| (a, a)),
                })
                .collect();
            Some(NodeLine {
                port,
                flags,
                epoch,
                slots,
            })
        })
        .collect()
}

impl ClusterSet {
    /// Starts the primaries, gives each its slots, introduces them and waits until every node
    /// says `cluster_state:ok` and knows every other.
    pub async fn start(primaries: usize) -> anyhow::Result<Self> {
        Self::start_with_replicas(primaries, 0).await
    }

    /// Like [`ClusterSet::start`], with `replicas` replicas of each primary: started with
    /// `--cluster-enabled yes`, introduced with `CLUSTER MEET`, then `CLUSTER REPLICATE`; waits
    /// until every node says `cluster_state:ok` and knows every other, and every replica's link to
    /// its primary is up (so a `WAIT 1` on each primary is answered).
    pub async fn start_with_replicas(primaries: usize, replicas: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(primaries > 0, "a cluster needs a primary");
        let mut nodes = Vec::new();
        for _ in 0..primaries {
            let (mut n, bus) = cluster_node()?;
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
        let mut reps = Vec::new();
        for _ in 0..primaries {
            let mut shard = Vec::new();
            for _ in 0..replicas {
                let (mut n, bus) = cluster_node()?;
                n.restart().await?;
                shard.push((n, bus));
            }
            reps.push(shard);
        }
        if let Some(((first, _), others)) = nodes.split_first() {
            let mut c = redis::Client::open(first.url().as_str())?
                .get_multiplexed_async_connection()
                .await?;
            for (n, bus) in others.iter().chain(reps.iter().flatten()) {
                let _: () = redis::cmd("CLUSTER")
                    .arg("MEET")
                    .arg("127.0.0.1")
                    .arg(n.port)
                    .arg(*bus)
                    .query_async(&mut c)
                    .await?;
            }
        }
        let total = primaries * (1 + replicas);
        let set = Self {
            nodes: nodes.into_iter().map(|(n, _)| n).collect(),
            ranges,
            replicas: reps
                .into_iter()
                .map(|shard| shard.into_iter().map(|(n, _)| n).collect())
                .collect(),
        };
        // A replica can follow its primary once it knows it (the handshake after MEET).
        for (primary, shard) in set.nodes.iter().zip(&set.replicas) {
            let id: String = ask(&primary.url(), &["CLUSTER", "MYID"]).await?;
            for r in shard {
                let url = r.url();
                wait_for(
                    "a replica to know its primary",
                    Duration::from_secs(30),
                    || async {
                        let nodes: String = ask(&url, &["CLUSTER", "NODES"]).await?;
                        Ok(nodes.contains(&id).then_some(()))
                    },
                )
                .await?;
                let _: () = ask(&url, &["CLUSTER", "REPLICATE", &id]).await?;
            }
        }
        for n in set.nodes.iter().chain(set.replicas.iter().flatten()) {
            let url = n.url();
            wait_for(
                "every cluster node to know the others and serve every slot",
                Duration::from_secs(30),
                || {
                    let url = url.clone();
                    async move {
                        let info = cluster_info(&url).await?;
                        let ok = info.contains("cluster_state:ok")
                            && info.contains(&format!("cluster_known_nodes:{total}\r"))
                            && info.contains("cluster_slots_ok:16384");
                        Ok(ok.then_some(()))
                    }
                },
            )
            .await?;
        }
        for r in set.replicas.iter().flatten() {
            set.wait_replica_linked(r.port, Duration::from_secs(30))
                .await?;
        }
        Ok(set)
    }

    /// Waits until the node on `port` is a replica whose link to its primary is up
    /// (`master_link_status:up`: the initial sync is done and it takes the primary's writes).
    pub async fn wait_replica_linked(&self, port: u16, deadline: Duration) -> anyhow::Result<()> {
        let url = self.node(port)?.url();
        wait_for("a replica's link to its primary", deadline, || async {
            let info: String = ask(&url, &["INFO", "replication"]).await?;
            Ok(
                (info.contains("role:slave") && info.contains("master_link_status:up"))
                    .then_some(()),
            )
        })
        .await
    }

    /// `redis+cluster://` URL naming every node (primaries and replicas).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .all()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    fn all(&self) -> impl Iterator<Item = &OwnRedis> {
        self.nodes.iter().chain(self.replicas.iter().flatten())
    }

    /// The node (primary or replica) listening on `port`.
    pub fn node(&self, port: u16) -> anyhow::Result<&OwnRedis> {
        self.all()
            .find(|n| n.port == port)
            .ok_or_else(|| anyhow::anyhow!("no node of the cluster listens on {port}"))
    }

    /// The node (primary or replica) listening on `port`, to kill or restart it.
    pub fn node_mut(&mut self, port: u16) -> anyhow::Result<&mut OwnRedis> {
        self.nodes
            .iter_mut()
            .chain(self.replicas.iter_mut().flatten())
            .find(|n| n.port == port)
            .ok_or_else(|| anyhow::anyhow!("no node of the cluster listens on {port}"))
    }

    /// `CLUSTER NODES` as the first running node that answers sees it.
    async fn cluster_nodes(&self) -> anyhow::Result<Vec<NodeLine>> {
        for n in self.all().filter(|n| n.child.is_some()) {
            if let Ok(text) = ask::<String>(&n.url(), &["CLUSTER", "NODES"]).await {
                return Ok(parse_nodes(&text));
            }
        }
        anyhow::bail!("no node of the cluster answers")
    }

    /// The port of the node that serves shard `i`'s slots now, as a running node sees the cluster
    /// (a primary not flagged failed; after a failover, its promoted replica: of two claims, the
    /// one with the newer configuration epoch, as the cluster itself decides).
    pub async fn primary_port(&self, i: usize) -> anyhow::Result<u16> {
        let (first, _) = *self
            .ranges
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("no shard {i}"))?;
        self.cluster_nodes()
            .await?
            .into_iter()
            .filter(|l| {
                l.flags.iter().any(|f| f == "master")
                    && !l.flags.iter().any(|f| f == "fail" || f == "fail?")
                    && l.slots.iter().any(|(a, b)| (*a..=*b).contains(&first))
            })
            .max_by_key(|l| l.epoch)
            .map(|l| l.port)
            .ok_or_else(|| anyhow::anyhow!("no live primary serves shard {i}"))
    }

    /// `kill -9` of shard `i`'s primary now; returns its port.
    pub async fn kill9_primary(&mut self, i: usize) -> anyhow::Result<u16> {
        let port = self.primary_port(i).await?;
        self.node_mut(port)?.kill9()?;
        Ok(port)
    }

    /// Waits until a replica of shard `i` other than `old` answers `ROLE` as a primary and every
    /// running node says `cluster_state:ok` (the failed primary's slots are served again); returns
    /// the new primary's port.
    pub async fn wait_promoted(
        &self,
        i: usize,
        old: u16,
        deadline: Duration,
    ) -> anyhow::Result<u16> {
        wait_for("a replica promoted to primary", deadline, || async {
            let Ok(port) = self.primary_port(i).await else {
                return Ok(None);
            };
            if port == old {
                return Ok(None);
            }
            let role: Vec<redis::Value> = ask(&self.node(port)?.url(), &["ROLE"]).await?;
            let is_primary =
                matches!(<[_]>::first(&role), Some(redis::Value::BulkString(b)) if b == b"master");
            if !is_primary {
                return Ok(None);
            }
            for n in self.all().filter(|n| n.child.is_some()) {
                if !cluster_info(&n.url()).await?.contains("cluster_state:ok") {
                    return Ok(None);
                }
            }
            Ok(Some(port))
        })
        .await
    }

    /// The index of the shard whose slots hold `key` (asked of the cluster with `CLUSTER KEYSLOT`).
    pub async fn node_of(&self, key: &str) -> anyhow::Result<usize> {
        let slot: u16 = self.slot_of(key).await?;
        self.ranges
            .iter()
            .position(|(a, b)| (*a..=*b).contains(&slot))
            .ok_or_else(|| anyhow::anyhow!("slot {slot} is nobody's"))
    }

    async fn slot_of(&self, key: &str) -> anyhow::Result<u16> {
        for n in self.all().filter(|n| n.child.is_some()) {
            if let Ok(slot) = ask(&n.url(), &["CLUSTER", "KEYSLOT", key]).await {
                return Ok(slot);
            }
        }
        anyhow::bail!("no node of the cluster answers")
    }

    /// How many keys shard `i` holds (`DBSIZE` on its primary alone: [`ClusterSet::nodes`]`[i]`
    /// while it runs, else the one serving the shard now).
    pub async fn keys_on(&self, i: usize) -> anyhow::Result<u64> {
        let n = self
            .nodes
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("no node {i}"))?;
        let url = if n.child.is_some() {
            n.url()
        } else {
            self.node(self.primary_port(i).await?)?.url()
        };
        ask(&url, &["DBSIZE"]).await
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
