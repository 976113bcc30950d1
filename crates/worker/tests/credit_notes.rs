//! Credit notes end to end: a real worker, PostgreSQL, Redis (through the outbox) and sunat-sim.
//! A partial note returns exactly its units to stock and is accepted by the simulator, with a
//! signed XML that validates against the UBL 2.1 CreditNote schema and verifies with xmlsec1,
//! a CDR and a PDF; a second note above what is left is refused (nothing changes: stock, notes,
//! the series' counter); a whole note credits what is left to the cent; a note of a sale SUNAT
//! has not accepted is refused; a note left SENDING by a dead attempt is taken back and sent by
//! the rescue sweep, and one in ERROR by the retry sweep (not one refused at the SOL login).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bigdecimal::BigDecimal;
use faena_broker::Broker;
use faena_core::db::PgPool;
use faena_core::{QueueName, Settings};
use faena_shop::credit_notes::{
    self, CreditItemInput, CreditNoteError, CreditNoteView, CreditRequest, NewCreditNote,
    NoteDefaults,
};
use faena_shop::quantity::Quantity;
use faena_shop::sales::{self, NewSale, SaleItemInput, SaleView, Seller, SunatStatus};
use faena_shop::shop;
use faena_sunat::sim::{self, SimConfig, SimHandle};
use faena_testkit::{wait_for, TestDb, TestRedis};
use faena_worker::{spawn, Handlers, WorkerConfig, WorkerHandle};

const CERT_PASSWORD: &str = "clave-de-prueba";

struct Env {
    _db: TestDb,
    redis: TestRedis,
    pool: PgPool,
    _sim: SimHandle,
    settings: Settings,
    files: PathBuf,
    cert_pem: PathBuf,
    _dir: tempfile::TempDir,
}

async fn env(label: &str) -> anyhow::Result<Env> {
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
        ("SUNAT_SOL_PASSWORD", "moddatos".into()),
        ("SUNAT_CERT_PATH", cert.p12_path.display().to_string()),
        ("SUNAT_CERT_PASSWORD", CERT_PASSWORD.into()),
        ("SUNAT_ENDPOINT", sim.endpoint()),
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
        _sim: sim,
        settings,
        files,
        cert_pem: cert.cert_pem_path,
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
            concurrency: 4,
            stop_timeout: Duration::from_secs(10),
            upkeep_interval: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(1),
            unknown_kind_grace: Duration::from_secs(900),
        },
    )
}

/// Moves what the outbox holds to Redis (the api and the worker process do it in production).
async fn relay(e: &Env) -> anyhow::Result<()> {
    faena_broker::relay::drain(&e.redis.broker, &e.pool).await?;
    Ok(())
}

const SELLER: &str = "7";

/// Two products (INKA 2.50, PAN 1.20, 100 units each) and a boleta of 4 INKA and 3 PAN
/// (13.60), sent (`send`) or not.
async fn sale(e: &Env, send: bool) -> anyhow::Result<(SaleView, i64, i64)> {
    let mut conn = e.pool.get().await?;
    let mut ids = Vec::new();
    for (sku, price) in [("INKA-500", "2.50"), ("PAN-01", "1.20")] {
        let p = shop::create_product(
            &mut conn,
            shop::NewProduct {
                sku: format!("{sku}-{send}"),
                name: sku.into(),
                unit_price: price.parse()?,
                stock: 100.into(),
                low_stock_threshold: 1.into(),
                igv_affectation: "10".into(),
                unit_code: "NIU".into(),
                icbper: false,
                decimal_quantity: false,
            },
        )
        .await?;
        ids.push(p.id);
    }
    let req = NewSale {
        items: Some(vec![
            SaleItemInput {
                product_id: ids[0],
                quantity: Quantity::whole(4)?,
                discount: None,
                free: false,
            },
            SaleItemInput {
                product_id: ids[1],
                quantity: Quantity::whole(3)?,
                discount: None,
                free: false,
            },
        ]),
        send: Some(send),
        ..Default::default()
    };
    let seller = Seller {
        user_id: SELLER.into(),
        is_admin: false,
    };
    let s = sales::create_sale(&mut conn, &seller, &req, &sales::SaleDefaults::default()).await?;
    Ok((s, ids[0], ids[1]))
}

