//! The transactional outbox and the sweep of unsent sales, against real PostgreSQL and Redis: a
//! job written in a committed transaction reaches Redis once, a rolled-back one never; two relays
//! and a relay that died after Redis but before its commit still leave one job per row; a sale made
//! with `send` has its send job; the sweep queues PENDING sales whose job is gone and takes back
//! SENDING sales no attempt is sending, and leaves alone sales whose job lives.

use std::time::Duration;

use diesel_async::{AsyncConnection, RunQueryDsl};
use faena_broker::{relay, Broker, TaskState};
use faena_core::db::PgPool;
use faena_core::jobs::EnqueueRequest;
use faena_core::{outbox, QueueName, TaskId};
use faena_shop::sales::{self, NewSale, SaleItemInput, SaleView, Seller};
use faena_shop::shop;
use faena_testkit::{wait_for, TestDb, TestRedis};
use faena_worker::{spawn, Handlers, WorkerConfig};
use serde_json::json;

fn noop() -> EnqueueRequest {
    EnqueueRequest {
        kind: "noop".into(),
        ..Default::default()
    }
}

async fn in_tx(pool: &PgPool, n: usize, commit: bool) -> anyhow::Result<Vec<TaskId>> {
    let mut conn = pool.get().await?;
    let catalog = faena_catalog::catalog();
    let mut ids = Vec::new();
    let result = conn
        .transaction::<(), diesel::result::Error, _>(async |conn| {
            for _ in 0..n {
                let id = outbox::enqueue_in_tx(conn, &catalog, noop(), None)
                    .await
                    .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))?;
                ids.push(id);
            }
            if commit {
                Ok(())
            } else {
                Err(diesel::result::Error::RollbackTransaction)
            }
        })
        .await;
    match (commit, result) {
        (true, r) => r?,
        (false, Err(diesel::result::Error::RollbackTransaction)) => {}
        (false, other) => anyhow::bail!("expected a rollback, got {other:?}"),
    }
    Ok(ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_job_is_relayed_once_and_a_rolled_back_one_never() -> anyhow::Result<()> {
    let db = TestDb::new("outbox_tx").await?;
    let r = TestRedis::new("outbox_tx")?;
    let pool = faena_core::db::create_pool(&db.url, 4)?;
    let kept = in_tx(&pool, 3, true).await?;
    let dropped = in_tx(&pool, 2, false).await?;
    assert_eq!(outbox::backlog(&mut *pool.get().await?).await?, (3, 0));
    assert_eq!(relay::drain(&r.broker, &pool).await?, 3);
    assert_eq!(relay::drain(&r.broker, &pool).await?, 0, "nothing twice");
    for id in &kept {
        let rec = r
            .broker
            .task(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("{id} missing"))?;
        assert_eq!((rec.state, rec.kind.as_str()), (TaskState::Pending, "noop"));
    }
    for id in &dropped {
        assert!(r.broker.task(id).await?.is_none(), "{id} was rolled back");
    }
    let stats = r.broker.stats(&QueueName::default_queue()).await?;
    assert_eq!((stats.enqueued, stats.pending), (3, 3));
    assert_eq!(outbox::backlog(&mut *pool.get().await?).await?, (0, 0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_and_a_relay_that_died_before_its_commit_leave_one_job_per_row(
) -> anyhow::Result<()> {
    let db = TestDb::new("outbox_two").await?;
    let r = TestRedis::new("outbox_two")?;
    let other = r.same_prefix()?;
    let pool = faena_core::db::create_pool(&db.url, 8)?;
    in_tx(&pool, 1000, true).await?;
    let (a, b) = tokio::join!(relay::drain(&r.broker, &pool), relay::drain(&other, &pool));
    assert_eq!(a? + b?, 1000);
    // A relay that enqueued and died before deleting: Redis has the jobs, the rows are still there.
    let crashed = in_tx(&pool, 10, true).await?;
    {
        let mut conn = pool.get().await?;
        let broker = r.broker.clone();
        let result = conn
            .transaction::<(), anyhow::Error, _>(async move |conn| {
                let (claimed, bad) = outbox::claim(conn, broker.catalog(), 100).await?;
                anyhow::ensure!(claimed.len() == 10 && bad.is_empty());
                broker
                    .enqueue_prepared(claimed.into_iter().map(|c| c.task).collect())
                    .await?;
                anyhow::bail!("the relay dies before it deletes")
            })
            .await;
        assert!(result.is_err());
    }
    assert_eq!(outbox::backlog(&mut *pool.get().await?).await?, (10, 0));
    assert_eq!(relay::drain(&r.broker, &pool).await?, 10);
    let stats = r.broker.stats(&QueueName::default_queue()).await?;
    assert_eq!(stats.enqueued, 1010, "the re-send was deduplicated");
    assert_eq!(stats.pending, 1010, "no id was pushed twice");
    for id in &crashed {
        assert_eq!(
            r.broker.task(id).await?.map(|t| t.state),
            Some(TaskState::Pending)
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_relay_moves_committed_rows_and_parks_rows_it_cannot_enqueue(
) -> anyhow::Result<()> {
    let db = TestDb::new("outbox_run").await?;
    let r = TestRedis::new("outbox_run")?;
    let pool = faena_core::db::create_pool(&db.url, 4)?;
    // A row of a kind this version does not know (written by a newer one, say).
    diesel::sql_query(
        "INSERT INTO faena_outbox (task_id, kind, queue, args, max_attempts) \
         VALUES ('01JZZZZZZZZZZZZZZZZZZZZZZZ', 'from_the_future', 'default', '{}', 3)",
    )
    .execute(&mut *pool.get().await?)
    .await?;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(relay::run(r.broker.clone(), pool.clone(), rx));
    let ids = in_tx(&pool, 5, true).await?;
    wait_for(
        "the relay to move 5 jobs",
        Duration::from_secs(10),
        || async {
            Ok((r.broker.stats(&QueueName::default_queue()).await?.enqueued == 5).then_some(()))
        },
    )
    .await?;
    for id in &ids {
        assert!(r.broker.task(id).await?.is_some());
    }
    let backlog = wait_for(
        "the unknown kind parked",
        Duration::from_secs(10),
        || async {
            let b = outbox::backlog(&mut *pool.get().await?).await?;
            Ok((b == (0, 1)).then_some(b))
        },
    )
    .await?;
    assert_eq!(backlog, (0, 1));
    let _ = stop.send(true);
    running.await?;
    Ok(())
}

/// A product with stock and `n` one-unit boletas, each `send` or not.
async fn sales_of(pool: &PgPool, n: usize, send: bool) -> anyhow::Result<Vec<SaleView>> {
    let mut conn = pool.get().await?;
    let p = shop::create_product(
        &mut conn,
        shop::NewProduct {
            sku: format!("SKU-{}", faena_testkit::unique("p")),
            name: "Agua 625 ml".into(),
            unit_price: "1.50".parse()?,
            stock: 100.into(),
            low_stock_threshold: 1.into(),
            igv_affectation: "10".into(),
            unit_code: "NIU".into(),
            icbper: false,
            decimal_quantity: false,
        },
    )
    .await?;
    let seller = Seller {
        user_id: "7".into(),
        is_admin: false,
    };
    let mut out = Vec::new();
    for _ in 0..n {
        let req = NewSale {
            items: Some(vec![SaleItemInput {
                product_id: p.id,
                quantity: faena_shop::quantity::Quantity::whole(1)?,
                discount: None,
                free: false,
            }]),
            send: Some(send),
            ..Default::default()
        };
        out.push(
            sales::create_sale(&mut conn, &seller, &req, &sales::SaleDefaults::default()).await?,
        );
    }
    Ok(out)
}

async fn send_jobs(broker: &Broker) -> anyhow::Result<Vec<(TaskId, i64, TaskState)>> {
    let mut out = Vec::new();
    for state in [TaskState::Pending, TaskState::Dead] {
        for t in broker
            .list(&QueueName::parse("sunat")?, state, 10_000)
            .await?
        {
            let sale = t.args.get("sale_id").and_then(|v| v.as_i64()).unwrap_or(-1);
            out.push((TaskId::parse(&t.id)?, sale, t.state));
        }
    }
    out.sort_by_key(|j| j.1);
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_made_with_send_has_its_job_and_a_refused_sale_none() -> anyhow::Result<()> {
    let db = TestDb::new("outbox_sale").await?;
    let r = TestRedis::new("outbox_sale")?;
    let pool = faena_core::db::create_pool(&db.url, 4)?;
    let sent = sales_of(&pool, 2, true).await?;
    let unsent = sales_of(&pool, 1, false).await?;
    // A sale refused for stock rolls back with its outbox row.
    let mut conn = pool.get().await?;
    let refused = sales::create_sale(
        &mut conn,
        &Seller {
            user_id: "7".into(),
            is_admin: false,
        },
        &NewSale {
            items: Some(vec![SaleItemInput {
                product_id: sent[0].items[0].product_id.unwrap_or_default(),
                quantity: faena_shop::quantity::Quantity::whole(1_000)?,
                discount: None,
                free: false,
            }]),
            send: Some(true),
            ..Default::default()
        },
        &sales::SaleDefaults::default(),
    )
    .await;
    assert!(matches!(
        refused,
        Err(sales::SaleError::InsufficientStock { .. })
    ));
    assert_eq!(outbox::backlog(&mut conn).await?, (2, 0));
    assert_eq!(relay::drain(&r.broker, &pool).await?, 2);
    let jobs = send_jobs(&r.broker).await?;
    let sales_sent: Vec<i64> = jobs.iter().map(|j| j.1).collect();
    assert_eq!(sales_sent, vec![sent[0].id, sent[1].id]);
    assert!(!sales_sent.contains(&unsent[0].id));
    Ok(())
}

fn sweep_worker(pool: &PgPool, broker: &Broker) -> faena_worker::WorkerHandle {
    let mut h = Handlers::default();
    faena_worker::jobs::unsent::register(
        &mut h,
        pool.clone(),
        broker.clone(),
        chrono_tz::America::Lima,
    );
    spawn(
        broker.clone(),
        h,
        WorkerConfig {
            queues: vec![QueueName::default_queue()],
            concurrency: 2,
            stop_timeout: Duration::from_secs(10),
            upkeep_interval: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(1),
            unknown_kind_grace: Duration::from_secs(900),
        },
    )
}

async fn sweep(broker: &Broker) -> anyhow::Result<serde_json::Value> {
    let id = broker
        .enqueue(EnqueueRequest {
            kind: "rescue_unsent_sales".into(),
            args: json!({ "older_than_secs": 0 }),
            ..Default::default()
        })
        .await?;
    let rec = wait_for("the sweep to finish", Duration::from_secs(20), || async {
        Ok(broker
            .task(&id)
            .await?
            .filter(|t| matches!(t.state, TaskState::Succeeded | TaskState::Dead)))
    })
    .await?;
    anyhow::ensure!(
        rec.state == TaskState::Succeeded,
        "sweep failed: {:?}",
        rec.error
    );
    Ok(rec.result.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_sends_sales_nobody_sends_and_leaves_live_ones_alone() -> anyhow::Result<()> {
    let db = TestDb::new("outbox_sweep").await?;
    let r = TestRedis::new("outbox_sweep")?;
    let pool = faena_core::db::create_pool(&db.url, 4)?;
    // never: made without `send`. live: its job waits in Redis. dead: its job ended DEAD (purged
    // jobs look the same: no live record). stuck: SENDING, nobody holds its lock. busy: SENDING
    // with its lock held by an attempt.
    let s = sales_of(&pool, 1, false).await?;
    let never = s[0].id;
    let s = sales_of(&pool, 4, true).await?;
    let (live, dead, stuck, busy) = (s[0].id, s[1].id, s[2].id, s[3].id);
    assert_eq!(relay::drain(&r.broker, &pool).await?, 4);
    let jobs = send_jobs(&r.broker).await?;
    let job_of = |sale: i64| jobs.iter().find(|j| j.1 == sale).map(|j| j.0);
    let dead_job = job_of(dead).ok_or_else(|| anyhow::anyhow!("no job for {dead}"))?;
    r.broker.cancel(&dead_job).await?;
    let mut conn = pool.get().await?;
    for sale in [stuck, busy] {
        sales::begin_send(&mut conn, sale, "a-dead-attempt:1")
            .await?
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        if let Some(job) = job_of(sale) {
            r.broker.cancel(&job).await?;
        }
    }
    assert!(
        r.broker
            .acquire_lock(
                &sales::send_lock(busy),
                "someone:1",
                Duration::from_secs(60)
            )
            .await?
    );

    let w = sweep_worker(&pool, &r.broker);
    let report = sweep(&r.broker).await?;
    w.shutdown().await;
    let mut queued: Vec<i64> = serde_json::from_value(report["queued"].clone())?;
    queued.sort_unstable();
    let mut expected = vec![never, dead, stuck];
    expected.sort_unstable();
    assert_eq!(queued, expected, "{report}");
    assert_eq!(report["taken_back"], json!([stuck]));
    let status = |id| {
        let pool = pool.clone();
        async move {
            Ok::<_, anyhow::Error>(
                sales::sale_row(&mut *pool.get().await?, id)
                    .await?
                    .sunat_status,
            )
        }
    };
    assert_eq!(status(stuck).await?, sales::SunatStatus::Pending);
    assert_eq!(status(busy).await?, sales::SunatStatus::Sending);
    // The queued sends reach Redis through the outbox: one more live job for each, none for `live`.
    assert_eq!(relay::drain(&r.broker, &pool).await?, 3);
    let pending: Vec<i64> = send_jobs(&r.broker)
        .await?
        .into_iter()
        .filter(|j| j.2 == TaskState::Pending)
        .map(|j| j.1)
        .collect();
    let mut want = vec![live, never, dead, stuck];
    want.sort_unstable();
    let mut got = pending.clone();
    got.sort_unstable();
    assert_eq!(
        got, want,
        "one live send job per sale, and `busy` keeps its attempt"
    );
    Ok(())
}

/// A sale of `doc_type` ("boleta" or "factura") issued `days_ago` days ago (Lima), not sent.
async fn sale_issued(pool: &PgPool, doc_type: &str, days_ago: u64) -> anyhow::Result<i64> {
    let mut conn = pool.get().await?;
    let p = shop::create_product(
        &mut conn,
        shop::NewProduct {
            sku: format!("SKU-{}", faena_testkit::unique("d")),
            name: "Arroz 1 kg".into(),
            unit_price: "4.20".parse()?,
            stock: 10.into(),
            low_stock_threshold: 1.into(),
            igv_affectation: "10".into(),
            unit_code: "NIU".into(),
            icbper: false,
            decimal_quantity: false,
        },
    )
    .await?;
    let customer = (doc_type == "factura").then(|| sales::CustomerInput {
        doc_type: "ruc".into(),
        doc_number: "20100066603".into(),
        name: "Bodega Don Lucho S.A.C.".into(),
    });
    let sale = sales::create_sale(
        &mut conn,
        &Seller {
            user_id: "7".into(),
            is_admin: false,
        },
        &NewSale {
            doc_type: Some(doc_type.into()),
            customer,
            items: Some(vec![SaleItemInput {
                product_id: p.id,
                quantity: faena_shop::quantity::Quantity::whole(1)?,
                discount: None,
                free: false,
            }]),
            send: Some(false),
            ..Default::default()
        },
        &sales::SaleDefaults::default(),
    )
    .await?;
    diesel::sql_query(format!(
        "UPDATE sales SET issue_date = issue_date - {days_ago} WHERE id = {}",
        sale.id
    ))
    .execute(&mut conn)
    .await?;
    Ok(sale.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_near_their_sunat_deadline_open_one_insight_each_until_decided() -> anyhow::Result<()>
{
    let db = TestDb::new("outbox_deadline").await?;
    let r = TestRedis::new("outbox_deadline")?;
    let pool = faena_core::db::create_pool(&db.url, 4)?;
    let tz = chrono_tz::America::Lima;
    // A factura issued 3 days ago is due at the end of today (within 24 h, whatever the hour);
    // one issued 2 days ago at the end of tomorrow (more than 24 h away); one issued 10 days ago
    // is past its deadline. A boleta has 5 days: issued 5 days ago it is due today.
    let due_today = sale_issued(&pool, "factura", 3).await?;
    let tomorrow = sale_issued(&pool, "factura", 2).await?;
    let late = sale_issued(&pool, "factura", 10).await?;
    let boleta_today = sale_issued(&pool, "boleta", 5).await?;
    let boleta_later = sale_issued(&pool, "boleta", 3).await?;
    let decided = sale_issued(&pool, "factura", 10).await?;
    diesel::sql_query(format!(
        "UPDATE sales SET sunat_status = 'ACCEPTED' WHERE id = {decided}"
    ))
    .execute(&mut *pool.get().await?)
    .await?;
    let now = chrono::Utc::now();
    let mut conn = pool.get().await?;
    let counts = faena_shop::deadlines::count_at_risk(&mut conn, now, tz).await?;
    assert_eq!((counts.due_within_24h, counts.past_deadline), (2, 1));

    let w = sweep_worker(&pool, &r.broker);
    let first = sweep(&r.broker).await?;
    let second = sweep(&r.broker).await?;
    assert_eq!(
        first["deadline_insights"],
        json!({"opened": 3, "closed": 0})
    );
    assert_eq!(
        second["deadline_insights"],
        json!({"opened": 0, "closed": 0}),
        "one per sale"
    );
    let open = faena_shop::insights::list_insights(
        &mut conn,
        &faena_shop::insights::InsightFilter {
            status: Some(faena_shop::insights::InsightStatus::Open),
            kind: Some(faena_shop::insights::InsightKind::SunatDeadline),
            ..Default::default()
        },
    )
    .await?;
    let mut sales_open: Vec<i64> = open.iter().filter_map(|i| i.sale_id).collect();
    sales_open.sort_unstable();
    let mut want = vec![due_today, late, boleta_today];
    want.sort_unstable();
    assert_eq!(sales_open, want);
    assert!(!sales_open.contains(&tomorrow) && !sales_open.contains(&boleta_later));

    // SUNAT decides one: its insight closes on the next sweep.
    diesel::sql_query(format!(
        "UPDATE sales SET sunat_status = 'ACCEPTED' WHERE id = {due_today}"
    ))
    .execute(&mut conn)
    .await?;
    let third = sweep(&r.broker).await?;
    w.shutdown().await;
    assert_eq!(
        third["deadline_insights"],
        json!({"opened": 0, "closed": 1})
    );

    // The list of sales due before tomorrow's start, not yet decided.
    let listed = faena_shop::deadlines::list_sales(
        &mut conn,
        &faena_shop::deadlines::SaleFilter {
            sunat_status: Some(sales::SunatStatus::Pending),
            due_before: Some(now + chrono::Duration::hours(24)),
            ..Default::default()
        },
        tz,
    )
    .await?;
    let ids: Vec<i64> = listed.iter().map(|s| s.sale_id).collect();
    assert_eq!(ids, vec![late, boleta_today], "earliest deadline first");
    Ok(())
}
