//! The apalis-board dashboard at `/board`: its JSON API over Faena's apalis backend, and the real
//! page in a headless Chromium driven through chromedriver (WebDriver, `fantoccini`;
//! `scripts/test-deps.sh` installs `/usr/bin/chromium` and `/usr/bin/chromedriver`): every
//! statistic card has its own title, the health indicator reads Faena's health, the "Pro" entries
//! are hidden.
//!
//! Queues are registered with apalis-board when the app is built, so `boardq` gets jobs before
//! the app starts (like a deployed api restarting over a live Redis); `lateq` is first used after
//! startup and is served by the board's fallback routes.

mod common;

use std::path::Path;
use std::time::Duration;

use common::browser::{target_dir, Chromedriver, CHROMEDRIVER, CHROMIUM};
use common::{settings, TestApp};
use faena_core::jobs::EnqueueRequest;
use faena_testkit::{TestDb, TestRedis};
use serde_json::Value;

/// Starts the app after `jobs` jobs were enqueued into `queue`.
async fn spawn_with_jobs(label: &str, queue: &str, jobs: usize) -> anyhow::Result<TestApp> {
    let db = TestDb::new(label).await?;
    let redis = TestRedis::new(label)?;
    for _ in 0..jobs {
        redis.broker.enqueue(noop(queue)).await?;
    }
    let s = settings(&db, &redis.url, &redis.prefix)?;
    TestApp::start(db, redis, &s).await
}

fn noop(queue: &str) -> EnqueueRequest {
    EnqueueRequest {
        kind: "noop".into(),
        queue: Some(queue.into()),
        ..Default::default()
    }
}

/// The value of the statistic `title` in an apalis-board statistics list.
fn stat(stats: &Value, title: &str) -> Option<String> {
    stats.as_array()?.iter().find_map(|s| {
        (s["title"] == title).then(|| match &s["value"] {
            Value::String(v) => v.clone(),
            other => other.to_string(),
        })
    })
}

#[tokio::test]
async fn board_serves_the_page_and_its_api() -> anyhow::Result<()> {
    let app = spawn_with_jobs("board_api", "boardq", 3).await?;

    for path in ["/board", "/board/", "/board/queues/boardq"] {
        let res = app.client.get(format!("{}{path}", app.base)).send().await?;
        assert_eq!(res.status().as_u16(), 200, "{path}");
        let ctype = res.headers()["content-type"].to_str()?.to_owned();
        assert!(ctype.starts_with("text/html"), "{path}: {ctype}");
        let html = res.text().await?;
        assert!(html.contains("<title>Apalis Board</title>"), "{html}");
        // The assets are asked for under /board, and they are there.
        let js = html
            .split('\'')
            .find(|s| s.starts_with("/board/apalis-board-web-") && s.ends_with(".js"))
            .unwrap_or_else(|| panic!("no script URL in {html}"))
            .to_owned();
        let res = app.client.get(format!("{}{js}", app.base)).send().await?;
        assert_eq!(res.status().as_u16(), 200, "{js}");
        assert_eq!(res.headers()["content-type"], "application/javascript");
    }
    let res = app
        .client
        .get(format!("{}/board/no-such-asset.js", app.base))
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 404);

    // The queue list: every queue with its counts.
    let (status, queues) = app.get("/board/api/v1/queues").await?;
    assert_eq!(status, 200, "{queues}");
    let boardq = queues
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["name"] == "boardq"))
        .unwrap_or_else(|| panic!("boardq is not listed: {queues}"));
    assert_eq!(
        stat(&boardq["stats"], "PENDING_JOBS").as_deref(),
        Some("3"),
        "{boardq}"
    );
    assert_eq!(
        stat(&boardq["stats"], "ENQUEUED_JOBS").as_deref(),
        Some("3"),
        "{boardq}"
    );

    // Per queue: registered at startup.
    let (status, stats) = app.get("/board/api/v1/queues/boardq/stats").await?;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        stat(&stats, "PENDING_JOBS").as_deref(),
        Some("3"),
        "{stats}"
    );
    let (status, tasks) = app.get("/board/api/v1/queues/boardq/tasks").await?;
    assert_eq!(status, 200, "{tasks}");
    assert_eq!(tasks.as_array().map(Vec::len), Some(3), "{tasks}");
    let (status, overview) = app.get("/board/api/v1/overview").await?;
    assert_eq!(status, 200, "{overview}");
    assert!(stat(&overview, "QUEUES").is_some(), "{overview}");

    // A queue first used after startup: listed, and its per-queue routes answer (fallback).
    app.redis.broker.enqueue(noop("lateq")).await?;
    let (_, queues) = app.get("/board/api/v1/queues").await?;
    assert!(
        queues
            .as_array()
            .is_some_and(|qs| qs.iter().any(|q| q["name"] == "lateq")),
        "{queues}"
    );
    let (status, stats) = app.get("/board/api/v1/queues/lateq/stats").await?;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        stat(&stats, "PENDING_JOBS").as_deref(),
        Some("1"),
        "{stats}"
    );
    let (status, tasks) = app.get("/board/api/v1/queues/lateq/tasks").await?;
    assert_eq!(status, 200, "{tasks}");
    assert_eq!(tasks.as_array().map(Vec::len), Some(1), "{tasks}");
    let (status, _) = app.get("/board/api/v1/queues/nosuchq/stats").await?;
    assert_eq!(status, 404);
    Ok(())
}

