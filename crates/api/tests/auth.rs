//! Authentication and roles: a role-by-endpoint matrix (401 / 403 / allowed), owner checks,
//! token expiry, refresh rotation and reuse, logout, login throttling, and the start-up check of
//! the JWT secret.

mod common;

use std::time::Duration;

use common::{login, settings_with, spawn_app, TestApp, TEST_PASSWORD};
use faena_shop::auth::Role;
use faena_testkit::{wait_for, TestDb, TestRedis};
use reqwest::Method;
use serde_json::{json, Value};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Access {
    Public,
    Seller,
    Admin,
}

#[tokio::test]
async fn role_by_endpoint_matrix() -> anyhow::Result<()> {
    let app = spawn_app("auth_matrix").await?;
    let seller = app.user_token("seller1", Role::Seller).await?;
    // Fixtures the routes point at, made by the admin.
    let (s, p) = app
        .post(
            "/api/products",
            r#"{"sku":"MX-1","name":"Mate","unit_price":"10.00","stock":50}"#,
        )
        .await?;
    assert_eq!(s, 201, "{p}");
    let pid = p["id"].as_i64().unwrap_or_default();
    let (s, r) = app
        .send_as(
            Some(&seller),
            Method::POST,
            "/api/checkout",
            Some(&json!({"items":[{"product_id": pid, "quantity": 1}]}).to_string()),
        )
        .await?;
    assert_eq!(s, 201, "{r}");
    let rid = r["reservation_id"].as_i64().unwrap_or_default();
    let (s, sale) = app
        .send_as(
            Some(&seller),
            Method::POST,
            "/api/sales",
            Some(&json!({"items":[{"product_id": pid, "quantity": 1}]}).to_string()),
        )
        .await?;
    assert_eq!(s, 201, "{sale}");
    let sale_id = sale["id"].as_i64().unwrap_or_default();
    let (s, t) = app.post("/api/tasks", r#"{"kind":"noop"}"#).await?;
    assert_eq!(s, 202, "{t}");
    let tid = t["task_id"].as_str().unwrap_or_default().to_owned();

    let product = json!({"sku":"MX-2","name":"Yerba","unit_price":"5.00","stock":5}).to_string();
    let schedule = json!({"name":"m-1","kind":"noop","interval_secs":60}).to_string();
    let checkout = json!({"items":[{"product_id": pid, "quantity": 1}]}).to_string();
    let routes: Vec<(Method, String, Option<String>, Access)> = vec![
        (Method::GET, "/api/health".into(), None, Access::Public),
        (Method::GET, "/metrics".into(), None, Access::Public),
        (
            Method::POST,
            "/api/tasks".into(),
            Some(r#"{"kind":"noop"}"#.into()),
            Access::Admin,
        ),
        (
            Method::GET,
            format!("/api/tasks/{tid}"),
            None,
            Access::Admin,
        ),
        (
            Method::GET,
            "/api/periodic-tasks".into(),
            None,
            Access::Admin,
        ),
        (
            Method::POST,
            "/api/periodic-tasks".into(),
            Some(schedule),
            Access::Admin,
        ),
        (
            Method::GET,
            "/api/periodic-tasks/m-1".into(),
            None,
            Access::Admin,
        ),
        (
            Method::PATCH,
            "/api/periodic-tasks/m-1".into(),
            Some(r#"{"enabled":false}"#.into()),
            Access::Admin,
        ),
        (
            Method::POST,
            "/api/periodic-tasks/m-1/run".into(),
            None,
            Access::Admin,
        ),
        (
            Method::DELETE,
            "/api/periodic-tasks/m-1".into(),
            None,
            Access::Admin,
        ),
        (
            Method::POST,
            "/api/products".into(),
            Some(product),
            Access::Admin,
        ),
        (Method::GET, "/api/products".into(), None, Access::Seller),
        (
            Method::GET,
            format!("/api/products/{pid}"),
            None,
            Access::Seller,
        ),
        (
            Method::PATCH,
            format!("/api/products/{pid}"),
            Some(r#"{"name":"Mate 2"}"#.into()),
            Access::Admin,
        ),
        (
            Method::POST,
            format!("/api/products/{pid}/stock"),
            Some(r#"{"delta":1}"#.into()),
            Access::Admin,
        ),
        (
            Method::POST,
            "/api/checkout".into(),
            Some(checkout),
            Access::Seller,
        ),
        (
            Method::GET,
            format!("/api/reservations/{rid}"),
            None,
            Access::Seller,
        ),
        (
            Method::POST,
            "/api/sales".into(),
            Some(json!({"items":[{"product_id": pid, "quantity": 1}]}).to_string()),
            Access::Seller,
        ),
        (
            Method::GET,
            format!("/api/sales/{sale_id}"),
            None,
            Access::Seller,
        ),
        (
            Method::GET,
            "/api/sunat/summaries".into(),
            None,
            Access::Admin,
        ),
        (Method::GET, "/board/".into(), None, Access::Admin),
        (
            Method::GET,
            "/board/api/v1/queues".into(),
            None,
            Access::Admin,
        ),
    ];
    for (method, path, body, access) in &routes {
        let call = |token: Option<String>| {
            let (method, path, body) = (method.clone(), path.clone(), body.clone());
            let app = &app;
            async move {
                app.send_as(token.as_deref(), method, &path, body.as_deref())
                    .await
            }
        };
        let (anon, anon_body) = call(None).await?;
        let (sel, sel_body) = call(Some(seller.clone())).await?;
        let (adm, adm_body) = call(Some(app.admin_token.clone())).await?;
        let ok = |s: u16| (200..300).contains(&s);
        match access {
            Access::Public => {
                assert!(
                    ok(anon) && ok(sel) && ok(adm),
                    "{method} {path}: {anon} {sel} {adm}"
                );
            }
            Access::Seller => {
                assert_eq!(anon, 401, "{method} {path} anonymous: {anon_body}");
                assert_eq!(anon_body["error"]["code"], "missing_token", "{anon_body}");
                assert!(ok(sel), "{method} {path} as seller: {sel} {sel_body}");
                assert!(ok(adm), "{method} {path} as admin: {adm} {adm_body}");
            }
            Access::Admin => {
                assert_eq!(anon, 401, "{method} {path} anonymous: {anon_body}");
                assert_eq!(sel, 403, "{method} {path} as seller: {sel_body}");
                assert_eq!(sel_body["error"]["code"], "forbidden", "{sel_body}");
                assert!(ok(adm), "{method} {path} as admin: {adm} {adm_body}");
            }
        }
    }
    // A garbage token is 401 everywhere but the public routes.
    let (s, b) = app
        .send_as(Some("not-a-token"), Method::GET, "/api/products", None)
        .await?;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (401, json!("invalid_token"))
    );
    Ok(())
}

#[tokio::test]
async fn sellers_use_only_their_own_reservations_and_tasks() -> anyhow::Result<()> {
    let app = spawn_app("auth_owner").await?;
    let ana = app.user_token("ana", Role::Seller).await?;
    let beto = app.user_token("beto", Role::Seller).await?;
    let (_, p) = app
        .post(
            "/api/products",
            r#"{"sku":"OW-1","name":"Pan","unit_price":"1.00","stock":10}"#,
        )
        .await?;
    let body = json!({"items":[{"product_id": p["id"], "quantity": 2}]}).to_string();
    let (s, r) = app
        .send_as(Some(&ana), Method::POST, "/api/checkout", Some(&body))
        .await?;
    assert_eq!(s, 201, "{r}");
    let path = format!("/api/reservations/{}", r["reservation_id"]);
    for (method, p) in [
        (Method::GET, path.clone()),
        (Method::POST, format!("{path}/confirm")),
        (Method::DELETE, path.clone()),
    ] {
        let (s, b) = app.send_as(Some(&beto), method, &p, None).await?;
        assert_eq!(s, 403, "beto on {p}: {b}");
    }
    let (s, b) = app.send_as(Some(&ana), Method::GET, &path, None).await?;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "ACTIVE", "beto's calls changed nothing: {b}");
    let (s, _) = app.get(&path).await?;
    assert_eq!(s, 200, "an admin sees every reservation");
    let (s, b) = app.send_as(Some(&ana), Method::DELETE, &path, None).await?;
    assert_eq!(s, 200, "{b}");

    // A task enqueued by the admin is not a seller's.
    let (_, t) = app.post("/api/tasks", r#"{"kind":"noop"}"#).await?;
    let (s, b) = app
        .send_as(
            Some(&ana),
            Method::GET,
            &format!("/api/tasks/{}", t["task_id"].as_str().unwrap_or_default()),
            None,
        )
        .await?;
    assert_eq!(s, 403, "{b}");
    Ok(())
}

async fn refresh(app: &TestApp, token: &str) -> anyhow::Result<(u16, Value)> {
    app.send_as(
        None,
        Method::POST,
        "/api/auth/refresh",
        Some(&json!({ "refresh_token": token }).to_string()),
    )
    .await
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_family() -> anyhow::Result<()> {
    let app = spawn_app("auth_refresh").await?;
    common::create_user(&app.db, "caja1", Role::Seller).await?;
    let (s, first) = login(&app.base, "caja1", TEST_PASSWORD).await?;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["role"], "seller");
    assert_eq!(first["expires_in"], 900);
    let r1 = first["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let (s, second) = refresh(&app, &r1).await?;
    assert_eq!(s, 200, "{second}");
    let r2 = second["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_ne!(r1, r2);
    let access2 = second["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (s, _) = app
        .send_as(Some(&access2), Method::GET, "/api/products", None)
        .await?;
    assert_eq!(s, 200, "the new access token works");

    // The old refresh token stops working...
    let (s, b) = refresh(&app, &r1).await?;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (401, json!("invalid_refresh_token"))
    );
    // ...and presenting it again (a replay) revoked its successor too.
    let (s, _) = refresh(&app, &r2).await?;
    assert_eq!(
        s, 401,
        "reuse of a rotated token revokes the tokens of its user"
    );

    // Logout revokes.
    let (_, third) = login(&app.base, "caja1", TEST_PASSWORD).await?;
    let r3 = third["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (s, _) = app
        .send_as(
            None,
            Method::POST,
            "/api/auth/logout",
            Some(&json!({ "refresh_token": r3 }).to_string()),
        )
        .await?;
    assert_eq!(s, 204);
    let (s, _) = refresh(&app, &r3).await?;
    assert_eq!(s, 401, "a logged-out refresh token is dead");
    Ok(())
}

#[tokio::test]
async fn access_tokens_expire() -> anyhow::Result<()> {
    let db = TestDb::new("auth_expiry").await?;
    let redis = TestRedis::new("auth_expiry")?;
    let s = settings_with(
        &db,
        &redis.url,
        &redis.prefix,
        &[("FAENA_ACCESS_TOKEN_TTL_SECS", "1")],
    )?;
    let app = TestApp::start(db, redis, &s).await?;
    let body = wait_for(
        "the access token to expire",
        Duration::from_secs(10),
        || async {
            let (s, b) = app.get("/api/products").await?;
            Ok((s == 401).then_some(b))
        },
    )
    .await?;
    assert_eq!(body["error"]["code"], "token_expired", "{body}");
    Ok(())
}

#[tokio::test]
async fn repeated_failed_logins_answer_429() -> anyhow::Result<()> {
    let app = spawn_app("auth_throttle").await?;
    common::create_user(&app.db, "caja2", Role::Seller).await?;
    let (s, b) = login(&app.base, "nobody", "whatever-password").await?;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (401, json!("bad_credentials"))
    );
    for i in 0..5 {
        let (s, b) = login(&app.base, "caja2", "wrong-password").await?;
        assert_eq!(s, 401, "attempt {i}: {b}");
        assert_eq!(b["error"]["code"], "bad_credentials", "{b}");
    }
    let r = reqwest::Client::new()
        .post(format!("{}/api/auth/token", app.base))
        .json(&json!({"username": "caja2", "password": TEST_PASSWORD}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 429, "even the right password waits");
    assert!(r.headers().get("retry-after").is_some());
    let b: Value = r.json().await?;
    assert_eq!(b["error"]["code"], "too_many_requests", "{b}");
    Ok(())
}

#[tokio::test]
async fn the_api_refuses_to_start_without_a_strong_jwt_secret() -> anyhow::Result<()> {
    let db = TestDb::new("auth_secret").await?;
    let redis = TestRedis::new("auth_secret")?;
    let mut s = settings_with(&db, &redis.url, &redis.prefix, &[])?;
    s.auth.jwt_secret = None;
    let err = faena_api::Application::build(&s)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("FAENA_JWT_SECRET"), "{err}");
    s.auth.jwt_secret = Some("short".to_owned().into());
    let err = faena_api::Application::build(&s)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("FAENA_JWT_SECRET") && !err.contains("short"),
        "{err}"
    );
    s.auth.dev_mode = true;
    s.auth.jwt_secret = None;
    assert!(
        faena_api::Application::build(&s).await.is_ok(),
        "dev mode starts with a random key"
    );
    Ok(())
}

#[tokio::test]
async fn hostile_bodies_get_4xx_in_the_error_shape() -> anyhow::Result<()> {
    let app = spawn_app("auth_hostile").await?;
    let cases: Vec<(&str, Option<&str>, u16)> = vec![
        (
            r#"{"username":"a","password":"b","admin":true}"#,
            Some("application/json"),
            400,
        ),
        (
            r#"{"username":1,"password":"b"}"#,
            Some("application/json"),
            400,
        ),
        ("not json", Some("application/json"), 400),
        (
            r#"{"username":"a","password":"b"}"#,
            Some("text/plain"),
            415,
        ),
        (r#"{"username":"a","password":"b"}"#, None, 415),
        ("", Some("application/json"), 400),
    ];
    for (body, ctype, status) in cases {
        let mut r = app
            .anon
            .post(format!("{}/api/auth/token", app.base))
            .body(body.to_owned());
        if let Some(c) = ctype {
            r = r.header("content-type", c);
        }
        let r = r.send().await?;
        let s = r.status().as_u16();
        let b: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(s, status, "{body} ({ctype:?}): {b}");
        assert!(b["error"]["code"].is_string(), "{b}");
    }
    let (s, b) = app
        .send_as(
            None,
            Method::POST,
            "/api/auth/token",
            Some(&"x".repeat(300_000)),
        )
        .await?;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (413, json!("body_too_large"))
    );
    Ok(())
}

/// Logins of each of `names` with `password`, all sent at once: (status, count), by status.
async fn parallel_logins(
    base: &str,
    names: &[String],
    password: &str,
) -> anyhow::Result<Vec<(u16, usize)>> {
    let answers = futures::future::join_all(names.iter().map(|n| login(base, n, password))).await;
    let mut counts = std::collections::BTreeMap::new();
    for a in answers {
        *counts.entry(a?.0).or_insert(0usize) += 1;
    }
    Ok(counts.into_iter().collect())
}

/// A 429 of `POST /api/auth/token` with the right password of `name`: its `Retry-After` and message.
async fn refused_login(base: &str, name: &str) -> anyhow::Result<(u64, String)> {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/auth/token"))
        .json(&json!({"username": name, "password": TEST_PASSWORD}))
        .send()
        .await?;
    anyhow::ensure!(r.status().as_u16() == 429, "{name}: {}", r.status());
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    let b: Value = r.json().await?;
    assert_eq!(b["error"]["code"], "too_many_requests", "{b}");
    Ok((
        retry_after,
        b["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ))
}

#[tokio::test]
async fn parallel_wrong_passwords_get_exactly_the_limit_of_401s() -> anyhow::Result<()> {
    let app = spawn_app("login_parallel").await?;
    common::create_user(&app.db, "caja3", Role::Seller).await?;
    // Each attempt reserves its failure before the password is checked, so exactly 5 (the
    // default FAENA_LOGIN_MAX_FAILURES) check it; the other 35 never run argon2.
    let names = vec!["caja3".to_owned(); 40];
    let answers = parallel_logins(&app.base, &names, "wrong-password").await?;
    assert_eq!(answers, vec![(401, 5), (429, 35)]);
    let (retry_after, message) = refused_login(&app.base, "caja3").await?;
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert!(message.contains("this user"), "{message}");
    Ok(())
}

#[tokio::test]
async fn one_users_failures_do_not_lock_out_the_other_users_of_an_address() -> anyhow::Result<()> {
    // Every client of a test is 127.0.0.1: the cashiers of one shop behind one public address.
    let app = spawn_app("login_shared_address").await?;
    common::create_user(&app.db, "caja4", Role::Seller).await?;
    common::create_user(&app.db, "caja5", Role::Seller).await?;
    let names = vec!["caja4".to_owned(); 20];
    let answers = parallel_logins(&app.base, &names, "wrong-password").await?;
    assert_eq!(answers, vec![(401, 5), (429, 15)]);
    let (s, b) = login(&app.base, "caja5", TEST_PASSWORD).await?;
    assert_eq!(s, 200, "another cashier logs in: {b}");
    let (s, b) = login(&app.base, "caja5", "wrong-password").await?;
    assert_eq!(s, 401, "and mistypes like anyone: {b}");
    let (s, b) = login(&app.base, "admin", TEST_PASSWORD).await?;
    assert_eq!(s, 200, "{b}");
    let (_, message) = refused_login(&app.base, "caja4").await?;
    assert!(message.contains("this user"), "{message}");
    Ok(())
}

#[tokio::test]
async fn an_address_failing_for_many_users_is_refused_for_every_user() -> anyhow::Result<()> {
    let db = TestDb::new("login_address_limit").await?;
    let redis = TestRedis::new("login_address_limit")?;
    let s = settings_with(
        &db,
        &redis.url,
        &redis.prefix,
        &[
            ("FAENA_LOGIN_MAX_FAILURES", "2"),
            ("FAENA_LOGIN_MAX_FAILURES_PER_ADDRESS", "6"),
        ],
    )?;
    let app = TestApp::start(db, redis, &s).await?;
    common::create_user(&app.db, "caja6", Role::Seller).await?;
    // A login that succeeds gives its reservation back: many of them never fill the address.
    for i in 0..8 {
        let (s, b) = login(&app.base, "caja6", TEST_PASSWORD).await?;
        assert_eq!(s, 200, "login {i}: {b}");
    }
    // Ten names tried once each (unknown ones count too): the address limit, not the user's, binds.
    let names: Vec<String> = (0..10).map(|i| format!("guess{i}")).collect();
    let answers = parallel_logins(&app.base, &names, "wrong-password").await?;
    assert_eq!(answers, vec![(401, 6), (429, 4)]);
    let (retry_after, message) = refused_login(&app.base, "caja6").await?;
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert!(message.contains("this address"), "{message}");
    Ok(())
}
