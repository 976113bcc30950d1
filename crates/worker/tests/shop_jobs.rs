//! The shop's jobs run through the worker: `release_expired_reservations` returns expired stock and
//! reports `{released, units}`; running it again changes nothing.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use faena_broker::TaskState;
use faena_core::jobs::EnqueueRequest;
use faena_core::QueueName;
use faena_shop::schema::reservations;
use faena_shop::shop;
use faena_testkit::{wait_for, TestDb, TestRedis};
use faena_worker::{spawn, Handlers, WorkerConfig};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_job_runs_in_the_worker() -> anyhow::Result<()> {
    let db = TestDb::new("shopjob").await?;
    let r = TestRedis::new("shopjob")?;
    let pool = faena_core::db::create_pool(&db.url, 4)?;
    let mut conn = pool.get().await?;
    let p = shop::create_product(
        &mut conn,
        shop::NewProduct {
            sku: "J".into(),
            name: "j".into(),
            unit_price: 3.into(),
            stock: 10.into(),
            low_stock_threshold: 1.into(),
            igv_affectation: "10".into(),
            unit_code: "NIU".into(),
            icbper: false,
            decimal_quantity: false,
        },
    )
    .await?;
    let req = shop::CheckoutRequest {
        store_id: None,
        items: vec![shop::CheckoutItem {
            product_id: p.id,
            quantity: faena_shop::quantity::Quantity::whole(4)?,
            discount: None,
            free: false,
        }],
    };
    let res = shop::checkout(&mut conn, &req, Duration::from_secs(900), None).await?;
    // Make it expired.
    diesel::update(reservations::table.find(res.reservation_id))
        .set(reservations::expires_at.eq(chrono::Utc::now() - chrono::Duration::seconds(1)))
        .execute(&mut conn)
        .await?;
    assert_eq!(shop::get_product(&mut conn, p.id).await?.stock, 6);
    let worker = spawn(
        r.broker.clone(),
        Handlers::all(pool.clone()),
        WorkerConfig {
            queues: vec![QueueName::default_queue()],
            concurrency: 4,
            stop_timeout: Duration::from_secs(10),
            upkeep_interval: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(1),
            unknown_kind_grace: Duration::from_secs(900),
        },
    );
    let mut results = Vec::new();
    for _ in 0..2 {
        let id = r
            .broker
            .enqueue(EnqueueRequest {
                kind: "release_expired_reservations".into(),
                args: json!({}),
                ..Default::default()
            })
            .await?;
        let tid = id;
        let rec = wait_for(
            "the release job to succeed",
            Duration::from_secs(10),
            || async {
                Ok(r.broker
                    .task(&tid)
                    .await?
                    .filter(|t| t.state == TaskState::Succeeded))
            },
        )
        .await?;
        results.push(rec.result);
    }
    worker.shutdown().await;
    assert_eq!(results[0], Some(json!({"released": 1, "units": 4})));
    assert_eq!(
        results[1],
        Some(json!({"released": 0, "units": 0})),
        "a second run changes nothing"
    );
    assert_eq!(shop::get_product(&mut conn, p.id).await?.stock, 10);
    let status: String = reservations::table
        .find(res.reservation_id)
        .select(reservations::status)
        .first(&mut conn)
        .await?;
    assert_eq!(status, "EXPIRED");
    Ok(())
}
