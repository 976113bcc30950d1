//! The Faena console at `/console`: sign-in, sessions and their CSRF tokens, what a seller may
//! see, malformed forms (over HTTP, no browser), and the whole tour in a real headless Chromium
//! (chromedriver through `fantoccini`), which saves a screenshot of each page under
//! `target/console/`.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::browser::{target_dir, Chromedriver};
use common::{settings_with, TestApp, TEST_PASSWORD};
use faena_core::jobs::{EnqueueRequest, FailArgs, JobError};
use faena_shop::auth::Role;
use faena_testkit::{wait_for, TestDb, TestRedis};
use serde_json::{json, Value};

/// Starts the app with its receipt files under `files`.
async fn spawn(label: &str, files: &Path) -> anyhow::Result<TestApp> {
    let db = TestDb::new(label).await?;
    let redis = TestRedis::new(label)?;
    let dir = files.to_string_lossy().into_owned();
    let s = settings_with(&db, &redis.url, &redis.prefix, &[("FAENA_FILES_DIR", &dir)])?;
    TestApp::start(db, redis, &s).await
}

/// A client that never follows redirects (the tests read each 303) and keeps no cookies.
fn http() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// The value of cookie `name` among a response's `Set-Cookie` headers.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let first = v.split(';').next()?;
            let (k, val) = first.split_once('=')?;
            (k.trim() == name).then(|| val.to_owned())
        })
}

/// The `value` of the first hidden `csrf` field of a page.
fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[at..].split('"').next()?.to_owned())
}

/// A signed-in console session over HTTP: its cookie and its CSRF token.
struct Signed {
    base: String,
    http: reqwest::Client,
    cookie: String,
    csrf: String,
}

impl Signed {
    async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("faena_console={}", self.cookie))
            .send()
            .await?;
        let status = res.status().as_u16();
        Ok((status, res.text().await?))
    }

    /// Posts a URL-encoded form (`csrf` is not added: the caller says what it sends).
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<reqwest::Response> {
        let body = url_form(form);
        Ok(self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", format!("faena_console={}", self.cookie))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?)
    }
}

fn url_form(form: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in form.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(&urlencode(k));
        s.push('=');
        s.push_str(&urlencode(v));
    }
    s
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Signs `user` in through the form: the form's own CSRF cookie and field, then the session.
async fn sign_in(app: &TestApp, user: &str) -> anyhow::Result<Signed> {
    let http = http()?;
    let res = http
        .get(format!("{}/console/login", app.base))
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 200);
    let login_cookie = set_cookie(&res, "faena_console_login").expect("the form's CSRF cookie");
    let html = res.text().await?;
    let field = csrf_of(&html).expect("the form's CSRF field");
    assert_eq!(field, login_cookie, "double submit: the same token twice");
    let res = http
        .post(format!("{}/console/login", app.base))
        .header("cookie", format!("faena_console_login={login_cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(url_form(&[
            ("csrf", &field),
            ("username", user),
            ("password", TEST_PASSWORD),
        ]))
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 303, "sign-in of {user}");
    assert_eq!(res.headers()["location"], "/console");
    let raw = res
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("faena_console="))
        .expect("a session cookie")
        .to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(raw.contains(attr), "{attr} missing in {raw}");
    }
    assert!(
        !raw.contains("Secure"),
        "plain HTTP: no Secure flag ({raw})"
    );
    let cookie = set_cookie(&res, "faena_console").expect("a session cookie");
    let mut s = Signed {
        base: app.base.clone(),
        http,
        cookie,
        csrf: String::new(),
    };
    let (status, html) = s.get("/console/comprobantes").await?;
    assert_eq!(status, 200, "{html}");
    s.csrf = csrf_of(&html).expect("the session's CSRF token in the page");
    Ok(s)
}

/// A product and a sale of it made through the api by the holder of `token` (not sent).
async fn sale(app: &TestApp, token: &str, sku: &str) -> anyhow::Result<(i64, String)> {
    let (status, p) = app
        .post(
            "/api/products",
            &json!({"sku": sku, "name": sku, "unit_price": "10.00", "stock": 50}).to_string(),
        )
        .await?;
    assert_eq!(status, 201, "{p}");
    let (status, s) = app
        .send_as(
            Some(token),
            reqwest::Method::POST,
            "/api/sales",
            Some(
                &json!({"items": [{"product_id": p["id"], "quantity": 1}], "send": false})
                    .to_string(),
            ),
        )
        .await?;
    assert_eq!(status, 201, "{s}");
    Ok((
        s["id"].as_i64().expect("a sale id"),
        s["number"].as_str().expect("a number").to_owned(),
    ))
}

/// Makes a sale REJECTED by SUNAT with code 2800 and a CDR file, as the worker would leave it.
async fn reject_with_cdr(app: &TestApp, files: &Path, id: i64) -> anyhow::Result<Vec<u8>> {
    let cdr = format!("cdr/R-test-{id}.zip");
    let bytes = format!("PK\u{3}\u{4}fake CDR of sale {id}").into_bytes();
    std::fs::create_dir_all(files.join("cdr"))?;
    std::fs::write(files.join(&cdr), &bytes)?;
    common::sql(
        &app.db,
        &format!(
            "UPDATE sales SET sunat_status = 'REJECTED', sunat_outcome = 'rejected', \
             sunat_code = '2800', sunat_description = 'El dato ingresado en el tipo de \
             documento de identidad del receptor no esta permitido.', cdr_path = '{cdr}' \
             WHERE id = {id}"
        ),
    )
    .await?;
    Ok(bytes)
}

