//! Faults injected into the real binaries (issue 13): a worker paused past its lease, a worker
//! stopped with SIGTERM mid-job, a worker killed with 500 leased jobs, Redis killed under enqueues,
//! Redis paused, and beats killed and paused. Every execution is counted from the workers'
//! `faena::attempt` lines and every count is asserted exactly.
//!
//! Each test owns its database, its Redis key prefix (or a redis-server of its own when it kills or
//! pauses Redis) and its log directory.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use faena_broker::{Broker, TaskState};
use faena_chaos::{attempts, binary, counts, free_port, overlapping, Counts, Proc, Scratch, Step};
use faena_core::jobs::EnqueueRequest;
use faena_core::periodic::{self, NewPeriodic};
use faena_core::settings::BrokerSettings;
use faena_core::{QueueName, TaskId};
use faena_testkit::{unique, wait_for, OwnRedis, SentinelSet, TestDb, TestRedis};
use serde_json::json;

/// The lease of every test (short, so faults play out in seconds).
const LEASE_SECS: u64 = 2;

/// Where a worker or beat finds Redis, PostgreSQL and its key prefix.
#[derive(Clone)]
struct Target {
    db_url: String,
    redis_url: String,
    prefix: String,
    /// Set for every process of the test (a Sentinel test's `FAENA_REDIS_MIN_REPLICAS`).
    common: Vec<(&'static str, String)>,
}

impl Target {
    fn of(db: &TestDb, r: &TestRedis) -> Self {
        Self {
            db_url: db.url.clone(),
            redis_url: r.url.clone(),
            prefix: r.prefix.clone(),
            common: Vec::new(),
        }
    }

    fn env(&self, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("DATABASE_URL", self.db_url.clone()),
            ("REDIS_URL", self.redis_url.clone()),
            ("FAENA_REDIS_PREFIX", self.prefix.clone()),
            ("FAENA_LEASE_SECS", LEASE_SECS.to_string()),
        ];
        env.extend(self.common.iter().cloned());
        env.extend(extra.iter().cloned());
        env
    }

    fn worker(&self, scratch: &Scratch, name: &str, concurrency: usize) -> anyhow::Result<Proc> {
        self.worker_with(scratch, name, concurrency, &[])
    }

