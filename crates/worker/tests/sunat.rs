//! `send_sale_to_sunat` through a real worker, PostgreSQL, Redis and the SUNAT simulator: every
//! simulator scenario ends in the expected sale state with the expected attempts, submission
//! rows and sendBill calls; two workers and two enqueues make one sendBill call; an unknown
//! outcome followed by 1033 ends ACCEPTED, while 1033 or 1032 on a first send (or after an unknown
//! outcome of other bytes) ends CONFLICT; 1078 is a config error; an anonymous boleta gets no
//! observation; `retry_failed_sunat_sends` picks up old ERROR sales only, and a SOL login failure
//! only once the settings changed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use faena_broker::{Broker, TaskState};
use faena_core::db::PgPool;
use faena_core::jobs::EnqueueRequest;
use faena_core::{QueueName, Settings, TaskId};
use faena_shop::sales::{self, NewSale, SaleItemInput, SaleView, Seller};
use faena_shop::shop;
use faena_sunat::sim::{self, Scenario, ScenarioRequest, SimConfig, SimHandle};
use faena_testkit::{wait_for, TestDb, TestRedis};
use faena_worker::{spawn, Handlers, WorkerConfig, WorkerHandle};
use serde_json::json;

const CERT_PASSWORD: &str = "clave-de-prueba";

struct Env {
    _db: TestDb,
    redis: TestRedis,
    pool: PgPool,
    sim: SimHandle,
    settings: Settings,
    files: PathBuf,
    _dir: tempfile::TempDir,
}