#[tokio::test]
async fn console_refuses_forms_without_this_sessions_csrf_token() -> anyhow::Result<()> {
    let files = tempfile::tempdir()?;
    let app = spawn("console_csrf", files.path()).await?;
    let one = sign_in(&app, "admin").await?;
    let two = sign_in(&app, "admin").await?;
    assert_ne!(one.csrf, two.csrf, "each session has its own CSRF token");
    let form = |name: &'static str| {
        [
            ("name", name),
            ("kind", "noop"),
            ("args", "{}"),
            ("tipo", "cron"),
            ("cron", "*/5 * * * *"),
            ("timezone", "America/Lima"),
            ("enabled", "on"),
        ]
    };
    // No token, a made-up one, and the other session's: 403, nothing created.
    for (label, token) in [
        ("none", None),
        ("made up", Some("0".repeat(64))),
        ("other session's", Some(two.csrf.clone())),
    ] {
        let mut f: Vec<(&str, &str)> = form("sin-csrf").to_vec();
        if let Some(t) = &token {
            f.push(("csrf", t));
        }
        let res = one.post("/console/programacion/nueva", &f).await?;
        assert_eq!(res.status().as_u16(), 403, "{label}");
        let html = res.text().await?;
        assert!(
            html.contains("data-code=\"csrf_mismatch\""),
            "{label}: {html}"
        );
    }
    let (status, _) = app.get("/api/periodic-tasks/sin-csrf").await?;
    assert_eq!(status, 404, "no schedule was created without the token");
    // The htmx header counts as the token too; the form's own field works.
    let res = one
        .http
        .post(format!("{}/console/programacion/nueva", app.base))
        .header("cookie", format!("faena_console={}", one.cookie))
        .header("x-csrf-token", &one.csrf)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(url_form(&form("con-cabecera")))
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 303);
    let mut f = form("con-csrf").to_vec();
    f.push(("csrf", &one.csrf));
    let res = one.post("/console/programacion/nueva", &f).await?;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(res.headers()["location"], "/console/programacion/con-csrf");
    for name in ["con-cabecera", "con-csrf"] {
        let (status, body) = app.get(&format!("/api/periodic-tasks/{name}")).await?;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["cron"], "0 */5 * * * *", "{body}");
    }
    // Logout is a form too.
    let res = one.post("/console/logout", &[]).await?;
    assert_eq!(res.status().as_u16(), 403);
    // The sign-in form's double submit: a field without its cookie is refused, unchecked.
    let res = http()?
        .post(format!("{}/console/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(url_form(&[
            ("csrf", "abc"),
            ("username", "admin"),
            ("password", TEST_PASSWORD),
        ]))
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 403);
    assert!(set_cookie(&res, "faena_console").is_none());
    Ok(())
}

