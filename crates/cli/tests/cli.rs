//! The `faena` binary against real PostgreSQL and Redis, each test with its own database and prefix.

use std::process::{Command, Output};

use faena_testkit::{TestDb, TestRedis};

fn faena(db: &TestDb, r: &TestRedis, args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_faena"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", &r.url)
        .env("FAENA_REDIS_PREFIX", &r.prefix)
        .env_remove("FAENA_LOG")
        .output()?)
}

/// Runs `faena` with only `vars` in its environment, in a directory without a `.env`.
fn faena_env(vars: &[(&str, &str)], args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_faena"))
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .current_dir(std::env::temp_dir())
        .output()?)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn migrate_is_idempotent_and_check_infra_reports() -> anyhow::Result<()> {
    let db = TestDb::empty("climig").await?;
    let r = TestRedis::new("climig")?;
    let o = faena(&db, &r, &["migrate"])?;
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("migration(s) applied"), "{}", text(&o));
    let o = faena(&db, &r, &["migrate"])?;
    assert!(text(&o).contains("up to date"), "{}", text(&o));
    let o = faena(&db, &r, &["--json", "migrate"])?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(v["applied"], serde_json::json!([]), "{v}");
    let o = faena(&db, &r, &["queue", "pause", "default", "--json"])?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(v, serde_json::json!({"queue": "default", "paused": true}));
    // A queue spread over 4 partitions: said in JSON and in words; shrinking it is refused.
    let o = faena(
        &db,
        &r,
        &["queue", "create", "orders", "--partitions", "4", "--json"],
    )?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(
        v,
        serde_json::json!({"queue": "orders", "partitions": 4, "previous": 1})
    );
    let o = faena(&db, &r, &["queue", "create", "orders", "--partitions", "4"])?;
    assert!(
        text(&o).contains("already has 4 partitions"),
        "{}",
        text(&o)
    );
    let o = faena(&db, &r, &["queue", "create", "orders", "--partitions", "2"])?;
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("cannot go down to 2"), "{}", text(&o));
    let o = faena(&db, &r, &["queues", "--json"])?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    let listed: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(|q| q["queue"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        listed,
        ["default", "orders", "orders.1", "orders.2", "orders.3"]
    );
    let o = faena(&db, &r, &["check-infra"])?;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("All systems operational"), "{}", text(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_faena"))
        .args(["check-infra", "--json"])
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .output()?;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(
        (
            report["redis"]["ok"].clone(),
            report["database"]["ok"].clone()
        ),
        (serde_json::json!(false), serde_json::json!(true))
    );
    Ok(())
}

#[tokio::test]
async fn enqueue_show_and_queues() -> anyhow::Result<()> {
    let db = TestDb::new("clienq").await?;
    let r = TestRedis::new("clienq")?;
    let o = faena(
        &db,
        &r,
        &[
            "enqueue",
            "sleep",
            "--args",
            r#"{"ms":5}"#,
            "--count",
            "5",
            "--queue",
            "slow",
        ],
    )?;
    assert!(o.status.success(), "{}", text(&o));
    let ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), 5);
    let o = faena(&db, &r, &["tasks", "show", &ids[0]])?;
    assert!(
        text(&o).contains("state:        PENDING") && text(&o).contains("queue:        slow"),
        "{}",
        text(&o)
    );
    let o = faena(&db, &r, &["queues", "--json"])?;
    let stats: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(stats[0]["queue"], serde_json::json!("slow"));
    assert_eq!(stats[0]["pending"], serde_json::json!(5));
    let o = faena(&db, &r, &["enqueue", "sleep", "--args", r#"{"ms":"x"}"#])?;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("field `ms`"), "{}", text(&o));
    let o = faena(&db, &r, &["tasks", "show", "01JD6Z8Y3K0000000000000000"])?;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    Ok(())
}

#[tokio::test]
async fn periodic_commands() -> anyhow::Result<()> {
    let db = TestDb::new("cliper").await?;
    let r = TestRedis::new("cliper")?;
    let o = faena(
        &db,
        &r,
        &["periodic", "add", "ping", "--kind", "noop", "--every", "30"],
    )?;
    assert!(o.status.success(), "{}", text(&o));
    let o = faena(
        &db,
        &r,
        &[
            "periodic",
            "set",
            "ping",
            "--cron",
            "0 9 * * Mon-Fri",
            "--tz",
            "America/Bogota",
        ],
    )?;
    assert!(
        text(&o).contains("0 0 9 * * Mon-Fri in America/Bogota"),
        "{}",
        text(&o)
    );
    let o = faena(
        &db,
        &r,
        &["periodic", "set", "ping", "--cron", "0 99 * * *"],
    )?;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("`0 99 * * *`"), "{}", text(&o));
    let o = faena(&db, &r, &["periodic", "list"])?;
    let listing = text(&o);
    assert!(
        listing.contains("ping") && listing.contains("sunat-daily-report"),
        "{listing}"
    );
    assert!(
        !listing.contains("no kind"),
        "every schedule has its kind: no footer\n{listing}"
    );
    // A schedule left by a build that had a kind this one lacks.
    {
        use diesel_async::{AsyncConnection, RunQueryDsl};
        let mut conn = diesel_async::AsyncPgConnection::establish(&db.url).await?;
        diesel::sql_query(
            "INSERT INTO periodic_tasks (name, kind, cron) VALUES ('old-job', 'retired_kind', '0 0 * * * *')",
        )
        .execute(&mut conn)
        .await?;
    }
    let o = faena(&db, &r, &["periodic", "list"])?;
    let listing = text(&o);
    assert!(
        listing.contains("no kind") && listing.contains("no job kind `retired_kind`"),
        "{listing}"
    );
    let o = faena(&db, &r, &["periodic", "disable", "ping"])?;
    assert!(text(&o).contains("disabled"), "{}", text(&o));
    let o = faena(&db, &r, &["periodic", "run", "ping"])?;
    assert!(o.status.success(), "{}", text(&o));
    let o = faena(&db, &r, &["periodic", "delete", "ping"])?;
    assert!(o.status.success(), "{}", text(&o));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_purge_retry_all_dead_and_completions() -> anyhow::Result<()> {
    use faena_core::jobs::EnqueueRequest;
    use faena_core::QueueName;
    let db = TestDb::new("cliops").await?;
    let r = TestRedis::new("cliops")?;
    let q = QueueName::default_queue();
    // Three DEAD jobs, made by a real worker.
    let dead = r
        .broker
        .enqueue_many(
            (0..3)
                .map(|_| EnqueueRequest {
                    kind: "fail".into(),
                    args: serde_json::json!({"fail_times": 9, "permanent": true}),
                    ..Default::default()
                })
                .collect(),
        )
        .await?;
    let worker = faena_worker::spawn(
        r.broker.clone(),
        faena_worker::Handlers::builtin(),
        faena_worker::WorkerConfig {
            queues: vec![q.clone()],
            concurrency: 4,
            stop_timeout: std::time::Duration::from_secs(5),
            upkeep_interval: std::time::Duration::from_millis(100),
            heartbeat_interval: std::time::Duration::from_secs(1),
            unknown_kind_grace: std::time::Duration::from_secs(900),
        },
    );
    faena_testkit::wait_for(
        "3 dead jobs",
        std::time::Duration::from_secs(10),
        || async { Ok((r.broker.stats(&q).await?.dead == 3).then_some(())) },
    )
    .await?;
    worker.shutdown().await;
    let o = faena(
        &db,
        &r,
        &["tasks", "retry", "--all-dead", "--queue", "default"],
    )?;
    assert!(
        text(&o).contains("3 DEAD job(s) of queue default are PENDING again"),
        "{}",
        text(&o)
    );
    let s = r.broker.stats(&q).await?;
    assert_eq!((s.dead, s.pending), (0, 3));
    let rec = r
        .broker
        .task(&dead[0])
        .await?
        .ok_or_else(|| anyhow::anyhow!("record"))?;
    assert_eq!(
        (rec.state, rec.attempts),
        (faena_broker::TaskState::Pending, 0)
    );

    let o = faena(&db, &r, &["enqueue", "noop", "--countdown", "600"])?;
    let delayed = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let o = faena(&db, &r, &["inspect", "scheduled", "--json"])?;
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(listed[0]["id"], serde_json::json!(delayed), "{listed}");
    let o = faena(&db, &r, &["inspect", "stats"])?;
    assert!(
        text(&o).contains("queue default: pending 3 scheduled 1"),
        "{}",
        text(&o)
    );
    let o = faena(&db, &r, &["inspect", "active", "--json"])?;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&o.stdout)?,
        serde_json::json!([])
    );

    let o = faena(&db, &r, &["purge", "default", "--yes"])?;
    assert!(
        text(&o).contains("removed 4 pending job(s)"),
        "{}",
        text(&o)
    );
    let s = r.broker.stats(&q).await?;
    assert_eq!((s.pending, s.scheduled), (0, 0));

    let o = Command::new(env!("CARGO_BIN_EXE_faena"))
        .args(["completions", "bash"])
        .env_clear()
        .output()?;
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("_faena()"),
        "{}",
        text(&o)
    );
    Ok(())
}