    fn worker_with(
        &self,
        scratch: &Scratch,
        name: &str,
        concurrency: usize,
        extra: &[(&'static str, String)],
    ) -> anyhow::Result<Proc> {
        Proc::start(
            &scratch.dir,
            name,
            &binary("faena-worker")?,
            &[
                "--queues",
                "default",
                "--concurrency",
                &concurrency.to_string(),
            ],
            &self.env(extra),
        )
    }
}

/// A broker on a private redis-server (nothing to clean: the server and its files go with it).
fn own_broker(redis: &OwnRedis, prefix: &str) -> anyhow::Result<Broker> {
    broker_at(&redis.url(), prefix)
}

/// A broker on the Redis `url` names (a server, or a Sentinel service).
fn broker_at(url: &str, prefix: &str) -> anyhow::Result<Broker> {
    let cfg = BrokerSettings {
        prefix: prefix.to_owned(),
        lease: Duration::from_secs(LEASE_SECS),
        ..BrokerSettings::default()
    };
    let pool = faena_core::redis_pool::create_pool(url, 8)?;
    Ok(Broker::new(pool, url, cfg, faena_catalog::catalog())?)
}

/// `n` jobs of `sleep {ms}` with `max_attempts`.
async fn sleeps(
    broker: &Broker,
    n: usize,
    ms: u64,
    max_attempts: u32,
) -> anyhow::Result<Vec<TaskId>> {
    let reqs = (0..n)
        .map(|_| EnqueueRequest {
            kind: "sleep".into(),
            args: json!({ "ms": ms }),
            max_attempts: Some(max_attempts),
            ..Default::default()
        })
        .collect();
    Ok(broker.enqueue_many(reqs).await?)
}

async fn state_and_attempts(broker: &Broker, id: &TaskId) -> anyhow::Result<(TaskState, u32)> {
    let rec = broker
        .task(id)
        .await?
        .with_context(|| format!("no record for {id}"))?;
    Ok((rec.state, rec.attempts))
}

/// Waits until every one of `ids` is SUCCEEDED; fails naming those that are not.
async fn all_succeed(broker: &Broker, ids: &[TaskId], deadline: Duration) -> anyhow::Result<()> {
    let q = QueueName::default_queue();
    let want = ids.len() as u64;
    // A broker error (Redis failing over) is "not yet": the wait goes on until its deadline.
    let waited = wait_for("every job to succeed", deadline, || async {
        Ok(broker
            .stats(&q)
            .await
            .ok()
            .and_then(|s| (s.succeeded >= want).then_some(())))
    })
    .await;
    let mut not_done = Vec::new();
    for id in ids {
        let (state, attempts) = state_and_attempts(broker, id).await?;
        if state != TaskState::Succeeded {
            not_done.push(format!("{id}: {state:?} after {attempts} attempts"));
        }
    }
    anyhow::ensure!(
        not_done.is_empty(),
        "{} of {} jobs did not succeed ({waited:?}): {not_done:?}",
        not_done.len(),
        ids.len()
    );
    Ok(())
}

/// The last `n` lines of `proc`'s log at WARN or ERROR (empty when it cannot be read).
fn warnings_of(proc: &Proc, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(&proc.log).unwrap_or_default();
    let lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\""))
        .map(str::to_owned)
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// Waits until `proc`'s log holds an attempt line matching `pred`.
async fn logged(
    proc: &Proc,
    what: &str,
    deadline: Duration,
    pred: impl Fn(&faena_chaos::AttemptEvent) -> bool,
) -> anyhow::Result<faena_chaos::AttemptEvent> {
    wait_for(what, deadline, || {
        let found = attempts(&[proc]).map(|ev| ev.into_iter().find(|e| pred(e)));
        async move { found }
    })
    .await
}

/// 1. A worker paused (SIGSTOP) past its lease while running, then resumed: another worker runs
///    the job; the paused one, once resumed, stops its attempt without an outcome; exactly one
///    attempt's outcome is recorded and the stale one is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_paused_past_its_lease_loses_the_job_and_its_outcome() -> anyhow::Result<()> {
    let db = TestDb::new("chaos_pause_w").await?;
    let r = TestRedis::with("chaos_pause_w", |c| {
        c.lease = Duration::from_secs(LEASE_SECS)
    })?;
    let scratch = Scratch::new("pause-worker")?;
    let t = Target::of(&db, &r);
    // Long enough that the paused attempt cannot reach its end before its renewal learns the
    // lease is gone (the pause lasts about one lease plus the second worker's start).
    let ids = sleeps(&r.broker, 1, 12_000, 5).await?;
    let id = ids[0];
    let a = t.worker(&scratch, "a", 4)?;
    wait_for(
        "attempt 1 running on a",
        Duration::from_secs(30),
        || async {
            Ok(
                (state_and_attempts(&r.broker, &id).await? == (TaskState::Running, 1))
                    .then_some(()),
            )
        },
    )
    .await?;
    a.signal("-STOP")?;
    let b = t.worker(&scratch, "b", 4)?;
    let retaken = wait_for(
        "attempt 2 running on b",
        Duration::from_secs(LEASE_SECS + 20),
        || async {
            Ok(
                (state_and_attempts(&r.broker, &id).await? == (TaskState::Running, 2))
                    .then_some(()),
            )
        },
    )
    .await;
    a.signal("-CONT")?;
    retaken?;
    let stopped = logged(&a, "a to stop attempt 1", Duration::from_secs(10), |e| {
        e.attempt == 1 && e.step == Step::Stopped
    })
    .await?;
    all_succeed(&r.broker, &ids, Duration::from_secs(30)).await?;

    let events = attempts(&[&a, &b])?;
    let c = counts(&events);
    assert_eq!(
        c.get(&id.to_string()).copied().unwrap_or_default(),
        Counts {
            started: 2,
            succeeded: 1,
            other_end: 0,
            stopped: 1
        },
        "{events:#?}"
    );
    let ended = events
        .iter()
        .find(|e| matches!(e.step, Step::Ended(_)))
        .context("an end line")?;
    assert_eq!((ended.process.as_str(), ended.attempt), ("b", 2));
    assert!(
        stopped.at < ended.at,
        "a stopped its attempt at {} only after b's ended at {}",
        stopped.at,
        ended.at
    );
    assert_eq!(
        state_and_attempts(&r.broker, &id).await?,
        (TaskState::Succeeded, 2)
    );
    let stats = r.broker.stats(&QueueName::default_queue()).await?;
    assert_eq!(stats.stale, 1, "a's refused renewal is counted once");
    assert_eq!(stats.succeeded, 1);
    Ok(())
}

