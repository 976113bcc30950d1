//! Stores through a real worker, PostgreSQL, Redis and the SUNAT simulator: two stores' boletas
//! take their own series and carry their own establishment code in a signed XML that SUNAT's
//! schema accepts and whose signature verifies, and their credit notes take each store's own note
//! series (in the signed CreditNote); the hourly insights fan-out over three stores, one
//! of whose jobs fails, runs its callback once and the all-stores summary names the failed store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use faena_broker::{StepState, TaskState, WorkflowState};
use faena_catalog::StoreInsightsArgs;
use faena_core::db::PgPool;
use faena_core::jobs::{EnqueueRequest, JobError};
use faena_core::{QueueName, Settings, TaskId};
use faena_shop::insights::{self, InsightFilter, InsightKind, InsightStatus};
use faena_shop::sales::{self, NewSale, SaleItemInput, SaleView, Seller};
use faena_shop::stores::{self, NewStore, Store};
use faena_shop::{shop, store_insights};
use faena_sunat::sim::{self, SimConfig, SimHandle};
use faena_testkit::{wait_for, TestDb, TestRedis};
use faena_worker::{spawn, Handlers, WorkerConfig, WorkerHandle};
use serde_json::json;

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

fn worker(e: &Env, handlers: Handlers) -> WorkerHandle {
    spawn(
        e.redis.broker.clone(),
        handlers,
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

async fn add_store(e: &Env, code: &str, establishment: &str, n: u32) -> anyhow::Result<Store> {
    Ok(stores::create_store(
        &mut *e.pool.get().await?,
        &NewStore {
            code: code.into(),
            name: format!("Tienda {code}"),
            address: String::new(),
            establishment_code: establishment.into(),
            boleta_series: format!("B{n:03}"),
            factura_series: format!("F{n:03}"),
            boleta_note_series: format!("BC{n:02}"),
            factura_note_series: format!("FC{n:02}"),
            active: None,
        },
    )
    .await?)
}

/// A boleta of 2 units of `product` in `store` (the seller's own store when `None`).
async fn boleta(e: &Env, product: i64, store: Option<i64>) -> anyhow::Result<SaleView> {
    let req = NewSale {
        items: Some(vec![SaleItemInput {
            product_id: product,
            quantity: faena_shop::quantity::Quantity::whole(2)?,
            discount: None,
            free: false,
        }]),
        store_id: store,
        send: Some(false),
        ..Default::default()
    };
    // "7" names no user: a sale made by code sells in the main store, or where an admin says.
    let seller = Seller {
        user_id: "7".into(),
        is_admin: true,
    };
    Ok(sales::create_sale(
        &mut *e.pool.get().await?,
        &seller,
        &req,
        &sales::SaleDefaults::default(),
    )
    .await?)
}

/// Runs a command and returns (success, stdout + stderr).
fn run(cmd: &mut Command) -> anyhow::Result<(bool, String)> {
    let out = cmd
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {cmd:?}: {e} (install libxml2-utils, xmlsec1)"))?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// The signed receipt validates against SUNAT's UBL 2.1 schema and its signature verifies.
fn assert_schema_and_signature(xml: &Path, cert_pem: &Path) -> anyhow::Result<()> {
    assert_valid(xml, cert_pem, "Invoice")
}

/// The signed document validates against SUNAT's UBL 2.1 schema of `root` (Invoice,
/// CreditNote) and its signature verifies.
fn assert_valid(xml: &Path, cert_pem: &Path, root: &str) -> anyhow::Result<()> {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../sunat/tests/data/xsd/2.1/maindoc/UBL-{root}-2.1.xsd"
    ));
    let (ok, out) = run(Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(xml))?;
    assert!(ok, "xmllint rejected {}:\n{out}", xml.display());
    let (ok, out) = run(Command::new("xmlsec1")
        .args([
            "--verify",
            "--enabled-reference-uris",
            "empty",
            "--pubkey-cert-pem",
        ])
        .arg(cert_pem)
        .arg(xml))?;
    assert!(ok, "xmlsec1 did not verify {}:\n{out}", xml.display());
    Ok(())
}

/// The text of the first `<tag>` element of `xml`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_boletas_carry_their_own_series_and_establishment_codes() -> anyhow::Result<()> {
    let e = env("stores_xml").await?;
    let cusco = add_store(&e, "cusco", "0002", 5).await?;
    let p = shop::create_product(
        &mut *e.pool.get().await?,
        shop::NewProduct {
            sku: "INKA-500".into(),
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
    // Cusco sells its own stock.
    shop::adjust_stock(
        &mut *e.pool.get().await?,
        p.id,
        Some(cusco.id),
        10.into(),
        None,
    )
    .await?;
    let main_sale = boleta(&e, p.id, None).await?;
    let cusco_sale = boleta(&e, p.id, Some(cusco.id)).await?;
    let cusco_again = boleta(&e, p.id, Some(cusco.id)).await?;
    assert_eq!(
        (main_sale.number.as_str(), main_sale.store_id),
        (
            "B001-1",
            stores::main_store(&mut *e.pool.get().await?).await?.id
        )
    );
    assert_eq!(
        (cusco_sale.number.as_str(), cusco_sale.store_id),
        ("B005-1", cusco.id)
    );
    assert_eq!(cusco_again.number, "B005-2", "each series its own counter");

    let w = worker(
        &e,
        Handlers::production(e.pool.clone(), e.redis.broker.clone(), &e.settings),
    );
    for s in [&main_sale, &cusco_sale] {
        e.redis
            .broker
            .enqueue(EnqueueRequest {
                kind: "send_sale_to_sunat".into(),
                args: json!({ "sale_id": s.id }),
                ..Default::default()
            })
            .await?;
    }
    let mut sent = Vec::new();
    for s in [&main_sale, &cusco_sale] {
        let done = wait_for(
            "the sale to be accepted",
            Duration::from_secs(40),
            || async {
                let v = sales::get_sale(&mut *e.pool.get().await?, s.id).await?;
                Ok((v.sunat.status == sales::SunatStatus::Accepted).then_some(v))
            },
        )
        .await?;
        sent.push(done);
    }
    w.shutdown().await;

    for (sale, (series, establishment)) in sent.iter().zip([("B001-1", "0000"), ("B005-1", "0002")])
    {
        let path = e.files.join(sale.files.xml.as_deref().unwrap_or("-"));
        let xml = std::fs::read_to_string(&path)?;
        assert_eq!(element(&xml, "cbc:ID"), Some(series), "{xml}");
        assert_eq!(
            element(&xml, "cbc:AddressTypeCode"),
            Some(establishment),
            "{xml}"
        );
        assert_schema_and_signature(&path, &e.cert_pem)?;
    }
    Ok(())
}

/// Queues `kind` for each id (its `arg`: `sale_id` or `credit_note_id`).
async fn send_all(e: &Env, kind: &str, arg: &str, ids: &[i64]) -> anyhow::Result<()> {
    for id in ids {
        e.redis
            .broker
            .enqueue(EnqueueRequest {
                kind: kind.into(),
                args: json!({ arg: id }),
                ..Default::default()
            })
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_notes_take_their_own_note_series() -> anyhow::Result<()> {
    use faena_shop::credit_notes::{self, CreditRequest, NoteDefaults};
    use faena_sunat::CreditReason;
    let e = env("stores_notes").await?;
    let cusco = add_store(&e, "cusco", "0002", 5).await?;
    let p = shop::create_product(
        &mut *e.pool.get().await?,
        shop::NewProduct {
            sku: "INKA-500".into(),
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
    shop::adjust_stock(
        &mut *e.pool.get().await?,
        p.id,
        Some(cusco.id),
        10.into(),
        None,
    )
    .await?;
    let main_sale = boleta(&e, p.id, None).await?;
    let cusco_sale = boleta(&e, p.id, Some(cusco.id)).await?;
    let w = worker(
        &e,
        Handlers::production(e.pool.clone(), e.redis.broker.clone(), &e.settings),
    );
    send_all(
        &e,
        "send_sale_to_sunat",
        "sale_id",
        &[main_sale.id, cusco_sale.id],
    )
    .await?;
    for s in [&main_sale, &cusco_sale] {
        wait_for(
            "the sale to be accepted",
            Duration::from_secs(40),
            || async {
                let v = sales::get_sale(&mut *e.pool.get().await?, s.id).await?;
                Ok((v.sunat.status == sales::SunatStatus::Accepted).then_some(()))
            },
        )
        .await?;
    }
    // A whole return of each: the main store's note on BC01 (the settings' default), Cusco's on
    // its own BC05, each series with its own correlatives.
    let mut notes = Vec::new();
    for s in [&main_sale, &cusco_sale] {
        notes.push(
            credit_notes::create(
                &mut *e.pool.get().await?,
                s.id,
                "7",
                &CreditRequest::whole(CreditReason::TotalReturn, "Devolución total")?,
                &NoteDefaults::default(),
            )
            .await?,
        );
    }
    assert_eq!(
        notes.iter().map(|n| n.number.as_str()).collect::<Vec<_>>(),
        ["BC01-1", "BC05-1"]
    );
    let ids: Vec<i64> = notes.iter().map(|n| n.id).collect();
    send_all(&e, "send_credit_note_to_sunat", "credit_note_id", &ids).await?;
    let mut sent = Vec::new();
    for id in &ids {
        sent.push(
            wait_for(
                "the note to be accepted",
                Duration::from_secs(40),
                || async {
                    let n = credit_notes::get(&mut *e.pool.get().await?, *id).await?;
                    Ok((n.sunat.status == sales::SunatStatus::Accepted).then_some(n))
                },
            )
            .await?,
        );
    }
    w.shutdown().await;
    for (note, (number, modifies)) in sent
        .iter()
        .zip([("BC01-1", "B001-1"), ("BC05-1", "B005-1")])
    {
        let path = e.files.join(note.files.xml.as_deref().unwrap_or("-"));
        let xml = std::fs::read_to_string(&path)?;
        assert_eq!(element(&xml, "cbc:ID"), Some(number), "{xml}");
        assert_eq!(element(&xml, "cbc:ReferenceID"), Some(modifies), "{xml}");
        assert_valid(&path, &e.cert_pem, "CreditNote")?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fan_out_over_three_stores_names_the_store_that_failed() -> anyhow::Result<()> {
    let e = env("stores_fanout").await?;
    let lima = add_store(&e, "lima", "0001", 2).await?;
    let cusco = add_store(&e, "cusco", "0002", 3).await?;
    // A fourth store, disabled: not part of the fan-out.
    let closed = add_store(&e, "arequipa", "0003", 4).await?;
    stores::update_store(
        &mut *e.pool.get().await?,
        &stores::StoreKey::Id(closed.id),
        &stores::StorePatch {
            active: Some(false),
            ..Default::default()
        },
    )
    .await?;
    let main = stores::main_store(&mut *e.pool.get().await?).await?;

    // The production handlers, but cusco's store_insights fails for good.
    let mut h = Handlers::production(e.pool.clone(), e.redis.broker.clone(), &e.settings);
    let pool = e.pool.clone();
    let failing = cusco.id;
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    h.register(move |a: StoreInsightsArgs, _ctx| {
        let pool = pool.clone();
        let counted = Arc::clone(&counted);
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            if a.store_id == failing {
                return Err(JobError::Permanent(anyhow::anyhow!(
                    "the store's data is broken"
                )));
            }
            let mut conn = pool.get().await.map_err(|e| JobError::Retry(e.into()))?;
            let until = a.until.unwrap_or_else(chrono::Utc::now);
            let (_, data) = store_insights::store_store_insights(&mut conn, a.store_id, until)
                .await
                .map_err(|e| JobError::Retry(e.into()))?;
            serde_json::to_value(data).map_err(|e| JobError::Permanent(e.into()))
        }
    });
    let until = "2026-12-02T15:00:00Z";
    let parent = e
        .redis
        .broker
        .enqueue(EnqueueRequest {
            kind: "generate_insights".into(),
            args: json!({ "until": until }),
            ..Default::default()
        })
        .await?;
    let w = worker(&e, h);
    let rec = wait_for(
        "generate_insights to succeed",
        Duration::from_secs(30),
        || async {
            Ok(e.redis
                .broker
                .task(&parent)
                .await?
                .filter(|t| t.state == TaskState::Succeeded))
        },
    )
    .await?;
    let result = rec.result.unwrap_or_default();
    assert_eq!(result["stores"], json!(3), "{result}");
    let wf_id = TaskId::parse(result["workflow_id"].as_str().unwrap_or_default())?;
    let wf = wait_for("the fan-out to end", Duration::from_secs(30), || async {
        Ok(e.redis
            .broker
            .workflow(&wf_id)
            .await?
            .filter(|w| w.state != WorkflowState::Running))
    })
    .await?;
    w.shutdown().await;

    assert_eq!(wf.state, WorkflowState::Succeeded, "{wf:?}");
    let states: Vec<StepState> = wf.steps.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        vec![StepState::Succeeded, StepState::Succeeded, StepState::Dead],
        "main, lima, cusco in store id order"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 3, "one job per active store");
    let cb = wf.callback.as_ref().map(|c| (c.task_id.clone(), c.state));
    let Some((cb_id, StepState::Succeeded)) = cb else {
        anyhow::bail!("the callback did not succeed: {cb:?}");
    };
    let cb_rec = e
        .redis
        .broker
        .task(&TaskId::parse(&cb_id)?)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no callback record"))?;
    assert_eq!(
        (cb_rec.kind.as_str(), cb_rec.attempts),
        ("insights_summary", 1),
        "the callback ran once"
    );

    let mut conn = e.pool.get().await?;
    let summaries = insights::list_insights(
        &mut conn,
        &InsightFilter {
            kind: Some(InsightKind::InsightsSummary),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(summaries.len(), 1, "one summary: {summaries:?}");
    let data = &summaries[0].data;
    assert_eq!(data["stores"], json!(3));
    assert_eq!(
        data["failed"],
        json!([{
            "store_id": cusco.id, "code": "cusco", "name": "Tienda cusco",
            "task_id": wf.steps[2].task_id, "state": "DEAD",
        }])
    );
    let ok: Vec<&str> = data["succeeded"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["code"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ok, vec![main.code.as_str(), "lima"]);
    assert_eq!(
        (data["sales"].clone(), data["revenue"].clone()),
        (json!(0), json!("0.00"))
    );
    for (store, expected) in [(main.id, 1), (lima.id, 1), (cusco.id, 0), (closed.id, 0)] {
        let list = insights::list_insights(
            &mut conn,
            &InsightFilter {
                status: Some(InsightStatus::Open),
                store_id: Some(store),
                ..Default::default()
            },
        )
        .await?;
        assert_eq!(list.len(), expected, "store {store}: {list:?}");
    }
    Ok(())
}
