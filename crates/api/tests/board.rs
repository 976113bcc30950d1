//! The apalis-board dashboard at `/board`: its JSON API over Faena's apalis backend, and the real
//! page in a headless Chromium (`chromium` on PATH; `scripts/test-deps.sh` installs it).
//!
//! Queues are registered with apalis-board when the app is built, so `boardq` gets jobs before
//! the app starts (like a deployed api restarting over a live Redis); `lateq` is first used after
//! startup and is served by the board's fallback routes.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

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

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// Runs headless Chromium on `url` with `args`, in a fresh profile; returns its stdout.
async fn chromium(url: &str, args: &[&str]) -> anyhow::Result<String> {
    let profile = std::env::temp_dir().join(format!(
        "faena-board-chromium-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    ));
    std::fs::create_dir_all(&profile)?;
    let run = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run).await;
    let _ = std::fs::remove_dir_all(&profile);
    let out = out.map_err(|_| anyhow::anyhow!("chromium did not finish in 90s"))??;
    anyhow::ensure!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_renders_the_queue_in_chromium() -> anyhow::Result<()> {
    let app = spawn_with_jobs("board_chromium", "boardq", 3).await?;
    // A browser cannot send a bearer header: /board/login keeps the admin's token in a cookie
    // and redirects to the board.
    let url = format!("{}/board/login?token={}", app.base, app.admin_token);

    let dom = chromium(&url, &["--dump-dom"]).await?;
    assert!(
        dom.contains("boardq"),
        "the page does not show boardq:\n{dom}"
    );

    let dir = target_dir();
    std::fs::create_dir_all(&dir)?;
    let shot = dir.join("board.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,800",
        ],
    )
    .await?;
    let len = std::fs::metadata(&shot)
        .map_err(|e| anyhow::anyhow!("no screenshot at {}: {e}", shot.display()))?
        .len();
    assert!(len > 0, "{} is empty", shot.display());
    Ok(())
}