/// 2. SIGTERM to a worker running 20 jobs longer than the lease, a second worker running: the
///    stopping worker keeps its leases and finishes them; no job runs twice; it exits within its
///    stop timeout + 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_jobs_finishes_them_once_and_exits_in_time() -> anyhow::Result<()> {
    const STOP_TIMEOUT_SECS: u64 = 30;
    let db = TestDb::new("chaos_term").await?;
    let r = TestRedis::with("chaos_term", |c| c.lease = Duration::from_secs(LEASE_SECS))?;
    let scratch = Scratch::new("sigterm")?;
    let t = Target::of(&db, &r);
    let q = QueueName::default_queue();
    let ids = sleeps(&r.broker, 20, 5_000, 3).await?;
    let stop = [(
        "FAENA_WORKER_STOP_TIMEOUT_SECS",
        STOP_TIMEOUT_SECS.to_string(),
    )];
    let mut a = t.worker_with(&scratch, "a", 20, &stop)?;
    wait_for("20 jobs running on a", Duration::from_secs(30), || async {
        Ok((r.broker.stats(&q).await?.running == 20).then_some(()))
    })
    .await?;
    let mut b = t.worker_with(&scratch, "b", 20, &stop)?;
    wait_for("b registered", Duration::from_secs(30), || async {
        Ok((r.broker.workers().await?.len() == 2).then_some(()))
    })
    .await?;
    a.signal("-TERM")?;
    let termed = Instant::now();
    let status = a
        .wait_exit(Duration::from_secs(STOP_TIMEOUT_SECS + 5))
        .await?;
    assert!(status.success(), "a exited with {status}");
    assert!(termed.elapsed() <= Duration::from_secs(STOP_TIMEOUT_SECS + 5));
    all_succeed(&r.broker, &ids, Duration::from_secs(20)).await?;
    b.ensure_running()?;

    let events = attempts(&[&a, &b])?;
    assert_eq!(overlapping(&events), Vec::<String>::new(), "{events:#?}");
    let c = counts(&events);
    for id in &ids {
        assert_eq!(
            c.get(&id.to_string()).copied().unwrap_or_default(),
            Counts {
                started: 1,
                succeeded: 1,
                other_end: 0,
                stopped: 0
            },
            "{id}"
        );
        assert_eq!(
            state_and_attempts(&r.broker, id).await?,
            (TaskState::Succeeded, 1)
        );
    }
    assert!(
        events.iter().all(|e| e.process == "a"),
        "b ran none of them"
    );
    assert_eq!(r.broker.stats(&q).await?.stale, 0);
    Ok(())
}

/// 3. `kill -9` of a worker holding 500 leased jobs: another worker has them all running again
///    within the lease + 5 s, and every job succeeds exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_with_500_leased_jobs_loses_none() -> anyhow::Result<()> {
    const N: usize = 500;
    let db = TestDb::new("chaos_kill").await?;
    let r = TestRedis::with("chaos_kill", |c| c.lease = Duration::from_secs(LEASE_SECS))?;
    let scratch = Scratch::new("kill9")?;
    let t = Target::of(&db, &r);
    let q = QueueName::default_queue();
    let ids = sleeps(&r.broker, N, 3_000, 3).await?;
    let mut a = t.worker(&scratch, "a", N)?;
    // Leased is not started: on a loaded host the last leases can precede their attempts' start
    // by a moment, so the kill waits for a's log to show all 500 started.
    wait_for("500 jobs started on a", Duration::from_secs(30), || {
        let started = attempts(&[&a]).map(|ev| {
            ev.iter()
                .filter(|e| e.step == Step::Started)
                .map(|e| e.task_id.clone())
                .collect::<BTreeSet<_>>()
                .len()
        });
        async move { Ok((started? == N).then_some(())) }
    })
    .await?;
    assert_eq!(r.broker.stats(&q).await?.running, N as u64);
    a.kill9()?;
    let killed = Instant::now();
    let b = t.worker(&scratch, "b", N)?;
    wait_for(
        "all 500 running again on b",
        Duration::from_secs(LEASE_SECS + 5),
        || {
            let started = attempts(&[&b]).map(|ev| {
                ev.iter()
                    .filter(|e| e.step == Step::Started)
                    .map(|e| e.task_id.clone())
                    .collect::<BTreeSet<_>>()
                    .len()
            });
            async move { Ok((started? == N).then_some(())) }
        },
    )
    .await?;
    let recovery = killed.elapsed();
    all_succeed(&r.broker, &ids, Duration::from_secs(30)).await?;

    let events = attempts(&[&a, &b])?;
    let c = counts(&events);
    for id in &ids {
        assert_eq!(
            c.get(&id.to_string()).copied().unwrap_or_default(),
            Counts {
                started: 2,
                succeeded: 1,
                other_end: 0,
                stopped: 0
            },
            "{id}: one killed attempt, one that succeeded"
        );
        assert_eq!(
            state_and_attempts(&r.broker, id).await?,
            (TaskState::Succeeded, 2)
        );
    }
    eprintln!("kill -9 with {N} leased jobs: all running again {recovery:?} after the kill");
    Ok(())
}