/// The titles of the overview's statistic cards, as the page shows them.
const CARD_TITLES: &str = r#"
var ps = Array.from(document.querySelectorAll("section > p"));
var p = ps.find(function (p) { return p.textContent.trim() === "Backend stats overview"; });
if (!p) return null;
var grid = p.parentElement.querySelector("div.grid");
if (!grid) return null;
return Array.from(grid.children).map(function (c) {
  var h = c.querySelector("h3"); return h ? h.textContent.trim() : "";
});
"#;

/// The text next to "System Status:" in the sidebar.
const HEALTH_TEXT: &str = r#"
var s = Array.from(document.querySelectorAll("span"))
  .find(function (s) { return s.textContent.trim() === "System Status:"; });
return s && s.nextElementSibling ? s.nextElementSibling.textContent.trim() : null;
"#;

/// The "Pro" links in the page, and how many of them are visible.
const PRO_LINKS: &str = r#"
var all = Array.from(document.querySelectorAll("a")).filter(function (a) {
  return /^(\/board)?\/pro/.test(a.getAttribute("href") || "");
});
return [all.length, all.filter(function (a) { return a.getClientRects().length > 0; }).length];
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_in_chromium_titles_every_card_reads_faena_health_and_hides_pro() -> anyhow::Result<()>
{
    for tool in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(tool).exists() {
            eprintln!(
                "SKIPPED board_in_chromium: {tool} is missing (scripts/test-deps.sh installs \
                 chromium and chromium-driver)"
            );
            return Ok(());
        }
    }
    let app = spawn_with_jobs("board_chromium", "boardq", 3).await?;
    let driver = Chromedriver::start().await?;
    let profile = tempfile::tempdir()?;
    let browser = driver.session(profile.path()).await?;
    let outcome = drive_board(&app, &browser).await;
    let _ = browser.close().await;
    outcome
}

