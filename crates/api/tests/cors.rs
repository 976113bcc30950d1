//! CORS (`FAENA_CORS_ORIGINS`): a web shop on another origin can call the api from a browser; other
//! origins get no CORS headers; without the setting nothing changes. Requests carry the exact
//! headers a browser sends for a preflight and for the call that follows it.

mod common;

use common::{settings_with, TestApp};
use faena_testkit::{TestDb, TestRedis};
use reqwest::header::{HeaderMap, HeaderValue};

const SHOP: &str = "http://tienda.localhost:5173";

async fn app_with_cors(label: &str) -> anyhow::Result<TestApp> {
    let db = TestDb::new(label).await?;
    let redis = TestRedis::new(label)?;
    let s = settings_with(
        &db,
        &redis.url,
        &redis.prefix,
        &[(
            "FAENA_CORS_ORIGINS",
            &format!("{SHOP}, https://shop.example.pe"),
        )],
    )?;
    TestApp::start(db, redis, &s).await
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn preflight(base: &str, origin: &str) -> anyhow::Result<reqwest::Response> {
    Ok(reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{base}/api/tasks"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .await?)
}

#[tokio::test]
async fn an_allowed_origin_gets_its_preflight_and_its_call() -> anyhow::Result<()> {
    let app = app_with_cors("cors_ok").await?;
    let res = preflight(&app.base, SHOP).await?;
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(header(h, "access-control-allow-origin"), Some(SHOP));
    let methods = header(h, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");
    let allowed = header(h, "access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    // The call itself: a login, as a shop's page would make it.
    let res = reqwest::Client::new()
        .post(format!("{}/api/auth/token", app.base))
        .header("Origin", SHOP)
        .header("Content-Type", "application/json")
        .body(r#"{"username":"nadie","password":"x"}"#)
        .send()
        .await?;
    assert_eq!(res.status(), 401);
    assert_eq!(
        header(res.headers(), "access-control-allow-origin"),
        Some(SHOP)
    );
    let vary = header(res.headers(), "vary").unwrap_or_default();
    assert!(vary.to_ascii_lowercase().contains("origin"), "{vary}");
    Ok(())
}

#[tokio::test]
async fn another_origin_gets_no_cors_headers() -> anyhow::Result<()> {
    let app = app_with_cors("cors_no").await?;
    let res = preflight(&app.base, "https://evil.example").await?;
    assert!(res.status().as_u16() < 500, "{}", res.status());
    assert_eq!(header(res.headers(), "access-control-allow-origin"), None);
    // A same-origin call (the board's own pages send Origin on POST) still works.
    let same = app.base.clone();
    let res = reqwest::Client::new()
        .get(format!("{}/api/health", app.base))
        .header("Origin", HeaderValue::from_str(&same)?)
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    Ok(())
}

#[tokio::test]
async fn without_the_setting_nothing_changes() -> anyhow::Result<()> {
    let app = common::spawn_app("cors_off").await?;
    let res = reqwest::Client::new()
        .get(format!("{}/api/health", app.base))
        .header("Origin", SHOP)
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    assert_eq!(header(res.headers(), "access-control-allow-origin"), None);
    Ok(())
}

#[tokio::test]
async fn a_wildcard_or_a_path_is_refused_at_start() -> anyhow::Result<()> {
    let db = TestDb::new("cors_bad").await?;
    let redis = TestRedis::new("cors_bad")?;
    for bad in [
        "*",
        "https://shop.example.pe/tienda",
        "ftp://shop.example.pe",
        "shop",
    ] {
        let err = settings_with(
            &db,
            &redis.url,
            &redis.prefix,
            &[("FAENA_CORS_ORIGINS", bad)],
        )
        .expect_err(bad)
        .to_string();
        assert!(err.contains("FAENA_CORS_ORIGINS"), "{bad}: {err}");
    }
    Ok(())
}
