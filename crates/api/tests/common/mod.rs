//! Shared test harness of the api tests: `spawn_app` starts the real app on port 0 with its own
//! database and Redis key prefix.
#![allow(dead_code)]

use std::collections::HashMap;

use faena_testkit::{TestDb, TestRedis};
use serde_json::Value;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub redis: TestRedis,
}

pub fn settings(
    db: &TestDb,
    redis_url: &str,
    prefix: &str,
) -> anyhow::Result<faena_core::Settings> {
    let vars: HashMap<String, String> = [
        ("DATABASE_URL", db.url.as_str()),
        ("REDIS_URL", redis_url),
        ("FAENA_API_BIND", "127.0.0.1:0"),
        ("FAENA_REDIS_PREFIX", prefix),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Ok(faena_core::Settings::from_map(&vars)?)
}

pub async fn spawn_app_with(label: &str, redis_url: Option<&str>) -> anyhow::Result<TestApp> {
    let db = TestDb::new(label).await?;
    let redis = TestRedis::new(label)?;
    let url = redis_url.map_or(redis.url.clone(), str::to_owned);
    let app = faena_api::Application::build(&settings(&db, &url, &redis.prefix)?).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Ok(TestApp {
        base,
        client: reqwest::Client::new(),
        db,
        redis,
    })
}

pub async fn spawn_app(label: &str) -> anyhow::Result<TestApp> {
    spawn_app_with(label, None).await
}

impl TestApp {
    pub async fn post(&self, path: &str, body: &str) -> anyhow::Result<(u16, Value)> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }
}

impl TestApp {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
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
