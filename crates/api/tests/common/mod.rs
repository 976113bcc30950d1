//! Shared test harness of the api tests: `spawn_app` starts the real app on port 0 with its own
//! database and Redis key prefix, creates an admin, and logs it in: `client` sends the admin's
//! bearer token on every request, `anon` sends none, and `user_token` makes more users.
#![allow(dead_code)]

pub mod browser;

use std::collections::HashMap;

use faena_shop::auth::{self, Role, Username};
use faena_testkit::{TestDb, TestRedis};
use secrecy::SecretString;
use serde_json::Value;

/// The JWT secret of test apps (only for tests).
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
/// The password of users the harness creates.
pub const TEST_PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub base: String,
    /// Sends the admin's token.
    pub client: reqwest::Client,
    /// Sends no token.
    pub anon: reqwest::Client,
    pub admin_token: String,
    pub db: TestDb,
    pub redis: TestRedis,
}

pub fn settings_with(
    db: &TestDb,
    redis_url: &str,
    prefix: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<faena_core::Settings> {
    let mut vars: HashMap<String, String> = [
        ("DATABASE_URL", db.url.as_str()),
        ("REDIS_URL", redis_url),
        ("FAENA_API_BIND", "127.0.0.1:0"),
        ("FAENA_REDIS_PREFIX", prefix),
        ("FAENA_JWT_SECRET", TEST_JWT_SECRET),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_string(), (*v).to_string());
    }
    Ok(faena_core::Settings::from_map(&vars)?)
}

pub fn settings(
    db: &TestDb,
    redis_url: &str,
    prefix: &str,
) -> anyhow::Result<faena_core::Settings> {
    settings_with(db, redis_url, prefix, &[])
}

/// Creates a user directly in the database.
pub async fn create_user(db: &TestDb, name: &str, role: Role) -> anyhow::Result<auth::User> {
    let pool = faena_core::db::create_pool(&db.url, 1)?;
    let mut conn = pool.get().await?;
    Ok(auth::create_user(
        &mut conn,
        &Username::parse(name)?,
        SecretString::from(TEST_PASSWORD),
        role,
    )
    .await?)
}

/// Runs `sql` in the test's database: a state the api would not make.
pub async fn sql(db: &TestDb, sql: &str) -> anyhow::Result<()> {
    use diesel_async::{AsyncConnection, RunQueryDsl};
    let mut conn = diesel_async::AsyncPgConnection::establish(&db.url).await?;
    diesel::sql_query(sql).execute(&mut conn).await?;
    Ok(())
}

/// Fails when an error answer quotes PostgreSQL rather than saying it in our words.
pub fn assert_no_database_text(body: &Value) {
    let text = body.to_string();
    for word in [
        "violates",
        "constraint",
        "relation",
        "overflow",
        "canceling",
        "lock timeout",
        "sale_items",
        "database error",
    ] {
        assert!(!text.contains(word), "`{word}` in {body}");
    }
}

/// Logs in through the api; returns the whole token response.
pub async fn login(base: &str, name: &str, password: &str) -> anyhow::Result<(u16, Value)> {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/auth/token"))
        .json(&serde_json::json!({ "username": name, "password": password }))
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

fn bearer_client(token: &str) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse()?,
    );
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