/// Runs `faena` with `stdin` piped in.
fn faena_stdin(db: &TestDb, r: &TestRedis, args: &[&str], stdin: &str) -> anyhow::Result<Output> {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_faena"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", &r.url)
        .env("FAENA_REDIS_PREFIX", &r.prefix)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdin"))?
        .write_all(stdin.as_bytes())?;
    Ok(child.wait_with_output()?)
}

#[tokio::test]
async fn users_are_created_with_a_password_from_stdin_and_can_log_in() -> anyhow::Result<()> {
    use faena_shop::auth;
    let db = TestDb::new("cliusers").await?;
    let r = TestRedis::new("cliusers")?;
    let pw = "una clave bastante larga";
    let o = faena_stdin(
        &db,
        &r,
        &["users", "create", "maria", "--role", "seller"],
        &format!("{pw}\n"),
    )?;
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("user maria"), "{}", text(&o));
    assert!(
        !text(&o).contains(pw),
        "the password is never echoed: {}",
        text(&o)
    );
    let pool = faena_core::db::create_pool(&db.url, 1)?;
    let mut conn = pool.get().await?;
    let u = auth::authenticate(&mut conn, "maria", pw.to_owned().into()).await?;
    assert_eq!(u.role(), auth::Role::Seller);

    // A second create of the same name fails clearly, a short password is refused, an unknown
    // role names the choices.
    let o = faena_stdin(
        &db,
        &r,
        &["users", "create", "maria", "--role", "seller"],
        &format!("{pw}\n"),
    )?;
    assert!(
        !o.status.success() && text(&o).contains("already exists"),
        "{}",
        text(&o)
    );
    let o = faena_stdin(
        &db,
        &r,
        &["users", "create", "jose", "--role", "seller"],
        "short\n",
    )?;
    assert!(
        !o.status.success() && text(&o).contains("password"),
        "{}",
        text(&o)
    );
    let o = faena_stdin(
        &db,
        &r,
        &["users", "create", "jose", "--role", "root"],
        &format!("{pw}\n"),
    )?;
    assert!(
        !o.status.success() && text(&o).contains("admin or seller"),
        "{}",
        text(&o)
    );
    let o = faena_stdin(&db, &r, &["users", "create", "jose", "--role", "admin"], "")?;
    assert!(
        !o.status.success() && text(&o).contains("stdin"),
        "{}",
        text(&o)
    );

    let o = faena(&db, &r, &["users", "disable", "maria"])?;
    assert!(o.status.success(), "{}", text(&o));
    assert!(matches!(
        auth::authenticate(&mut conn, "maria", pw.to_owned().into()).await,
        Err(auth::AuthError::Disabled)
    ));
    let o = faena(&db, &r, &["--json", "users", "list"])?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(v[0]["username"], "maria", "{v}");
    assert_eq!(v[0]["active"], false, "{v}");
    Ok(())
}

