//! kill -9 of a worker process: its leased jobs come back after the lease expires and run on
//! another worker; a job that kills its worker every time ends DEAD after max_attempts.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faena_broker::TaskState;
use faena_core::jobs::EnqueueRequest;
use faena_core::QueueName;
use faena_testkit::{wait_for, TestDb, TestRedis};
use faena_worker::{spawn, Handlers, WorkerConfig};
use serde_json::json;

const LEASE_SECS: u64 = 3;

fn start_worker_process(db: &TestDb, r: &TestRedis) -> anyhow::Result<Child> {
    Ok(Command::new(env!("CARGO_BIN_EXE_faena-worker"))
        .args(["--queues", "default", "--concurrency", "64"])
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", &r.url)
        .env("FAENA_REDIS_PREFIX", &r.prefix)
        .env("FAENA_LEASE_SECS", LEASE_SECS.to_string())
        .env("FAENA_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?)
}

fn kill_nine(child: &mut Child) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -9 failed");
    child.wait()?;
    Ok(())
}

fn in_process_worker_config() -> WorkerConfig {
    WorkerConfig {
        queues: vec![QueueName::default_queue()],
        concurrency: 64,
        stop_timeout: Duration::from_secs(10),
        upkeep_interval: Duration::from_millis(100),
        heartbeat_interval: Duration::from_secs(1),
        unknown_kind_grace: Duration::from_secs(900),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_a_killed_worker_complete_on_another_within_the_lease() -> anyhow::Result<()> {
    let db = TestDb::new("kill").await?;
    let r = TestRedis::with("kill", |c| c.lease = Duration::from_secs(LEASE_SECS))?;
    let q = QueueName::default_queue();
    let reqs = (0..50)
        .map(|_| EnqueueRequest {
            kind: "sleep".into(),
            args: json!({"ms": 1500}),
            ..Default::default()
        })
        .collect();
    let ids = r.broker.enqueue_many(reqs).await?;
    let mut first = start_worker_process(&db, &r)?;
    wait_for(
        "50 jobs running on the first worker",
        Duration::from_secs(20),
        || async { Ok((r.broker.stats(&q).await?.running == 50).then_some(())) },
    )
    .await?;
    kill_nine(&mut first)?;
    let killed_at = Instant::now();
    let second = spawn(
        r.broker.clone(),
        Handlers::builtin(),
        in_process_worker_config(),
    );
    let deadline = Duration::from_secs(LEASE_SECS + 5);
    wait_for(
        "all 50 to succeed on the second worker",
        deadline,
        || async { Ok((r.broker.stats(&q).await?.succeeded == 50).then_some(())) },
    )
    .await?;
    assert!(killed_at.elapsed() <= deadline);
    for id in &ids {
        let rec = r
            .broker
            .task(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("record {id}"))?;
        assert_eq!(rec.state, TaskState::Succeeded);
        assert_eq!(rec.attempts, 2, "the killed attempt counts");
    }
    second.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_kills_its_worker_every_time_ends_dead() -> anyhow::Result<()> {
    let db = TestDb::new("killer").await?;
    let r = TestRedis::with("killer", |c| c.lease = Duration::from_secs(LEASE_SECS))?;
    let id = r
        .broker
        .enqueue(EnqueueRequest {
            kind: "sleep".into(),
            args: json!({"ms": 600_000}),
            max_attempts: Some(2),
            ..Default::default()
        })
        .await?;
    let tid = id;
    for attempt in 1..=2u32 {
        let mut w = start_worker_process(&db, &r)?;
        // Attempt 2 starts only after the lease of attempt 1 expired and a worker's upkeep took it back.
        let found = wait_for(
            &format!("attempt {attempt} running"),
            Duration::from_secs(LEASE_SECS * 3 + 10),
            || async {
                Ok(r.broker
                    .task(&tid)
                    .await?
                    .filter(|t| t.state == TaskState::Running && t.attempts == attempt))
            },
        )
        .await;
        kill_nine(&mut w)?;
        found?;
    }
    // Any worker's upkeep now finds the expired lease with no attempts left.
    let reaper = spawn(
        r.broker.clone(),
        Handlers::builtin(),
        in_process_worker_config(),
    );
    let rec = wait_for(
        "the job to be DEAD",
        Duration::from_secs(LEASE_SECS + 5),
        || async {
            Ok(r.broker
                .task(&tid)
                .await?
                .filter(|t| t.state == TaskState::Dead))
        },
    )
    .await?;
    assert_eq!(rec.attempts, 2);
    assert_eq!(rec.error_class.as_deref(), Some("lease_expired"));
    reaper.shutdown().await;
    Ok(())
}