/// An api process with an admin logged in.
struct Api {
    proc: Proc,
    base: String,
    http: reqwest::Client,
    token: String,
}

impl Api {
    /// Creates the admin in `db_url`'s database, starts `faena-api` on a free port against `t`,
    /// waits until it answers and logs in.
    async fn start(scratch: &Scratch, t: &Target) -> anyhow::Result<Self> {
        const SECRET: &str = "chaos-secret-chaos-secret-chaos-secret-0123";
        const PASSWORD: &str = "chaos-password-1234";
        let pool = faena_core::db::create_pool(&t.db_url, 1)?;
        faena_shop::auth::create_user(
            &mut *pool.get().await?,
            &faena_shop::auth::Username::parse("admin")?,
            secrecy::SecretString::from(PASSWORD),
            faena_shop::auth::Role::Admin,
        )
        .await?;
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let proc = Proc::start(
            &scratch.dir,
            "api",
            &binary("faena-api")?,
            &[],
            &t.env(&[
                ("FAENA_API_BIND", format!("127.0.0.1:{port}")),
                ("FAENA_JWT_SECRET", SECRET.to_owned()),
            ]),
        )?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        wait_for("the api to answer", Duration::from_secs(30), || async {
            Ok(http
                .get(format!("{base}/api/health"))
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200))
        })
        .await?;
        let login: serde_json::Value = http
            .post(format!("{base}/api/auth/token"))
            .json(&json!({"username": "admin", "password": PASSWORD}))
            .send()
            .await?
            .json()
            .await?;
        let token = login["access_token"]
            .as_str()
            .with_context(|| format!("no token in {login}"))?
            .to_owned();
        Ok(Self {
            proc,
            base,
            http,
            token,
        })
    }
}

/// 4. Redis killed (-9) while the api takes enqueues, with every write fsynced before its answer,
///    then restarted: the api answered 202 or 503 and nothing else; every id it answered 202 for
///    runs exactly once; the api and the worker recover by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_enqueues_loses_no_accepted_job() -> anyhow::Result<()> {
    let db = TestDb::new("chaos_redis_kill").await?;
    let mut redis = OwnRedis::start_durable().await?;
    let prefix = unique("chaos_redis_kill");
    let broker = own_broker(&redis, &prefix)?;
    let scratch = Scratch::new("redis-kill")?;
    let t = Target {
        db_url: db.url.clone(),
        redis_url: redis.url(),
        prefix: prefix.clone(),
        common: Vec::new(),
    };
    let mut api = Api::start(&scratch, &t).await?;
    let mut worker = t.worker(&scratch, "w", 16)?;
    let (http, base, token) = (&api.http, api.base.clone(), api.token.clone());

    let mut p = Poster {
        http,
        url: format!("{base}/api/tasks"),
        token: &token,
        accepted: Vec::new(),
        unavailable: 0,
    };
    let deadline = |secs| Instant::now() + Duration::from_secs(secs);
    let until = deadline(30);
    while p.accepted.len() < 50 {
        anyhow::ensure!(Instant::now() < until, "50 enqueues before the kill");
        p.post().await?;
    }
    redis.kill9()?;
    let until = deadline(30);
    while p.unavailable < 3 {
        anyhow::ensure!(
            Instant::now() < until,
            "3 answers of 503 while Redis is down"
        );
        p.post().await?;
    }
    let before_restart = p.accepted.len();
    redis.restart().await?;
    let until = deadline(60);
    while p.accepted.len() < before_restart + 50 {
        anyhow::ensure!(Instant::now() < until, "50 enqueues after the restart");
        p.post().await?;
    }
    let (accepted, unavailable) = (p.accepted, p.unavailable);
    all_succeed(&broker, &accepted, Duration::from_secs(60)).await?;
    api.proc.ensure_running()?;
    worker.ensure_running()?;

    let c = counts(&attempts(&[&worker])?);
    for id in &accepted {
        let got = c.get(&id.to_string()).copied().unwrap_or_default();
        assert_eq!((got.started, got.succeeded), (1, 1), "{id}: {got:?}");
    }
    assert!(unavailable >= 3);
    Ok(())
}