#[tokio::test]
async fn sales_show_and_send() -> anyhow::Result<()> {
    let db = TestDb::new("clisales").await?;
    let r = TestRedis::new("clisales")?;
    let pool = faena_core::db::create_pool(&db.url, 1)?;
    let mut conn = pool.get().await?;
    let p = product(&mut conn, "CAFE", "Café pasado", "4.50").await?;
    let sale = sale_of_two(&mut conn, p.id).await?;
    let id = sale.id.to_string();
    let o = faena(&db, &r, &["sales", "show", &id])?;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("B001-1") && text(&o).contains("9.00") && text(&o).contains("PENDING"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("\ntotals:       subtotal 7.63 IGV 1.37 total 9.00 PEN\n"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("\nstore:        principal (Tienda principal, establecimiento 0000)\n"),
        "{}",
        text(&o)
    );
    let o = faena(&db, &r, &["--json", "sales", "send", &id])?;
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    let task = faena_core::TaskId::parse(v["task_id"].as_str().unwrap_or_default())?;
    let rec = r
        .broker
        .task(&task)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no task"))?;
    assert_eq!(
        (rec.kind.as_str(), rec.queue.as_str()),
        ("send_sale_to_sunat", "sunat")
    );
    let o = faena(&db, &r, &["sales", "show", "424242"])?;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no sale with id 424242"), "{}", text(&o));
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE sales SET sunat_status = 'ACCEPTED' WHERE id = {id}"
        )),
        &mut conn,
    )
    .await?;
    let o = faena(&db, &r, &["sales", "send", &id])?;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("already decided"), "{}", text(&o));

    // A CONFLICT sale shows its Spanish label and what to do, and is not sent again.
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE sales SET sunat_status = 'CONFLICT', sunat_outcome = 'conflict', \
             sunat_code = '1033' WHERE id = {id}"
        )),
        &mut conn,
    )
    .await?;
    let o = faena(&db, &r, &["sales", "show", &id])?;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("CONFLICT (conflict) code 1033")
            && text(&o).contains("Conflicto: SUNAT ya tiene este número")
            && text(&o).contains("look the number up at SUNAT"),
        "{}",
        text(&o)
    );
    let o = faena(&db, &r, &["sales", "send", &id])?;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("is CONFLICT"), "{}", text(&o));
    Ok(())
}

