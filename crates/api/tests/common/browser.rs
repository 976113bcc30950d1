//! A real headless Chromium for the browser tests (`board.rs`, `console.rs`): a chromedriver
//! on a free loopback port, owned by the test, and a WebDriver session through `fantoccini`.
//! `scripts/test-deps.sh` installs `/usr/bin/chromium` and `/usr/bin/chromedriver`.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Whether chromium and chromedriver are installed; the browser tests say SKIPPED without them.
pub fn available(test: &str) -> bool {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(tool).exists() {
            eprintln!(
                "SKIPPED {test}: {tool} is missing (scripts/test-deps.sh installs chromium and \
                 chromium-driver)"
            );
            return false;
        }
    }
    true
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver on a free loopback port, owned by the test: killed on drop.
pub struct Chromedriver {
    child: std::process::Child,
    port: u16,
}

impl Chromedriver {
    pub async fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let driver = Self { child, port };
        faena_testkit::wait_for(
            "chromedriver to listen",
            Duration::from_secs(20),
            || async move {
                Ok(tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ()))
            },
        )
        .await?;
        Ok(driver)
    }

    /// A headless Chromium session in a fresh profile (removed on drop).
    pub async fn session(&self, profile: &Path) -> anyhow::Result<fantoccini::Client> {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-sync",
                    "--disable-component-update", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        // chromedriver listens on loopback: plain HTTP.
        let http = hyper_util::client::legacy::connect::HttpConnector::new();
        Ok(fantoccini::ClientBuilder::new(http)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await?)
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