/// The api killed (-9) right after it committed a sale, while Redis was down so its enqueue could
/// not have happened: the sale's send job was written in the sale's transaction (the outbox), and
/// the worker, started later, relays and runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_committed_by_an_api_killed_before_any_enqueue_is_still_sent() -> anyhow::Result<()>
{
    let db = TestDb::new("chaos_outbox").await?;
    let mut redis = OwnRedis::start().await?;
    let prefix = unique("chaos_outbox");
    let broker = own_broker(&redis, &prefix)?;
    let scratch = Scratch::new("outbox")?;
    let t = Target {
        db_url: db.url.clone(),
        redis_url: redis.url(),
        prefix: prefix.clone(),
        common: Vec::new(),
    };
    let mut api = Api::start(&scratch, &t).await?;
    let pool = faena_core::db::create_pool(&db.url, 2)?;
    let product = faena_shop::shop::create_product(
        &mut *pool.get().await?,
        faena_shop::shop::NewProduct {
            sku: "CHAOS-1".into(),
            name: "Galletas".into(),
            unit_price: "1.20".parse()?,
            stock: 10.into(),
            low_stock_threshold: 1.into(),
            igv_affectation: "10".into(),
            unit_code: "NIU".into(),
            icbper: false,
            decimal_quantity: false,
        },
    )
    .await?;
    let (http, base, token) = (api.http.clone(), api.base.clone(), api.token.clone());

    redis.kill9()?;
    let resp = http
        .post(format!("{base}/api/sales"))
        .bearer_auth(&token)
        .json(&json!({"items": [{"product_id": product.id, "quantity": 1}], "send": true}))
        .send()
        .await?;
    let status = resp.status().as_u16();
    let sale: serde_json::Value = resp.json().await?;
    assert_eq!(status, 201, "the sale commits without Redis: {sale}");
    let sale_id = sale["id"].as_i64().context("a sale id")?;
    api.proc.kill9()?;
    assert_eq!(
        faena_core::outbox::backlog(&mut *pool.get().await?).await?,
        (1, 0),
        "the send job waits in the outbox"
    );

    redis.restart().await?;
    let worker = Proc::start(
        &scratch.dir,
        "w",
        &binary("faena-worker")?,
        &["--queues", "sunat,default", "--concurrency", "4"],
        &t.env(&[]),
    )?;
    // Without SUNAT settings the send ends the sale in ERROR (config_error): proof that it ran.
    let row = wait_for(
        "the sale's send to run",
        Duration::from_secs(30),
        || async {
            let row = faena_shop::sales::sale_row(&mut *pool.get().await?, sale_id).await?;
            Ok((row.sunat_status == faena_shop::sales::SunatStatus::Error).then_some(row))
        },
    )
    .await?;
    assert_eq!(row.sunat_outcome.as_deref(), Some("config_error"));
    assert_eq!(row.sunat_attempts, 1, "sent once");
    assert_eq!(
        faena_core::outbox::backlog(&mut *pool.get().await?).await?,
        (0, 0)
    );
    let c = counts(&attempts(&[&worker])?);
    assert_eq!(c.len(), 1, "one job ran: {c:?}");
    drop(broker);
    Ok(())
}

/// Enqueues through the api, keeping the ids answered 202 and counting the 503s; any other answer
/// (or none) fails the test.
struct Poster<'a> {
    http: &'a reqwest::Client,
    url: String,
    token: &'a str,
    accepted: Vec<TaskId>,
    unavailable: u32,
}

impl Poster<'_> {
    async fn post(&mut self) -> anyhow::Result<()> {
        let resp = self
            .http
            .post(&self.url)
            .bearer_auth(self.token)
            .json(&json!({"kind": "noop"}))
            .send()
            .await
            .context("the api must keep answering while Redis is down")?;
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        match status {
            202 => {
                let id = body["task_id"]
                    .as_str()
                    .with_context(|| format!("202 without task_id: {body}"))?;
                self.accepted.push(TaskId::parse(id)?);
            }
            503 => {
                anyhow::ensure!(
                    body["error"]["code"] == "service_unavailable",
                    "503 without the service_unavailable code: {body}"
                );
                self.unavailable += 1;
            }
            other => anyhow::bail!("the api answered {other} (only 202 or 503 allowed): {body}"),
        }
        Ok(())
    }
}

