//! Cancellations, the Resumen Diario and the Comunicación de Baja through a real worker (with the
//! outbox relay), PostgreSQL, Redis and the SUNAT simulator: each row of the cancellation table
//! ends in its final state (local cancels, a baja and an RC status 3 that SUNAT accepts, a whole
//! credit note for a receipt past the window that SUNAT accepts, 409s for one being sent, one
//! with an unsure outcome and a CONFLICT); a
//! ticket that answers 98 three times is polled with snoozes, then applied; a Resumen Diario
//! carries a boleta answered 1079 to ACCEPTED, and a credit note of a boleta answered 1079 (a
//! line of type 07 naming its boleta); two builds make one summary per document and per note; an
//! unsure factura is settled by getStatusCdr without a resend; cleanup_old_files deletes a decided
//! summary's XML and CDR at the receipts' age; a refused Resumen Diario applies nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::{OptionalExtension, QueryDsl};
use diesel_async::RunQueryDsl;
use faena_broker::{Broker, TaskState};
use faena_core::db::PgPool;
use faena_core::jobs::EnqueueRequest;
use faena_core::{QueueName, Settings, TaskId};
use faena_shop::cancel::{self, CancelError, CancelRequest, Canceller};
use faena_shop::sales::{self, CustomerInput, NewSale, SaleItemInput, SaleView, Seller};
use faena_shop::shop;
use faena_shop::states::{SummaryState, VoidRoute, VoidState};
use faena_shop::summaries::{self, CancellationView, SummaryFilter, SummaryView};
use faena_sunat::sim::{self, Scenario, ScenarioRequest, SimConfig, SimHandle, SummaryRequest};
use faena_testkit::{wait_for, TestDb, TestRedis};
use faena_worker::{spawn, Handlers, WorkerConfig, WorkerHandle};
use serde_json::json;

const CERT_PASSWORD: &str = "clave-de-prueba";
const RUC: &str = "20100066603";

struct Env {
    _db: TestDb,
    redis: TestRedis,
    pool: PgPool,
    sim: SimHandle,
    settings: Settings,
    files: PathBuf,
    product: i64,
    relay_stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.relay_stop.send(true);
    }
}