#[tokio::test]
async fn sales_cancel_and_sunat_summaries() -> anyhow::Result<()> {
    let db = TestDb::new("clicancel").await?;
    let r = TestRedis::new("clicancel")?;
    let pool = faena_core::db::create_pool(&db.url, 1)?;
    let mut conn = pool.get().await?;
    let p = product(&mut conn, "TE", "Té de manzanilla", "3.00").await?;
    let never = sale_of_two(&mut conn, p.id).await?.id.to_string();
    let late = sale_of_two(&mut conn, p.id).await?.id.to_string();
    let o = faena(&db, &r, &["sales", "cancel", &never, "--reason", "no"])?;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("reason"), "{}", text(&o));
    let o = faena(
        &db,
        &r,
        &[
            "sales",
            "cancel",
            &never,
            "--reason",
            "Cliente devolvió el té",
        ],
    )?;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("venta {never} anulada: Anulada en Faena")),
        "{}",
        text(&o)
    );
    let o = faena(
        &db,
        &r,
        &[
            "--json",
            "sales",
            "cancel",
            &never,
            "--reason",
            "Otro motivo",
        ],
    )?;
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(
        (
            v["sunat_action"].clone(),
            v["reason"].clone(),
            v["cancelled_by"].clone()
        ),
        (
            serde_json::json!("NONE"),
            serde_json::json!("Cliente devolvió el té"),
            serde_json::json!("cli")
        ),
        "the first cancellation, unchanged: {v}"
    );
    assert_eq!(
        faena_shop::shop::get_product(&mut conn, p.id).await?.stock,
        8,
        "2 of the 4 units back, once"
    );
    let o = faena(&db, &r, &["sales", "show", &never])?;
    assert!(
        text(&o).contains("anulada:") && text(&o).contains("Cliente devolvió el té"),
        "{}",
        text(&o)
    );
    // Accepted more than 6 days ago: cancelled with a whole credit note, which gives its 2 units
    // back (the cancellation gives none of its own).
    for sql in [
        format!("UPDATE sales SET sunat_status = 'ACCEPTED' WHERE id = {late}"),
        format!("UPDATE sales SET issue_date = issue_date - 10 WHERE id = {late}"),
    ] {
        diesel_async::RunQueryDsl::execute(diesel::sql_query(sql), &mut conn).await?;
    }
    let o = faena(
        &db,
        &r,
        &["sales", "cancel", &late, "--reason", "Cliente devolvió"],
    )?;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "venta {late} anulada: Anulada con una nota de crédito; su envío a SUNAT está en curso \
             (nota de crédito BC01-1, en cola para SUNAT)"
        )),
        "{}",
        text(&o)
    );
    assert_eq!(
        faena_shop::shop::get_product(&mut conn, p.id).await?.stock,
        10,
        "the late sale's 2 units back, once"
    );
    let o = faena(&db, &r, &["sales", "show", &late])?;
    assert!(
        text(&o).contains("SUNAT: CREDIT_NOTE NONE")
            && text(&o).contains("con la nota de crédito BC01-1 (PENDING)")
            && text(&o).contains("nota de crédito BC01-1 del"),
        "{}",
        text(&o)
    );

    let o = faena(&db, &r, &["sunat", "summaries"])?;
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no hay resúmenes"), "{}", text(&o));
    let o = faena(&db, &r, &["--json", "sunat", "summaries", "--kind", "RC"])?;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&o.stdout)?,
        serde_json::json!([])
    );
    let o = faena(&db, &r, &["sunat", "summaries", "--kind", "XX"])?;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    Ok(())
}

#[tokio::test]
async fn sales_credit_note_credits_what_is_left_and_says_why_not() -> anyhow::Result<()> {
    let db = TestDb::new("clinote").await?;
    let r = TestRedis::new("clinote")?;
    let pool = faena_core::db::create_pool(&db.url, 1)?;
    let mut conn = pool.get().await?;
    let p = product(&mut conn, "CAFE", "Café pasado", "4.50").await?;
    let sale = sale_of_two(&mut conn, p.id).await?;
    let id = sale.id.to_string();
    let item = format!("{}=1", p.id);
    let note = |reason: &str, item: Option<&str>| {
        let mut args = vec![
            "sales",
            "credit-note",
            &id,
            "--reason-code",
            reason,
            "--description",
            "Devolvió un café",
        ];
        if let Some(i) = item {
            args.extend(["--item", i]);
        }
        faena(&db, &r, &args)
    };
    // Not accepted by SUNAT yet: exit 1, saying so.
    let o = note("07", Some(&item))?;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("is PENDING"), "{}", text(&o));
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE sales SET sunat_status = 'ACCEPTED' WHERE id = {id}"
        )),
        &mut conn,
    )
    .await?;
    // Bad input: exit 2, naming what is wrong.
    let o = note("99", None)?;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("reason_code"), "{}", text(&o));
    let o = note("07", Some("cafe"))?;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("PRODUCT=QTY"), "{}", text(&o));

    let o = note("07", Some(&item))?;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("nota de crédito BC01-1 de la venta")
            && text(&o).contains("07 Devolución por ítem, S/ 4.50"),
        "{}",
        text(&o)
    );
    let stock = faena_shop::shop::get_product(&mut conn, p.id).await?.stock;
    assert_eq!(stock, 9, "10 - 2 sold + 1 back");
    // One café is left: two are refused, and nothing changes.
    let o = note("07", Some(&format!("{}=2", p.id)))?;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("S/ 4.50 is left"), "{}", text(&o));
    let o = faena(&db, &r, &["sales", "show", &id])?;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("nota de crédito BC01-1")
            && text(&o).contains("acreditado:   S/ 4.50, queda S/ 4.50"),
        "{}",
        text(&o)
    );
    let o = faena(&db, &r, &["--json", "sales", "show", &id])?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(v["credit_notes"][0]["number"], "BC01-1", "{v}");
    assert_eq!(v["remaining"], "4.50", "{v}");
    Ok(())
}