#[tokio::test]
async fn console_sellers_see_only_their_own_receipts() -> anyhow::Result<()> {
    let files = tempfile::tempdir()?;
    let app = spawn("console_sellers", files.path()).await?;
    let ana = app.user_token("ana", Role::Seller).await?;
    let beto = app.user_token("beto", Role::Seller).await?;
    let (ana_sale, ana_number) = sale(&app, &ana, "PAN-1").await?;
    let (beto_sale, beto_number) = sale(&app, &beto, "PAN-2").await?;
    reject_with_cdr(&app, files.path(), ana_sale).await?;
    reject_with_cdr(&app, files.path(), beto_sale).await?;

    let s = sign_in(&app, "ana").await?;
    let (status, html) = s.get("/console/comprobantes").await?;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("data-sale=\"{ana_sale}\"")),
        "{html}"
    );
    assert!(html.contains(&ana_number));
    assert!(
        !html.contains(&format!("data-sale=\"{beto_sale}\"")),
        "{html}"
    );
    assert!(!html.contains(&beto_number), "{html}");
    // Her own rejected receipt: code and plain words, and its CDR.
    let (status, html) = s.get(&format!("/console/comprobantes/{ana_sale}")).await?;
    assert_eq!(status, 200);
    assert!(html.contains("2800"), "{html}");
    assert!(html.contains("SUNAT lo rechazó"), "{html}");
    let (status, _) = s
        .get(&format!("/console/comprobantes/{ana_sale}/archivo/cdr"))
        .await?;
    assert_eq!(status, 200);
    // Beto's: refused page, file and resend.
    for path in [
        format!("/console/comprobantes/{beto_sale}"),
        format!("/console/comprobantes/{beto_sale}/archivo/cdr"),
    ] {
        let (status, html) = s.get(&path).await?;
        assert_eq!(status, 403, "{path}");
        assert!(html.contains("data-code=\"forbidden\""), "{path}: {html}");
    }
    let res = s
        .post(
            &format!("/console/comprobantes/{beto_sale}/reenviar"),
            &[("csrf", &s.csrf)],
        )
        .await?;
    assert_eq!(res.status().as_u16(), 403);
    // The admin pages are not hers; /console takes her to her receipts.
    for path in [
        "/console/resumen",
        "/console/tareas",
        "/console/programacion",
    ] {
        let (status, _) = s.get(path).await?;
        assert_eq!(status, 403, "{path}");
    }
    let (status, _) = s.get("/console").await?;
    assert_eq!(status, 303);
    // The admin sees both.
    let admin = sign_in(&app, "admin").await?;
    let (_, html) = admin.get("/console/comprobantes").await?;
    for id in [ana_sale, beto_sale] {
        assert!(
            html.contains(&format!("data-sale=\"{id}\"")),
            "{id}: {html}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn console_logout_ends_the_session_and_sign_in_shares_the_api_limits() -> anyhow::Result<()> {
    let files = tempfile::tempdir()?;
    let app = spawn("console_logout", files.path()).await?;
    // Not signed in: every page sends to the form.
    for path in ["/console", "/console/resumen", "/console/comprobantes/1"] {
        let res = http()?.get(format!("{}{path}", app.base)).send().await?;
        assert_eq!(res.status().as_u16(), 303, "{path}");
        assert_eq!(res.headers()["location"], "/console/login", "{path}");
    }
    let s = sign_in(&app, "admin").await?;
    let (status, _) = s.get("/console/resumen").await?;
    assert_eq!(status, 200);
    let res = s.post("/console/logout", &[("csrf", &s.csrf)]).await?;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(res.headers()["location"], "/console/login");
    assert_eq!(set_cookie(&res, "faena_console").as_deref(), Some(""));
    // The old cookie, kept by a careless browser, opens nothing.
    let res = s
        .http
        .get(format!("{}/console/resumen", app.base))
        .header("cookie", format!("faena_console={}", s.cookie))
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(res.headers()["location"], "/console/login");
    let res = s.post("/console/logout", &[("csrf", &s.csrf)]).await?;
    assert_eq!(
        res.status().as_u16(),
        303,
        "the old cookie cannot even sign out"
    );
    assert_eq!(res.headers()["location"], "/console/login");
    // Behind a proxy that says the request came over HTTPS, the cookies are Secure.
    let res = http()?
        .get(format!("{}/console/login", app.base))
        .header("x-forwarded-proto", "https")
        .send()
        .await?;
    let raw = res
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("faena_console_login="))
        .expect("the form's cookie")
        .to_owned();
    assert!(raw.contains("Secure"), "{raw}");
    // A wrong password: 401 with the form again, no session.
    let http = http()?;
    let res = http
        .get(format!("{}/console/login", app.base))
        .send()
        .await?;
    let c = set_cookie(&res, "faena_console_login").expect("the form's cookie");
    let res = http
        .post(format!("{}/console/login", app.base))
        .header("cookie", format!("faena_console_login={c}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(url_form(&[
            ("csrf", &c),
            ("username", "admin"),
            ("password", "not the password"),
        ]))
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 401);
    assert!(set_cookie(&res, "faena_console").is_none());
    assert!(res
        .text()
        .await?
        .contains("Usuario o contraseña incorrectos"));
    // The api's failed-login limit (5 per user in 15 minutes) counts the form's failures too:
    // after 4 more, even the right password is refused, on the form and on the api.
    for _ in 0..4 {
        let res = http
            .post(format!("{}/console/login", app.base))
            .header("cookie", format!("faena_console_login={c}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(url_form(&[
                ("csrf", &c),
                ("username", "admin"),
                ("password", "still not it"),
            ]))
            .send()
            .await?;
        assert_eq!(res.status().as_u16(), 401);
    }
    let res = http
        .post(format!("{}/console/login", app.base))
        .header("cookie", format!("faena_console_login={c}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(url_form(&[
            ("csrf", &c),
            ("username", "admin"),
            ("password", TEST_PASSWORD),
        ]))
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert!(set_cookie(&res, "faena_console").is_none());
    assert!(res.text().await?.contains("Demasiados intentos fallidos"));
    let (status, body) = common::login(&app.base, "admin", TEST_PASSWORD).await?;
    assert_eq!(status, 429, "{body}");
    Ok(())
}