async fn env(label: &str, sol_password: &str) -> anyhow::Result<Env> {
    let db = TestDb::new(label).await?;
    let redis = TestRedis::new(label)?;
    let (_, sim) = sim::spawn(SimConfig {
        bind: "127.0.0.1:0".parse()?,
        timeout_delay: Duration::from_secs(8),
        ..SimConfig::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let cert = faena_sunat::testcert::generate(dir.path(), CERT_PASSWORD)?;
    let files = dir.path().join("files");
    let vars: HashMap<String, String> = [
        ("DATABASE_URL", db.url.clone()),
        ("REDIS_URL", redis.url.clone()),
        ("FAENA_REDIS_PREFIX", redis.prefix.clone()),
        ("FAENA_COMPANY_RUC", "20100066603".into()),
        ("FAENA_COMPANY_NAME", "Bodega Doña Rosa S.A.C.".into()),
        ("FAENA_COMPANY_ADDRESS", "Av. Los Próceres 123, Lima".into()),
        ("SUNAT_SOL_USER", "MODDATOS".into()),
        ("SUNAT_SOL_PASSWORD", sol_password.into()),
        ("SUNAT_CERT_PATH", cert.p12_path.display().to_string()),
        ("SUNAT_CERT_PASSWORD", CERT_PASSWORD.into()),
        ("SUNAT_ENDPOINT", sim.endpoint()),
        ("SUNAT_READ_TIMEOUT_SECS", "1".into()),
        ("SUNAT_RETRY_DELAY_SECS", "1".into()),
        ("FAENA_FILES_DIR", files.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = Settings::from_map(&vars)?;
    let pool = faena_core::db::create_pool(&db.url, 8)?;
    Ok(Env {
        _db: db,
        redis,
        pool,
        sim,
        settings,
        files,
        _dir: dir,
    })
}

fn worker(e: &Env, broker: Broker) -> WorkerHandle {
    spawn(
        broker.clone(),
        Handlers::production(e.pool.clone(), broker, &e.settings),
        WorkerConfig {
            queues: vec![
                QueueName::parse("sunat").expect("valid"),
                QueueName::default_queue(),
            ],
            concurrency: 8,
            stop_timeout: Duration::from_secs(10),
            upkeep_interval: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(1),
            unknown_kind_grace: Duration::from_secs(900),
        },
    )
}

/// A product with plenty of stock, and `n` boletas of one unit of it (correlatives 1..=n).
async fn sales_of(e: &Env, n: usize) -> anyhow::Result<Vec<SaleView>> {
    let mut conn = e.pool.get().await?;
    let p = shop::create_product(
        &mut conn,
        shop::NewProduct {
            sku: "INKA-500".into(),
            name: "Inca Kola 500 ml".into(),
            unit_price: "2.50".parse()?,
            stock: 10_000.into(),
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
    let defaults = sales::SaleDefaults::default();
    let mut out = Vec::new();
    for _ in 0..n {
        let req = NewSale {
            items: Some(vec![SaleItemInput {
                product_id: p.id,
                quantity: faena_shop::quantity::Quantity::whole(4)?,
                discount: None,
                free: false,
            }]),
            ..Default::default()
        };
        out.push(sales::create_sale(&mut conn, &seller, &req, &defaults).await?);
    }
    Ok(out)
}

async fn send(broker: &Broker, sale_id: i64) -> anyhow::Result<TaskId> {
    let id = broker
        .enqueue(EnqueueRequest {
            kind: "send_sale_to_sunat".into(),
            args: json!({ "sale_id": sale_id }),
            ..Default::default()
        })
        .await?;
    Ok(id)
}

async fn sale(e: &Env, id: i64) -> anyhow::Result<SaleView> {
    Ok(sales::get_sale(&mut *e.pool.get().await?, id).await?)
}

/// Waits until the sale leaves PENDING/SENDING.
async fn settled(e: &Env, id: i64) -> anyhow::Result<SaleView> {
    wait_for("the sale to settle", Duration::from_secs(40), || async {
        let s = sale(e, id).await?;
        Ok(matches!(
            s.sunat.status.as_str(),
            "ACCEPTED" | "REJECTED" | "ERROR" | "CONFLICT"
        )
        .then_some(s))
    })
    .await
}

/// The simulator answers the sale's next `times` sends with `scenario`.
fn scenario(e: &Env, s: &SaleView, scenario: Scenario, times: u32) {
    e.sim.state.set_scenario(ScenarioRequest {
        series: s.series.clone(),
        correlative: s.correlative,
        scenario,
        times,
    });
}

/// sendBill calls the simulator received for the sale.
fn calls(e: &Env, s: &SaleView) -> u64 {
    e.sim
        .state
        .calls_for(&format!("20100066603-03-{}.zip", s.number))
}

/// Waits until the task is in `state`.
async fn task_in(
    e: &Env,
    id: &TaskId,
    state: TaskState,
) -> anyhow::Result<faena_broker::TaskRecord> {
    wait_for("the task's state", Duration::from_secs(20), || async {
        Ok(e.redis.broker.task(id).await?.filter(|r| r.state == state))
    })
    .await
}

fn outcomes(s: &SaleView) -> Vec<String> {
    s.sunat
        .submissions
        .iter()
        .map(|x| x.outcome.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_simulator_scenario_ends_in_its_state() -> anyhow::Result<()> {
    let e = env("sunatscen", "moddatos").await?;
    // (scenario, times, final status, outcomes of the submissions in order)
    let cases: Vec<(Option<Scenario>, u32, &str, Vec<&str>)> = vec![
        (None, 0, "ACCEPTED", vec!["accepted"]),
        (
            Some(Scenario::Observations),
            1,
            "ACCEPTED",
            vec!["observed"],
        ),
        (Some(Scenario::Rejection), 1, "REJECTED", vec!["rejected"]),
        (
            Some(Scenario::Fault0109),
            1,
            "ACCEPTED",
            vec!["retryable", "accepted"],
        ),
        (
            Some(Scenario::Fault0130),
            2,
            "ACCEPTED",
            vec!["retryable", "retryable", "accepted"],
        ),
        (
            Some(Scenario::Http503),
            1,
            "ACCEPTED",
            vec!["retryable", "accepted"],
        ),
        // 3 retries by default: 4 attempts, then ERROR.
        (Some(Scenario::Http503), 9, "ERROR", vec!["retryable"; 4]),
        (
            Some(Scenario::Empty200),
            1,
            "ACCEPTED",
            vec!["unknown", "accepted"],
        ),
        // 1033 on a first send: another document holds the number.
        (
            Some(Scenario::AlreadyRegistered),
            1,
            "CONFLICT",
            vec!["conflict"],
        ),
        (
            Some(Scenario::UnknownThen1033),
            1,
            "ACCEPTED",
            vec!["unknown", "already_registered"],
        ),
        (Some(Scenario::Timeout), 1, "ACCEPTED", vec!["unknown"]),
    ];
    let made = sales_of(&e, cases.len()).await?;
    for (s, (scenario, times, _, _)) in made.iter().zip(&cases) {
        if let Some(sc) = scenario {
            e.sim.state.set_scenario(ScenarioRequest {
                series: s.series.clone(),
                correlative: s.correlative,
                scenario: *sc,
                times: *times,
            });
        }
    }
    let w = worker(&e, e.redis.broker.clone());
    for s in &made {
        send(&e.redis.broker, s.id).await?;
    }
    for (s, (scenario, _, status, expected)) in made.iter().zip(&cases) {
        let done = settled(&e, s.id).await?;
        let got = outcomes(&done);
        assert_eq!(
            done.sunat.status.as_str(),
            *status,
            "{scenario:?}: {got:?} {:?}",
            done.sunat
        );
        if *scenario == Some(Scenario::Timeout) {
            // A timed-out first send is unknown; the resend of the same bytes settles it (the
            // simulator registered it, so 1033, or it accepts it now).
            assert_eq!(got.len(), 2, "{got:?}");
            assert_eq!(got[0], "unknown");
            assert!(
                got[1] == "already_registered" || got[1] == "accepted",
                "{got:?}"
            );
        } else {
            assert_eq!(got, *expected, "{scenario:?}");
        }
        assert_eq!(done.sunat.attempts as usize, got.len(), "{scenario:?}");
        let file = format!("20100066603-03-{}.zip", done.number);
        assert_eq!(
            e.sim.state.calls_for(&file) as usize,
            got.len(),
            "{scenario:?}: one sendBill per submission row"
        );
        if done.sunat.status.as_str() == "ACCEPTED" {
            let pdf = e.files.join(done.files.pdf.as_deref().unwrap_or("-"));
            let bytes = std::fs::read(&pdf)
                .map_err(|err| anyhow::anyhow!("{scenario:?}: {}: {err}", pdf.display()))?;
            assert!(bytes.starts_with(b"%PDF"), "{}", pdf.display());
            let qr = e.files.join(done.files.qr.as_deref().unwrap_or("-"));
            let len = std::fs::metadata(&qr)
                .map_err(|err| anyhow::anyhow!("{scenario:?}: {}: {err}", qr.display()))?
                .len();
            assert!(len > 0);
            assert!(done.sunat.digest_value.is_some());
            assert!(done.sunat.accepted_at.is_some());
        } else {
            assert!(done.files.pdf.is_none(), "no PDF unless accepted");
            assert!(done.files.cdr.is_none(), "no CDR unless accepted");
        }
        if done.sunat.outcome.as_deref() == Some("accepted") {
            // Every sale here is an anonymous boleta: no 4208 observation.
            assert_eq!(done.sunat.notes, json!([]), "{scenario:?}");
        }
        if *scenario == Some(Scenario::Observations) {
            assert!(
                done.sunat.notes.as_array().is_some_and(|n| !n.is_empty()),
                "{:?}",
                done.sunat
            );
        }
    }
    // The first sale's PDF shows its number and total (pdftotext, from poppler-utils).
    let first = sale(&e, made[0].id).await?;
    let out = std::process::Command::new("pdftotext")
        .arg(e.files.join(first.files.pdf.as_deref().unwrap_or("-")))
        .arg("-")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&first.number), "{text}");
    assert!(text.contains("10.00"), "total S/ 10.00: {text}");
    stop(w).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_and_two_enqueues_make_one_send_bill_call() -> anyhow::Result<()> {
    let e = env("sunatonce", "moddatos").await?;
    let made = sales_of(&e, 3).await?;
    let w1 = worker(&e, e.redis.broker.clone());
    let w2 = worker(&e, e.redis.same_prefix()?);
    let mut tasks = Vec::new();
    for s in &made {
        tasks.push(send(&e.redis.broker, s.id).await?);
        tasks.push(send(&e.redis.broker, s.id).await?);
    }
    for t in &tasks {
        wait_for("both tasks to finish", Duration::from_secs(30), || async {
            Ok(e.redis
                .broker
                .task(t)
                .await?
                .filter(|r| r.state == TaskState::Succeeded))
        })
        .await?;
    }
    for s in &made {
        let done = sale(&e, s.id).await?;
        assert_eq!(done.sunat.status.as_str(), "ACCEPTED");
        let file = format!("20100066603-03-{}.zip", done.number);
        assert_eq!(e.sim.state.calls_for(&file), 1, "{file}");
        assert_eq!(done.sunat.submissions.len(), 1);
    }
    stop(w1).await;
    stop(w2).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_a_config_error_the_sweep_resends_only_once_the_settings_change(
) -> anyhow::Result<()> {
    let e = env("sunatcfg", "wrong-password").await?;
    let made = sales_of(&e, 2).await?;
    let w = worker(&e, e.redis.broker.clone());
    let t = send(&e.redis.broker, made[0].id).await?;
    let done = settled(&e, made[0].id).await?;
    assert_eq!(done.sunat.status.as_str(), "ERROR");
    assert_eq!(outcomes(&done), vec!["config_error"]);
    let rec = wait_for("the task to be DEAD", Duration::from_secs(10), || async {
        Ok(e.redis
            .broker
            .task(&t)
            .await?
            .filter(|r| r.state == TaskState::Dead))
    })
    .await?;
    assert!(rec.error.unwrap_or_default().contains("config_error"));
    assert_eq!(done.sunat.code.as_deref(), Some("0102"));
    assert_eq!(calls(&e, &made[0]), 1);

    // An hour later the sweep runs with the same settings: a SOL login that failed would fail
    // again (and count against the SOL user), so it is not resent.
    let pool = &e.pool;
    let mut conn = pool.get().await?;
    diesel::update(faena_shop::schema::sales::table.find(made[0].id))
        .set(
            faena_shop::schema::sales::sunat_sent_at
                .eq(chrono::Utc::now() - chrono::Duration::hours(2)),
        )
        .execute(&mut conn)
        .await?;
    let sweep = e
        .redis
        .broker
        .enqueue(EnqueueRequest {
            kind: "retry_failed_sunat_sends".into(),
            ..Default::default()
        })
        .await?;
    let rec = task_in(&e, &sweep, TaskState::Succeeded).await?;
    assert_eq!(rec.result.map(|r| r["requeued"].clone()), Some(json!(0)));
    assert_eq!(calls(&e, &made[0]), 1);
    assert_eq!(sale(&e, made[0].id).await?.sunat.status.as_str(), "ERROR");
    stop(w).await;

    // The password is fixed (other settings, another fingerprint); the sweep re-sends ERROR
    // sales whose last attempt is over an hour old, and leaves recent ones alone.
    let w = spawn(
        e.redis.broker.clone(),
        Handlers::production(e.pool.clone(), e.redis.broker.clone(), &fixed_settings(&e)),
        WorkerConfig {
            queues: vec![QueueName::parse("sunat")?, QueueName::default_queue()],
            concurrency: 4,
            stop_timeout: Duration::from_secs(10),
            upkeep_interval: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(1),
            unknown_kind_grace: Duration::from_secs(900),
        },
    );
    // A recent ERROR that the sweep must not touch.
    send(&e.redis.broker, made[1].id).await?;
    let recent = settled(&e, made[1].id).await?;
    assert_eq!(
        recent.sunat.status.as_str(),
        "ACCEPTED",
        "sent with the fixed password"
    );
    let sweep = e
        .redis
        .broker
        .enqueue(EnqueueRequest {
            kind: "retry_failed_sunat_sends".into(),
            ..Default::default()
        })
        .await?;
    let rec = wait_for("the sweep", Duration::from_secs(10), || async {
        Ok(e.redis
            .broker
            .task(&sweep)
            .await?
            .filter(|r| r.state == TaskState::Succeeded))
    })
    .await?;
    assert_eq!(
        rec.result.as_ref().map(|r| r["requeued"].clone()),
        Some(json!(1))
    );
    let done = wait_for("the re-sent sale", Duration::from_secs(20), || async {
        let s = sale(&e, made[0].id).await?;
        Ok((s.sunat.status.as_str() == "ACCEPTED").then_some(s))
    })
    .await?;
    assert_eq!(outcomes(&done), vec!["config_error", "accepted"]);
    assert_eq!(calls(&e, &made[0]), 2);
    stop(w).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_send_answered_1033_is_a_conflict_and_prints_nothing() -> anyhow::Result<()> {
    let e = env("sunat1033", "moddatos").await?;
    let s = sales_of(&e, 1).await?.remove(0);
    scenario(&e, &s, Scenario::AlreadyRegistered, 1);
    let w = worker(&e, e.redis.broker.clone());
    let t = send(&e.redis.broker, s.id).await?;
    let done = settled(&e, s.id).await?;
    assert_eq!(done.sunat.status.as_str(), "CONFLICT", "{:?}", done.sunat);
    assert_eq!(outcomes(&done), vec!["conflict"]);
    assert_eq!(done.sunat.code.as_deref(), Some("1033"));
    assert!(done.sunat.status_label.starts_with("Conflicto"));
    assert_eq!(
        (
            done.files.cdr.clone(),
            done.files.pdf.clone(),
            done.files.qr.clone()
        ),
        (None, None, None),
        "nothing printed"
    );
    assert_eq!(calls(&e, &s), 1);
    // It needs a person: the task is DEAD, and a second send does not call SUNAT.
    let rec = task_in(&e, &t, TaskState::Dead).await?;
    assert!(rec.error.unwrap_or_default().contains("conflict"));
    let again = send(&e.redis.broker, s.id).await?;
    let rec = task_in(&e, &again, TaskState::Succeeded).await?;
    assert_eq!(
        rec.result.map(|r| r["skipped"].clone()),
        Some(json!("the sale is CONFLICT"))
    );
    assert_eq!(calls(&e, &s), 1);
    stop(w).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_send_answered_1032_is_a_conflict() -> anyhow::Result<()> {
    let e = env("sunat1032", "moddatos").await?;
    let s = sales_of(&e, 1).await?.remove(0);
    scenario(&e, &s, Scenario::Fault1032, 1);
    let w = worker(&e, e.redis.broker.clone());
    send(&e.redis.broker, s.id).await?;
    let done = settled(&e, s.id).await?;
    assert_eq!(done.sunat.status.as_str(), "CONFLICT", "{:?}", done.sunat);
    assert_eq!(outcomes(&done), vec!["conflict"]);
    assert_eq!(done.sunat.code.as_deref(), Some("1032"));
    assert!(done.files.pdf.is_none());
    assert_eq!(calls(&e, &s), 1);
    stop(w).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_unknown_outcome_1032_means_rejected() -> anyhow::Result<()> {
    let e = env("sunatunk1032", "moddatos").await?;
    let s = sales_of(&e, 1).await?.remove(0);
    scenario(&e, &s, Scenario::UnknownThen1032, 1);
    let w = worker(&e, e.redis.broker.clone());
    send(&e.redis.broker, s.id).await?;
    let done = settled(&e, s.id).await?;
    assert_eq!(done.sunat.status.as_str(), "REJECTED", "{:?}", done.sunat);
    assert_eq!(outcomes(&done), vec!["unknown", "rejected"]);
    assert_eq!(done.sunat.code.as_deref(), Some("1032"));
    assert!(done.files.pdf.is_none());
    assert_eq!(calls(&e, &s), 2);
    stop(w).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1033_after_an_unknown_outcome_of_other_bytes_is_a_conflict() -> anyhow::Result<()> {
    let e = env("sunatotherbytes", "moddatos").await?;
    let s = sales_of(&e, 1).await?.remove(0);
    // An earlier attempt had an unknown outcome, but with other signed bytes (say, a document
    // signed before the database was restored): it does not make a 1033 ours.
    sales::record_submission(
        &mut *e.pool.get().await?,
        &sales::NewSubmission {
            sale_id: s.id,
            attempt: 1,
            started_at: chrono::Utc::now(),
            duration_ms: 1000,
            outcome: "unknown".into(),
            code: None,
            description: Some("read timeout".into()),
            http_status: None,
            task_id: None,
            signed_sha256: Some("0".repeat(64)),
            settings_fingerprint: None,
        },
    )
    .await?;
    scenario(&e, &s, Scenario::AlreadyRegistered, 1);
    let w = worker(&e, e.redis.broker.clone());
    send(&e.redis.broker, s.id).await?;
    let done = settled(&e, s.id).await?;
    assert_eq!(done.sunat.status.as_str(), "CONFLICT", "{:?}", done.sunat);
    assert_eq!(outcomes(&done), vec!["unknown", "conflict"]);
    assert_eq!(calls(&e, &s), 1);
    stop(w).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_1078_is_a_config_error() -> anyhow::Result<()> {
    let e = env("sunat1078", "moddatos").await?;
    let s = sales_of(&e, 1).await?.remove(0);
    scenario(&e, &s, Scenario::Fault1078, 1);
    let w = worker(&e, e.redis.broker.clone());
    let t = send(&e.redis.broker, s.id).await?;
    let done = settled(&e, s.id).await?;
    assert_eq!(done.sunat.status.as_str(), "ERROR", "{:?}", done.sunat);
    assert_eq!(outcomes(&done), vec!["config_error"]);
    assert_eq!(done.sunat.code.as_deref(), Some("1078"));
    assert_eq!(calls(&e, &s), 1);
    let rec = task_in(&e, &t, TaskState::Dead).await?;
    assert!(rec.error.unwrap_or_default().contains("config_error"));
    stop(w).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_0125_is_unknown_and_the_resend_reconciles() -> anyhow::Result<()> {
    let e = env("sunat0125", "moddatos").await?;
    let s = sales_of(&e, 1).await?.remove(0);
    scenario(&e, &s, Scenario::Fault0125, 1);
    let w = worker(&e, e.redis.broker.clone());
    send(&e.redis.broker, s.id).await?;
    let done = settled(&e, s.id).await?;
    assert_eq!(done.sunat.status.as_str(), "ACCEPTED", "{:?}", done.sunat);
    assert_eq!(outcomes(&done), vec!["unknown", "already_registered"]);
    assert_eq!(calls(&e, &s), 2);
    assert!(done.files.pdf.is_some());
    assert!(done.files.cdr.is_none(), "SUNAT never sent this one's CDR");
    stop(w).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_boleta_is_accepted_without_observation() -> anyhow::Result<()> {
    let e = env("sunatanon", "moddatos").await?;
    let mut conn = e.pool.get().await?;
    // A product whose code SUNAT would observe (4269: over 30 characters).
    let long_sku = "BEBIDAS-GASEOSAS-INKA-KOLA-500ML-PET";
    let p = shop::create_product(
        &mut conn,
        shop::NewProduct {
            sku: long_sku.into(),
            name: "Inca Kola 500 ml".into(),
            unit_price: "2.50".parse()?,
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
    let req = NewSale {
        items: Some(vec![SaleItemInput {
            product_id: p.id,
            quantity: faena_shop::quantity::Quantity::whole(2)?,
            discount: None,
            free: false,
        }]),
        ..Default::default()
    };
    let defaults = sales::SaleDefaults::default();
    let new = sales::create_sale(&mut conn, &seller, &req, &defaults).await?;
    assert_eq!(
        (
            new.customer_doc_type.as_str(),
            new.customer_doc_number.as_str()
        ),
        ("0", "00000000")
    );
    // A sale stored before this change, with "-" as its buyer's number.
    let old = sales::create_sale(&mut conn, &seller, &req, &defaults).await?;
    diesel::update(faena_shop::schema::sales::table.find(old.id))
        .set(faena_shop::schema::sales::customer_doc_number.eq("-"))
        .execute(&mut conn)
        .await?;
    drop(conn);
    let w = worker(&e, e.redis.broker.clone());
    for s in [&new, &old] {
        send(&e.redis.broker, s.id).await?;
        let done = settled(&e, s.id).await?;
        assert_eq!(done.sunat.status.as_str(), "ACCEPTED", "{:?}", done.sunat);
        assert_eq!(outcomes(&done), vec!["accepted"], "no 4208, no 4269");
        assert_eq!(done.sunat.notes, json!([]));
        assert_eq!(calls(&e, s), 1);
        let xml = std::fs::read_to_string(e.files.join(done.files.xml.as_deref().unwrap_or("-")))?;
        assert!(
            xml.contains("<cbc:ID schemeID=\"0\">00000000</cbc:ID>"),
            "{xml}"
        );
        assert!(!xml.contains(long_sku), "the long code is left out");
        assert!(!xml.contains("SellersItemIdentification"));
    }
    stop(w).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_buyer_name_sunat_would_reject_is_never_sent() -> anyhow::Result<()> {
    let e = env("sunatshortname", "moddatos").await?;
    let s = sales_of(&e, 1).await?.remove(0);
    // A sale stored before names were checked at creation.
    diesel::update(faena_shop::schema::sales::table.find(s.id))
        .set((
            faena_shop::schema::sales::customer_doc_type.eq("1"),
            faena_shop::schema::sales::customer_doc_number.eq("46027897"),
            faena_shop::schema::sales::customer_name.eq("Al"),
        ))
        .execute(&mut *e.pool.get().await?)
        .await?;
    let w = worker(&e, e.redis.broker.clone());
    let t = send(&e.redis.broker, s.id).await?;
    let done = settled(&e, s.id).await?;
    assert_eq!(done.sunat.status.as_str(), "ERROR", "{:?}", done.sunat);
    assert_eq!(outcomes(&done), vec!["document_error"]);
    assert!(
        done.sunat
            .description
            .as_deref()
            .is_some_and(|d| d.contains("2022")),
        "{:?}",
        done.sunat
    );
    assert_eq!(
        calls(&e, &s),
        0,
        "caught before sending: the number is not used up"
    );
    task_in(&e, &t, TaskState::Dead).await?;
    stop(w).await;
    Ok(())
}

/// The environment's settings with the right SOL password.
fn fixed_settings(e: &Env) -> Settings {
    let mut s = e.settings.clone();
    s.sunat.sol_password = Some("moddatos".to_owned().into());
    s
}

async fn stop(w: WorkerHandle) {
    let _ = w.stopper().send(true);
    w.join().await;
}