#[tokio::test]
async fn report_daily_says_what_to_do_then_prints_the_table() -> anyhow::Result<()> {
    let db = TestDb::new("clireport").await?;
    let r = TestRedis::new("clireport")?;
    let files = std::env::temp_dir().join(faena_testkit::unique("clireport-files"));
    let run = |args: &[&str]| -> anyhow::Result<Output> {
        Ok(Command::new(env!("CARGO_BIN_EXE_faena"))
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env("REDIS_URL", &r.url)
            .env("FAENA_REDIS_PREFIX", &r.prefix)
            .env("FAENA_FILES_DIR", &files)
            .env_remove("FAENA_LOG")
            .output()?)
    };
    let pool = faena_core::db::create_pool(&db.url, 1)?;
    let mut conn = pool.get().await?;
    let p = product(&mut conn, "TAMAL", "Tamal", "3.50").await?;
    for status in ["ACCEPTED", "ERROR"] {
        let sale = sale_of_two(&mut conn, p.id).await?;
        diesel_async::RunQueryDsl::execute(
            diesel::sql_query(format!(
                "UPDATE sales SET sunat_status = '{status}', issue_date = '2026-11-20' WHERE id = {}",
                sale.id
            )),
            &mut conn,
        )
        .await?;
    }
    let o = run(&["report", "daily", "--date", "2026-11-20"])?;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(r#"faena enqueue sunat_daily_report --args '{"date":"2026-11-20"}'"#),
        "{}",
        text(&o)
    );
    let o = run(&["report", "daily", "--date", "2026-11-20", "--generate"])?;
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("SUNAT daily report 2026-11-20 (America/Lima)"),
        "{out}"
    );
    let all = out
        .lines()
        .find(|l| l.starts_with("all "))
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>();
    // issued accepted rejected error pending cancelled success% billed accepted voided voided-PEN
    assert_eq!(
        all,
        ["all", "2", "1", "0", "1", "0", "0", "50.00", "14.00", "7.00", "0", "0.00"],
        "{out}"
    );
    assert!(
        out.contains("boleta (03)") && out.contains("seller 1"),
        "{out}"
    );
    assert!(files.join("reports/sunat-daily-2026-11-20.csv").exists());
    // Stored now: read back without --generate, also as JSON.
    let o = run(&["report", "daily", "--date", "2026-11-20"])?;
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("50.00"), "{}", text(&o));
    let o = run(&["--json", "report", "daily", "--date", "2026-11-20"])?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(v["totals"]["issued"], 2, "{v}");
    assert_eq!(v["totals"]["total_billed"], "14.00", "{v}");
    let o = run(&["report", "daily", "--date", "20/11/2026"])?;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--date"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&files);
    Ok(())
}

/// A product with 10 units at `price`, for the sale tests.
async fn product(
    conn: &mut faena_core::db::PooledConnection,
    sku: &str,
    name: &str,
    price: &str,
) -> anyhow::Result<faena_shop::shop::Product> {
    Ok(faena_shop::shop::create_product(
        conn,
        faena_shop::shop::NewProduct {
            sku: sku.into(),
            name: name.into(),
            unit_price: price.parse()?,
            stock: 10.into(),
            low_stock_threshold: 1.into(),
            igv_affectation: "10".into(),
            unit_code: "NIU".into(),
            icbper: false,
            decimal_quantity: false,
        },
    )
    .await?)
}

/// A boleta of 2 units of `product_id`, made by admin user 1 with the default series.
async fn sale_of_two(
    conn: &mut faena_core::db::PooledConnection,
    product_id: i64,
) -> anyhow::Result<faena_shop::sales::SaleView> {
    use faena_shop::sales;
    Ok(sales::create_sale(
        conn,
        &sales::Seller {
            user_id: "1".into(),
            is_admin: true,
        },
        &sales::NewSale {
            items: Some(vec![sales::SaleItemInput {
                product_id,
                quantity: faena_shop::quantity::Quantity::whole(2)?,
                discount: None,
                free: false,
            }]),
            ..Default::default()
        },
        &sales::SaleDefaults::default(),
    )
    .await?)
}