async fn accepted_sale(e: &Env) -> anyhow::Result<(SaleView, i64, i64)> {
    let (s, a, b) = sale(e, true).await?;
    relay(e).await?;
    let s = wait_for(
        "the sale to be accepted",
        Duration::from_secs(40),
        || async {
            let v = sales::get_sale(&mut *e.pool.get().await?, s.id).await?;
            Ok((v.sunat.status == SunatStatus::Accepted).then_some(v))
        },
    )
    .await?;
    Ok((s, a, b))
}

/// A product's stock, which this test keeps whole.
async fn stock(e: &Env, product: i64) -> anyhow::Result<i64> {
    let s = shop::get_product(&mut *e.pool.get().await?, product)
        .await?
        .stock;
    anyhow::ensure!(s.with_scale(0) == s, "the stock is whole: {s}");
    bigdecimal::ToPrimitive::to_i64(&s).ok_or_else(|| anyhow::anyhow!("the stock {s} fits an i64"))
}

fn request(reason: &str, items: &[(i64, i32)]) -> CreditRequest {
    CreditRequest::parse(&NewCreditNote {
        reason_code: reason.into(),
        description: "Devolución del cliente".into(),
        items: (!items.is_empty()).then(|| {
            items
                .iter()
                .map(|(product_id, quantity)| CreditItemInput {
                    product_id: *product_id,
                    quantity: Quantity::whole(i64::from(*quantity))
                        .expect("a test quantity above 0"),
                })
                .collect()
        }),
    })
    .expect("a valid request")
}

async fn note(
    e: &Env,
    sale_id: i64,
    reason: &str,
    items: &[(i64, i32)],
) -> Result<CreditNoteView, CreditNoteError> {
    let mut conn = e.pool.get().await.expect("a connection");
    credit_notes::create(
        &mut conn,
        sale_id,
        SELLER,
        &request(reason, items),
        &NoteDefaults::default(),
    )
    .await
}

async fn settled(e: &Env, id: i64) -> anyhow::Result<CreditNoteView> {
    relay(e).await?;
    wait_for("the note to settle", Duration::from_secs(40), || async {
        let n = credit_notes::get(&mut *e.pool.get().await?, id).await?;
        Ok(matches!(
            n.sunat.status,
            SunatStatus::Accepted | SunatStatus::Rejected | SunatStatus::Error
        )
        .then_some(n))
    })
    .await
}

