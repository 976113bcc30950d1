//! The report and cleanup jobs through a real worker, PostgreSQL and Redis, with data made in
//! each test: `sunat_daily_report` against counts made by hand, `stock_alerts` dedup and closing,
//! `sales_summary`, `cleanup_old_files` (what it deletes and keeps, dry run) and
//! `cleanup_expired_tokens`. Every job run twice changes nothing the second time.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bigdecimal::BigDecimal;
use chrono::{DateTime, DurationRound, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use faena_broker::TaskState;
use faena_core::db::PgPool;
use faena_core::jobs::EnqueueRequest;
use faena_core::{QueueName, Settings, TaskId};
use faena_shop::auth::{self, Role, Username};
use faena_shop::insights::{self, InsightFilter, InsightKind, InsightStatus};
use faena_shop::sales::{self, CustomerInput, NewSale, SaleItemInput, SaleView, Seller};
use faena_shop::schema::{console_sessions, product_stock, refresh_tokens, sales as sales_t};
use faena_shop::sessions;
use faena_shop::{reports, shop};
use faena_testkit::{wait_for, TestDb, TestRedis};
use faena_worker::{spawn, Handlers, WorkerConfig, WorkerHandle};
use serde_json::{json, Value};

struct Env {
    _db: TestDb,
    redis: TestRedis,
    pool: PgPool,
    files: PathBuf,
    worker: Option<WorkerHandle>,
    _dir: tempfile::TempDir,
}

async fn env(label: &str) -> anyhow::Result<Env> {
    let db = TestDb::new(label).await?;
    let redis = TestRedis::new(label)?;
    let dir = tempfile::tempdir()?;
    let files = dir.path().join("files");
    let vars: HashMap<String, String> = [
        ("DATABASE_URL", db.url.clone()),
        ("REDIS_URL", redis.url.clone()),
        ("FAENA_REDIS_PREFIX", redis.prefix.clone()),
        ("FAENA_FILES_DIR", files.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = Settings::from_map(&vars)?;
    let pool = faena_core::db::create_pool(&db.url, 8)?;
    let worker = spawn(
        redis.broker.clone(),
        Handlers::production(pool.clone(), redis.broker.clone(), &settings),
        WorkerConfig {
            queues: vec![QueueName::default_queue()],
            concurrency: 4,
            stop_timeout: Duration::from_secs(10),
            upkeep_interval: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(1),
            unknown_kind_grace: Duration::from_secs(900),
        },
    );
    Ok(Env {
        _db: db,
        redis,
        pool,
        files,
        worker: Some(worker),
        _dir: dir,
    })
}

impl Env {
    async fn enqueue(&self, kind: &str, args: Value) -> anyhow::Result<TaskId> {
        let id = self
            .redis
            .broker
            .enqueue(EnqueueRequest {
                kind: kind.into(),
                args,
                ..Default::default()
            })
            .await?;
        Ok(id)
    }

    /// Waits for the task to succeed and returns its result; fails at once if it dies.
    async fn result(&self, id: &TaskId) -> anyhow::Result<Value> {
        let rec = wait_for("the job to finish", Duration::from_secs(20), || async {
            Ok(self
                .redis
                .broker
                .task(id)
                .await?
                .filter(|t| matches!(t.state, TaskState::Succeeded | TaskState::Dead)))
        })
        .await?;
        anyhow::ensure!(
            rec.state == TaskState::Succeeded,
            "the job died: {:?}",
            rec.error
        );
        Ok(rec.result.unwrap_or(Value::Null))
    }

    /// Enqueues a job like `faena enqueue KIND --args ARGS` and waits for its result.
    async fn run(&self, kind: &str, args: Value) -> anyhow::Result<Value> {
        let id = self.enqueue(kind, args).await?;
        self.result(&id).await
    }

    async fn stop(mut self) {
        if let Some(w) = self.worker.take() {
            w.shutdown().await;
        }
    }
}

async fn product(
    pool: &PgPool,
    sku: &str,
    price: &str,
    stock: i32,
    threshold: i32,
) -> anyhow::Result<shop::Product> {
    Ok(shop::create_product(
        &mut *pool.get().await?,
        shop::NewProduct {
            sku: sku.into(),
            name: format!("Producto {sku}"),
            unit_price: price.parse()?,
            stock: stock.into(),
            low_stock_threshold: threshold.into(),
            igv_affectation: "10".into(),
            unit_code: "NIU".into(),
            icbper: false,
            decimal_quantity: false,
        },
    )
    .await?)
}

/// A sale of `qty` units of `product` by `seller`: a factura (to a RUC) when `factura`.
async fn sale(
    pool: &PgPool,
    seller: &str,
    factura: bool,
    items: &[(i64, i32)],
) -> anyhow::Result<SaleView> {
    let req = NewSale {
        doc_type: factura.then(|| "factura".into()),
        customer: factura.then(|| CustomerInput {
            doc_type: "ruc".into(),
            doc_number: "20100066603".into(),
            name: "Distribuidora Andina S.A.C.".into(),
        }),
        items: Some(
            items
                .iter()
                .map(|&(product_id, quantity)| {
                    Ok(SaleItemInput {
                        product_id,
                        quantity: faena_shop::quantity::Quantity::whole(quantity.into())?,
                        discount: None,
                        free: false,
                    })
                })
                .collect::<anyhow::Result<_>>()?,
        ),
        ..Default::default()
    };
    Ok(sales::create_sale(
        &mut *pool.get().await?,
        &Seller {
            user_id: seller.into(),
            is_admin: false,
        },
        &req,
        &sales::SaleDefaults::default(),
    )
    .await?)
}

/// Puts a sale in a SUNAT state on a business date.
async fn set_state(
    pool: &PgPool,
    id: i64,
    status: &str,
    date: NaiveDate,
    cancelled: bool,
) -> anyhow::Result<()> {
    diesel::update(sales_t::table.find(id))
        .set((
            sales_t::sunat_status.eq(status),
            sales_t::issue_date.eq(date),
            sales_t::is_cancelled.eq(cancelled),
            sales_t::cancelled_at.eq(cancelled.then(Utc::now)),
        ))
        .execute(&mut *pool.get().await?)
        .await?;
    Ok(())
}

/// (seller, factura, items as (product, quantity), status, on the day?, cancelled)
type DaySpec<'a> = (&'a str, bool, Vec<(i64, i32)>, &'a str, bool, bool);

/// (items as (product, quantity), issued at, cancelled, inside the window and counted?)
type WindowSpec = (Vec<(i64, i32)>, DateTime<Utc>, bool, bool);

#[derive(Default, Debug, PartialEq)]
struct Hand {
    issued: i64,
    accepted: i64,
    rejected: i64,
    error: i64,
    pending: i64,
    cancelled: i64,
    billed: BigDecimal,
    accepted_total: BigDecimal,
}

impl Hand {
    fn add(&mut self, status: &str, cancelled: bool, total: &BigDecimal) {
        if cancelled {
            self.cancelled += 1;
            return;
        }
        self.issued += 1;
        self.billed += total;
        match status {
            "ACCEPTED" => {
                self.accepted += 1;
                self.accepted_total += total;
            }
            "REJECTED" => self.rejected += 1,
            "ERROR" => self.error += 1,
            _ => self.pending += 1,
        }
    }

    fn check(&self, v: &Value, what: &str) {
        let n = |k: &str| v[k].as_i64().unwrap_or(-1);
        assert_eq!(
            (
                n("issued"),
                n("accepted"),
                n("rejected"),
                n("error"),
                n("pending"),
                n("cancelled")
            ),
            (
                self.issued,
                self.accepted,
                self.rejected,
                self.error,
                self.pending,
                self.cancelled
            ),
            "{what}: {v}"
        );
        assert_eq!(
            v["total_billed"],
            json!(self.billed.with_scale(2).to_string()),
            "{what}"
        );
        assert_eq!(
            v["total_accepted"],
            json!(self.accepted_total.with_scale(2).to_string()),
            "{what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_report_matches_a_count_by_hand_and_a_rerun_replaces_it() -> anyhow::Result<()> {
    let e = env("rep_daily").await?;
    let mut conn = e.pool.get().await?;
    let mut seller_ids = Vec::new();
    for name in ["ana", "beto"] {
        let u = auth::create_user(
            &mut conn,
            &Username::parse(name)?,
            "una clave bien larga".to_owned().into(),
            Role::Seller,
        )
        .await?;
        seller_ids.push(u.id.to_string());
    }
    let (ana, beto) = (seller_ids[0].as_str(), seller_ids[1].as_str());
    let p = product(&e.pool, "INKA", "12.35", 10_000, 1).await?;
    let q = product(&e.pool, "PAN", "0.35", 10_000, 1).await?;
    let day: NaiveDate = "2026-11-20".parse()?;
    let other_days: [NaiveDate; 2] = ["2026-11-19".parse()?, "2026-11-21".parse()?];
    // (seller, factura, items, status, on the day?, cancelled)
    let specs: Vec<DaySpec> = vec![
        (ana, false, vec![(p.id, 1)], "ACCEPTED", true, false),
        (
            ana,
            false,
            vec![(p.id, 3), (q.id, 7)],
            "ACCEPTED",
            true,
            false,
        ),
        (ana, true, vec![(p.id, 2)], "REJECTED", true, false),
        (beto, false, vec![(q.id, 1)], "ERROR", true, false),
        (beto, true, vec![(p.id, 5)], "PENDING", true, false),
        (beto, false, vec![(q.id, 3)], "SENDING", true, false),
        (beto, true, vec![(p.id, 4)], "ACCEPTED", true, false),
        (beto, false, vec![(p.id, 9)], "ACCEPTED", true, true),
        (ana, false, vec![(p.id, 6)], "ACCEPTED", false, false),
        (beto, true, vec![(q.id, 2)], "ACCEPTED", false, false),
    ];
    let mut total = Hand::default();
    let mut by_seller: BTreeMap<String, Hand> = BTreeMap::new();
    let mut by_doc: BTreeMap<&str, Hand> = BTreeMap::new();
    for (i, (seller, factura, items, status, on_day, cancelled)) in specs.iter().enumerate() {
        let s = sale(&e.pool, seller, *factura, items).await?;
        let date = if *on_day { day } else { other_days[i % 2] };
        set_state(&e.pool, s.id, status, date, *cancelled).await?;
        if *on_day {
            total.add(status, *cancelled, &s.total);
            by_seller
                .entry((*seller).to_owned())
                .or_default()
                .add(status, *cancelled, &s.total);
            by_doc
                .entry(if *factura { "01" } else { "03" })
                .or_default()
                .add(status, *cancelled, &s.total);
        }
    }
    // The count by hand, spelled out: 7 receipts, 1 cancelled; 12.35 + 37.05 + 2.45 + 24.70 +
    // 0.35 + 61.75 + 1.05 + 49.40 = 189.10 billed, 12.35 + 39.50 + 49.40 = 101.25 accepted.
    assert_eq!((total.issued, total.accepted, total.cancelled), (7, 3, 1));
    assert_eq!(total.billed, "189.10".parse::<BigDecimal>()?);
    assert_eq!(total.accepted_total, "101.25".parse::<BigDecimal>()?);

    let first = e
        .run("sunat_daily_report", json!({"date": "2026-11-20"}))
        .await?;
    assert_eq!(first["issued"], 7, "{first}");
    assert_eq!(first["success_pct"], "42.86", "3 of 7: {first}");
    let stored = reports::get_daily_report(&mut conn, day)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no stored report"))?;
    let data = serde_json::to_value(&stored.report)?;
    total.check(&data["totals"], "totals");
    assert_eq!(data["totals"]["success_pct"], "42.86");
    assert_eq!(data["timezone"], "America/Lima");
    let sellers = data["by_seller"].as_array().cloned().unwrap_or_default();
    assert_eq!(sellers.len(), 2, "{data}");
    for line in &sellers {
        let id = line["seller_id"].as_str().unwrap_or_default();
        by_seller[id].check(line, &format!("seller {id}"));
    }
    assert_eq!(sellers[0]["seller_name"], "ana");
    assert_eq!(sellers[1]["seller_name"], "beto");
    let docs = data["by_doc_type"].as_array().cloned().unwrap_or_default();
    assert_eq!(docs.len(), 2);
    for line in &docs {
        let code = line["doc_type"].as_str().unwrap_or_default();
        by_doc[code].check(line, &format!("doc type {code}"));
    }
    // The CSV copy: header, the day, 2 sellers, 2 document types, the one store, the credit
    // notes (none).
    let csv_rel = stored.csv_path.clone().unwrap_or_default();
    assert_eq!(csv_rel, "reports/sunat-daily-2026-11-20.csv");
    let csv = std::fs::read_to_string(e.files.join(&csv_rel))?;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 8, "{csv}");
    // Every sale is the main store's: its row has the day's numbers, column for column.
    let numbers = |line: &str| line.split(',').skip(3).collect::<Vec<_>>().join(",");
    assert!(
        lines[6].starts_with("store,principal,Tienda principal,7,3,1,1,2,1,42.86,189.10,101.25,"),
        "{csv}"
    );
    assert_eq!(numbers(lines[6]), numbers(lines[1]), "{csv}");
    assert_eq!(
        lines[7], "credit_notes,07,nota de crédito,0,0,0,0,0,0,0.00,0.00,0.00,0,0.00,0.00,0.00,0.00,0.00,0.00,0.00,0.00",
        "{csv}"
    );
    assert!(
        lines[0].starts_with("section,key,name,issued,accepted"),
        "{csv}"
    );
    assert!(
        lines[1].starts_with("total,2026-11-20,,7,3,1,1,2,1,42.86,189.10,101.25"),
        "{csv}"
    );

    // A second run replaces the report with the same numbers: still one report, same data.
    let second = e
        .run("sunat_daily_report", json!({"date": "2026-11-20"}))
        .await?;
    assert_eq!(first, second);
    let again = reports::get_daily_report(&mut conn, day)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no stored report"))?;
    assert_eq!(again.report, stored.report);
    assert!(again.generated_at >= stored.generated_at);
    assert_eq!(std::fs::read_to_string(e.files.join(&csv_rel))?, csv);
    assert_eq!(
        reports::count_reports(&mut conn, reports::SUNAT_DAILY).await?,
        1
    );

    // A day without sales, and the default day (today in Lima).
    let empty = e
        .run("sunat_daily_report", json!({"date": "2026-01-01"}))
        .await?;
    assert_eq!(
        (empty["issued"].clone(), empty["success_pct"].clone()),
        (json!(0), json!("0.00"))
    );
    let today = e.run("sunat_daily_report", json!({})).await?;
    let lima_today = Utc::now()
        .with_timezone(&chrono_tz::America::Lima)
        .date_naive();
    assert_eq!(today["date"], json!(lima_today));
    assert_eq!(
        reports::count_reports(&mut conn, reports::SUNAT_DAILY).await?,
        3
    );
    // Bad args are refused at enqueue, naming the field.
    let err = e
        .enqueue("sunat_daily_report", json!({"date": "20-11-2026"}))
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("date"), "{err}");
    e.stop().await;
    Ok(())
}

async fn set_stock(pool: &PgPool, id: i64, stock: i32) -> anyhow::Result<()> {
    // The main store's, the only store of these tests.
    diesel::update(product_stock::table.filter(product_stock::product_id.eq(id)))
        .set(product_stock::quantity.eq(BigDecimal::from(stock)))
        .execute(&mut *pool.get().await?)
        .await?;
    Ok(())
}

/// Open alerts as (product id -> kind).
async fn open_alerts(pool: &PgPool) -> anyhow::Result<BTreeMap<i64, String>> {
    let list = insights::list_insights(
        &mut *pool.get().await?,
        &InsightFilter {
            status: Some(InsightStatus::Open),
            ..Default::default()
        },
    )
    .await?;
    let mut out = BTreeMap::new();
    for i in list {
        if let Some(pid) = i.product_id {
            assert!(
                out.insert(pid, i.kind.clone()).is_none(),
                "two open alerts for product {pid}"
            );
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_stock_alerts_handle_only_running_out_and_coming_back() -> anyhow::Result<()> {
    let e = env("rep_oos").await?;
    let low = product(&e.pool, "LOW", "1.00", 3, 5).await?;
    let out = product(&e.pool, "OUT", "1.00", 0, 3).await?;
    let back = product(&e.pool, "BACK", "1.00", 0, 1).await?;

    // Every 15 minutes: the products at 0 only; a low one waits for the 30-minute run.
    let r = e.run("out_of_stock_alerts", json!({})).await?;
    assert_eq!(
        r,
        json!({"opened": 2, "closed": 0, "updated": 0, "open": 2})
    );
    let r = e.run("stock_alerts", json!({})).await?;
    assert_eq!(
        r,
        json!({"opened": 1, "closed": 0, "updated": 0, "open": 3})
    );

    // LOW runs out, BACK is back above its threshold, OUT is back but still low.
    set_stock(&e.pool, low.id, 0).await?;
    set_stock(&e.pool, back.id, 5).await?;
    set_stock(&e.pool, out.id, 1).await?;
    let r = e.run("out_of_stock_alerts", json!({})).await?;
    assert_eq!(
        r,
        json!({"opened": 1, "closed": 3, "updated": 0, "open": 1}),
        "LOW's low_stock, BACK's and OUT's out_of_stock closed; LOW's out_of_stock opened"
    );
    let expected: BTreeMap<i64, String> = [(low.id, "out_of_stock".to_owned())].into();
    assert_eq!(open_alerts(&e.pool).await?, expected);
    // The full run then gives OUT its low-stock alert.
    let r = e.run("stock_alerts", json!({})).await?;
    assert_eq!(
        r,
        json!({"opened": 1, "closed": 0, "updated": 0, "open": 2})
    );
    let expected: BTreeMap<i64, String> = [
        (low.id, "out_of_stock".to_owned()),
        (out.id, "low_stock".to_owned()),
    ]
    .into();
    assert_eq!(open_alerts(&e.pool).await?, expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_alerts_are_deduplicated_and_closed_when_stock_recovers() -> anyhow::Result<()> {
    let e = env("rep_stock").await?;
    let ok = product(&e.pool, "OK", "1.00", 10, 5).await?;
    let at = product(&e.pool, "AT", "1.00", 5, 5).await?;
    let out = product(&e.pool, "OUT", "1.00", 0, 3).await?;
    let zero = product(&e.pool, "ZERO", "1.00", 0, 0).await?;
    let above = product(&e.pool, "ABOVE", "1.00", 2, 0).await?;

    let r = e.run("stock_alerts", json!({})).await?;
    assert_eq!(
        r,
        json!({"opened": 3, "closed": 0, "updated": 0, "open": 3})
    );
    let expected: BTreeMap<i64, String> = [
        (at.id, "low_stock".to_owned()),
        (out.id, "out_of_stock".to_owned()),
        (zero.id, "out_of_stock".to_owned()),
    ]
    .into();
    assert_eq!(open_alerts(&e.pool).await?, expected);
    assert!(!expected.contains_key(&ok.id) && !expected.contains_key(&above.id));

    // Every 30 minutes beat runs it again: nothing new.
    let r = e.run("stock_alerts", json!({})).await?;
    assert_eq!(
        r,
        json!({"opened": 0, "closed": 0, "updated": 0, "open": 3})
    );
    let all = insights::list_insights(&mut *e.pool.get().await?, &InsightFilter::default()).await?;
    assert_eq!(all.len(), 3, "no duplicates");

    // AT recovers, OUT gets some stock back (still low), OK runs out, ZERO's stock is unchanged.
    set_stock(&e.pool, at.id, 20).await?;
    set_stock(&e.pool, out.id, 2).await?;
    set_stock(&e.pool, ok.id, 0).await?;
    // Several runs at once, as two workers would: still one open alert per product.
    let ids = [
        e.enqueue("stock_alerts", json!({})).await?,
        e.enqueue("stock_alerts", json!({})).await?,
        e.enqueue("stock_alerts", json!({})).await?,
    ];
    let mut opened = 0;
    let mut closed = 0;
    for id in &ids {
        let r = e.result(id).await?;
        opened += r["opened"].as_u64().unwrap_or(0);
        closed += r["closed"].as_u64().unwrap_or(0);
    }
    assert_eq!(
        (opened, closed),
        (2, 2),
        "AT and OUT's out_of_stock closed; OUT low, OK out opened"
    );
    let expected: BTreeMap<i64, String> = [
        (out.id, "low_stock".to_owned()),
        (zero.id, "out_of_stock".to_owned()),
        (ok.id, "out_of_stock".to_owned()),
    ]
    .into();
    assert_eq!(open_alerts(&e.pool).await?, expected);
    let closed_list = insights::list_insights(
        &mut *e.pool.get().await?,
        &InsightFilter {
            status: Some(InsightStatus::Closed),
            kind: Some(InsightKind::LowStock),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(closed_list.len(), 1);
    assert_eq!(closed_list[0].product_id, Some(at.id));
    assert_eq!(closed_list[0].data["closed_stock"], 20);
    assert!(closed_list[0].closed_at.is_some());

    // A stock change within the alert's range updates it; then a run changes nothing.
    set_stock(&e.pool, out.id, 1).await?;
    let r = e.run("stock_alerts", json!({})).await?;
    assert_eq!(
        r,
        json!({"opened": 0, "closed": 0, "updated": 1, "open": 3})
    );
    let r = e.run("stock_alerts", json!({})).await?;
    assert_eq!(
        r,
        json!({"opened": 0, "closed": 0, "updated": 0, "open": 3})
    );
    let all = insights::list_insights(&mut *e.pool.get().await?, &InsightFilter::default()).await?;
    assert_eq!(all.len(), 5);
    e.stop().await;
    Ok(())
}

async fn set_issued_at(
    pool: &PgPool,
    id: i64,
    at: DateTime<Utc>,
    cancelled: bool,
) -> anyhow::Result<()> {
    diesel::update(sales_t::table.find(id))
        .set((
            sales_t::issued_at.eq(at),
            sales_t::is_cancelled.eq(cancelled),
        ))
        .execute(&mut *pool.get().await?)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_summary_counts_the_window_and_reruns_replace_it() -> anyhow::Result<()> {
    let e = env("rep_summary").await?;
    let until = Utc::now().duration_trunc(chrono::Duration::hours(1))?;
    let h = chrono::Duration::hours;
    let a = product(&e.pool, "AGUA", "1.50", 1000, 1).await?;
    let b = product(&e.pool, "GALLETA", "0.80", 1000, 1).await?;
    let c = product(&e.pool, "CAFE", "15.90", 1000, 1).await?;
    // (items, issued at, cancelled, inside the window and counted?)
    let specs: Vec<WindowSpec> = vec![
        (vec![(a.id, 4), (b.id, 2)], until - h(1), false, true),
        (vec![(b.id, 10)], until - h(23), false, true),
        (vec![(c.id, 1), (a.id, 1)], until - h(24), false, true),
        (vec![(c.id, 5)], until - h(2), true, false),
        (vec![(a.id, 99)], until - h(25), false, false),
        (
            vec![(a.id, 77)],
            until + chrono::Duration::minutes(10),
            false,
            false,
        ),
    ];
    let mut count = 0;
    let mut revenue = BigDecimal::from(0);
    let mut units: BTreeMap<String, i64> = BTreeMap::new();
    for (items, at, cancelled, counted) in &specs {
        let s = sale(&e.pool, "7", false, items).await?;
        set_issued_at(&e.pool, s.id, *at, *cancelled).await?;
        if *counted {
            count += 1;
            revenue += &s.total;
            for i in &s.items {
                *units.entry(i.sku.clone()).or_default() +=
                    faena_shop::quantity::format(&i.quantity).parse::<i64>()?;
            }
        }
    }
    // By hand: 6.00 + 1.60 + 8.00 + 15.90 + 1.50 = 33.00; GALLETA 12, AGUA 5, CAFE 1.
    assert_eq!(
        (count, revenue.with_scale(2).to_string()),
        (3, "33.00".to_owned())
    );
    let args = json!({"hours": 24, "until": until});
    let first = e.run("sales_summary", args.clone()).await?;
    let s = &first["summary"];
    assert_eq!(s["sales"], count, "{first}");
    assert_eq!(s["cancelled"], 1);
    assert_eq!(s["revenue"], "33.00");
    let top: Vec<(String, i64)> = s["top_products"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            (
                p["sku"].as_str().unwrap_or_default().to_owned(),
                p["units"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        top,
        vec![
            ("GALLETA".to_owned(), units["GALLETA"]),
            ("AGUA".to_owned(), units["AGUA"]),
            ("CAFE".to_owned(), units["CAFE"]),
        ]
    );
    assert_eq!(s["top_products"][0]["revenue"], "9.60");

    let second = e.run("sales_summary", args).await?;
    assert_eq!(first, second, "a re-run changes nothing");
    let filter = InsightFilter {
        kind: Some(InsightKind::SalesSummary),
        ..Default::default()
    };
    let all = insights::list_insights(&mut *e.pool.get().await?, &filter).await?;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, "open");

    // The next window: a new summary, the old one closed.
    let next = e
        .run("sales_summary", json!({"until": until + h(1)}))
        .await?;
    assert_ne!(next["insight_id"], first["insight_id"]);
    let all = insights::list_insights(&mut *e.pool.get().await?, &filter).await?;
    let states: BTreeMap<i64, String> = all.iter().map(|i| (i.id, i.status.clone())).collect();
    assert_eq!(states.len(), 2);
    assert_eq!(states[&first["insight_id"].as_i64().unwrap_or(0)], "closed");
    assert_eq!(states[&next["insight_id"].as_i64().unwrap_or(0)], "open");
    // The default is 24 hours; other values are checked at enqueue.
    assert_eq!(next["summary"]["hours"], 24);
    let err = e
        .enqueue("sales_summary", json!({"hours": 0}))
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("hours"), "{err}");
    e.stop().await;
    Ok(())
}

/// Writes a file of `size` bytes under the files directory.
fn put(files: &Path, rel: &str, size: usize) -> anyhow::Result<()> {
    let p = files.join(rel);
    std::fs::create_dir_all(p.parent().ok_or_else(|| anyhow::anyhow!("no parent"))?)?;
    std::fs::write(p, vec![b'x'; size])?;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct FileCase {
    status: &'static str,
    issued_days_ago: i64,
    cancelled_days_ago: Option<i64>,
    /// Whether the XML/zip/CDR/QR and the PDF should go.
    xml_goes: bool,
    pdf_goes: bool,
}

async fn paths(
    pool: &PgPool,
    id: i64,
) -> anyhow::Result<(
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
)> {
    Ok(sales_t::table
        .find(id)
        .select((
            sales_t::xml_path,
            sales_t::cdr_path,
            sales_t::qr_path,
            sales_t::pdf_path,
        ))
        .first(&mut *pool.get().await?)
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_deletes_old_files_of_decided_sales_only() -> anyhow::Result<()> {
    let e = env("rep_clean").await?;
    let p = product(&e.pool, "K", "3.00", 1000, 1).await?;
    let case = |status, issued_days_ago, cancelled_days_ago, xml_goes, pdf_goes| FileCase {
        status,
        issued_days_ago,
        cancelled_days_ago,
        xml_goes,
        pdf_goes,
    };
    // Retention: 180 days for XML/CDR/QR, 90 days for PDFs of cancelled sales (the defaults).
    let cases = [
        case("ACCEPTED", 200, None, true, false),
        case("ACCEPTED", 10, None, false, false),
        case("PENDING", 200, None, false, false),
        case("ERROR", 200, None, false, false),
        case("SENDING", 400, Some(300), false, false),
        case("REJECTED", 181, None, true, false),
        case("ACCEPTED", 100, Some(95), false, true),
        case("ACCEPTED", 100, Some(30), false, false),
        case("REJECTED", 300, Some(200), true, true),
    ];
    let now = Utc::now();
    let mut ids = Vec::new();
    let mut expect_files = 0u64;
    let mut expect_bytes = 0u64;
    let mut expect_sales = 0u64;
    let mut keep: Vec<String> = Vec::new();
    let mut gone: Vec<String> = Vec::new();
    for (n, c) in cases.iter().enumerate() {
        let s = sale(&e.pool, "7", false, &[(p.id, 1)]).await?;
        let stem = format!("20100066603-03-B001-{n}");
        let xml = format!("xml/{stem}.xml");
        let zip = format!("xml/{stem}.zip");
        let cdr = format!("cdr/R-{stem}.zip");
        let pdf = format!("pdf/{stem}.pdf");
        let qr = format!("pdf/{stem}.png");
        // Sizes differ per file so the byte count means something.
        let sizes = [
            (&xml, 1000 + n),
            (&zip, 300 + n),
            (&cdr, 200 + n),
            (&qr, 50 + n),
            (&pdf, 4000 + n),
        ];
        for (i, (rel, size)) in sizes.iter().enumerate() {
            put(&e.files, rel, *size)?;
            let goes = if i < 4 { c.xml_goes } else { c.pdf_goes };
            if goes {
                expect_files += 1;
                expect_bytes += *size as u64;
                gone.push((*rel).clone());
            } else {
                keep.push((*rel).clone());
            }
        }
        if c.xml_goes || c.pdf_goes {
            expect_sales += 1;
        }
        diesel::update(sales_t::table.find(s.id))
            .set((
                sales_t::sunat_status.eq(c.status),
                sales_t::issued_at.eq(now - chrono::Duration::days(c.issued_days_ago)),
                sales_t::is_cancelled.eq(c.cancelled_days_ago.is_some()),
                sales_t::cancelled_at.eq(c
                    .cancelled_days_ago
                    .map(|d| now - chrono::Duration::days(d))),
                sales_t::xml_path.eq(Some(&xml)),
                sales_t::cdr_path.eq(Some(&cdr)),
                sales_t::pdf_path.eq(Some(&pdf)),
                sales_t::qr_path.eq(Some(&qr)),
            ))
            .execute(&mut *e.pool.get().await?)
            .await?;
        ids.push(s.id);
    }
    assert_eq!(
        expect_files,
        3 * 4 + 2,
        "three sales lose XML/zip/CDR/QR, two a PDF"
    );
    assert_eq!(expect_sales, 4);
    let before: Vec<_> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(paths(&e.pool, *id).await?);
        }
        v
    };

    // A dry run reports the same numbers and deletes or clears nothing.
    let dry = e.run("cleanup_old_files", json!({"dry_run": true})).await?;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        (
            dry["files"].clone(),
            dry["bytes"].clone(),
            dry["sales"].clone()
        ),
        (
            json!(expect_files),
            json!(expect_bytes),
            json!(expect_sales)
        ),
        "{dry}"
    );
    for rel in keep.iter().chain(&gone) {
        assert!(e.files.join(rel).exists(), "a dry run deleted {rel}");
    }
    for (id, b) in ids.iter().zip(&before) {
        assert_eq!(
            &paths(&e.pool, *id).await?,
            b,
            "a dry run cleared sale {id}"
        );
    }

    let real = e.run("cleanup_old_files", json!({})).await?;
    assert_eq!(real["dry_run"], false);
    for k in ["files", "bytes", "sales", "by_kind"] {
        assert_eq!(real[k], dry[k], "{k}: {real} vs {dry}");
    }
    assert_eq!(real["missing"], 0);
    for rel in &gone {
        assert!(!e.files.join(rel).exists(), "{rel} should be deleted");
    }
    for rel in &keep {
        assert!(e.files.join(rel).exists(), "{rel} should be kept");
    }
    for ((id, c), b) in ids.iter().zip(&cases).zip(&before) {
        let (xml, cdr, qr, pdf) = paths(&e.pool, *id).await?;
        if c.xml_goes {
            assert_eq!((xml, cdr, qr), (None, None, None), "sale {id} {c:?}");
        } else {
            assert_eq!(
                (xml, cdr, qr),
                (b.0.clone(), b.1.clone(), b.2.clone()),
                "sale {id}"
            );
        }
        if c.pdf_goes {
            assert_eq!(pdf, None, "sale {id} {c:?}");
        } else {
            assert_eq!(pdf, b.3, "sale {id} {c:?}");
        }
    }

    // Again: nothing left to do.
    let again = e.run("cleanup_old_files", json!({})).await?;
    assert_eq!(
        (
            again["files"].clone(),
            again["bytes"].clone(),
            again["sales"].clone()
        ),
        (json!(0), json!(0), json!(0)),
        "{again}"
    );
    e.stop().await;
    Ok(())
}

/// A credit note's file paths, as stored.
async fn note_paths(pool: &PgPool, id: i64) -> anyhow::Result<[Option<String>; 4]> {
    use faena_shop::schema::credit_notes as n;
    let (xml, cdr, qr, pdf) = n::table
        .find(id)
        .select((n::xml_path, n::cdr_path, n::qr_path, n::pdf_path))
        .first(&mut *pool.get().await?)
        .await?;
    Ok([xml, cdr, qr, pdf])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_treats_credit_notes_like_receipts() -> anyhow::Result<()> {
    let e = env("rep_clean_notes").await?;
    let p = product(&e.pool, "N", "5.90", 1000, 1).await?;
    let case = |status, issued_days_ago, cancelled_days_ago, xml_goes, pdf_goes| FileCase {
        status,
        issued_days_ago,
        cancelled_days_ago,
        xml_goes,
        pdf_goes,
    };
    // The receipts' ages (180 days for XML/CDR/QR, 90 for the PDFs of cancelled sales), with the
    // note's issue time and its sale's cancellation; a note SUNAT has not decided keeps all.
    let cases = [
        case("ACCEPTED", 200, None, true, false),
        case("ACCEPTED", 10, None, false, false),
        case("ERROR", 200, None, false, false),
        case("PENDING", 300, Some(200), false, false),
        case("REJECTED", 181, None, true, false),
        case("ACCEPTED", 100, Some(95), false, true),
        case("ACCEPTED", 100, Some(30), false, false),
    ];
    let now = Utc::now();
    let (mut ids, mut keep, mut gone) = (Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0u64;
    for (n, c) in cases.iter().enumerate() {
        let s = sale(&e.pool, "7", false, &[(p.id, 1)]).await?;
        let stem = format!("20100066603-07-BC01-{}", n + 1);
        let files = [
            (format!("xml/{stem}.xml"), 900 + n),
            (format!("xml/{stem}.zip"), 250 + n),
            (format!("cdr/R-{stem}.zip"), 150 + n),
            (format!("pdf/{stem}.png"), 40 + n),
            (format!("pdf/{stem}.pdf"), 3000 + n),
        ];
        for (i, (rel, size)) in files.iter().enumerate() {
            put(&e.files, rel, *size)?;
            if (i < 4 && c.xml_goes) || (i == 4 && c.pdf_goes) {
                bytes += *size as u64;
                gone.push(rel.clone());
            } else {
                keep.push(rel.clone());
            }
        }
        diesel::update(sales_t::table.find(s.id))
            .set((
                sales_t::sunat_status.eq("ACCEPTED"),
                sales_t::is_cancelled.eq(c.cancelled_days_ago.is_some()),
                sales_t::cancelled_at.eq(c
                    .cancelled_days_ago
                    .map(|d| now - chrono::Duration::days(d))),
            ))
            .execute(&mut *e.pool.get().await?)
            .await?;
        let issued = now - chrono::Duration::days(c.issued_days_ago);
        let id: i64 = diesel::sql_query(
            "INSERT INTO credit_notes (sale_id, created_by, series, correlative, issue_date, \
                 issued_at, reason_code, description, subtotal, igv, total, sunat_status, \
                 xml_path, cdr_path, qr_path, pdf_path) \
             VALUES ($1, '7', 'BC01', $2, $3, $4, '07', 'Devolución', 5.00, 0.90, 5.90, $5, \
                 $6, $7, $8, $9) RETURNING id",
        )
        .bind::<diesel::sql_types::Int8, _>(s.id)
        .bind::<diesel::sql_types::Int8, _>(i64::try_from(n)? + 1)
        .bind::<diesel::sql_types::Date, _>(issued.date_naive())
        .bind::<diesel::sql_types::Timestamptz, _>(issued)
        .bind::<diesel::sql_types::Text, _>(c.status)
        .bind::<diesel::sql_types::Text, _>(&files[0].0)
        .bind::<diesel::sql_types::Text, _>(&files[2].0)
        .bind::<diesel::sql_types::Text, _>(&files[3].0)
        .bind::<diesel::sql_types::Text, _>(&files[4].0)
        .get_result::<NoteId>(&mut *e.pool.get().await?)
        .await?
        .id;
        ids.push(id);
    }
    assert_eq!(
        gone.len(),
        2 * 4 + 1,
        "two notes lose XML/zip/CDR/QR, one a PDF"
    );

    let dry = e.run("cleanup_old_files", json!({"dry_run": true})).await?;
    assert_eq!(
        (
            &dry["files"],
            &dry["bytes"],
            &dry["credit_notes"],
            &dry["sales"]
        ),
        (&json!(gone.len()), &json!(bytes), &json!(3), &json!(0)),
        "{dry}"
    );
    for rel in keep.iter().chain(&gone) {
        assert!(e.files.join(rel).exists(), "a dry run deleted {rel}");
    }
    let real = e.run("cleanup_old_files", json!({})).await?;
    for k in ["files", "bytes", "credit_notes", "by_kind"] {
        assert_eq!(real[k], dry[k], "{k}: {real} vs {dry}");
    }
    assert_eq!(real["missing"], 0);
    for rel in &gone {
        assert!(!e.files.join(rel).exists(), "{rel} should be deleted");
    }
    for rel in &keep {
        assert!(e.files.join(rel).exists(), "{rel} should be kept");
    }
    for (id, c) in ids.iter().zip(&cases) {
        let [xml, cdr, qr, pdf] = note_paths(&e.pool, *id).await?;
        assert_eq!(
            (xml.is_none(), cdr.is_none(), qr.is_none(), pdf.is_none()),
            (c.xml_goes, c.xml_goes, c.xml_goes, c.pdf_goes),
            "note {id} {c:?}"
        );
    }
    let again = e.run("cleanup_old_files", json!({})).await?;
    assert_eq!(
        (&again["files"], &again["credit_notes"]),
        (&json!(0), &json!(0)),
        "{again}"
    );
    e.stop().await;
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct NoteId {
    #[diesel(sql_type = diesel::sql_types::Int8)]
    id: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_expired_tokens_keeps_valid_ones_and_deletes_expired_sessions() -> anyhow::Result<()>
{
    let e = env("rep_tokens").await?;
    let mut conn = e.pool.get().await?;
    let u = auth::create_user(
        &mut conn,
        &Username::parse("caja")?,
        "una clave bien larga".to_owned().into(),
        Role::Seller,
    )
    .await?;
    let ttl = Duration::from_secs(3600);
    let valid = auth::issue_refresh(&mut conn, u.id, ttl).await?;
    let expired = auth::issue_refresh(&mut conn, u.id, ttl).await?;
    let revoked = auth::issue_refresh(&mut conn, u.id, ttl).await?;
    assert!(auth::revoke_refresh(&mut conn, &revoked).await?);
    // Expire one by moving its expiry into the past (the newest id is `revoked`; `expired` is
    // the middle one).
    let ids: Vec<i64> = refresh_tokens::table
        .order(refresh_tokens::id.asc())
        .select(refresh_tokens::id)
        .load(&mut conn)
        .await?;
    assert_eq!(ids.len(), 3);
    diesel::update(refresh_tokens::table.find(ids[1]))
        .set(refresh_tokens::expires_at.eq(Utc::now() - chrono::Duration::seconds(1)))
        .execute(&mut conn)
        .await?;
    // Two console sessions: one live, one expired.
    let live = sessions::open(&mut conn, &u, ttl).await?;
    let old = sessions::open(&mut conn, &u, ttl).await?;
    let old_id = sessions::find(&mut conn, &old.token)
        .await?
        .map(|s| s.id)
        .expect("the session just opened");
    diesel::update(console_sessions::table.find(old_id))
        .set(console_sessions::expires_at.eq(Utc::now() - chrono::Duration::seconds(1)))
        .execute(&mut conn)
        .await?;
    let r = e.run("cleanup_expired_tokens", json!({})).await?;
    assert_eq!(r, json!({"deleted": 2, "sessions": 1}));
    assert!(sessions::find(&mut conn, &live.token).await?.is_some());
    let sessions_left: i64 = console_sessions::table
        .count()
        .get_result(&mut conn)
        .await?;
    assert_eq!(sessions_left, 1, "the live session stays");
    let left: Vec<i64> = refresh_tokens::table
        .select(refresh_tokens::id)
        .load(&mut conn)
        .await?;
    assert_eq!(left, vec![ids[0]], "the valid token stays");
    // The valid one still works; the others are gone.
    let (_, rotated) = auth::rotate_refresh(&mut conn, &valid, ttl).await?;
    assert!(auth::rotate_refresh(&mut conn, &expired, ttl)
        .await
        .is_err());
    let r = e.run("cleanup_expired_tokens", json!({})).await?;
    // The rotation revoked `valid` and issued `rotated`: one to delete, then none.
    assert_eq!(r, json!({"deleted": 1, "sessions": 0}));
    let r = e.run("cleanup_expired_tokens", json!({})).await?;
    assert_eq!(
        r,
        json!({"deleted": 0, "sessions": 0}),
        "a second run changes nothing"
    );
    assert!(auth::rotate_refresh(&mut conn, &rotated, ttl).await.is_ok());
    e.stop().await;
    Ok(())
}