#[tokio::test]
async fn console_answers_malformed_input_with_400_never_500() -> anyhow::Result<()> {
    let files = tempfile::tempdir()?;
    let app = spawn("console_malformed", files.path()).await?;
    let s = sign_in(&app, "admin").await?;
    let csrf = s.csrf.clone();
    let form = |name: &'static str,
                kind: &'static str,
                args: &'static str,
                sched: &[(&'static str, &'static str)],
                tz: &'static str| {
        let mut f = vec![
            ("csrf", csrf.clone()),
            ("name", name.to_owned()),
            ("kind", kind.to_owned()),
            ("args", args.to_owned()),
            ("timezone", tz.to_owned()),
        ];
        f.extend(sched.iter().map(|(k, v)| (*k, (*v).to_owned())));
        f
    };
    let cron = |c: &'static str| vec![("tipo", "cron"), ("cron", c)];
    let every = |n: &'static str| vec![("tipo", "intervalo"), ("interval_secs", n)];
    // (form, the field the error names, its code)
    let cases: Vec<(FormFields, &str, &str)> = vec![
        (
            form(
                "mala",
                "noop",
                "{no json",
                &cron("* * * * *"),
                "America/Lima",
            ),
            "args",
            "invalid_args",
        ),
        (
            form("mala", "noop", "{}", &every("diez"), "America/Lima"),
            "interval_secs",
            "invalid_schedule",
        ),
        (
            form("mala", "noop", "{}", &every("0"), "America/Lima"),
            "interval_secs",
            "invalid_schedule",
        ),
        (
            form("mala", "noop", "{}", &cron("61 * * * *"), "America/Lima"),
            "cron",
            "invalid_schedule",
        ),
        (
            form("mala", "noop", "{}", &cron("* * * * *"), "Marte/Olimpo"),
            "timezone",
            "invalid_schedule",
        ),
        (
            form(
                "mala",
                "sleep",
                "{\"ms\": -1}",
                &cron("* * * * *"),
                "America/Lima",
            ),
            "args",
            "invalid_field",
        ),
        (
            form(
                "Mala Nombre",
                "noop",
                "{}",
                &cron("* * * * *"),
                "America/Lima",
            ),
            "name",
            "invalid_field",
        ),
    ];
    for (form, field, code) in cases {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = s.post("/console/programacion/nueva", &pairs).await?;
        let status = res.status().as_u16();
        let html = res.text().await?;
        assert_eq!(status, 400, "{form:?}: {html}");
        assert!(
            html.contains(&format!("data-code=\"{code}\"")),
            "{form:?}: {html}"
        );
        assert!(
            html.contains("class=\"field bad\""),
            "{form:?}: the field is marked"
        );
        assert!(html.contains(field), "{form:?}: {html}");
    }
    // Bytes that are not UTF-8, and a body that is not a form.
    let res = s
        .http
        .post(format!("{}/console/programacion/nueva", app.base))
        .header("cookie", format!("faena_console={}", s.cookie))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={csrf}&name=%FF%FE&kind=noop&tipo=cron&cron=*+*+*+*+*"
        ))
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 400);
    let res = s
        .http
        .post(format!("{}/console/programacion/nueva", app.base))
        .header("cookie", format!("faena_console={}", s.cookie))
        .header("x-csrf-token", &csrf)
        .header("content-type", "application/json")
        .body("{\"name\": \"x\"}")
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 415);
    let res = s
        .http
        .post(format!("{}/console/programacion/nueva", app.base))
        .header("cookie", format!("faena_console={}", s.cookie))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&args={}", "x".repeat(300 * 1024)))
        .send()
        .await?;
    assert!(res.status().is_client_error(), "{}", res.status());
    // Paths and queries.
    for (path, code) in [
        ("/console/tareas?estado=zzz", 400),
        ("/console/tareas?cola=no%20vale", 400),
        ("/console/tareas/no-es-un-id", 400),
        ("/console/tareas/01JD0000000000000000000000", 404),
        ("/console/comprobantes/abc", 400),
        ("/console/comprobantes/99999", 404),
        ("/console/comprobantes/99999/archivo/cdr", 404),
        ("/console/comprobantes?estado=zzz", 400),
        ("/console/resumen/historial?rango=siglo", 400),
        ("/console/programacion/no-existe", 404),
        ("/console/assets/nada.js", 404),
    ] {
        let (status, body) = s.get(path).await?;
        assert_eq!(status, code, "{path}: {body}");
    }
    for (path, form) in [
        (
            "/console/colas/no%20vale/vaciar",
            vec![("csrf", csrf.as_str()), ("que", "dead")],
        ),
        (
            "/console/colas/default/vaciar",
            vec![("csrf", csrf.as_str()), ("que", "todo")],
        ),
        (
            "/console/tareas/xyz/reintentar",
            vec![("csrf", csrf.as_str()), ("confirmado", "si")],
        ),
        (
            "/console/comprobantes/-1x/reenviar",
            vec![("csrf", csrf.as_str())],
        ),
    ] {
        let res = s.post(path, &form).await?;
        assert_eq!(res.status().as_u16(), 400, "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn console_purge_and_cancel_ask_first_then_act() -> anyhow::Result<()> {
    let files = tempfile::tempdir()?;
    let app = spawn("console_purge", files.path()).await?;
    let broker = &app.redis.broker;
    let q = faena_core::QueueName::parse("basura")?;
    let noop = || EnqueueRequest {
        kind: "noop".into(),
        queue: Some("basura".into()),
        ..Default::default()
    };
    broker.enqueue_many(vec![noop(), noop(), noop()]).await?;
    let one = broker.enqueue(noop()).await?;
    let s = sign_in(&app, "admin").await?;

    // Cancel: the first POST only asks.
    let path = format!("/console/tareas/{one}/cancelar");
    let res = s.post(&path, &[("csrf", &s.csrf)]).await?;
    assert_eq!(res.status().as_u16(), 200);
    let html = res.text().await?;
    assert!(html.contains("id=\"confirm\""), "{html}");
    assert!(html.contains(&one.to_string()), "{html}");
    let state = |id| async move {
        Ok::<_, anyhow::Error>(broker.task(&id).await?.map(|r| r.state.as_str().to_owned()))
    };
    assert_eq!(state(one).await?.as_deref(), Some("PENDING"));
    let res = s
        .post(&path, &[("csrf", &s.csrf), ("confirmado", "si")])
        .await?;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(state(one).await?.as_deref(), Some("CANCELLED"));
    // Cancelling again: 409 in a page that says why.
    let res = s.post(&path, &[("csrf", &s.csrf)]).await?;
    assert_eq!(res.status().as_u16(), 409);
    assert!(res.text().await?.contains("is CANCELLED"));
    assert_eq!(state(one).await?.as_deref(), Some("CANCELLED"));
    // Retrying a PENDING task is refused with a 409 page that says why.
    let other = broker.enqueue(noop()).await?;
    let res = s
        .post(
            &format!("/console/tareas/{other}/reintentar"),
            &[("csrf", &s.csrf), ("confirmado", "si")],
        )
        .await?;
    assert_eq!(res.status().as_u16(), 409);
    assert!(res.text().await?.contains("is PENDING"));

    // Purge: the question says how many, and nothing goes until it is confirmed.
    let res = s
        .post(
            "/console/colas/basura/vaciar",
            &[("csrf", &s.csrf), ("que", "pending")],
        )
        .await?;
    assert_eq!(res.status().as_u16(), 200);
    let html = res.text().await?;
    // 5 ids wait in the list: 4 PENDING and the cancelled one, which fetch would drop.
    assert!(html.contains("las 5 tareas en espera"), "{html}");
    assert_eq!(broker.stats(&q).await?.pending, 5);
    let res = s
        .post(
            "/console/colas/basura/vaciar",
            &[("csrf", &s.csrf), ("que", "pending"), ("confirmado", "si")],
        )
        .await?;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(
        res.headers()["location"],
        "/console/tareas?cola=basura&estado=pending"
    );
    assert_eq!(broker.stats(&q).await?.pending, 0);
    assert!(broker.check_queue(&q).await?.is_empty());
    Ok(())
}

/// A form's fields, owned.
type FormFields = Vec<(&'static str, String)>;

/// Reads `return ...;` in the page until it is `want` (compared as JSON).
async fn wait_js(
    browser: &fantoccini::Client,
    what: &str,
    script: &str,
    want: Value,
) -> anyhow::Result<()> {
    let last = std::cell::RefCell::new(Value::Null);
    let res = wait_for(what, Duration::from_secs(60), || async {
        let v = browser.execute(script, vec![]).await?;
        *last.borrow_mut() = v.clone();
        Ok((v == want).then_some(()))
    })
    .await;
    res.map_err(|e| anyhow::anyhow!("{e}; last seen {}", last.borrow()))
}

/// Saves a screenshot as `target/console/NAME.png`.
async fn shot(browser: &fantoccini::Client, name: &str) -> anyhow::Result<()> {
    let dir = target_dir().join("console");
    std::fs::create_dir_all(&dir)?;
    let png = browser.screenshot().await?;
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png)?;
    Ok(())
}

/// The text of a queue's cell on *Resumen*.
fn cell(queue: &str, stat: &str) -> String {
    format!(
        "var c = document.querySelector('tr[data-queue=\"{queue}\"] td[data-stat=\"{stat}\"]'); \
         return c ? c.textContent.trim() : null;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_chromium_signs_in_runs_retries_schedules_rescues_and_signs_out(
) -> anyhow::Result<()> {
    if !common::browser::available("console_in_chromium") {
        return Ok(());
    }
    let files = tempfile::tempdir()?;
    let app = spawn("console_chromium", files.path()).await?;
    let seller = app.user_token("carla", Role::Seller).await?;
    let (sale_id, _) = sale(&app, &seller, "CAFE-1").await?;
    let cdr = reject_with_cdr(&app, files.path(), sale_id).await?;
    let driver = Chromedriver::start().await?;
    let profile = tempfile::tempdir()?;
    let browser = driver.session(profile.path()).await?;
    let outcome = tour(&app, &browser, sale_id, &cdr).await;
    let _ = browser.close().await;
    outcome
}

async fn tour(
    app: &TestApp,
    browser: &fantoccini::Client,
    sale_id: i64,
    cdr: &[u8],
) -> anyhow::Result<()> {
    use fantoccini::Locator;
    let base = &app.base;
    let broker = app.redis.broker.clone();

    // Sign in: the console sends an anonymous visitor to the form.
    // Tall enough that each screenshot shows the whole page.
    browser.set_window_size(1280, 1500).await?;
    browser.goto(&format!("{base}/console")).await?;
    assert_eq!(browser.current_url().await?.path(), "/console/login");
    browser
        .find(Locator::Id("username"))
        .await?
        .send_keys("admin")
        .await?;
    browser
        .find(Locator::Id("password"))
        .await?
        .send_keys(TEST_PASSWORD)
        .await?;
    shot(browser, "login").await?;
    browser.find(Locator::Id("signin")).await?.click().await?;
    wait_js(
        browser,
        "the Resumen page",
        "return location.pathname;",
        json!("/console/resumen"),
    )
    .await?;

    // A queue's counts change while jobs run: 20 jobs wait, a worker starts, they run and end.
    let jobs: Vec<EnqueueRequest> = (0..20)
        .map(|_| EnqueueRequest {
            kind: "sleep".into(),
            args: json!({"ms": 400}),
            queue: Some("caja".into()),
            ..Default::default()
        })
        .collect();
    broker.enqueue_many(jobs).await?;
    wait_js(
        browser,
        "20 pending in caja",
        &cell("caja", "pending"),
        json!("20"),
    )
    .await?;
    let broken = Arc::new(AtomicBool::new(true));
    let mut handlers = faena_worker::Handlers::builtin();
    let flag = broken.clone();
    // `fail` fails while the cause is not fixed (the test fixes it before the retry).
    handlers.register(move |_: FailArgs, _ctx| {
        let broken = flag.load(Ordering::SeqCst);
        async move {
            if broken {
                Err(JobError::Permanent(anyhow::anyhow!(
                    "la impresora no responde"
                )))
            } else {
                Ok(json!({"impreso": true}))
            }
        }
    });
    let worker = faena_worker::spawn(
        broker.clone(),
        handlers,
        faena_worker::WorkerConfig {
            queues: vec![],
            concurrency: 4,
            stop_timeout: Duration::from_secs(5),
            upkeep_interval: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(1),
            unknown_kind_grace: Duration::from_secs(900),
        },
    );
    let running = cell("caja", "running");
    wait_for(
        "jobs running on the page",
        Duration::from_secs(60),
        || async {
            let v = browser.execute(&running, vec![]).await?;
            Ok(v.as_str()
                .and_then(|s| s.parse::<u32>().ok())
                .is_some_and(|n| n > 0)
                .then_some(()))
        },
    )
    .await?;
    wait_js(
        browser,
        "a live worker listed",
        "return document.querySelectorAll('#workers tr[data-worker]').length;",
        json!(1),
    )
    .await?;
    shot(browser, "resumen-en-curso").await?;
    wait_js(
        browser,
        "20 succeeded in caja",
        &cell("caja", "succeeded"),
        json!("20"),
    )
    .await?;
    wait_js(
        browser,
        "nothing pending in caja",
        &cell("caja", "pending"),
        json!("0"),
    )
    .await?;
    // The graphs, loaded again: the hour's throughput holds the 20 jobs, none failed.
    browser.goto(&format!("{base}/console/resumen")).await?;
    wait_js(
        browser,
        "the history graphs drawn",
        "var h = document.getElementById('history'); return h && h.dataset.drawn ? 'drawn' : null;",
        json!("drawn"),
    )
    .await?;
    let sums = browser
        .execute_async(
            r#"var done = arguments[arguments.length - 1];
               fetch("/console/resumen/historial?rango=hora").then(function (r) { return r.json(); })
                 .then(function (d) {
                   var sum = function (a) { return a.reduce(function (x, y) { return x + y; }, 0); };
                   done([sum(d.succeeded), sum(d.failed), d.p50.some(function (x) { return x !== null; })]);
                 });"#,
            vec![],
        )
        .await?;
    assert_eq!(
        sums,
        json!([20, 0, true]),
        "succeeded, failed, a latency point"
    );
    let charts = browser
        .execute(
            "return document.querySelectorAll('#history .uplot').length;",
            vec![],
        )
        .await?;
    assert_eq!(charts, json!(3), "three graphs");
    shot(browser, "resumen").await?;

    // English on request, remembered by a cookie, and back.
    browser
        .goto(&format!("{base}/console/tareas?lang=en"))
        .await?;
    browser.goto(&format!("{base}/console/resumen")).await?;
    let nav = browser
        .execute(
            "return document.querySelector('header nav a').textContent;",
            vec![],
        )
        .await?;
    assert_eq!(nav, json!("Overview"));
    browser
        .goto(&format!("{base}/console/resumen?lang=es"))
        .await?;

    // A DEAD task: open it from the list, retry it once the cause is fixed, see it SUCCEEDED.
    let dead = broker
        .enqueue(EnqueueRequest {
            kind: "fail".into(),
            args: json!({"fail_times": 1}),
            max_attempts: Some(1),
            ..Default::default()
        })
        .await?;
    wait_for("the task DEAD", Duration::from_secs(30), || async {
        Ok(broker
            .task(&dead)
            .await?
            .is_some_and(|r| r.state == faena_broker::record::TaskState::Dead)
            .then_some(()))
    })
    .await?;
    browser
        .goto(&format!("{base}/console/tareas?cola=default&estado=dead"))
        .await?;
    shot(browser, "tareas").await?;
    browser
        .find(Locator::Css(&format!("tr[data-task=\"{dead}\"] a")))
        .await?
        .click()
        .await?;
    wait_js(
        browser,
        "the task page DEAD",
        "var d = document.getElementById('task-detail'); return d ? d.dataset.state : null;",
        json!("DEAD"),
    )
    .await?;
    let error = browser
        .find(Locator::Id("task-error"))
        .await?
        .text()
        .await?;
    assert!(error.contains("la impresora no responde"), "{error}");
    let class = browser
        .find(Locator::Id("task-error-class"))
        .await?
        .text()
        .await?;
    assert_eq!(class, "permanent");
    shot(browser, "tarea-muerta").await?;
    broken.store(false, Ordering::SeqCst);
    browser.find(Locator::Id("retry")).await?.click().await?;
    // The confirmation is the page the retry's POST answers: wait for it.
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id("confirm-yes"))
        .await?
        .click()
        .await?;
    wait_js(
        browser,
        "the task SUCCEEDED",
        "var d = document.getElementById('task-detail'); return d ? d.dataset.state : null;",
        json!("SUCCEEDED"),
    )
    .await?;
    let rows = browser
        .execute("return Array.from(document.querySelectorAll('#attempts tbody tr')).map(function (r) { return r.cells[4].textContent.trim(); });", vec![])
        .await?;
    assert_eq!(
        rows,
        json!(["Falló, sin más intentos", "Exitoso"]),
        "every attempt, oldest first"
    );
    shot(browser, "tarea").await?;
    let (_, rec) = app.get(&format!("/api/tasks/{dead}")).await?;
    assert_eq!(
        rec["attempt_log"].as_array().map(Vec::len),
        Some(2),
        "{rec}"
    );
    assert_eq!(rec["attempt_log"][0]["outcome"], "dead", "{rec}");
    assert_eq!(rec["attempt_log"][0]["error_class"], "permanent", "{rec}");
    assert_eq!(rec["attempt_log"][1]["outcome"], "succeeded", "{rec}");
    assert_eq!(rec["attempt_log"][1]["worker"], json!(worker.id), "{rec}");

    // A schedule: a bad cron gets the api's message, a good one is saved and run now.
    browser
        .goto(&format!("{base}/console/programacion/nueva"))
        .await?;
    browser
        .find(Locator::Id("name"))
        .await?
        .send_keys("cierre-de-caja")
        .await?;
    browser
        .find(Locator::Css("#kind option[value=\"noop\"]"))
        .await?
        .click()
        .await?;
    let args = browser.find(Locator::Id("args")).await?;
    args.clear().await?;
    args.send_keys("{\"caja\": 1}").await?;
    browser
        .find(Locator::Id("cron"))
        .await?
        .send_keys("0 25 * * *")
        .await?;
    browser.find(Locator::Id("save")).await?.click().await?;
    // The answer is a new page: wait for it rather than read the one the click left.
    let error = browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id("form-error"))
        .await?;
    assert_eq!(
        error.attr("data-code").await?.as_deref(),
        Some("invalid_schedule")
    );
    let text = error.text().await?;
    let (_, api) = app
        .post(
            "/api/periodic-tasks",
            &json!({"name": "cierre-de-caja", "kind": "noop", "cron": "0 25 * * *"}).to_string(),
        )
        .await?;
    let api_message = api["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!api_message.is_empty(), "{api}");
    assert!(
        text.contains(&api_message),
        "the api's message {api_message:?} in {text:?}"
    );
    shot(browser, "programacion-error").await?;
    let cron = browser.find(Locator::Id("cron")).await?;
    cron.clear().await?;
    cron.send_keys("0 22 * * Mon-Sat").await?;
    browser.find(Locator::Id("save")).await?.click().await?;
    wait_js(
        browser,
        "the schedule's page",
        "return location.pathname;",
        json!("/console/programacion/cierre-de-caja"),
    )
    .await?;
    let next = browser
        .execute(
            "return document.querySelectorAll('#next-runs li').length;",
            vec![],
        )
        .await?;
    assert_eq!(next, json!(5), "the next 5 runs");
    browser.find(Locator::Id("run-now")).await?.click().await?;
    wait_js(
        browser,
        "the run's task SUCCEEDED",
        "var d = document.getElementById('task-detail'); return d ? d.dataset.state : null;",
        json!("SUCCEEDED"),
    )
    .await?;
    let result = browser
        .find(Locator::Id("task-result"))
        .await?
        .text()
        .await?;
    assert!(result.contains("\"caja\": 1"), "{result}");
    browser
        .goto(&format!("{base}/console/programacion"))
        .await?;
    let listed = browser
        .execute("return document.querySelectorAll('tr[data-schedule=\"cierre-de-caja\"] .next-runs div').length;", vec![])
        .await?;
    assert_eq!(listed, json!(5));
    shot(browser, "programacion").await?;

    // A rejected receipt: first in the list, its code and meaning, its CDR downloaded.
    browser
        .goto(&format!("{base}/console/comprobantes"))
        .await?;
    shot(browser, "comprobantes").await?;
    browser
        .find(Locator::Css(&format!(
            "#attention tr[data-sale=\"{sale_id}\"] a"
        )))
        .await?
        .click()
        .await?;
    let code = browser
        .find(Locator::Id("sunat-code"))
        .await?
        .text()
        .await?;
    assert_eq!(code, "2800");
    let meaning = browser
        .find(Locator::Id("sunat-meaning"))
        .await?
        .text()
        .await?;
    assert!(meaning.contains("SUNAT lo rechazó"), "{meaning}");
    shot(browser, "comprobante").await?;
    let got = browser
        .execute_async(
            r#"var done = arguments[arguments.length - 1];
               var a = document.getElementById("download-cdr");
               fetch(a.href, {credentials: "same-origin"}).then(function (r) {
                 return r.arrayBuffer().then(function (b) {
                   done([r.status, r.headers.get("content-type"),
                         r.headers.get("content-disposition"), Array.from(new Uint8Array(b))]);
                 });
               }).catch(function (e) { done(String(e)); });"#,
            vec![],
        )
        .await?;
    assert_eq!(got[0], json!(200), "{got}");
    assert_eq!(got[1], json!("application/zip"), "{got}");
    assert!(
        got[2].as_str().is_some_and(|d| d.contains("attachment")),
        "{got}"
    );
    assert_eq!(got[3], json!(cdr), "the CDR's bytes");

    // Sign out: the form again, and the console is closed.
    browser.find(Locator::Id("logout")).await?.click().await?;
    wait_js(
        browser,
        "the sign-in form",
        "return location.pathname;",
        json!("/console/login"),
    )
    .await?;
    browser.goto(&format!("{base}/console/resumen")).await?;
    assert_eq!(browser.current_url().await?.path(), "/console/login");
    worker.shutdown().await;
    Ok(())
}

/// Programación over HTTP: a schedule made in the form is edited (interval to cron, zone, args,
/// queue), disabled and enabled, refused with the field named when the edit is wrong (and left as
/// it was), and deleted only after the confirmation step; each step read back from the api.
#[tokio::test]
async fn console_schedules_edit_enable_disable_and_delete() -> anyhow::Result<()> {
    let files = tempfile::tempdir()?;
    let app = spawn("console_sched_edit", files.path()).await?;
    let s = sign_in(&app, "admin").await?;
    let api_path = "/api/periodic-tasks/cierre-caja";
    let res = s
        .post(
            "/console/programacion/nueva",
            &[
                ("csrf", &s.csrf),
                ("name", "cierre-caja"),
                ("kind", "noop"),
                ("args", "{}"),
                ("queue", ""),
                ("tipo", "intervalo"),
                ("interval_secs", "300"),
                ("timezone", "America/Lima"),
                ("enabled", "on"),
                ("description", "Cierre de caja"),
            ],
        )
        .await?;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(
        res.headers()["location"],
        "/console/programacion/cierre-caja"
    );
    let (status, t) = app.get(api_path).await?;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["interval_secs"], 300);
    assert_eq!(t["enabled"], true);

    // The edit form shows it with its next runs.
    let (status, html) = s.get("/console/programacion/cierre-caja").await?;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"next-runs\""), "{html}");
    assert!(html.contains("value=\"300\""), "{html}");

    // A wrong cron: 400 naming the field, the form again, the schedule unchanged.
    let edit = |cron: &'static str| {
        vec![
            ("csrf", s.csrf.clone()),
            ("kind", "noop".to_owned()),
            ("args", "{\"ms\": 5}".to_owned()),
            ("queue", "cierres".to_owned()),
            ("tipo", "cron".to_owned()),
            ("cron", cron.to_owned()),
            ("timezone", "America/Bogota".to_owned()),
            ("enabled", "on".to_owned()),
            ("description", "Cierre de caja".to_owned()),
        ]
    };
    let form = edit("0 0 25 * * *");
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = s.post("/console/programacion/cierre-caja", &fields).await?;
    assert_eq!(res.status().as_u16(), 400);
    let html = res.text().await?;
    assert!(html.contains("cron"), "{html}");
    let (_, t) = app.get(api_path).await?;
    assert_eq!(
        (t["interval_secs"].as_i64(), t["cron"].as_str()),
        (Some(300), None)
    );

    // A good one: cron at 21:30 in Bogotá, its args and queue.
    let form = edit("0 30 21 * * *");
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = s.post("/console/programacion/cierre-caja", &fields).await?;
    assert_eq!(res.status().as_u16(), 303);
    let (_, t) = app.get(api_path).await?;
    assert_eq!(t["cron"], "0 30 21 * * *");
    assert_eq!(t["interval_secs"], serde_json::Value::Null);
    assert_eq!(t["timezone"], "America/Bogota");
    assert_eq!(t["args"], json!({"ms": 5}));
    assert_eq!(t["queue"], "cierres");

    // Disable, then enable.
    let res = s
        .post(
            "/console/programacion/cierre-caja/desactivar",
            &[("csrf", &s.csrf)],
        )
        .await?;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(app.get(api_path).await?.1["enabled"], false);
    let res = s
        .post(
            "/console/programacion/cierre-caja/activar",
            &[("csrf", &s.csrf)],
        )
        .await?;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(app.get(api_path).await?.1["enabled"], true);

    // Delete: the first POST only asks; the schedule stays until it is confirmed.
    let res = s
        .post(
            "/console/programacion/cierre-caja/eliminar",
            &[("csrf", &s.csrf)],
        )
        .await?;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.text().await?.contains("id=\"confirm\""));
    assert_eq!(app.get(api_path).await?.0, 200);
    let res = s
        .post(
            "/console/programacion/cierre-caja/eliminar",
            &[("csrf", &s.csrf), ("confirmado", "si")],
        )
        .await?;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(app.get(api_path).await?.0, 404);
    // Deleting what is gone: 404 in a page.
    let res = s
        .post(
            "/console/programacion/cierre-caja/eliminar",
            &[("csrf", &s.csrf), ("confirmado", "si")],
        )
        .await?;
    assert_eq!(res.status().as_u16(), 404);
    Ok(())
}