fn d(s: &str) -> BigDecimal {
    s.parse().expect("a decimal")
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (run scripts/test-deps.sh)"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn credit_note_xsd() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sunat/tests/data/xsd/2.1/maindoc/UBL-CreditNote-2.1.xsd")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_note_returns_its_units_and_is_accepted_by_the_simulator() -> anyhow::Result<()> {
    let e = env("cn_partial").await?;
    let w = worker(&e);
    let (s, inka, pan) = accepted_sale(&e).await?;
    assert_eq!(s.total, d("13.60"));
    assert_eq!((stock(&e, inka).await?, stock(&e, pan).await?), (96, 97));

    let n = note(&e, s.id, "07", &[(inka, 2)]).await?;
    assert_eq!(n.number, "BC01-1");
    assert_eq!(n.sunat.status, SunatStatus::Pending);
    assert_eq!(n.total, d("5.00"));
    assert_eq!((n.subtotal.clone(), n.igv.clone()), (d("4.24"), d("0.76")));
    assert_eq!(n.items.len(), 1);
    assert_eq!(n.items[0].quantity, d("2"));
    // Exactly its units came back, in the note's own transaction.
    assert_eq!((stock(&e, inka).await?, stock(&e, pan).await?), (98, 97));

    let n = settled(&e, n.id).await?;
    assert_eq!(n.sunat.status, SunatStatus::Accepted, "{:?}", n.sunat);
    assert_eq!(n.sunat.outcome.as_deref(), Some("accepted"));
    assert_eq!(n.sunat.attempts, 1);
    let xml = n.files.xml.clone().expect("the signed XML's path");
    assert_eq!(xml, "xml/20100066603-07-BC01-1.xml");
    assert_eq!(
        n.files.cdr.as_deref(),
        Some("cdr/R-20100066603-07-BC01-1.zip")
    );
    let pdf = e.files.join(n.files.pdf.as_deref().expect("a PDF"));
    assert!(std::fs::read(&pdf)?.starts_with(b"%PDF"));

    // What was sent is a valid, signed UBL 2.1 CreditNote.
    let path = e.files.join(&xml);
    let (ok, out) = run(Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(credit_note_xsd())
        .arg(&path));
    assert!(ok, "xmllint: {out}");
    let (ok, out) = run(Command::new("xmlsec1")
        .args([
            "--verify",
            "--enabled-reference-uris",
            "empty",
            "--pubkey-cert-pem",
        ])
        .arg(&e.cert_pem)
        .arg(&path));
    assert!(ok, "xmlsec1: {out}");

    // The sale shows its note and what is left.
    let detail = credit_notes::sale_detail(&mut *e.pool.get().await?, s.id).await?;
    assert_eq!(detail.credit_notes.len(), 1);
    assert_eq!(detail.credit_notes[0].sunat.status, SunatStatus::Accepted);
    assert_eq!((detail.credited, detail.remaining), (d("5.00"), d("8.60")));
    w.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_above_what_is_left_is_refused_and_a_whole_note_takes_the_rest() -> anyhow::Result<()>
{
    let e = env("cn_whole").await?;
    let w = worker(&e);
    let (s, inka, pan) = accepted_sale(&e).await?;
    let first = note(&e, s.id, "07", &[(inka, 3)]).await?;
    assert_eq!(first.total, d("7.50"));
    assert_eq!(stock(&e, inka).await?, 99);

    // 1 INKA is left, not 2: refused with what is left of the sale (13.60 - 7.50), and nothing
    // changed.
    match note(&e, s.id, "07", &[(inka, 2)]).await {
        Err(CreditNoteError::Exceeds { remaining, message }) => {
            assert_eq!(remaining, d("6.10"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((stock(&e, inka).await?, stock(&e, pan).await?), (99, 97));
    let notes = credit_notes::of_sale(&mut *e.pool.get().await?, s.id).await?;
    assert_eq!(notes.len(), 1, "no second note");

    // The whole of what is left: 1 INKA and 3 PAN, 6.10 to the cent, with the next correlative
    // (the refusal took none).
    let whole = note(&e, s.id, "06", &[]).await?;
    assert_eq!(whole.number, "BC01-2");
    assert_eq!(whole.total, d("6.10"));
    assert_eq!(whole.reason_code, "06");
    assert_eq!((stock(&e, inka).await?, stock(&e, pan).await?), (100, 100));
    for id in [first.id, whole.id] {
        let n = settled(&e, id).await?;
        assert_eq!(n.sunat.status, SunatStatus::Accepted, "{:?}", n.sunat);
        assert!(
            n.sunat.notes.as_array().is_some_and(Vec::is_empty),
            "{:?}",
            n.sunat
        );
    }
    let detail = credit_notes::sale_detail(&mut *e.pool.get().await?, s.id).await?;
    assert_eq!((detail.credited, detail.remaining), (d("13.60"), d("0.00")));
    // Nothing is left: another whole note is refused.
    match note(&e, s.id, "01", &[]).await {
        Err(CreditNoteError::Exceeds { remaining, .. }) => assert_eq!(remaining, d("0.00")),
        other => panic!("{other:?}"),
    }
    w.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_sunat_has_not_accepted_gets_no_note() -> anyhow::Result<()> {
    let e = env("cn_pending").await?;
    let (s, inka, _) = sale(&e, false).await?;
    match note(&e, s.id, "07", &[(inka, 1)]).await {
        Err(CreditNoteError::NotCreditable { status, .. }) => {
            assert_eq!(status, SunatStatus::Pending)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(stock(&e, inka).await?, 96, "no unit came back");
    match note(&e, 999_999, "06", &[]).await {
        Err(CreditNoteError::NotFound { what: "sale", .. }) => {}
        other => panic!("{other:?}"),
    }
    Ok(())
}

/// Runs a sweep (`rescue_unsent_sales`, `retry_failed_sunat_sends`) on the worker; its result.
async fn sweep(e: &Env, kind: &str, args: serde_json::Value) -> anyhow::Result<serde_json::Value> {
    let id = e
        .redis
        .broker
        .enqueue(faena_core::jobs::EnqueueRequest {
            kind: kind.into(),
            args,
            ..Default::default()
        })
        .await?;
    let rec = wait_for("the sweep to end", Duration::from_secs(20), || async {
        Ok(e.redis.broker.task(&id).await?.filter(|t| {
            matches!(
                t.state,
                faena_broker::TaskState::Succeeded | faena_broker::TaskState::Dead
            )
        }))
    })
    .await?;
    anyhow::ensure!(
        rec.state == faena_broker::TaskState::Succeeded,
        "{kind} failed: {:?}",
        rec.error
    );
    Ok(rec.result.unwrap_or_default())
}

async fn accepted(e: &Env, id: i64) -> anyhow::Result<CreditNoteView> {
    wait_for(
        "the note to be accepted",
        Duration::from_secs(40),
        || async {
            let n = credit_notes::get(&mut *e.pool.get().await?, id).await?;
            Ok((n.sunat.status == SunatStatus::Accepted).then_some(n))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_left_sending_or_in_error_are_rescued_and_sent() -> anyhow::Result<()> {
    use diesel_async::RunQueryDsl;
    let e = env("cn_rescue").await?;
    let w = worker(&e);
    let (s, inka, pan) = accepted_sale(&e).await?;
    // Four notes whose send jobs never reach Redis (their outbox rows dropped, as a purge would).
    let stuck = note(&e, s.id, "07", &[(inka, 1)]).await?;
    let failed = note(&e, s.id, "07", &[(inka, 1)]).await?;
    let login = note(&e, s.id, "07", &[(pan, 1)]).await?;
    let busy = note(&e, s.id, "07", &[(pan, 1)]).await?;
    let mut conn = e.pool.get().await?;
    diesel::sql_query("DELETE FROM faena_outbox")
        .execute(&mut *conn)
        .await?;
    // stuck: SENDING under an attempt that died; busy: SENDING, its lock held by a live attempt.
    for n in [&stuck, &busy] {
        credit_notes::begin_send(&mut conn, n.id, "a-dead-attempt:1")
            .await?
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    assert!(
        e.redis
            .broker
            .acquire_lock(
                &credit_notes::send_lock(busy.id),
                "someone:1",
                Duration::from_secs(60)
            )
            .await?
    );
    // failed: ERROR when its retries ran out, two hours ago; login: ERROR at SUNAT's SOL login
    // (0102), which the same settings would only repeat.
    for (id, outcome, code) in [
        (failed.id, "retryable", "0109"),
        (login.id, "config_error", "0102"),
    ] {
        diesel::sql_query(format!(
            "UPDATE credit_notes SET sunat_status = 'ERROR', sunat_outcome = '{outcome}', \
             sunat_code = '{code}', sunat_attempts = 4, \
             sunat_sent_at = now() - interval '2 hours' WHERE id = {id}"
        ))
        .execute(&mut *conn)
        .await?;
    }

    // The rescue takes the stuck note back and queues its send; the busy one is left alone.
    let r = sweep(
        &e,
        "rescue_unsent_sales",
        serde_json::json!({"older_than_secs": 0}),
    )
    .await?;
    assert_eq!(
        (&r["credit_notes"], &r["queued"], &r["taken_back"]),
        (
            &serde_json::json!({"queued": [stuck.id], "taken_back": [stuck.id]}),
            &serde_json::json!([]),
            &serde_json::json!([])
        ),
        "{r}"
    );
    relay(&e).await?;
    let n = accepted(&e, stuck.id).await?;
    assert_eq!(n.sunat.attempts, 2, "the dead attempt and the rescued one");

    // The ERROR sweep gives the failed note a new round; the login failure waits for a person.
    // `requeued` counts the note: every document it queued again, not only sales.
    let r = sweep(&e, "retry_failed_sunat_sends", serde_json::json!({})).await?;
    assert_eq!(
        (
            &r["requeued"],
            &r["sales"],
            &r["credit_notes"],
            &r["sale_ids"],
            &r["credit_note_ids"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(0),
            &serde_json::json!(1),
            &serde_json::json!([]),
            &serde_json::json!([failed.id])
        ),
        "{r}"
    );
    let n = accepted(&e, failed.id).await?;
    assert_eq!(n.sunat.attempts, 1, "its attempts started again");
    let row = |id| {
        let pool = e.pool.clone();
        async move { Ok::<_, anyhow::Error>(credit_notes::row(&mut *pool.get().await?, id).await?) }
    };
    assert_eq!(row(login.id).await?.sunat_status, SunatStatus::Error);
    assert_eq!(row(busy.id).await?.sunat_status, SunatStatus::Sending);
    w.shutdown().await;
    Ok(())
}