async fn drive_board(app: &TestApp, browser: &fantoccini::Client) -> anyhow::Result<()> {
    // A browser cannot send a bearer header: /board/login keeps the admin's token in a cookie
    // and redirects to the board.
    browser
        .goto(&format!(
            "{}/board/login?token={}",
            app.base, app.admin_token
        ))
        .await?;

    // The statistics the api answers, and the title each card must carry.
    let (status, overview) = app.get("/board/api/v1/overview").await?;
    assert_eq!(status, 200, "{overview}");
    let keys: Vec<String> = overview
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["title"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "PENDING_JOBS",
            "SCHEDULED_JOBS",
            "RUNNING_JOBS",
            "DEAD_JOBS",
            "SUCCEEDED_ATTEMPTS",
            "FAILED_ATTEMPTS",
            "RETRIED_ATTEMPTS",
            "ENQUEUED_JOBS",
            "PAUSED_QUEUES",
            "QUEUES",
            "WORKERS"
        ],
        "{overview}"
    );
    let expected = [
        "Pending jobs",
        "Scheduled jobs",
        "Running jobs",
        "Dead jobs",
        "Succeeded attempts",
        "Failed attempts",
        "Retried attempts",
        "Enqueued jobs",
        "Paused queues",
        "Queues",
        "Workers",
    ];
    let last = std::cell::RefCell::new(Value::Null);
    let (last_ref, keys_ref) = (&last, &keys);
    let titles = faena_testkit::wait_for(
        "the overview's cards, each with its own title",
        Duration::from_secs(60),
        || async move {
            let seen = browser.execute(CARD_TITLES, vec![]).await?;
            *last_ref.borrow_mut() = seen.clone();
            let titles: Vec<String> = serde_json::from_value(seen).unwrap_or_default();
            let distinct: std::collections::BTreeSet<&String> = titles.iter().collect();
            Ok(
                (titles.len() == keys_ref.len() && distinct.len() == titles.len())
                    .then_some(titles),
            )
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}; the cards were titled {}", last.borrow()))?;
    assert_eq!(titles, expected, "the overview's card titles");

    // The queue is shown.
    faena_testkit::wait_for("boardq on the page", Duration::from_secs(30), || async {
        let text = browser
            .execute("return document.body.innerText;", vec![])
            .await?;
        Ok(text
            .as_str()
            .is_some_and(|t| t.contains("boardq"))
            .then_some(()))
    })
    .await?;

    // Health: /api/health answers 200, the board's health stream opens, and the indicator reads
    // Healthy after it did.
    let res = app
        .client
        .get(format!("{}/api/health", app.base))
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 200, "/api/health");
    let opened = browser
        .execute_async(
            r#"var done = arguments[arguments.length - 1];
               var es = new EventSource("/api/v1/events");
               es.onopen = function () { es.close(); done("open"); };
               es.onerror = function () { es.close(); done("error"); };"#,
            vec![],
        )
        .await?;
    assert_eq!(opened, "open", "the board's health stream");
    let health = browser.execute(HEALTH_TEXT, vec![]).await?;
    assert_eq!(health, "Healthy", "the sidebar's System Status");

    // The "Pro" entries are rendered by the app, and none is visible.
    let pro = browser.execute(PRO_LINKS, vec![]).await?;
    assert_eq!(
        pro,
        serde_json::json!([3, 0]),
        "Pro links [in the page, visible]"
    );
    let text = browser
        .execute("return document.body.innerText;", vec![])
        .await?;
    let text = text.as_str().unwrap_or_default();
    for entry in ["Stepped", "Complex", "Schedules", "Advanced"] {
        assert!(!text.contains(entry), "{entry:?} is visible:\n{text}");
    }

    let dir = target_dir().join("console");
    std::fs::create_dir_all(&dir)?;
    let shot = dir.join("board.png");
    std::fs::write(&shot, browser.screenshot().await?)?;
    let len = std::fs::metadata(&shot)?.len();
    assert!(len > 0, "{} is empty", shot.display());
    Ok(())
}

/// The board's health stream (what its "System Status" shows): open with an SSE comment while
/// `/api/health` is 200; refused with 503, like `/api/health`, when Redis cannot be reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_health_stream_follows_api_health() -> anyhow::Result<()> {
    let app = spawn_with_jobs("board_events", "boardq", 0).await?;
    let res = app
        .client
        .get(format!("{}/board/api/v1/events", app.base))
        .bearer_auth(&app.admin_token)
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut res = res;
    let first = res.chunk().await?.unwrap_or_default();
    assert_eq!(&first[..], b": faena healthy\n\n");
    drop(res);

    // Redis stops under a running app.
    let mut own = faena_testkit::OwnRedis::start().await?;
    let down = common::spawn_app_with("board_events_down", Some(&own.url())).await?;
    own.stop();
    let res = down
        .client
        .get(format!("{}/api/health", down.base))
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 503, "/api/health");
    let res = down
        .client
        .get(format!("{}/board/api/v1/events", down.base))
        .bearer_auth(&down.admin_token)
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 503, "the board's health stream");
    let body: Value = res.json().await?;
    assert_eq!(body["redis"]["ok"], false, "{body}");
    Ok(())
}