/// Comprobantes: a receipt's XML, CDR and PDF download with their type and file name, byte for
/// byte; a file the retention removed is a 404 that says so, and an unknown kind a 404.
#[tokio::test]
async fn console_receipt_files_download_xml_cdr_and_pdf() -> anyhow::Result<()> {
    let files = tempfile::tempdir()?;
    let app = spawn("console_files", files.path()).await?;
    let admin_token = app.user_token("caja", Role::Admin).await?;
    let (id, _) = sale(&app, &admin_token, "PAN-9").await?;
    let cdr = reject_with_cdr(&app, files.path(), id).await?;
    let xml = format!("<?xml version=\"1.0\"?><Invoice>{id}</Invoice>").into_bytes();
    let pdf = format!("%PDF-1.4 receipt {id}").into_bytes();
    std::fs::create_dir_all(files.path().join("xml"))?;
    std::fs::create_dir_all(files.path().join("pdf"))?;
    std::fs::write(files.path().join(format!("xml/X-{id}.xml")), &xml)?;
    std::fs::write(files.path().join(format!("pdf/P-{id}.pdf")), &pdf)?;
    common::sql(
        &app.db,
        &format!(
            "UPDATE sales SET xml_path = 'xml/X-{id}.xml', pdf_path = 'pdf/P-{id}.pdf' WHERE id = {id}"
        ),
    )
    .await?;
    let s = sign_in(&app, "admin").await?;
    for (kind, bytes, ctype, name) in [
        ("xml", &xml, "application/xml", format!("X-{id}.xml")),
        ("cdr", &cdr, "application/zip", format!("R-test-{id}.zip")),
        ("pdf", &pdf, "application/pdf", format!("P-{id}.pdf")),
    ] {
        let res = s
            .http
            .get(format!(
                "{}/console/comprobantes/{id}/archivo/{kind}",
                s.base
            ))
            .header("cookie", format!("faena_console={}", s.cookie))
            .send()
            .await?;
        assert_eq!(res.status().as_u16(), 200, "{kind}");
        assert_eq!(res.headers()["content-type"], ctype, "{kind}");
        assert_eq!(
            res.headers()["content-disposition"],
            format!("attachment; filename=\"{name}\"").as_str(),
            "{kind}"
        );
        assert_eq!(&res.bytes().await?.to_vec(), bytes, "{kind}");
    }
    // The PDF deleted by the retention: 404 saying so; an unknown kind: 404.
    std::fs::remove_file(files.path().join(format!("pdf/P-{id}.pdf")))?;
    let (status, html) = s
        .get(&format!("/console/comprobantes/{id}/archivo/pdf"))
        .await?;
    assert_eq!(status, 404);
    assert!(html.contains("retention"), "{html}");
    let (status, _) = s
        .get(&format!("/console/comprobantes/{id}/archivo/zip"))
        .await?;
    assert_eq!(status, 404);
    Ok(())
}