/// 5. Redis paused (SIGSTOP) for three leases while two workers run jobs, then resumed: no job is
///    taken from its worker because of the pause (each runs once, on its first attempt, and with
///    `max_attempts` 1 a lost lease would have made it DEAD).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_for_three_leases_takes_no_job_away() -> anyhow::Result<()> {
    let db = TestDb::new("chaos_redis_pause").await?;
    let redis = OwnRedis::start().await?;
    let prefix = unique("chaos_redis_pause");
    let broker = own_broker(&redis, &prefix)?;
    let scratch = Scratch::new("redis-pause")?;
    let t = Target {
        db_url: db.url.clone(),
        redis_url: redis.url(),
        prefix,
        common: Vec::new(),
    };
    let q = QueueName::default_queue();
    let ids = sleeps(&broker, 20, 10_000, 1).await?;
    let a = t.worker(&scratch, "a", 10)?;
    let b = t.worker(&scratch, "b", 10)?;
    wait_for("20 jobs running", Duration::from_secs(30), || async {
        Ok((broker.stats(&q).await?.running == 20).then_some(()))
    })
    .await?;
    redis.signal("-STOP")?;
    // The fault itself lasts three leases: this is its duration, not a wait for a condition.
    tokio::time::sleep(Duration::from_secs(3 * LEASE_SECS)).await;
    redis.signal("-CONT")?;
    all_succeed(&broker, &ids, Duration::from_secs(40)).await?;

    let events = attempts(&[&a, &b])?;
    let c = counts(&events);
    for id in &ids {
        assert_eq!(
            c.get(&id.to_string()).copied().unwrap_or_default(),
            Counts {
                started: 1,
                succeeded: 1,
                other_end: 0,
                stopped: 0
            },
            "{id}"
        );
        assert_eq!(
            state_and_attempts(&broker, id).await?,
            (TaskState::Succeeded, 1)
        );
    }
    assert_eq!(broker.stats(&q).await?.dead, 0);
    Ok(())
}

/// Disables the seeded schedules (they would add jobs to the lists) and adds `every-second`, a
/// `noop` every second, its jobs going to `queue` (the kind's own when `None`).
async fn only_every_second(db_url: &str, queue: Option<&str>) -> anyhow::Result<()> {
    let pool = faena_core::db::create_pool(db_url, 1)?;
    let mut conn = pool.get().await?;
    let catalog = faena_catalog::catalog();
    for row in periodic::list(&mut conn).await? {
        let off = periodic::PeriodicPatch {
            enabled: Some(false),
            ..Default::default()
        };
        periodic::update(&mut conn, &catalog, &row.name, off).await?;
    }
    let every_second = NewPeriodic {
        name: "every-second".into(),
        kind: "noop".into(),
        queue: queue.map(str::to_owned),
        interval_secs: Some(1),
        timezone: Some("UTC".into()),
        ..Default::default()
    };
    periodic::create(&mut conn, &catalog, every_second).await?;
    Ok(())
}

/// The tick times (ms) of the jobs schedule `name` enqueued, from their idempotency keys, with
/// repeats kept (a tick enqueued twice shows twice).
async fn ticks(broker: &Broker, name: &str) -> anyhow::Result<Vec<i64>> {
    ticks_in(broker, &QueueName::default_queue(), name).await
}

/// Like [`ticks`], for a schedule whose jobs go to `queue` (one no worker of the test consumes).
async fn ticks_in(broker: &Broker, queue: &QueueName, name: &str) -> anyhow::Result<Vec<i64>> {
    let jobs = broker.list(queue, TaskState::Pending, 100_000).await?;
    let prefix = format!("periodic:{name}:");
    let mut out: Vec<i64> = jobs
        .iter()
        .filter_map(|j| {
            j.idempotency_key
                .as_deref()?
                .strip_prefix(&prefix)?
                .parse()
                .ok()
        })
        .collect();
    out.sort_unstable();
    Ok(out)
}

async fn ticks_after(broker: &Broker, at: DateTime<Utc>) -> anyhow::Result<usize> {
    Ok(ticks(broker, "every-second")
        .await?
        .iter()
        .filter(|t| **t > at.timestamp_millis())
        .count())
}

