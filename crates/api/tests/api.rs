//! The api over real PostgreSQL and Redis: each test has its own database and Redis key prefix.

mod common;

use std::time::{Duration, Instant};

use common::{settings, spawn_app, spawn_app_with};
use faena_testkit::{wait_for, TestDb, TestRedis};
use serde_json::{json, Value};

#[tokio::test]
async fn health_reports_both_dependencies() -> anyhow::Result<()> {
    let app = spawn_app("health").await?;
    let (status, body) = app.get("/api/health").await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"]["ok"], json!(true));
    assert_eq!(body["redis"]["ok"], json!(true));
    assert!(body["redis"]["latency_ms"].as_f64().is_some());
    assert_eq!(body["version"], json!(faena_core::VERSION));
    Ok(())
}

#[tokio::test]
async fn enqueue_then_show_the_record() -> anyhow::Result<()> {
    let app = spawn_app("enqueue").await?;
    let (status, body) = app
        .post(
            "/api/tasks",
            r#"{"kind":"sleep","args":{"ms":5},"queue":"slow","max_attempts":4}"#,
        )
        .await?;
    assert_eq!(status, 202, "{body}");
    let id = body["task_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(id.len(), 26);
    let (status, rec) = app.get(&format!("/api/tasks/{id}")).await?;
    assert_eq!(status, 200, "{rec}");
    assert_eq!(rec["state"], json!("PENDING"));
    assert_eq!(rec["kind"], json!("sleep"));
    assert_eq!(rec["queue"], json!("slow"));
    assert_eq!(rec["args"], json!({"ms": 5}));
    assert_eq!(
        (rec["attempts"].clone(), rec["max_attempts"].clone()),
        (json!(0), json!(4))
    );

    let (status, body) = app
        .post("/api/tasks", r#"{"kind":"noop","countdown":30}"#)
        .await?;
    assert_eq!(status, 202, "{body}");
    let (_, rec) = app
        .get(&format!(
            "/api/tasks/{}",
            body["task_id"].as_str().unwrap_or_default()
        ))
        .await?;
    assert_eq!(rec["state"], json!("SCHEDULED"));
    assert!(rec["next_run_at"].is_string());
    Ok(())
}

#[tokio::test]
async fn bad_requests_get_clear_errors_never_500() -> anyhow::Result<()> {
    let app = spawn_app("badreq").await?;
    let cases: &[(&str, u16, &str, Option<&str>)] = &[
        (r#"{"kind":"nope"}"#, 400, "unknown_kind", Some("kind")),
        (
            r#"{"kind":"sleep","args":{"ms":"x"}}"#,
            400,
            "invalid_args",
            Some("args.ms"),
        ),
        (
            r#"{"kind":"sleep","args":{}}"#,
            400,
            "invalid_args",
            Some("args"),
        ),
        (
            r#"{"kind":"noop","queue":"Bad Queue"}"#,
            400,
            "invalid_field",
            Some("queue"),
        ),
        (
            r#"{"kind":"noop","countdown":5,"eta":"2030-01-01T00:00:00Z"}"#,
            400,
            "invalid_field",
            Some("countdown"),
        ),
        (
            r#"{"kind":"noop","max_attempts":0}"#,
            400,
            "invalid_field",
            Some("max_attempts"),
        ),
        (
            r#"{"kind":"noop","bogus":1}"#,
            400,
            "unknown_field",
            Some("bogus"),
        ),
        (
            r#"{"kind":"noop","args":{},"queue":7}"#,
            400,
            "invalid_field",
            Some("queue"),
        ),
        (r#"{"args":{}}"#, 400, "missing_field", Some("kind")),
        (r#"{"kind":"noop""#, 400, "invalid_json", None),
        (r#"[]"#, 400, "invalid_json", None),
    ];
    for (body, status, code, field) in cases {
        let (s, b) = app.post("/api/tasks", body).await?;
        assert_eq!(s, *status, "{body} -> {b}");
        assert_eq!(b["error"]["code"], json!(code), "{body} -> {b}");
        assert!(b["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        if let Some(f) = field {
            assert_eq!(b["error"]["field"], json!(f), "{body} -> {b}");
        }
    }
    let big = format!(
        r#"{{"kind":"noop","args":"{}"}}"#,
        "x".repeat(faena_api::MAX_JSON_BYTES + 10)
    );
    let (s, b) = app.post("/api/tasks", &big).await?;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (413, json!("body_too_large"))
    );
    let (s, b) = app.get("/api/tasks/not-an-id").await?;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (400, json!("invalid_task_id"))
    );
    let (s, b) = app
        .get(&format!("/api/tasks/{}", faena_core::TaskId::new()))
        .await?;
    assert_eq!((s, b["error"]["code"].clone()), (404, json!("not_found")));
    let (s, b) = app.get("/api/nothing-here").await?;
    assert_eq!((s, b["error"]["code"].clone()), (404, json!("not_found")));
    Ok(())
}

#[tokio::test]
async fn api_refuses_to_start_with_pending_migrations() -> anyhow::Result<()> {
    let db = TestDb::empty("pending").await?;
    let redis = TestRedis::new("pending")?;
    let err = faena_api::Application::build(&settings(&db, &redis.url, &redis.prefix)?)
        .await
        .err();
    let msg = format!(
        "{:#}",
        err.ok_or_else(|| anyhow::anyhow!("the api started on an unmigrated database"))?
    );
    assert!(msg.contains("faena migrate"), "{msg}");
    Ok(())
}

#[tokio::test]
async fn health_turns_503_quickly_when_redis_stops_and_recovers_without_restart(
) -> anyhow::Result<()> {
    let mut redis = faena_testkit::OwnRedis::start().await?;
    let url = redis.url();
    let app = spawn_app_with("recover", Some(&url)).await?;
    let (s, _) = app.get("/api/health").await?;
    assert_eq!(s, 200);

    redis.stop();
    let start = Instant::now();
    let (s, body) = app.get("/api/health").await?;
    let took = start.elapsed();
    assert_eq!(s, 503, "{body}");
    assert_eq!(body["down"], json!(["redis"]));
    assert!(took < Duration::from_secs(2), "503 took {took:?}");
    let (s, body) = app.post("/api/tasks", r#"{"kind":"noop"}"#).await?;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (503, json!("service_unavailable")),
        "{body}"
    );

    redis.restart().await?;
    wait_for(
        "health to be 200 again",
        Duration::from_secs(15),
        || async { Ok((app.get("/api/health").await?.0 == 200).then_some(())) },
    )
    .await?;
    let (s, _) = app.post("/api/tasks", r#"{"kind":"noop"}"#).await?;
    assert_eq!(s, 202);
    Ok(())
}

#[tokio::test]
async fn periodic_tasks_crud_with_clear_errors() -> anyhow::Result<()> {
    let app = spawn_app("periodic").await?;
    let (s, list) = app.get("/api/periodic-tasks").await?;
    assert_eq!(s, 200);
    let names: Vec<&str> = list
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        names.contains(&"release-expired-reservations") && names.contains(&"sales-summary"),
        "{names:?}"
    );
    let seeded = list
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|t| t["name"] == json!("sunat-daily-report"))
                .cloned()
        })
        .unwrap_or_default();
    assert_eq!(
        seeded["kind_registered"],
        json!(true),
        "the reports issue registered its kind"
    );
    assert_eq!(seeded["cron"], json!("0 0 23 * * *"));

    let (s, b) = app
        .post(
            "/api/periodic-tasks",
            r#"{"name":"ping","kind":"noop","cron":"*/5 * * * *","timezone":"America/Bogota"}"#,
        )
        .await?;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["cron"], json!("0 */5 * * * *"));
    assert!(b["next_run_at"].is_string());
    let (s, b) = app
        .post(
            "/api/periodic-tasks",
            r#"{"name":"ping","kind":"noop","interval_secs":5}"#,
        )
        .await?;
    assert_eq!((s, b["error"]["code"].clone()), (409, json!("conflict")));

    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{"name":"x","kind":"noop","cron":"61 * * * *"}"#,
            "invalid_schedule",
            "cron",
        ),
        (
            r#"{"name":"x","kind":"noop","cron":"* * * * *","timezone":"Mars/Base"}"#,
            "invalid_schedule",
            "timezone",
        ),
        (
            r#"{"name":"x","kind":"noop"}"#,
            "invalid_schedule",
            "interval_secs",
        ),
        (
            r#"{"name":"x","kind":"nope","interval_secs":5}"#,
            "invalid_field",
            "kind",
        ),
        (
            r#"{"name":"x","kind":"sleep","args":{"ms":"a"},"interval_secs":5}"#,
            "invalid_field",
            "args.ms",
        ),
        (
            r#"{"name":"Bad Name","kind":"noop","interval_secs":5}"#,
            "invalid_field",
            "name",
        ),
    ];
    for (body, code, field) in cases {
        let (s, b) = app.post("/api/periodic-tasks", body).await?;
        assert_eq!(s, 400, "{body} -> {b}");
        assert_eq!(
            (b["error"]["code"].clone(), b["error"]["field"].clone()),
            (json!(code), json!(field)),
            "{body} -> {b}"
        );
    }
    let (_, b) = app
        .post(
            "/api/periodic-tasks",
            r#"{"name":"x","kind":"noop","cron":"61 * * * *"}"#,
        )
        .await?;
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("`61 * * * *`"),
        "{b}"
    );

    let (s, b) = app
        .send(
            reqwest::Method::PATCH,
            "/api/periodic-tasks/ping",
            Some(r#"{"enabled":false,"interval_secs":60}"#),
        )
        .await?;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (
            b["enabled"].clone(),
            b["interval_secs"].clone(),
            b["cron"].clone()
        ),
        (json!(false), json!(60), Value::Null)
    );
    let (s, b) = app.post("/api/periodic-tasks/ping/run", "").await?;
    assert_eq!(s, 202, "{b}");
    let (s, _) = app
        .send(reqwest::Method::DELETE, "/api/periodic-tasks/ping", None)
        .await?;
    assert_eq!(s, 204);
    let (s, b) = app.get("/api/periodic-tasks/ping").await?;
    assert_eq!((s, b["error"]["code"].clone()), (404, json!("not_found")));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_changed_through_the_api_applies_within_five_seconds() -> anyhow::Result<()> {
    let app = spawn_app("periodicedit").await?;
    let (s, b) = app
        .post(
            "/api/periodic-tasks",
            r#"{"name":"hourly","kind":"noop","interval_secs":3600}"#,
        )
        .await?;
    assert_eq!(s, 201, "{b}");
    let pool = faena_core::db::create_pool(&app.db.url, 2)?;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let beat = tokio::spawn(faena_beat::run(
        app.redis.broker.clone(),
        pool,
        faena_beat::BeatConfig::default(),
        rx,
    ));
    wait_for("beat to lead", Duration::from_secs(5), || async {
        Ok(app.redis.broker.leader(faena_beat::ROLE).await?)
    })
    .await?;
    let (s, b) = app
        .send(
            reqwest::Method::PATCH,
            "/api/periodic-tasks/hourly",
            Some(r#"{"interval_secs":1}"#),
        )
        .await?;
    assert_eq!(s, 200, "{b}");
    let changed = Instant::now();
    let q = faena_core::QueueName::default_queue();
    // Only a job of this schedule counts (the seeded release schedule may fire on the minute too).
    wait_for(
        "a job from the edited schedule",
        Duration::from_secs(5),
        || async {
            let jobs = app
                .redis
                .broker
                .list(&q, faena_broker::TaskState::Pending, 1000)
                .await?;
            Ok(jobs
                .iter()
                .any(|j| {
                    j.idempotency_key
                        .as_deref()
                        .is_some_and(|k| k.starts_with("periodic:hourly:"))
                })
                .then_some(()))
        },
    )
    .await?;
    assert!(changed.elapsed() <= Duration::from_secs(5));
    let _ = stop.send(true);
    let report = beat.await?;
    assert!(report.enqueued >= 1);
    Ok(())
}

#[tokio::test]
async fn metrics_in_prometheus_text_format() -> anyhow::Result<()> {
    let app = spawn_app("metrics").await?;
    let (s, _) = app.get("/api/health").await?;
    assert_eq!(s, 200);
    let (s, _) = app
        .post("/api/tasks", r#"{"kind":"noop","queue":"metricsq"}"#)
        .await?;
    assert_eq!(s, 202);
    let body = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        body.lines()
            .any(|l| l.starts_with("faena_http_requests_total{")
                && l.contains(r#"route="/api/health""#)
                && l.contains(r#"status="200""#)),
        "{body}"
    );
    assert!(
        body.contains(r#"faena_queue_jobs{queue="metricsq",state="pending"} 1"#),
        "{body}"
    );
    assert!(
        body.contains("faena_http_request_duration_seconds_bucket"),
        "{body}"
    );
    Ok(())
}

/// One request over a fresh connection, read to its end: (status, headers in lower case, the bytes
/// after the headers). Raw, so a body sent after a HEAD's headers would show.
async fn raw_request(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
) -> anyhow::Result<(u16, Vec<(String, String)>, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await??;
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no end of headers in {answer:?}"))?;
    let head = String::from_utf8(answer[..end].to_vec())?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no status line in {head}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok((status, headers, answer[end + 4..].to_vec()))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() -> anyhow::Result<()> {
    let app = spawn_app("head").await?;
    let token = app.admin_token.clone();
    for (path, status) in [
        ("/api/health", 200),
        ("/metrics", 200),
        ("/api/openapi.json", 200),
        ("/api/products", 200),
        ("/api/products/999999", 404),
        ("/api/periodic-tasks", 200),
        ("/board", 200),
        ("/board/login", 400),
    ] {
        let (got, get_headers, get_body) = raw_request(&app.base, "GET", path, &token).await?;
        assert_eq!(got, status, "GET {path}");
        assert!(!get_body.is_empty(), "GET {path} has a body");
        let (head, head_headers, head_body) = raw_request(&app.base, "HEAD", path, &token).await?;
        assert_eq!(head, got, "HEAD {path} answers like GET");
        assert!(
            head_body.is_empty(),
            "HEAD {path} sent a body: {head_body:?}"
        );
        assert_eq!(
            header(&head_headers, "content-type"),
            header(&get_headers, "content-type"),
            "HEAD {path}"
        );
    }
    // A document that does not change between two requests has the same length either way.
    let (_, get_headers, get_body) =
        raw_request(&app.base, "GET", "/api/openapi.json", &token).await?;
    let (_, head_headers, _) = raw_request(&app.base, "HEAD", "/api/openapi.json", &token).await?;
    assert_eq!(
        header(&get_headers, "content-length"),
        Some(get_body.len().to_string().as_str())
    );
    assert_eq!(
        header(&head_headers, "content-length"),
        header(&get_headers, "content-length")
    );
    // A route without GET refuses HEAD as it refuses GET.
    for path in ["/api/auth/token", "/api/tasks"] {
        let (s, headers, body) = raw_request(&app.base, "HEAD", path, &token).await?;
        assert_eq!(s, 405, "HEAD {path}");
        assert_eq!(header(&headers, "allow"), Some("POST"), "HEAD {path}");
        assert!(body.is_empty(), "HEAD {path} sent a body: {body:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_answers_but_cannot_serve_now_is_503_never_500() -> anyhow::Result<()> {
    let own = faena_testkit::OwnRedis::start().await?;
    let app = common::spawn_app_with("redis_readonly", Some(&own.url())).await?;
    let mut conn = redis::Client::open(own.url().as_str())?
        .get_multiplexed_async_connection()
        .await?;
    // A replica refuses writes (READONLY), as a primary demoted by a failover does until clients
    // move: here a replica of a port nobody listens on.
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(nobody)
        .query_async(&mut conn)
        .await?;
    let (s, b) = app.post("/api/tasks", r#"{"kind":"noop"}"#).await?;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (503, json!("service_unavailable")),
        "{b}"
    );
    assert!(
        !b.to_string().contains("READONLY"),
        "Redis's own words stay in the log: {b}"
    );
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut conn)
        .await?;
    let (s, b) = app.post("/api/tasks", r#"{"kind":"noop"}"#).await?;
    assert_eq!(s, 202, "{b}");
    Ok(())
}