impl TestApp {
    /// Starts the app on `settings` over `db` and `redis`, with an admin logged in.
    pub async fn start(
        db: TestDb,
        redis: TestRedis,
        settings: &faena_core::Settings,
    ) -> anyhow::Result<Self> {
        let app = faena_api::Application::build(settings).await?;
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        create_user(&db, "admin", Role::Admin).await?;
        let (status, body) = login(&base, "admin", TEST_PASSWORD).await?;
        anyhow::ensure!(status == 200, "admin login answered {status}: {body}");
        let admin_token = body["access_token"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no access_token in {body}"))?
            .to_owned();
        Ok(Self {
            client: bearer_client(&admin_token)?,
            anon: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            admin_token,
            base,
            db,
            redis,
        })
    }

    /// Creates a user with `role` and logs it in; returns its access token.
    pub async fn user_token(&self, name: &str, role: Role) -> anyhow::Result<String> {
        create_user(&self.db, name, role).await?;
        let (status, body) = login(&self.base, name, TEST_PASSWORD).await?;
        anyhow::ensure!(status == 200, "login of {name} answered {status}: {body}");
        Ok(body["access_token"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no access_token in {body}"))?
            .to_owned())
    }
}

/// The password of the certificates [`TestApp::sunat_worker`] makes.
pub const CERT_PASSWORD: &str = "clave de prueba";

/// A worker with the production handlers on a test app's database and Redis prefix, sending to
/// a sunat-sim of its own with a test certificate and a files directory of its own; the app's
/// outbox relay hands it what the api queues.
pub struct SunatWorker {
    pub sim: faena_sunat::sim::SimHandle,
    pub worker: faena_worker::WorkerHandle,
    pub cert: faena_sunat::testcert::TestCert,
    pub files: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SunatWorker {
    /// Stops the worker (its running jobs end first) and the simulator.
    pub async fn stop(self) {
        self.worker.shutdown().await;
        self.sim.stop().await;
    }
}

impl TestApp {
    /// Starts a [`SunatWorker`] for this app.
    pub async fn sunat_worker(&self) -> anyhow::Result<SunatWorker> {
        use std::time::Duration;
        let (_, sim) = faena_sunat::sim::spawn(faena_sunat::sim::SimConfig {
            bind: "127.0.0.1:0".parse()?,
            ..faena_sunat::sim::SimConfig::default()
        })
        .await?;
        let dir = tempfile::tempdir()?;
        let cert = faena_sunat::testcert::generate(dir.path(), CERT_PASSWORD)?;
        let files = dir.path().join("files");
        let vars: HashMap<String, String> = [
            ("DATABASE_URL", self.db.url.clone()),
            ("REDIS_URL", self.redis.url.clone()),
            ("FAENA_REDIS_PREFIX", self.redis.prefix.clone()),
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
        let settings = faena_core::Settings::from_map(&vars)?;
        let pool = faena_core::db::create_pool(&self.db.url, 4)?;
        let broker = self.redis.broker.clone();
        let worker = faena_worker::spawn(
            broker.clone(),
            faena_worker::Handlers::production(pool, broker, &settings),
            faena_worker::WorkerConfig {
                queues: vec![
                    faena_core::QueueName::parse("sunat")?,
                    faena_core::QueueName::default_queue(),
                ],
                concurrency: 4,
                stop_timeout: Duration::from_secs(10),
                upkeep_interval: Duration::from_millis(100),
                heartbeat_interval: Duration::from_secs(1),
                unknown_kind_grace: Duration::from_secs(900),
            },
        );
        Ok(SunatWorker {
            sim,
            worker,
            cert,
            files,
            _dir: dir,
        })
    }
}

pub async fn spawn_app_with(label: &str, redis_url: Option<&str>) -> anyhow::Result<TestApp> {
    let db = TestDb::new(label).await?;
    let redis = TestRedis::new(label)?;
    let url = redis_url.map_or(redis.url.clone(), str::to_owned);
    let s = settings(&db, &url, &redis.prefix)?;
    TestApp::start(db, redis, &s).await
}

pub async fn spawn_app(label: &str) -> anyhow::Result<TestApp> {
    spawn_app_with(label, None).await
}

impl TestApp {
    pub async fn post(&self, path: &str, body: &str) -> anyhow::Result<(u16, Value)> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// A request with the admin's token.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        self.send_as(Some(&self.admin_token), method, path, body)
            .await
    }

    /// A request with `token` (none: anonymous).
    pub async fn send_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut r = self.anon.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let r = r.send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }
}