/// 7. Two beats; the leader killed -9, later the next leader paused: every tick of a 1 s schedule
///    is enqueued at most once, and ticks are missing only within a lease of each fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beats_killed_and_paused_enqueue_each_tick_at_most_once() -> anyhow::Result<()> {
    let db = TestDb::new("chaos_beat").await?;
    let r = TestRedis::new("chaos_beat")?;
    let scratch = Scratch::new("beats")?;
    let t = Target::of(&db, &r);
    only_every_second(&db.url, None).await?;
    let env = t.env(&[("FAENA_BEAT_LEASE_SECS", LEASE_SECS.to_string())]);
    let beat = binary("faena-beat")?;
    let mut beats: BTreeMap<u32, Proc> = BTreeMap::new();
    for name in ["beat1", "beat2"] {
        let p = Proc::start(&scratch.dir, name, &beat, &[], &env)?;
        beats.insert(p.pid(), p);
    }
    let leader_pid = || async {
        let holder = r.broker.leader(faena_beat::ROLE).await?;
        Ok(holder.and_then(|h| h.split(':').nth(1)?.parse::<u32>().ok()))
    };
    let first = wait_for("a leader", Duration::from_secs(30), leader_pid).await?;
    let started = Utc::now();
    wait_for("4 ticks", Duration::from_secs(20), || async {
        Ok((ticks_after(&r.broker, started).await? >= 4).then_some(()))
    })
    .await?;

    beats
        .get_mut(&first)
        .context("the leader is one of ours")?
        .kill9()?;
    let killed = Utc::now();
    wait_for(
        "4 ticks after the kill",
        Duration::from_secs(20),
        || async { Ok((ticks_after(&r.broker, killed).await? >= 4).then_some(())) },
    )
    .await?;
    let third = Proc::start(&scratch.dir, "beat3", &beat, &[], &env)?;
    beats.insert(third.pid(), third);
    let second = wait_for("the second leader", Duration::from_secs(10), || async {
        Ok(leader_pid().await?.filter(|p| *p != first))
    })
    .await?;
    let paused_proc = beats
        .get(&second)
        .context("the new leader is one of ours")?;
    paused_proc.signal("-STOP")?;
    let paused = Utc::now();
    let took_over = wait_for(
        "a third leader while the second is paused",
        Duration::from_secs(LEASE_SECS + 10),
        || async { Ok(leader_pid().await?.filter(|p| *p != first && *p != second)) },
    )
    .await;
    let resumed_ticks = wait_for(
        "3 ticks after the pause",
        Duration::from_secs(20),
        || async { Ok((ticks_after(&r.broker, paused).await? >= 3).then_some(())) },
    )
    .await;
    paused_proc.signal("-CONT")?;
    took_over?;
    resumed_ticks?;
    let resumed = Utc::now();
    wait_for(
        "3 ticks after the resume",
        Duration::from_secs(20),
        || async { Ok((ticks_after(&r.broker, resumed).await? >= 3).then_some(())) },
    )
    .await?;
    drop(beats);

    let all = ticks(&r.broker, "every-second").await?;
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "a tick was enqueued twice: {all:?}"
    );
    // A missing tick must fall within a lease (plus a second of detection) after a fault.
    let lease_ms = (LEASE_SECS * 1000) as i64;
    let windows = [killed, paused].map(|f| {
        let f = f.timestamp_millis();
        (f - 1000, f + lease_ms + 1000)
    });
    let mut lost = Vec::new();
    for pair in all.windows(2) {
        let mut tick = pair[0] + 1000;
        while tick < pair[1] {
            lost.push(tick);
            tick += 1000;
        }
    }
    let outside: Vec<i64> = lost
        .iter()
        .copied()
        .filter(|t| !windows.iter().any(|(from, to)| (*from..=*to).contains(t)))
        .collect();
    assert!(
        outside.is_empty(),
        "ticks lost outside a lease after a fault: {outside:?}; faults at {windows:?}; ticks {all:?}"
    );
    Ok(())
}