#[tokio::test]
async fn each_command_requires_only_the_settings_it_uses() -> anyhow::Result<()> {
    let db = TestDb::new("clineeds").await?;
    let r = TestRedis::new("clineeds")?;
    let redis_only = [
        ("REDIS_URL", r.url.as_str()),
        ("FAENA_REDIS_PREFIX", &r.prefix),
    ];
    let o = faena_env(&redis_only, &["enqueue", "noop", "--countdown", "600"])?;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    for args in [
        &["queues"][..],
        &["tasks", "show", &id],
        &["tasks", "list", "--state", "scheduled"],
        &["workers"],
        &["inspect", "active"],
        &["inspect", "scheduled"],
        &["inspect", "stats"],
        &["queue", "pause", "default"],
        &["queue", "resume", "default"],
        &["tasks", "cancel", &id],
        &["purge", "default", "--state", "dead", "--yes"],
    ] {
        let o = faena_env(&redis_only, args)?;
        assert_eq!(o.status.code(), Some(0), "faena {args:?}: {}", text(&o));
    }
    let o = faena_env(&[], &["kinds"])?;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let db_only = [("DATABASE_URL", db.url.as_str())];
    for args in [&["migrate"][..], &["periodic", "list"], &["users", "list"]] {
        let o = faena_env(&db_only, args)?;
        assert_eq!(o.status.code(), Some(0), "faena {args:?}: {}", text(&o));
    }
    let o = faena_env(&db_only, &["sales", "show", "424242"])?;
    assert_eq!(
        (o.status.code(), String::from_utf8_lossy(&o.stderr).trim()),
        (Some(1), "faena: no sale with id 424242")
    );

    // Missing: named with the command that needs it, exit 2 as for any bad setting.
    type Vars<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Vars, &[&str], &str); 5] = [
        (&db_only, &["queues"], "faena: `faena queues` uses Redis: REDIS_URL is not set: a Redis URL such as redis://127.0.0.1:6379. Set it in the environment or in .env (see .env.example)"),
        (&redis_only, &["periodic", "list"], "faena: `faena periodic` uses PostgreSQL: DATABASE_URL is not set: a PostgreSQL URL such as postgres://postgres@127.0.0.1:5432/faena. Set it in the environment or in .env (see .env.example)"),
        (&redis_only, &["periodic", "run", "x"], "faena: `faena periodic run` uses PostgreSQL: DATABASE_URL is not set"),
        (&db_only, &["sales", "send", "1"], "faena: `faena sales send` uses Redis: REDIS_URL is not set"),
        (&[], &["check-infra"], "faena: `faena check-infra` uses PostgreSQL: DATABASE_URL is not set"),
    ];
    for (vars, args, message) in cases {
        let o = faena_env(vars, args)?;
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "faena {args:?}: {}", text(&o));
        assert!(stderr.starts_with(message), "faena {args:?}: {stderr}");
    }
    let o = faena_env(&[], &["check-infra"])?;
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("\n`faena check-infra` uses Redis: REDIS_URL is not set"),
        "{}",
        text(&o)
    );
    // Every other setting is still checked.
    let o = faena_env(
        &[("REDIS_URL", &r.url), ("TZ", "Mars/Olympus")],
        &["queues"],
    )?;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("TZ=\"Mars/Olympus\""), "{}", text(&o));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_are_shown_in_the_schedules_zone_or_tz_to_the_second_unless_utc() -> anyhow::Result<()>
{
    let db = TestDb::new("clitimes").await?;
    let r = TestRedis::new("clitimes")?;
    let run = |tz: &str, args: &[&str]| -> anyhow::Result<String> {
        let o = Command::new(env!("CARGO_BIN_EXE_faena"))
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env("REDIS_URL", &r.url)
            .env("FAENA_REDIS_PREFIX", &r.prefix)
            .env("TZ", tz)
            .env_remove("FAENA_LOG")
            .output()?;
        anyhow::ensure!(o.status.success(), "faena {args:?}: {}", text(&o));
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let line_of = |listing: &str, start: &str| -> Vec<String> {
        listing
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_default()
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    run(
        "America/Lima",
        &[
            "periodic",
            "add",
            "cierre",
            "--kind",
            "noop",
            "--cron",
            "0 20 * * *",
        ],
    )?;
    run(
        "America/Lima",
        &[
            "periodic",
            "add",
            "nyc",
            "--kind",
            "noop",
            "--cron",
            "0 9 * * *",
            "--tz",
            "America/New_York",
        ],
    )?;
    {
        use diesel_async::{AsyncConnection, RunQueryDsl};
        let mut conn = diesel_async::AsyncPgConnection::establish(&db.url).await?;
        diesel::sql_query(
            "UPDATE periodic_tasks SET last_run_at = CASE name \
             WHEN 'cierre' THEN timestamptz '2099-12-02T01:00:00Z' \
             ELSE timestamptz '2099-01-15T14:00:00Z' END WHERE name IN ('cierre', 'nyc')",
        )
        .execute(&mut conn)
        .await?;
    }
    // Each schedule in its own zone, whatever TZ says.
    let listing = run("Asia/Tokyo", &["periodic", "list"])?;
    assert_eq!(
        line_of(&listing, "cierre "),
        [
            "cierre",
            "0 0 20 * * *",
            "America/Lima",
            "yes",
            "2099-12-01 20:00:00 -05",
            "2099-12-02 20:00:00 -05",
            "0"
        ],
        "{listing}"
    );
    let nyc = line_of(&listing, "nyc ");
    assert_eq!(
        nyc[nyc.len() - 3..],
        ["2099-01-15 09:00:00 EST", "2099-01-16 09:00:00 EST", "0"],
        "{listing}"
    );
    let listing = run("Asia/Tokyo", &["periodic", "list", "--utc"])?;
    assert_eq!(
        line_of(&listing, "cierre ")[4..6],
        ["2099-12-02 01:00:00 UTC", "2099-12-03 01:00:00 UTC"],
        "{listing}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&run("Asia/Tokyo", &["--json", "periodic", "list"])?)?;
    let cierre = v
        .as_array()
        .and_then(|a| a.iter().find(|t| t["task"]["name"] == "cierre"))
        .ok_or_else(|| anyhow::anyhow!("no cierre in {v}"))?;
    assert_eq!(
        (
            cierre["task"]["last_run_at"].as_str(),
            cierre["next_run_at"].as_str()
        ),
        (Some("2099-12-02T01:00:00Z"), Some("2099-12-03T01:00:00Z"))
    );
    let changed = run("America/Lima", &["periodic", "disable", "cierre"])?;
    assert_eq!(
        changed.trim(),
        "cierre: 0 0 20 * * * in America/Lima, disabled; next run 2099-12-02 20:00:00 -05"
    );

    // A task's times in TZ: a whole second 30 days ahead (an eta is at most a year away).
    let eta = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + 30 * 86_400, 0)
        .ok_or_else(|| anyhow::anyhow!("eta"))?;
    let at = |zone: chrono_tz::Tz, abbreviation: &str| {
        format!(
            "{} {abbreviation}",
            eta.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S")
        )
    };
    let id = run(
        "America/Lima",
        &["enqueue", "noop", "--eta", &eta.to_rfc3339()],
    )?;
    let id = id.trim();
    let show = run("America/Lima", &["tasks", "show", id])?;
    let lima = at(chrono_tz::America::Lima, "-05");
    assert!(
        show.contains(&format!("\nnext_run_at:  {lima}\n")),
        "{show}"
    );
    let show = run("America/Lima", &["tasks", "show", id, "--utc"])?;
    let utc = at(chrono_tz::UTC, "UTC");
    assert!(show.contains(&format!("\nnext_run_at:  {utc}\n")), "{show}");
    let show = run("Asia/Kolkata", &["tasks", "show", id])?;
    let kolkata = at(chrono_tz::Asia::Kolkata, "IST");
    assert!(
        show.contains(&format!("\nnext_run_at:  {kolkata}\n")),
        "{show}"
    );
    let scheduled = run("America/Lima", &["inspect", "scheduled"])?;
    assert!(
        scheduled
            .lines()
            .any(|l| l.starts_with(id) && l.ends_with(&format!(" 0/3 {lima}   -"))),
        "{scheduled}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&run("America/Lima", &["--json", "inspect", "scheduled"])?)?;
    assert_eq!(
        v[0]["next_run_at"].as_str(),
        Some(eta.format("%Y-%m-%dT%H:%M:%SZ").to_string().as_str()),
        "{v}"
    );

    // A worker's start in TZ; its heartbeat as an age.
    let worker = faena_worker::spawn(
        r.broker.clone(),
        faena_worker::Handlers::builtin(),
        faena_worker::WorkerConfig {
            queues: vec![faena_core::QueueName::parse("idle")?],
            concurrency: 1,
            stop_timeout: std::time::Duration::from_secs(5),
            upkeep_interval: std::time::Duration::from_millis(100),
            heartbeat_interval: std::time::Duration::from_secs(1),
            unknown_kind_grace: std::time::Duration::from_secs(900),
        },
    );
    let started = faena_testkit::wait_for(
        "a registered worker",
        std::time::Duration::from_secs(10),
        || async {
            Ok(r.broker
                .workers()
                .await?
                .into_iter()
                .next()
                .and_then(|w| w.started_at.map(|s| (w.id, s))))
        },
    )
    .await?;
    let workers = run("America/Lima", &["workers"])?;
    worker.shutdown().await;
    let lima = started
        .1
        .with_timezone(&chrono_tz::America::Lima)
        .format("%Y-%m-%d %H:%M:%S -05")
        .to_string();
    let row = workers
        .lines()
        .find(|l| l.starts_with(&started.0))
        .unwrap_or_default();
    assert!(
        row.contains(&format!(" {lima} ")) && row.contains("s ago  idle"),
        "{workers}"
    );
    Ok(())
}

#[tokio::test]
async fn enqueue_then_starts_a_chain_and_workflows_show_prints_it() -> anyhow::Result<()> {
    let db = TestDb::new("cliwf").await?;
    let r = TestRedis::new("cliwf")?;
    let o = faena(
        &db,
        &r,
        &[
            "enqueue",
            "noop",
            "--args",
            r#"{"a":1}"#,
            "--then",
            "noop",
            "--json",
        ],
    )?;
    assert!(o.status.success(), "{}", text(&o));
    let started: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    let wf = started["workflow_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let ids = started["task_ids"].as_array().cloned().unwrap_or_default();
    assert_eq!(ids.len(), 2);
    let o = faena(&db, &r, &["workflows", "show", &wf])?;
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains(&format!("workflow {wf}  RUNNING")), "{out}");
    assert!(
        out.contains(&format!("{}  PENDING", ids[0].as_str().unwrap_or_default())),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}  WAITING", ids[1].as_str().unwrap_or_default())),
        "{out}"
    );
    let o = faena(
        &db,
        &r,
        &["workflows", "show", "01JD0000000000000000000000"],
    )?;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    Ok(())
}

#[tokio::test]
async fn stores_are_added_changed_and_disabled_and_users_put_in_them() -> anyhow::Result<()> {
    let db = TestDb::new("clistores").await?;
    let r = TestRedis::new("clistores")?;
    let add = |code: &'static str, establishment: &'static str| {
        [
            "stores",
            "add",
            code,
            "--name",
            "Tienda Lima Centro",
            "--establishment",
            establishment,
            "--boleta-series",
            "B002",
            "--factura-series",
            "F002",
            "--boleta-note-series",
            "BC02",
            "--factura-note-series",
            "FC02",
        ]
    };
    let o = faena(&db, &r, &add("lima-centro", "0001"))?;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("creada: tienda lima-centro (id 2): Tienda Lima Centro, establecimiento 0001, boletas B002, facturas F002, notas BC02/FC02, activa"),
        "{}",
        text(&o)
    );
    // Bad input exits 2 naming the option; what another store holds too.
    let o = faena(&db, &r, &add("cusco", "12"))?;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--establishment: `12`"), "{}", text(&o));
    let o = faena(&db, &r, &add("cusco", "0002"))?;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("B002 belongs to store lima-centro"),
        "{}",
        text(&o)
    );

    let o = faena(
        &db,
        &r,
        &["stores", "set", "lima-centro", "--factura-series", "F012"],
    )?;
    assert!(text(&o).contains("facturas F012"), "{}", text(&o));
    let o = faena(&db, &r, &["stores", "disable", "2"])?;
    assert!(text(&o).contains("desactivada"), "{}", text(&o));
    let o = faena(&db, &r, &["stores", "enable", "cusco"])?;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("no existe la tienda cusco"),
        "{}",
        text(&o)
    );
    let o = faena(&db, &r, &["--json", "stores", "list"])?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    let rows: Vec<(String, String, bool)> = v
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s["code"].as_str().unwrap_or_default().to_owned(),
                s["factura_series"].as_str().unwrap_or_default().to_owned(),
                s["active"].as_bool().unwrap_or(true),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("principal".to_owned(), "F001".to_owned(), true),
            ("lima-centro".to_owned(), "F012".to_owned(), false),
        ]
    );

    let o = faena_stdin(
        &db,
        &r,
        &[
            "users",
            "create",
            "ana",
            "--role",
            "seller",
            "--store",
            "lima-centro",
        ],
        "una clave bastante larga\n",
    )?;
    assert!(o.status.success(), "{}", text(&o));
    let o = faena_stdin(
        &db,
        &r,
        &[
            "users", "create", "jose", "--role", "seller", "--store", "nowhere",
        ],
        "una clave bastante larga\n",
    )?;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = faena(
        &db,
        &r,
        &["users", "set-store", "ana", "--store", "principal"],
    )?;
    assert!(
        text(&o).contains("ana vende ahora en la tienda principal"),
        "{}",
        text(&o)
    );
    let o = faena(&db, &r, &["--json", "users", "list"])?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(
        (v[0]["username"].as_str(), v[0]["store"].as_str()),
        (Some("ana"), Some("principal")),
        "{v}"
    );
    Ok(())
}