async fn env(label: &str) -> anyhow::Result<Env> {
    let db = TestDb::new(label).await?;
    let redis = TestRedis::new(label)?;
    let (_, sim) = sim::spawn(SimConfig {
        bind: "127.0.0.1:0".parse()?,
        timeout_delay: Duration::from_secs(4),
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
        ("FAENA_COMPANY_RUC", RUC.into()),
        ("FAENA_COMPANY_NAME", "Bodega Doña Rosa S.A.C.".into()),
        ("FAENA_COMPANY_ADDRESS", "Av. Los Próceres 123, Lima".into()),
        ("SUNAT_SOL_USER", "MODDATOS".into()),
        ("SUNAT_SOL_PASSWORD", "moddatos".into()),
        ("SUNAT_CERT_PATH", cert.p12_path.display().to_string()),
        ("SUNAT_CERT_PASSWORD", CERT_PASSWORD.into()),
        ("SUNAT_ENDPOINT", sim.endpoint()),
        ("SUNAT_CONSULT_ENDPOINT", sim.consult_endpoint()),
        ("SUNAT_READ_TIMEOUT_SECS", "1".into()),
        ("SUNAT_RETRY_DELAY_SECS", "1".into()),
        ("SUNAT_TICKET_POLL_SECS", "1".into()),
        ("FAENA_FILES_DIR", files.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = Settings::from_map(&vars)?;
    let pool = faena_core::db::create_pool(&db.url, 8)?;
    let product = shop::create_product(
        &mut *pool.get().await?,
        shop::NewProduct {
            sku: "INKA-500".into(),
            name: "Inca Kola 500 ml".into(),
            unit_price: "2.50".parse()?,
            stock: 1_000.into(),
            low_stock_threshold: 1.into(),
            igv_affectation: "10".into(),
            unit_code: "NIU".into(),
            icbper: false,
            decimal_quantity: false,
        },
    )
    .await?
    .id;
    // Jobs written in a transaction (a summary's send, a ticket's first poll) reach Redis
    // through the outbox, as in the worker process.
    let (relay_stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(faena_broker::relay::run(
        redis.broker.clone(),
        pool.clone(),
        rx,
    ));
    Ok(Env {
        _db: db,
        redis,
        pool,
        sim,
        settings,
        files,
        product,
        relay_stop,
        _dir: dir,
    })
}

fn worker(e: &Env) -> WorkerHandle {
    let broker: Broker = e.redis.broker.clone();
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

fn seller() -> Seller {
    Seller {
        user_id: "7".into(),
        is_admin: false,
    }
}

/// A boleta (or a factura to a RUC buyer) of 4 units, not queued for SUNAT yet.
async fn sale_of(e: &Env, factura: bool) -> anyhow::Result<SaleView> {
    let req = NewSale {
        doc_type: factura.then(|| "factura".into()),
        customer: factura.then(|| CustomerInput {
            doc_type: "ruc".into(),
            doc_number: "20131312955".into(),
            name: "Distribuidora Andina S.A.C.".into(),
        }),
        items: Some(vec![SaleItemInput {
            product_id: e.product,
            quantity: faena_shop::quantity::Quantity::whole(4)?,
            discount: None,
            free: false,
        }]),
        send: Some(false),
        ..Default::default()
    };
    Ok(sales::create_sale(
        &mut *e.pool.get().await?,
        &seller(),
        &req,
        &sales::SaleDefaults::default(),
    )
    .await?)
}

async fn send(e: &Env, sale_id: i64) -> anyhow::Result<TaskId> {
    Ok(e.redis
        .broker
        .enqueue(EnqueueRequest {
            kind: "send_sale_to_sunat".into(),
            args: json!({ "sale_id": sale_id }),
            ..Default::default()
        })
        .await?)
}

async fn sale(e: &Env, id: i64) -> anyhow::Result<SaleView> {
    Ok(sales::get_sale(&mut *e.pool.get().await?, id).await?)
}

/// Waits until the sale's SUNAT status is `status`.
async fn sale_in(e: &Env, id: i64, status: &str) -> anyhow::Result<SaleView> {
    wait_for(
        "the sale's SUNAT status",
        Duration::from_secs(40),
        || async {
            let s = sale(e, id).await?;
            Ok((s.sunat.status.as_str() == status).then_some(s))
        },
    )
    .await
}

/// A sale sent to SUNAT under `scenario` (once), waited until `status`.
async fn sent(
    e: &Env,
    factura: bool,
    scenario: Option<Scenario>,
    status: &str,
) -> anyhow::Result<SaleView> {
    let s = sale_of(e, factura).await?;
    if let Some(scenario) = scenario {
        e.sim.state.set_scenario(ScenarioRequest {
            series: s.series.clone(),
            correlative: s.correlative,
            scenario,
            times: 1,
        });
    }
    send(e, s.id).await?;
    sale_in(e, s.id, status).await
}

async fn cancel_sale(e: &Env, id: i64) -> Result<CancellationView, CancelError> {
    let now = Utc::now();
    let today = now.with_timezone(&chrono_tz::America::Lima).date_naive();
    let mut conn = e
        .pool
        .get()
        .await
        .map_err(|_| CancelError::Db(faena_core::db::QueryError::Unavailable))?;
    cancel::cancel(
        &mut conn,
        id,
        &Canceller::User(seller()),
        &CancelRequest {
            reason: "Cliente devolvió el producto".into(),
        },
        now,
        today,
        &faena_shop::credit_notes::NoteDefaults::default(),
    )
    .await
}

/// The product's stock, which this test keeps whole.
async fn stock(e: &Env) -> anyhow::Result<i64> {
    let s = shop::get_product(&mut *e.pool.get().await?, e.product)
        .await?
        .stock;
    anyhow::ensure!(s.with_scale(0) == s, "the stock is whole: {s}");
    bigdecimal::ToPrimitive::to_i64(&s).ok_or_else(|| anyhow::anyhow!("the stock {s} fits an i64"))
}

fn today() -> chrono::NaiveDate {
    Utc::now()
        .with_timezone(&chrono_tz::America::Lima)
        .date_naive()
}

/// Runs `build_sunat_summaries` for today through the worker and answers its report.
async fn build(e: &Env) -> anyhow::Result<serde_json::Value> {
    let id = e
        .redis
        .broker
        .enqueue(EnqueueRequest {
            kind: "build_sunat_summaries".into(),
            args: json!({ "date": today() }),
            ..Default::default()
        })
        .await?;
    let done = wait_for("the build", Duration::from_secs(30), || async {
        Ok(e.redis
            .broker
            .task(&id)
            .await?
            .filter(|r| r.state == TaskState::Succeeded))
    })
    .await?;
    Ok(done.result.unwrap_or_default()["report"].clone())
}

async fn all_summaries(e: &Env) -> anyhow::Result<Vec<SummaryView>> {
    Ok(summaries::list(&mut *e.pool.get().await?, &SummaryFilter::default()).await?)
}

/// Waits until every summary is ACCEPTED or REJECTED.
async fn decided(e: &Env) -> anyhow::Result<Vec<SummaryView>> {
    wait_for(
        "the summaries' answers",
        Duration::from_secs(40),
        || async {
            let all = all_summaries(e).await?;
            Ok(all
                .iter()
                .all(|s| matches!(s.state, SummaryState::Accepted | SummaryState::Rejected))
                .then_some(all))
        },
    )
    .await
}

fn refusal(r: Result<CancellationView, CancelError>) -> (&'static str, String) {
    match r {
        Err(CancelError::Refused { reason, status, .. }) => (reason, status.to_string()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_of_the_cancellation_table_ends_in_its_final_state() -> anyhow::Result<()> {
    let e = env("cancel_rows").await?;
    let w = worker(&e);
    // 0. Never sent: cancelled here; a send queued later changes nothing.
    let never = sale_of(&e, false).await?;
    // 1. Rejected by SUNAT: cancelled here.
    let rejected = sent(&e, false, Some(Scenario::Rejection), "REJECTED").await?;
    // 2. Accepted factura: a Comunicación de Baja.
    let factura = sent(&e, true, None, "ACCEPTED").await?;
    // 3. Accepted boleta: a Resumen Diario line with status 3.
    let boleta = sent(&e, false, None, "ACCEPTED").await?;
    // 4. Accepted, past the window: a whole credit note carries the cancellation.
    let old = sent(&e, false, None, "ACCEPTED").await?;
    // 5. CONFLICT: a person must look.
    let conflict = sent(&e, false, Some(Scenario::AlreadyRegistered), "CONFLICT").await?;
    // 6. An outcome SUNAT may hold (unknown, a retry due); 7. being sent now.
    let unsure = sale_of(&e, false).await?;
    let sending = sale_of(&e, false).await?;
    {
        let mut conn = e.pool.get().await?;
        diesel::sql_query(format!(
            "UPDATE sales SET issue_date = issue_date - 10 WHERE id = {}",
            old.id
        ))
        .execute(&mut *conn)
        .await?;
        diesel::sql_query(format!(
            "INSERT INTO sunat_submissions (sale_id, attempt, started_at, duration_ms, outcome) \
             VALUES ({}, 1, now(), 1000, 'unknown')",
            unsure.id
        ))
        .execute(&mut *conn)
        .await?;
        diesel::sql_query(format!(
            "UPDATE sales SET sunat_status = 'SENDING' WHERE id = {}",
            sending.id
        ))
        .execute(&mut *conn)
        .await?;
    }
    let before = stock(&e).await?;
    assert_eq!(before, 1_000 - 4 * 8);

    for s in [&never, &rejected] {
        let c = cancel_sale(&e, s.id).await?;
        assert_eq!(
            (c.sunat_action, c.sunat_state),
            (VoidRoute::None, VoidState::None),
            "{}",
            s.number
        );
        // Twice: the same answer, nothing more.
        assert_eq!(cancel_sale(&e, s.id).await?, c);
    }
    let baja = cancel_sale(&e, factura.id).await?;
    assert_eq!(
        (baja.sunat_action, baja.sunat_state),
        (VoidRoute::Baja, VoidState::Queued)
    );
    let rc = cancel_sale(&e, boleta.id).await?;
    assert_eq!(
        (rc.sunat_action, rc.sunat_state),
        (VoidRoute::Resumen, VoidState::Queued)
    );
    assert_eq!(cancel_sale(&e, boleta.id).await?, rc, "twice, the same");
    let by_note = cancel_sale(&e, old.id).await?;
    assert_eq!(
        (
            by_note.sunat_action,
            by_note.sunat_state,
            by_note.credit_note.as_ref().map(|n| n.number.as_str())
        ),
        (VoidRoute::CreditNote, VoidState::None, Some("BC01-1"))
    );
    assert_eq!(
        refusal(cancel_sale(&e, conflict.id).await),
        ("sunat_conflict", "CONFLICT".into())
    );
    assert_eq!(
        refusal(cancel_sale(&e, unsure.id).await),
        ("sunat_pending", "PENDING".into())
    );
    assert_eq!(
        refusal(cancel_sale(&e, sending.id).await),
        ("sunat_pending", "SENDING".into())
    );
    // Five cancelled, 4 units each, back in stock once (the old sale's by its note); the
    // refused ones kept theirs.
    assert_eq!(stock(&e).await?, before + 5 * 4);
    for s in [&conflict, &unsure, &sending] {
        let v = sale(&e, s.id).await?;
        assert!(!v.is_cancelled && v.cancellation.is_none(), "{}", v.number);
    }
    // A send of the never-sent sale now skips it.
    let task = send(&e, never.id).await?;
    let rec = wait_for("the skipped send", Duration::from_secs(20), || async {
        Ok(e.redis
            .broker
            .task(&task)
            .await?
            .filter(|r| r.state == TaskState::Succeeded))
    })
    .await?;
    assert_eq!(
        rec.result.unwrap_or_default()["skipped"],
        "the sale is cancelled"
    );

    // The old sale's note is sent (sendBill, a B-series note within its 5 days) and accepted;
    // the sale stays ACCEPTED at SUNAT, credited in full.
    let note_id = by_note.credit_note.as_ref().map_or(0, |n| n.id);
    let note = wait_for(
        "the note to be accepted",
        Duration::from_secs(40),
        || async {
            let n = faena_shop::credit_notes::get(&mut *e.pool.get().await?, note_id).await?;
            Ok((n.sunat.status == faena_shop::sales::SunatStatus::Accepted).then_some(n))
        },
    )
    .await?;
    assert_eq!(
        (
            note.reason_code.as_str(),
            faena_shop::money::format(&note.total)
        ),
        ("01", "10.00".to_owned())
    );
    let v = faena_shop::credit_notes::sale_detail(&mut *e.pool.get().await?, old.id).await?;
    assert_eq!(v.sale.sunat.status.as_str(), "ACCEPTED");
    assert_eq!(
        (
            v.credit_notes.len(),
            faena_shop::money::format(&v.remaining)
        ),
        (1, "0.00".to_owned())
    );
    let c = v.sale.cancellation.expect("cancelled");
    assert_eq!(
        (
            c.credit_note.as_ref().map(|n| n.status.as_str()),
            c.sunat_label
        ),
        (
            Some("ACCEPTED"),
            "Anulada con una nota de crédito aceptada por SUNAT"
        )
    );
    // Twice: the same cancellation (its note's state as it is now), no second note.
    assert_eq!(cancel_sale(&e, old.id).await?, c);
    assert_eq!(
        (c.reason.as_str(), c.cancelled_at, c.sunat_action),
        (
            by_note.reason.as_str(),
            by_note.cancelled_at,
            by_note.sunat_action
        )
    );
    assert_eq!(stock(&e).await?, before + 5 * 4, "the note gave back once");

    // The nightly build (for today here) makes one RA and one RC; SUNAT accepts both.
    let report = build(&e).await?;
    assert_eq!(
        report["built"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    let all = decided(&e).await?;
    let day = today().format("%Y%m%d");
    let mut ids: Vec<_> = all
        .iter()
        .map(|s| (s.summary_id.clone(), s.state, s.lines.len()))
        .collect();
    ids.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        ids,
        [
            (format!("RA-{day}-1"), SummaryState::Accepted, 1),
            (format!("RC-{day}-1"), SummaryState::Accepted, 1)
        ]
    );
    for s in &all {
        assert!(s.ticket.is_some() && s.cdr_path.is_some(), "{s:?}");
        let cdr = e.files.join(s.cdr_path.as_deref().unwrap_or("-"));
        assert!(std::fs::metadata(&cdr)?.len() > 0, "{}", cdr.display());
        assert_eq!(s.lines[0].condition_code, "3");
        assert_eq!(s.lines[0].outcome.as_deref(), Some("accepted"));
    }
    for s in [&factura, &boleta] {
        let v = sale(&e, s.id).await?;
        assert_eq!(v.sunat.status.as_str(), "VOIDED", "{}", v.number);
        let c = v.cancellation.expect("cancelled");
        assert_eq!(c.sunat_state, VoidState::Voided);
        assert_eq!(c.sunat_code.as_deref(), Some("0"));
        assert_eq!(v.summaries.len(), 1);
        assert_eq!(v.summaries[0].state, SummaryState::Accepted);
        assert_eq!(v.summaries[0].outcome.as_deref(), Some("accepted"));
    }
    // Voided through the summaries alone: each number went to sendBill once, when it was sold.
    for (s, tt) in [(&factura, "01"), (&boleta, "03")] {
        let file = format!("{RUC}-{tt}-{}.zip", s.number);
        assert_eq!(e.sim.state.calls_for(&file), 1, "{file}");
    }
    // The day's report counts the cancelled and voided amounts (4 units of 2.50 each sale).
    let r = faena_shop::reports::compute_daily_report(
        &mut *e.pool.get().await?,
        today(),
        chrono_tz::America::Lima,
    )
    .await?;
    assert_eq!(
        (
            r.totals.cancelled,
            r.totals.voided,
            faena_shop::money::format(&r.totals.total_cancelled),
            faena_shop::money::format(&r.totals.total_voided),
        ),
        (4, 2, "40.00".into(), "20.00".into())
    );
    w.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_that_stays_98_three_times_is_polled_with_snoozes_then_applied(
) -> anyhow::Result<()> {
    let e = env("ticket98").await?;
    let w = worker(&e);
    let boleta = sent(&e, false, None, "ACCEPTED").await?;
    cancel_sale(&e, boleta.id).await?;
    let id = format!("RC-{}-1", today().format("%Y%m%d"));
    e.sim.state.set_summary(SummaryRequest {
        summary_id: id.clone(),
        pending_polls: 3,
        scenario: None,
    });
    let started = Instant::now();
    build(&e).await?;
    let all = decided(&e).await?;
    let took = started.elapsed();
    assert_eq!(all.len(), 1);
    let s = &all[0];
    assert_eq!(
        (s.summary_id.as_str(), s.state),
        (id.as_str(), SummaryState::Accepted)
    );
    assert_eq!(
        (s.attempts, s.polls),
        (1, 3),
        "one sendSummary, three answers of 98"
    );
    let ticket = s.ticket.clone().unwrap_or_default();
    let calls = e.sim.state.calls();
    assert_eq!(
        calls.calls.get(&format!("getStatus:{ticket}")).copied(),
        Some(4),
        "{calls:?}"
    );
    // Waits of 1 s before the first poll, then 1, 2 and 4 s after each 98.
    assert!(took >= Duration::from_secs(8), "{took:?}");
    assert_eq!(sale(&e, boleta.id).await?.sunat.status.as_str(), "VOIDED");
    w.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumen_diario_carries_a_1079_boleta_to_accepted() -> anyhow::Result<()> {
    let e = env("rc1079").await?;
    let w = worker(&e);
    let late = sent(&e, false, Some(Scenario::Fault1079), "ERROR").await?;
    assert_eq!(late.sunat.outcome.as_deref(), Some("needs_summary"));
    assert_eq!(late.sunat.code.as_deref(), Some("1079"));
    let report = build(&e).await?;
    assert_eq!(
        report["built"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    let all = decided(&e).await?;
    assert_eq!(all[0].state, SummaryState::Accepted);
    assert_eq!(all[0].lines.len(), 1);
    assert_eq!(all[0].lines[0].condition_code, "1");
    let v = sale(&e, late.id).await?;
    assert_eq!(v.sunat.status.as_str(), "ACCEPTED");
    assert!(v.sunat.accepted_at.is_some());
    assert_eq!(v.files.cdr, all[0].cdr_path);
    let pdf = e.files.join(v.files.pdf.as_deref().unwrap_or("-"));
    assert!(
        std::fs::read(&pdf)?.starts_with(b"%PDF"),
        "{}",
        pdf.display()
    );
    assert_eq!(v.summaries.len(), 1);
    assert_eq!(v.summaries[0].outcome.as_deref(), Some("accepted"));
    w.shutdown().await;
    Ok(())
}

/// Waits until the credit note's SUNAT status is `status`.
async fn note_in(
    e: &Env,
    id: i64,
    status: &str,
) -> anyhow::Result<faena_shop::credit_notes::CreditNoteView> {
    wait_for(
        "the note's SUNAT status",
        Duration::from_secs(40),
        || async {
            let n = faena_shop::credit_notes::get(&mut *e.pool.get().await?, id).await?;
            Ok((n.sunat.status.as_str() == status).then_some(n))
        },
    )
    .await
}

/// A credit note of 1 unit of an accepted boleta, answered 1079 by SUNAT (its sendBill window
/// is over): it waits in ERROR for a Resumen Diario.
async fn late_note_of(
    e: &Env,
    boleta: &SaleView,
) -> anyhow::Result<faena_shop::credit_notes::CreditNoteView> {
    use faena_shop::credit_notes::{self, CreditItemInput, CreditRequest, NewCreditNote};
    let req = CreditRequest::parse(&NewCreditNote {
        reason_code: "07".into(),
        description: "Devolución de una unidad".into(),
        items: Some(vec![CreditItemInput {
            product_id: e.product,
            quantity: faena_shop::quantity::Quantity::whole(1)?,
        }]),
    })?;
    let mut conn = e.pool.get().await?;
    // The note's number is the next of its series: tell the simulator to answer it 1079.
    let next: i64 = faena_shop::schema::series_counters::table
        .find("BC01")
        .select(faena_shop::schema::series_counters::last_correlative)
        .first::<i64>(&mut conn)
        .await
        .optional()?
        .unwrap_or(0)
        + 1;
    e.sim.state.set_scenario(ScenarioRequest {
        series: "BC01".into(),
        correlative: next,
        scenario: Scenario::Fault1079,
        times: 1,
    });
    let n = credit_notes::create(
        &mut conn,
        boleta.id,
        "7",
        &req,
        &credit_notes::NoteDefaults::default(),
    )
    .await?;
    anyhow::ensure!(
        n.correlative == next,
        "note {} is not BC01-{next}",
        n.number
    );
    let n = note_in(e, n.id, "ERROR").await?;
    anyhow::ensure!(
        n.sunat.outcome.as_deref() == Some("needs_summary")
            && n.sunat.code.as_deref() == Some("1079"),
        "{:?}",
        n.sunat
    );
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumen_diario_carries_a_1079_credit_note_of_a_boleta_to_accepted() -> anyhow::Result<()>
{
    let e = env("rc1079note").await?;
    let w = worker(&e);
    let boleta = sent(&e, false, None, "ACCEPTED").await?;
    let note = late_note_of(&e, &boleta).await?;
    let report = build(&e).await?;
    assert_eq!(
        report["built"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    let all = decided(&e).await?;
    assert_eq!(all[0].state, SummaryState::Accepted, "{:?}", all[0]);
    assert_eq!(all[0].lines.len(), 1);
    let line = &all[0].lines[0];
    assert_eq!(line.doc_type, "07");
    assert_eq!(line.condition_code, "1");
    assert_eq!(line.credit_note_id, Some(note.id));
    assert_eq!(line.sale_id, boleta.id);
    assert_eq!(
        (line.series.as_str(), line.correlative),
        ("BC01", note.correlative)
    );
    assert_eq!(line.total, note.total);
    // What was sent: a line of type 07 with its reference to the boleta, signed.
    let xml = std::fs::read(e.files.join(all[0].xml_path.as_deref().unwrap_or("-")))?;
    faena_sunat::verify(&xml)?;
    let text = String::from_utf8(xml)?;
    let reference = text
        .split_once("<cac:BillingReference>")
        .and_then(|(_, rest)| rest.split_once("</cac:BillingReference>"))
        .map(|(inside, _)| inside)
        .ok_or_else(|| anyhow::anyhow!("no BillingReference in {text}"))?;
    let boleta_id = format!("<cbc:ID>{}-{}</cbc:ID>", boleta.series, boleta.correlative);
    assert!(reference.contains(&boleta_id), "{reference}");
    assert!(
        reference.contains("<cbc:DocumentTypeCode>03</cbc:DocumentTypeCode>"),
        "{reference}"
    );
    assert!(
        text.contains("<cbc:DocumentTypeCode>07</cbc:DocumentTypeCode>"),
        "{text}"
    );
    // The note is ACCEPTED with the summary's CDR and printed; the boleta is untouched.
    let n = note_in(&e, note.id, "ACCEPTED").await?;
    assert!(n.sunat.accepted_at.is_some());
    assert_eq!(n.files.cdr, all[0].cdr_path);
    let pdf = e.files.join(n.files.pdf.as_deref().unwrap_or("-"));
    assert!(
        std::fs::read(&pdf)?.starts_with(b"%PDF"),
        "{}",
        pdf.display()
    );
    let v = sale(&e, boleta.id).await?;
    assert_eq!(v.sunat.status.as_str(), "ACCEPTED");
    assert!(v.summaries.is_empty(), "{:?}", v.summaries);
    w.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn building_twice_makes_one_summary_per_credit_note() -> anyhow::Result<()> {
    let e = env("build_twice_note").await?;
    let w = worker(&e);
    let boleta = sent(&e, false, None, "ACCEPTED").await?;
    let late = sent(&e, false, Some(Scenario::Fault1079), "ERROR").await?;
    let note = late_note_of(&e, &boleta).await?;
    let (r1, r2) = tokio::join!(build(&e), build(&e));
    let r3 = build(&e).await?;
    let built: usize = [r1?, r2?, r3]
        .iter()
        .map(|r| r["built"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(built, 1);
    let all = decided(&e).await?;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state, SummaryState::Accepted, "{:?}", all[0]);
    let lines: Vec<_> = all[0]
        .lines
        .iter()
        .map(|l| (l.doc_type.clone(), l.sale_id, l.credit_note_id))
        .collect();
    // The boleta's line before the note's.
    assert_eq!(
        lines,
        [
            ("03".to_owned(), late.id, None),
            ("07".to_owned(), boleta.id, Some(note.id))
        ]
    );
    note_in(&e, note.id, "ACCEPTED").await?;
    sale_in(&e, late.id, "ACCEPTED").await?;
    let r4 = build(&e).await?;
    assert_eq!(r4["built"], json!([]), "{r4}");
    assert_eq!(all_summaries(&e).await?.len(), 1);
    w.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn building_twice_makes_one_summary_per_document() -> anyhow::Result<()> {
    let e = env("build_twice").await?;
    let w = worker(&e);
    let a = sent(&e, false, None, "ACCEPTED").await?;
    let b = sent(&e, false, None, "ACCEPTED").await?;
    let late = sent(&e, false, Some(Scenario::Fault1079), "ERROR").await?;
    cancel_sale(&e, a.id).await?;
    cancel_sale(&e, b.id).await?;
    // Two builds at once, then a third after them.
    let (r1, r2) = tokio::join!(build(&e), build(&e));
    let r3 = build(&e).await?;
    let built: usize = [r1?, r2?, r3]
        .iter()
        .map(|r| r["built"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(built, 1);
    let all = decided(&e).await?;
    assert_eq!(all.len(), 1);
    let mut lines: Vec<_> = all[0]
        .lines
        .iter()
        .map(|l| (l.sale_id, l.condition_code.clone()))
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            (a.id, "3".to_owned()),
            (b.id, "3".to_owned()),
            (late.id, "1".to_owned())
        ]
    );
    // Once decided, nothing waits: a fourth build makes nothing either.
    let r4 = build(&e).await?;
    assert_eq!(r4["built"], json!([]), "{r4}");
    assert_eq!(all_summaries(&e).await?.len(), 1);
    w.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsure_factura_is_settled_by_get_status_cdr_without_a_resend() -> anyhow::Result<()> {
    let e = env("statuscdr").await?;
    let w = worker(&e);
    // Registered, but the answer comes after the client's read timeout: unknown. The next
    // attempt asks the consult service, which has the CDR.
    let f = sent(&e, true, Some(Scenario::UnknownThen1033), "ACCEPTED").await?;
    let subs: Vec<_> = f
        .sunat
        .submissions
        .iter()
        .map(|s| s.outcome.clone())
        .collect();
    assert_eq!(subs, ["unknown", "accepted"]);
    assert!(
        f.sunat.submissions[1]
            .description
            .as_deref()
            .is_some_and(|d| d.starts_with("getStatusCdr")),
        "{:?}",
        f.sunat.submissions[1]
    );
    let file = format!("{RUC}-01-{}.zip", f.number);
    assert_eq!(e.sim.state.calls_for(&file), 1, "no resend");
    assert_eq!(
        e.sim
            .state
            .calls_for(&format!("getStatusCdr:01-{}-{}", f.series, f.correlative)),
        1
    );
    let cdr = e.files.join(f.files.cdr.as_deref().unwrap_or("-"));
    assert!(std::fs::metadata(&cdr)?.len() > 0, "{}", cdr.display());
    w.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_treats_a_decided_summary_like_its_receipts() -> anyhow::Result<()> {
    let e = env("summary_cleanup").await?;
    let w = worker(&e);
    let boleta = sent(&e, false, None, "ACCEPTED").await?;
    cancel_sale(&e, boleta.id).await?;
    build(&e).await?;
    let s = decided(&e).await?.remove(0);
    let (xml, cdr) = (
        e.files.join(s.xml_path.as_deref().unwrap_or("-")),
        e.files.join(s.cdr_path.as_deref().unwrap_or("-")),
    );
    let zip = xml.with_extension("zip");
    for f in [&xml, &zip, &cdr] {
        assert!(f.exists(), "{}", f.display());
    }
    let retention = faena_core::settings::RetentionSettings::default();
    let cleanup = |days: i64| {
        let e = &e;
        async move {
            faena_shop::retention::cleanup_old_files(
                &mut *e.pool.get().await?,
                &e.files,
                retention,
                false,
                Utc::now() + chrono::Duration::days(days),
            )
            .await
            .map_err(anyhow::Error::from)
        }
    };
    // 179 days on: younger than FAENA_XML_RETENTION_DAYS (180), kept.
    assert_eq!(cleanup(179).await?.summaries, 0);
    assert!(xml.exists() && cdr.exists());
    // 182 days on: its XML, zip and CDR go with the receipt's, and their paths are cleared.
    let r = cleanup(182).await?;
    assert_eq!((r.sales, r.summaries), (1, 1), "{r:?}");
    for f in [&xml, &zip, &cdr] {
        assert!(!f.exists(), "{}", f.display());
    }
    let s = all_summaries(&e).await?.remove(0);
    assert_eq!((s.xml_path, s.cdr_path), (None, None));
    w.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_resumen_diario_applies_nothing_and_says_so() -> anyhow::Result<()> {
    let e = env("rc_refused").await?;
    let w = worker(&e);
    let voided = sent(&e, false, None, "ACCEPTED").await?;
    let late = sent(&e, false, Some(Scenario::Fault1079), "ERROR").await?;
    cancel_sale(&e, voided.id).await?;
    e.sim.state.set_summary(SummaryRequest {
        summary_id: format!("RC-{}-1", today().format("%Y%m%d")),
        pending_polls: 1,
        scenario: Some(sim::SummaryScenario::Rejection),
    });
    build(&e).await?;
    let s = decided(&e).await?.remove(0);
    assert_eq!(
        (s.state, s.sunat_code.as_deref(), s.polls),
        (SummaryState::Rejected, Some("2800"), 1)
    );
    assert!(s
        .lines
        .iter()
        .all(|l| l.outcome.as_deref() == Some("rejected")));
    // The cancelled boleta is still accepted at SUNAT: its cancellation FAILED (a credit note).
    let v = sale(&e, voided.id).await?;
    assert_eq!(v.sunat.status.as_str(), "ACCEPTED");
    let c = v.cancellation.expect("cancelled");
    assert_eq!(
        (c.sunat_state, c.sunat_code.as_deref()),
        (VoidState::Failed, Some("2800"))
    );
    // The 1079 boleta stays ERROR, marked so no build or sweep takes it again by itself.
    let v = sale(&e, late.id).await?;
    assert_eq!(
        (v.sunat.status.as_str(), v.sunat.outcome.as_deref()),
        ("ERROR", Some("summary_rejected"))
    );
    let r = build(&e).await?;
    assert_eq!(r["built"], json!([]), "{r}");
    w.shutdown().await;
    Ok(())
}

/// A credit note of `sale_id` for `reason` (whole, or `items` units of the product).
async fn note_for(
    e: &Env,
    sale_id: i64,
    reason: &str,
    items: Option<i64>,
) -> Result<faena_shop::credit_notes::CreditNoteView, faena_shop::credit_notes::CreditNoteError> {
    use faena_shop::credit_notes::{self, CreditItemInput, CreditRequest, NewCreditNote};
    let req = CreditRequest::parse(&NewCreditNote {
        reason_code: reason.into(),
        description: "Anulación de la operación".into(),
        items: items.map(|q| {
            vec![CreditItemInput {
                product_id: e.product,
                quantity: faena_shop::quantity::Quantity::whole(q).expect("a test quantity"),
            }]
        }),
    })?;
    let mut conn = e.pool.get().await.expect("a connection");
    credit_notes::create(
        &mut conn,
        sale_id,
        "7",
        &req,
        &credit_notes::NoteDefaults::default(),
    )
    .await
}

fn not_creditable(
    r: Result<faena_shop::credit_notes::CreditNoteView, faena_shop::credit_notes::CreditNoteError>,
) -> (bool, String) {
    match r {
        Err(faena_shop::credit_notes::CreditNoteError::NotCreditable {
            is_cancelled,
            message,
            ..
        }) => (is_cancelled, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_sale_whose_void_sunat_refused_takes_a_whole_note_01_or_02(
) -> anyhow::Result<()> {
    let e = env("note_after_refused").await?;
    let w = worker(&e);
    let refused = sent(&e, false, None, "ACCEPTED").await?;
    cancel_sale(&e, refused.id).await?;
    e.sim.state.set_summary(SummaryRequest {
        summary_id: format!("RC-{}-1", today().format("%Y%m%d")),
        pending_polls: 0,
        scenario: Some(sim::SummaryScenario::Rejection),
    });
    build(&e).await?;
    decided(&e).await?;
    let c = sale(&e, refused.id).await?.cancellation.expect("cancelled");
    assert_eq!(c.sunat_state, VoidState::Failed);
    // A cancellation still waiting for its summary: the sale takes no note.
    let queued = sent(&e, false, None, "ACCEPTED").await?;
    cancel_sale(&e, queued.id).await?;
    let (cancelled, message) = not_creditable(note_for(&e, queued.id, "01", None).await);
    assert!(cancelled, "{message}");
    assert!(message.contains("anulada"), "{message}");

    let before = stock(&e).await?;
    // Only a whole note that annuls it: not chosen lines, not a return (06).
    let (_, message) = not_creditable(note_for(&e, refused.id, "07", Some(1)).await);
    assert!(
        message.contains("01") && message.contains("02"),
        "{message}"
    );
    not_creditable(note_for(&e, refused.id, "06", None).await);
    let note = note_for(&e, refused.id, "01", None).await?;
    assert_eq!(note.total, refused.total);
    // The cancellation gave the units back already: the note gives nothing more.
    assert_eq!(stock(&e).await?, before);
    // SUNAT still holds the boleta: it accepts the note.
    let n = note_in(&e, note.id, "ACCEPTED").await?;
    assert_eq!(n.reason_code, "01");
    // Nothing is left to credit.
    assert!(matches!(
        note_for(&e, refused.id, "02", None).await,
        Err(faena_shop::credit_notes::CreditNoteError::Exceeds { .. })
    ));
    w.shutdown().await;
    Ok(())
}