/// 9. Redis under Sentinel (a primary, two replicas, three Sentinels) with
///    `FAENA_REDIS_MIN_REPLICAS=1`: the primary killed -9 while the api takes enqueues. The
///    Sentinels promote a replica; the api (202 or 503 meanwhile, never anything else), two workers
///    and two beats follow it without a restart. Every id answered 202 exists after the failover and
///    runs; only jobs already started before the kill may run twice (a lease is not replicated
///    before the job starts); beat has one leader afterwards and enqueues each tick once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_loses_no_acknowledged_enqueue() -> anyhow::Result<()> {
    let db = TestDb::new("chaos_sentinel").await?;
    let mut set = SentinelSet::start(2, 3).await?;
    let prefix = unique("chaos_sentinel");
    let url = set.url();
    let broker = broker_at(&url, &prefix)?;
    let ticks_queue = QueueName::parse("beat-probe")?;
    only_every_second(&db.url, Some(ticks_queue.as_str())).await?;
    let scratch = Scratch::new("sentinel")?;
    let t = Target {
        db_url: db.url.clone(),
        redis_url: url.clone(),
        prefix: prefix.clone(),
        common: vec![
            ("FAENA_REDIS_MIN_REPLICAS", "1".into()),
            ("FAENA_BEAT_LEASE_SECS", LEASE_SECS.to_string()),
        ],
    };
    let mut api = Api::start(&scratch, &t).await?;
    let mut workers = vec![t.worker(&scratch, "w1", 8)?, t.worker(&scratch, "w2", 8)?];
    let beat = binary("faena-beat")?;
    let mut beats = vec![
        Proc::start(&scratch.dir, "beat1", &beat, &[], &t.env(&[]))?,
        Proc::start(&scratch.dir, "beat2", &beat, &[], &t.env(&[]))?,
    ];
    let (http, base, token) = (&api.http, api.base.clone(), api.token.clone());
    let mut p = Poster {
        http,
        url: format!("{base}/api/tasks"),
        token: &token,
        accepted: Vec::new(),
        unavailable: 0,
    };
    let deadline = |secs| Instant::now() + Duration::from_secs(secs);
    let until = deadline(30);
    while p.accepted.len() < 50 {
        anyhow::ensure!(Instant::now() < until, "50 enqueues before the kill");
        p.post().await?;
    }
    wait_for("a beat leader", Duration::from_secs(20), || async {
        broker.leader(faena_beat::ROLE).await.map_err(Into::into)
    })
    .await?;
    let old = set.primary_port().await?;
    let before_kill = p.accepted.len();
    let killed = Utc::now();
    set.node_mut(old)?.kill9()?;
    // Enqueue on through the failover: until the Sentinels name another primary and 50 more
    // enqueues were acknowledged on it.
    let until = deadline(60);
    loop {
        anyhow::ensure!(
            Instant::now() < until,
            "a new primary and 50 acknowledged enqueues after the kill ({} so far, {} answers 503)",
            p.accepted.len() - before_kill,
            p.unavailable
        );
        p.post().await?;
        if p.accepted.len() >= before_kill + 50 && set.primary_port().await? != old {
            break;
        }
    }
    let new = set.primary_port().await?;
    assert_ne!(new, old, "a replica was promoted");
    let (accepted, unavailable) = (p.accepted, p.unavailable);
    if let Err(e) = all_succeed(&broker, &accepted, Duration::from_secs(60)).await {
        // What the processes said (the scratch directory is gone by the time CI shows this).
        let procs: Vec<&Proc> = workers.iter().chain([&api.proc]).collect();
        for p in procs {
            eprintln!("--- {} warnings and errors (last 30):", p.name);
            for line in warnings_of(p, 30) {
                eprintln!("{line}");
            }
        }
        eprintln!("--- replication: {}", set.describe().await);
        return Err(e.context(format!(
            "after the failover {old} -> {new} ({} acknowledged, {unavailable} answers 503)",
            accepted.len()
        )));
    }
    api.proc.ensure_running()?;
    for w in &mut workers {
        w.ensure_running()?;
    }
    let failed_over = Utc::now();
    wait_for(
        "3 ticks on the new primary",
        Duration::from_secs(30),
        || async {
            let after = ticks_in(&broker, &ticks_queue, "every-second")
                .await?
                .into_iter()
                .filter(|t| *t > failed_over.timestamp_millis())
                .count();
            Ok((after >= 3).then_some(()))
        },
    )
    .await?;
    let leader = broker.leader(faena_beat::ROLE).await?;
    for b in &mut beats {
        b.ensure_running()?;
    }
    let all = ticks_in(&broker, &ticks_queue, "every-second").await?;
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "a tick was enqueued twice: {all:?}"
    );
    let holder = leader.context("beat has a leader after the failover")?;
    assert!(
        beats
            .iter()
            .any(|b| holder.split(':').nth(1) == Some(&*b.pid().to_string())),
        "the leader {holder} is one of the two beats"
    );

    let events = attempts(&workers.iter().collect::<Vec<_>>())?;
    let c = counts(&events);
    let mut twice = Vec::new();
    for id in &accepted {
        let got = c.get(&id.to_string()).copied().unwrap_or_default();
        assert!(
            got.started >= 1 && got.succeeded >= 1,
            "{id} was acknowledged, so it runs: {got:?}"
        );
        if got.started > 1 {
            twice.push(id.to_string());
        }
    }
    // A job may run again only if its first start came before the kill (its lease and outcome
    // were on the old primary only).
    for id in &twice {
        let first = events
            .iter()
            .filter(|e| &e.task_id == id)
            .map(|e| e.at)
            .min()
            .context("a started job has an event")?;
        assert!(
            first <= killed,
            "{id} ran twice though it first started after the kill ({first} > {killed})"
        );
    }
    assert!(
        accepted.len() >= before_kill + 50,
        "{} acknowledged",
        accepted.len()
    );
    eprintln!(
        "sentinel failover {old} -> {new}: {} acknowledged, {unavailable} answers 503, {} ran twice",
        accepted.len(),
        twice.len()
    );
    drop(beats);
    Ok(())
}