#[tokio::test]
async fn products_are_added_and_changed_with_the_apis_checks() -> anyhow::Result<()> {
    let db = TestDb::new("cliproducts").await?;
    let r = TestRedis::new("cliproducts")?;
    let run = |args: &[&str]| faena(&db, &r, args);
    let o = run(&["migrate"])?;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(&[
        "products",
        "add",
        "ARR-G",
        "--name",
        "Arroz a granel",
        "--price",
        "4.20",
        "--stock",
        "25.500",
        "--unit-code",
        "KGM",
        "--decimal-quantity",
    ])?;
    assert_eq!(
        (o.status.code(), String::from_utf8_lossy(&o.stdout).trim()),
        (
            Some(0),
            "producto 1 (ARR-G) Arroz a granel: S/ 4.20, stock 25.5 KGM (principal 25.5), gravado (10), por peso o medida"
        ),
        "{}",
        text(&o)
    );
    // Each bad value: exit 2, naming the option, nothing stored.
    for (args, option) in [
        (&["--igv-affectation", "40"][..], "--igv-affectation"),
        (&["--unit-code", "XYZ"], "--unit-code"),
        (&["--stock", "1.5"], "--stock"),
        (&["--stock", "1.2505", "--decimal-quantity"], "--stock"),
        (&["--icbper", "--decimal-quantity"], "--decimal-quantity"),
        (&["--price", "gratis"], "--price"),
    ] {
        let mut all = vec!["products", "add", "MAL", "--name", "Malo"];
        for (default, value) in [("--price", "1.00"), ("--stock", "1")] {
            if !args.contains(&default) {
                all.extend([default, value]);
            }
        }
        all.extend(args);
        let o = run(&all)?;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).starts_with(&format!("faena: {option}")),
            "{args:?}: {}",
            text(&o)
        );
    }
    let o = run(&["products", "set", "1", "--igv-affectation", "20"])?;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("exonerado (20)"), "{}", text(&o));
    // Whole units again is refused while the stock has decimals: exit 1 with the reason.
    let o = run(&["products", "set", "1", "--decimal-quantity", "false"])?;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("has a stock of 25.5 in store 1"),
        "{}",
        text(&o)
    );
    // Stock per store: set in one store (by its code), listed in all or in that store only.
    let o = run(&[
        "stores",
        "add",
        "lima",
        "--name",
        "Tienda Lima",
        "--establishment",
        "0001",
        "--boleta-series",
        "B002",
        "--factura-series",
        "F002",
        "--boleta-note-series",
        "BC02",
        "--factura-note-series",
        "FC02",
    ])?;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(&["products", "set", "1", "--stock", "2.25", "--store", "lima"])?;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("stock 27.75 KGM (principal 25.5, lima 2.25)"),
        "{}",
        text(&o)
    );
    let o = run(&["products", "list", "--store", "lima"])?;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("stock 2.25 KGM (lima 2.25)"),
        "{}",
        text(&o)
    );
    let o = run(&["products", "list", "--store", "nowhere"])?;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = run(&["products", "set", "1", "--store", "lima"])?;
    assert_eq!(
        o.status.code(),
        Some(2),
        "--store needs --stock: {}",
        text(&o)
    );
    let o = run(&["products", "set", "1", "--stock=-1"])?;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).starts_with("faena: --stock"),
        "{}",
        text(&o)
    );
    let o = run(&["--json", "products", "list"])?;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(
        (
            list.as_array().map(Vec::len),
            &list[0]["stock"],
            &list[0]["decimal_quantity"],
            &list[0]["igv_affectation"]
        ),
        (
            Some(1),
            &serde_json::json!(27.75),
            &serde_json::json!(true),
            &serde_json::json!("20")
        )
    );
    Ok(())
}
