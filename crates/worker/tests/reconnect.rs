//! A worker keeps working across a Redis restart: no process restart, jobs enqueued after Redis comes
//! back run. The test runs its own redis-server on a free loopback port so it can stop and start it.

use std::time::Duration;

use faena_broker::{Broker, TaskState};
use faena_core::jobs::EnqueueRequest;
use faena_core::settings::BrokerSettings;
use faena_core::QueueName;
use faena_testkit::wait_for;
use faena_worker::{spawn, Handlers, WorkerConfig};
use serde_json::json;

async fn run_one(broker: &Broker) -> anyhow::Result<()> {
    let id = broker
        .enqueue(EnqueueRequest {
            kind: "noop".into(),
            args: json!({"x": 1}),
            ..Default::default()
        })
        .await?;
    let tid = id;
    wait_for("the job to succeed", Duration::from_secs(20), || async {
        Ok(broker
            .task(&tid)
            .await
            .ok()
            .flatten()
            .filter(|t| t.state == TaskState::Succeeded))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_recovers_after_redis_restarts() -> anyhow::Result<()> {
    let mut redis = faena_testkit::OwnRedis::start().await?;
    let url = redis.url();
    let pool = faena_core::redis_pool::create_pool(&url, 8)?;
    let cfg = BrokerSettings {
        prefix: faena_testkit::unique("reconnect"),
        ..BrokerSettings::default()
    };
    let broker = Broker::new(pool, &url, cfg, faena_shop::jobs::catalog())?;
    let worker = spawn(
        broker.clone(),
        Handlers::builtin(),
        WorkerConfig {
            queues: vec![QueueName::default_queue()],
            concurrency: 4,
            stop_timeout: Duration::from_secs(5),
            upkeep_interval: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(1),
            unknown_kind_grace: Duration::from_secs(900),
        },
    );
    run_one(&broker).await?;

    redis.stop();
    // While Redis is down, enqueues fail fast with a clear error.
    let err = broker
        .enqueue(EnqueueRequest {
            kind: "noop".into(),
            ..Default::default()
        })
        .await;
    assert!(
        matches!(err, Err(faena_broker::BrokerError::Unavailable(_))),
        "{err:?}"
    );

    redis.restart().await?;
    // The same worker and broker, no restart: a job enqueued after Redis is back runs.
    wait_for("enqueue to work again", Duration::from_secs(20), || async {
        Ok(broker
            .enqueue(EnqueueRequest {
                kind: "noop".into(),
                ..Default::default()
            })
            .await
            .ok())
    })
    .await?;
    run_one(&broker).await?;
    worker.shutdown().await;
    Ok(())
}
