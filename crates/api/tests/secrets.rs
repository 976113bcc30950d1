//! Secrets never reach logs or error messages: the real `faena-api` binary runs at debug level
//! with known database, Redis, JWT, SOL and certificate passwords, is used (logins right and
//! wrong, refresh, Redis going down), stopped, and its whole output is searched for them.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use faena_shop::auth::Role;
use faena_testkit::{wait_for, OwnRedis, TestDb};
use serde_json::{json, Value};

const DB_PW: &str = "dbpw-Secret-7f3a";
const REDIS_PW: &str = "redispw-Secret-91bc";
const JWT: &str = "jwt-Secret-0123456789abcdef0123456789abcdef";
const SOL_PW: &str = "solpw-Secret-55aa";
const CERT_PW: &str = "certpw-Secret-66bb";
const TYPED_PW: &str = "typed-Secret-wrong-password";

fn with_password(db_url: &str) -> String {
    db_url.replacen("postgres@", &format!("postgres:{DB_PW}@"), 1)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn assert_clean(what: &str, text: &str) {
    for secret in [DB_PW, REDIS_PW, JWT, SOL_PW, CERT_PW, TYPED_PW] {
        assert!(
            !text.contains(secret),
            "{what} shows the secret {secret:?}:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_known_secrets_never_prints_them() -> anyhow::Result<()> {
    let db = TestDb::new("secrets").await?;
    let mut redis = OwnRedis::start_with_password(REDIS_PW).await?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let logs = std::env::temp_dir().join(faena_testkit::unique("secrets-log"));
    let log_file = std::fs::File::create(&logs)?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_faena-api"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", with_password(&db.url))
        .env("REDIS_URL", redis.url())
        .env("FAENA_API_BIND", format!("127.0.0.1:{port}"))
        .env("FAENA_REDIS_PREFIX", faena_testkit::unique("secrets"))
        .env("FAENA_JWT_SECRET", JWT)
        .env("SUNAT_SOL_PASSWORD", SOL_PW)
        .env("SUNAT_CERT_PASSWORD", CERT_PW)
        .env("FAENA_LOG", "debug")
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .stdin(Stdio::null())
        .spawn()?;
    let client = reqwest::Client::new();
    let health = format!("{base}/api/health");
    wait_for("the api to answer", Duration::from_secs(30), || async {
        Ok(client.get(&health).send().await.ok().map(|_| ()))
    })
    .await?;

    common::create_user(&db, "cajera", Role::Seller).await?;
    let login = |pw: &'static str| {
        let client = client.clone();
        let url = format!("{base}/api/auth/token");
        async move {
            let r = client
                .post(url)
                .json(&json!({"username": "cajera", "password": pw}))
                .send()
                .await?;
            let status = r.status().as_u16();
            anyhow::Ok((status, r.text().await?))
        }
    };
    let (s, body) = login(TYPED_PW).await?;
    assert_eq!(s, 401, "{body}");
    assert_clean("a failed login's answer", &body);
    let (s, body) = login(common::TEST_PASSWORD).await?;
    assert_eq!(s, 200, "{body}");
    let tokens: Value = serde_json::from_str(&body)?;
    let r = client
        .get(format!("{base}/api/products"))
        .bearer_auth(tokens["access_token"].as_str().unwrap_or_default())
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    let r = client
        .post(format!("{base}/api/auth/refresh"))
        .json(&json!({"refresh_token": tokens["refresh_token"]}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);

    // Redis goes away: health names it, without its password.
    redis.stop();
    let body = wait_for(
        "health to report Redis down",
        Duration::from_secs(15),
        || async {
            let r = client.get(&health).send().await?;
            Ok((r.status().as_u16() == 503).then_some(r.text().await?))
        },
    )
    .await?;
    assert!(body.contains("redis"), "{body}");
    assert_clean("health while Redis is down", &body);

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let exited = wait_for("the api to stop", Duration::from_secs(40), || {
        let done = child.try_wait().map(|s| s.is_some());
        async move { Ok(done?.then_some(())) }
    })
    .await;
    if exited.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    let text = std::fs::read_to_string(&logs)?;
    let _ = std::fs::remove_file(&logs);
    assert!(
        text.contains("login"),
        "the run logged at debug level:\n{text}"
    );
    assert_clean("the api's logs", &text);

    // Start-up errors with the secrets in bad settings do not echo them either.
    for (var, value) in [
        (
            "DATABASE_URL",
            format!("postgres://postgres:{DB_PW}@127.0.0.1:notaport/x"),
        ),
        ("FAENA_JWT_SECRET", "short-Secret-xyz".to_owned()),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_faena-api"))
            .env_clear()
            .env("DATABASE_URL", with_password(&db.url))
            .env("REDIS_URL", "redis://127.0.0.1:1")
            .env("FAENA_JWT_SECRET", JWT)
            .env("FAENA_API_BIND", "127.0.0.1:0")
            .env(var, &value)
            .stdin(Stdio::null())
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{var}: {text}");
        assert!(text.contains(var), "the error names {var}: {text}");
        assert_clean(&format!("a start with a bad {var}"), &text);
        assert!(!text.contains("short-Secret-xyz"), "{text}");
    }
    Ok(())
}
