//! Typed settings read once from the environment (and a `.env` file when present).
//!
//! Every variable is documented in `.env.example` and the README. A missing or malformed value stops
//! the process at start with a [`SettingsError`] that names the variable and says what is expected.
//!
//! The processes (api, worker, beat) read [`Settings`], which requires both `DATABASE_URL` and
//! `REDIS_URL`. The `faena` CLI reads [`Settings<OptionalUrls>`]: every other setting is checked
//! the same way, but each URL is required only by the commands that connect to it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line, for production log shippers.
    Json,
}

/// `DATABASE_URL` and `REDIS_URL`, both set: what every process needs at start.
#[derive(Debug, Clone)]
pub struct Urls {
    /// `DATABASE_URL`: PostgreSQL connection URL.
    database_url: SecretString,
    /// `REDIS_URL`: `redis://` or `rediss://` URL, with a password when the server needs one, or
    /// `redis+sentinel://host:26379,host:26379/mymaster` to follow a Sentinel-monitored primary, or
    /// `redis+cluster://host:7000,host:7001` for a Redis Cluster.
    redis_url: SecretString,
}

/// `DATABASE_URL` and `REDIS_URL`, each checked when set and required only when asked for: what a
/// tool whose commands use one or the other reads (the `faena` CLI).
#[derive(Debug, Clone)]
pub struct OptionalUrls {
    database_url: Option<SecretString>,
    redis_url: Option<SecretString>,
}

const DATABASE_URL: &str = "DATABASE_URL";
const DATABASE_URL_EXPECTED: &str =
    "a PostgreSQL URL such as postgres://postgres@127.0.0.1:5432/faena";
const REDIS_URL: &str = "REDIS_URL";
const REDIS_URL_EXPECTED: &str = "a Redis URL such as redis://127.0.0.1:6379";

/// Every setting of every Faena process. `U` says whether the connection URLs are known to be set
/// ([`Urls`], the processes' settings) or only checked when set ([`OptionalUrls`], the CLI's).
#[derive(Debug, Clone)]
pub struct Settings<U = Urls> {
    /// `DATABASE_URL` and `REDIS_URL`, behind [`Settings::database_url`] and
    /// [`Settings::redis_url`] (secrets: never printed).
    urls: U,
    /// `TZ`: the business time zone (default America/Lima).
    pub tz: chrono_tz::Tz,
    /// `FAENA_API_BIND`: where the api listens (default 127.0.0.1:8080).
    pub api_bind: SocketAddr,
    /// `FAENA_CORS_ORIGINS`: comma-separated origins (`https://shop.example.pe`) whose browser pages
    /// may call the api; none by default. Exact origins only, never `*`.
    pub cors_origins: Vec<String>,
    /// `FAENA_LOG`: a tracing filter such as `info` or `faena_broker=debug,info` (default `info`).
    pub log_filter: String,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// Broker tuning and retention.
    pub broker: BrokerSettings,
    /// Worker process settings.
    pub worker: WorkerSettings,
    /// `FAENA_BEAT_LEASE_SECS`: beat's leadership lease: a leader that died is replaced within it,
    /// and ticks are lost only within it (default 10).
    pub beat_lease: Duration,
    /// `FAENA_SALES_AUTO_SEND`: a new sale that does not say `send` is queued for SUNAT in its own
    /// transaction (default true).
    pub sales_auto_send: bool,
    /// `FAENA_DB_POOL_SIZE` (default 10).
    pub db_pool_size: usize,
    /// `FAENA_RESERVATION_TTL_SECS`: how long a checkout holds stock (default 900, 15 minutes).
    pub reservation_ttl: Duration,
    /// `FAENA_METRICS_BIND`: where a worker or beat serves `/metrics` (unset: not served; the api
    /// serves `/metrics` on its own address).
    pub metrics_bind: Option<SocketAddr>,
    /// `FAENA_REDIS_POOL_SIZE` (default 16).
    pub redis_pool_size: usize,
    /// Authentication of the api.
    pub auth: AuthSettings,
    /// The company and its SUNAT connection.
    pub sunat: SunatSettings,
    /// `FAENA_FILES_DIR`: where signed XML, CDR, PDF and QR files go (default `./var/files`).
    pub files_dir: std::path::PathBuf,
    /// How long `cleanup_old_files` keeps receipt files.
    pub retention: RetentionSettings,
}

/// Ages after which `cleanup_old_files` deletes receipt files (only of sales SUNAT has decided).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// `FAENA_XML_RETENTION_DAYS` (default 180): XML, CDR and QR files of ACCEPTED or REJECTED
    /// sales issued longer ago than this.
    pub xml_days: u32,
    /// `FAENA_CANCELLED_PDF_RETENTION_DAYS` (default 90): PDFs of cancelled sales cancelled
    /// longer ago than this.
    pub cancelled_pdf_days: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            xml_days: 180,
            cancelled_pdf_days: 90,
        }
    }
}

/// The issuing company and how the worker reaches SUNAT. The company fields are optional so that
/// a worker without them still runs every other job; `send_sale_to_sunat` then fails with a
/// message naming what is missing.
#[derive(Debug, Clone)]
pub struct SunatSettings {
    /// `SUNAT_ENDPOINT`: the billService URL (default: the local simulator,
    /// `http://127.0.0.1:8099/ol-ti-itcpfegem-beta/billService`).
    pub endpoint: String,
    /// `SUNAT_CONSULT_ENDPOINT`: the billConsultService URL for `getStatusCdr` (default: the
    /// simulator's when `SUNAT_ENDPOINT` is unset, else none: SUNAT's beta has no consult
    /// service, so an unknown outcome is reconciled by resending). `none` turns it off.
    pub consult_endpoint: Option<String>,
    /// `FAENA_COMPANY_RUC`: the company's RUC (11 digits).
    pub company_ruc: Option<String>,
    /// `FAENA_COMPANY_NAME`: its legal name.
    pub company_name: Option<String>,
    /// `FAENA_COMPANY_ADDRESS`: the address printed on receipts.
    pub company_address: String,
    /// `SUNAT_SOL_USER`: the SOL user (without the RUC).
    pub sol_user: Option<String>,
    /// `SUNAT_SOL_PASSWORD`.
    pub sol_password: Option<SecretString>,
    /// `SUNAT_CERT_PATH`: the PKCS#12 (.p12/.pfx) signing certificate.
    pub cert_path: Option<std::path::PathBuf>,
    /// `SUNAT_CERT_PASSWORD`.
    pub cert_password: Option<SecretString>,
    /// `FAENA_BOLETA_SERIES` (default B001) and `FAENA_FACTURA_SERIES` (default F001).
    pub boleta_series: String,
    pub factura_series: String,
    /// `FAENA_BOLETA_NOTE_SERIES` (default BC01) and `FAENA_FACTURA_NOTE_SERIES` (default FC01):
    /// the series of credit notes of boletas and of facturas. Checked at start: 4 uppercase
    /// letters or digits starting with B (or F), and not the series of the sales.
    pub boleta_note_series: String,
    pub factura_note_series: String,
    /// `SUNAT_CONNECT_TIMEOUT_SECS` (default 10) and `SUNAT_READ_TIMEOUT_SECS` (default 60).
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// `SUNAT_MAX_RETRIES` (default 3): retries of a temporary failure before the sale is ERROR.
    pub max_retries: u32,
    /// `SUNAT_RETRY_DELAY_SECS` (default 300): the wait between those retries.
    pub retry_delay: Duration,
    /// `FAENA_SUNAT_SUMMARY_TIME` (`HH:MM` in `TZ`, default 00:30): when beat runs
    /// `build_sunat_summaries` (the worker writes it into the `build-sunat-summaries` schedule
    /// at start).
    pub summary_time: chrono::NaiveTime,
    /// `SUNAT_TICKET_POLL_SECS` (default 30): the wait before the first getStatus of a ticket,
    /// doubled after each answer of 98 (at most 30 minutes).
    pub ticket_poll: Duration,
    /// `SUNAT_TICKET_MAX_POLLS` (default 10): answers of 98 after which `poll_sunat_ticket` stops
    /// (the summary stays SENT; the nightly build polls it again).
    pub ticket_max_polls: u32,
}

/// Authentication settings (the api's access and refresh tokens).
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `FAENA_JWT_SECRET`: the HS256 key of access tokens, at least 32 bytes. Required unless
    /// `FAENA_ENV=dev`, where a missing one is replaced by a random key per process.
    pub jwt_secret: Option<SecretString>,
    /// `FAENA_ENV`: `production` (default) or `dev`.
    pub dev_mode: bool,
    /// `FAENA_ACCESS_TOKEN_TTL_SECS`: lifetime of an access token (default 900, 15 minutes).
    pub access_ttl: Duration,
    /// `FAENA_REFRESH_TOKEN_TTL_SECS`: lifetime of a refresh token (default 2592000, 30 days).
    pub refresh_ttl: Duration,
    /// `FAENA_LOGIN_MAX_FAILURES`: failed logins of one user within 15 minutes before
    /// `POST /api/auth/token` answers 429 for that user (default 5).
    pub login_max_failures: u32,
    /// `FAENA_LOGIN_MAX_FAILURES_PER_ADDRESS`: failed logins of every user from one address within
    /// 15 minutes before that address gets 429 for every user (default 20 times the per-user limit;
    /// never below it). A shop's POS terminals share one public address, so this one is high.
    pub login_max_failures_per_address: u32,
}

/// Settings of the Redis broker, shared by every process that enqueues or runs jobs.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// `FAENA_REDIS_PREFIX`: prefix of every Redis key (default `faena`). Tests use their own.
    pub prefix: String,
    /// `FAENA_LEASE_SECS`: visibility timeout of a fetched job; renewed while it runs (default 30).
    pub lease: Duration,
    /// `FAENA_RESULT_TTL_SECS`: how long finished task records are kept (default 86400).
    pub result_ttl: Duration,
    /// `FAENA_DEAD_TTL_SECS`: how long DEAD task records are kept (default 604800).
    pub dead_ttl: Duration,
    /// `FAENA_IDEMPOTENCY_TTL_SECS`: how long an idempotency key maps to its first task (default 86400).
    pub idempotency_ttl: Duration,
    /// `FAENA_REDIS_MIN_REPLICAS`: replicas that must hold every enqueue and every outcome (Redis
    /// `WAIT`) before the api answers 202 or a worker forgets the outcome (default 0: the primary's
    /// word is enough; Redis replication is asynchronous, so a failover may lose the last writes).
    pub min_replicas: u32,
    /// `FAENA_REDIS_REPLICA_TIMEOUT_MS`: how long one `WAIT` for those replicas may take before the
    /// write counts as not replicated (default 1000).
    pub replica_timeout: Duration,
}

/// Settings of the worker process.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// `FAENA_WORKER_QUEUES`: comma-separated queues to consume; empty means every known queue.
    pub queues: Vec<crate::QueueName>,
    /// `FAENA_WORKER_CONCURRENCY`: jobs run at once by one worker process (default 32 per core).
    pub concurrency: usize,
    /// `FAENA_WORKER_STOP_TIMEOUT_SECS`: how long a stopping worker waits for running jobs (default 30).
    pub stop_timeout: Duration,
    /// `FAENA_UNKNOWN_KIND_GRACE_SECS`: how long after its enqueue a job of a kind this worker has no
    /// handler for is snoozed (a newer worker may know it: a rolling deploy) before it is DEAD with
    /// `unknown_kind` (default 900, 15 minutes).
    pub unknown_kind_grace: Duration,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            prefix: "faena".into(),
            lease: Duration::from_secs(30),
            result_ttl: Duration::from_secs(86_400),
            dead_ttl: Duration::from_secs(7 * 86_400),
            idempotency_ttl: Duration::from_secs(86_400),
            min_replicas: 0,
            replica_timeout: Duration::from_millis(1000),
        }
    }
}

/// A setting that is missing or does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error(
        "{name} is not set: {expected}. Set it in the environment or in .env (see .env.example)"
    )]
    Missing {
        name: &'static str,
        expected: &'static str,
    },
    #[error("{name}={value:?} is not valid: {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: String,
    },
}

/// Reads variables from a map so the parsing can be tested without touching the process environment.
struct Env<'a>(&'a HashMap<String, String>);

impl Env<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    fn parsed<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
        expected: &str,
    ) -> Result<T, SettingsError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| SettingsError::Invalid {
                name,
                value: v.to_owned(),
                expected: expected.to_owned(),
            }),
        }
    }

    fn days(&self, name: &'static str, default: u32) -> Result<u32, SettingsError> {
        let expected = "a whole number of days from 1 to 36500, such as 180";
        let days: u32 = self.parsed(name, default, expected)?;
        if !(1..=36_500).contains(&days) {
            return Err(SettingsError::Invalid {
                name,
                value: days.to_string(),
                expected: expected.into(),
            });
        }
        Ok(days)
    }

    fn secs(&self, name: &'static str, default: u64) -> Result<Duration, SettingsError> {
        let secs: u64 = self.parsed(name, default, "a whole number of seconds, such as 30")?;
        if secs == 0 {
            return Err(SettingsError::Invalid {
                name,
                value: "0".into(),
                expected: "a number of seconds greater than 0".into(),
            });
        }
        Ok(Duration::from_secs(secs))
    }
}

/// A credit note series: 4 uppercase letters or digits starting with `letter` (SUNAT: F for
/// notes of facturas, B for notes of boletas), other than the sales' series `sales` (the two
/// would share one counter and collide at SUNAT).
fn note_series(
    env: &Env<'_>,
    name: &'static str,
    default: &str,
    letter: char,
    sales: &str,
) -> Result<String, SettingsError> {
    let value = env.get(name).unwrap_or(default).to_owned();
    let b = value.as_bytes();
    let shaped = b.len() == 4
        && value.starts_with(letter)
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
    if !shaped {
        return Err(SettingsError::Invalid {
            name,
            value,
            expected: format!(
                "4 uppercase letters or digits starting with {letter}, such as {default}"
            ),
        });
    }
    if value.eq_ignore_ascii_case(sales) {
        return Err(SettingsError::Invalid {
            name,
            value,
            expected: format!(
                "a series other than the sales' {sales}: a note has its own series and correlatives"
            ),
        });
    }
    Ok(value)
}

fn check_url(name: &'static str, value: &str, schemes: &[&str]) -> Result<(), SettingsError> {
    let invalid = |why: String| SettingsError::Invalid {
        name,
        // Never echo credentials: show the URL with its password masked.
        value: mask_password(value),
        expected: why,
    };
    let url = url::Url::parse(value).map_err(|e| invalid(format!("a URL ({e})")))?;
    if !schemes.contains(&url.scheme()) {
        return Err(invalid(format!(
            "a URL whose scheme is one of {}",
            schemes.join(", ")
        )));
    }
    if url.host_str().is_none_or(str::is_empty) && url.scheme() != "unix" {
        return Err(invalid("a URL with a host, such as 127.0.0.1".into()));
    }
    Ok(())
}

pub use crate::urls::mask_password;

/// The variables of the process: `.env` when present, then the process environment.
fn process_vars() -> HashMap<String, String> {
    let _ = dotenvy::dotenv();
    std::env::vars().collect()
}

impl Settings {
    /// Reads `.env` when present, then the process environment. Both URLs are required.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_map(&process_vars())
    }

    /// Parses settings from a map of variables. Both URLs are required.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, SettingsError> {
        Settings::from_map_with_optional_urls(vars)?.require_urls()
    }

    /// The database URL, for the pool.
    pub fn database_url(&self) -> &str {
        self.urls.database_url.expose_secret()
    }

    /// The Redis URL, for the pool.
    pub fn redis_url(&self) -> &str {
        self.urls.redis_url.expose_secret()
    }
}

impl Settings<OptionalUrls> {
    /// Reads `.env` when present, then the process environment; a URL is checked when set and
    /// required only when asked for.
    pub fn from_env_with_optional_urls() -> Result<Self, SettingsError> {
        Self::from_map_with_optional_urls(&process_vars())
    }

    /// The database URL, or [`SettingsError::Missing`] naming `DATABASE_URL`.
    pub fn database_url(&self) -> Result<&str, SettingsError> {
        self.urls
            .database_url
            .as_ref()
            .map(ExposeSecret::expose_secret)
            .ok_or(SettingsError::Missing {
                name: DATABASE_URL,
                expected: DATABASE_URL_EXPECTED,
            })
    }

    /// The Redis URL, or [`SettingsError::Missing`] naming `REDIS_URL`.
    pub fn redis_url(&self) -> Result<&str, SettingsError> {
        self.urls
            .redis_url
            .as_ref()
            .map(ExposeSecret::expose_secret)
            .ok_or(SettingsError::Missing {
                name: REDIS_URL,
                expected: REDIS_URL_EXPECTED,
            })
    }

    /// The settings of a process: both URLs set, else the error names the first missing one.
    pub fn require_urls(self) -> Result<Settings, SettingsError> {
        let urls = Urls {
            database_url: self.database_url()?.to_owned().into(),
            redis_url: self.redis_url()?.to_owned().into(),
        };
        Ok(Settings {
            urls,
            tz: self.tz,
            api_bind: self.api_bind,
            cors_origins: self.cors_origins,
            log_filter: self.log_filter,
            log_format: self.log_format,
            broker: self.broker,
            worker: self.worker,
            beat_lease: self.beat_lease,
            sales_auto_send: self.sales_auto_send,
            db_pool_size: self.db_pool_size,
            reservation_ttl: self.reservation_ttl,
            metrics_bind: self.metrics_bind,
            redis_pool_size: self.redis_pool_size,
            auth: self.auth,
            sunat: self.sunat,
            files_dir: self.files_dir,
            retention: self.retention,
        })
    }

    /// Parses settings from a map of variables; a URL is checked when set and required only when
    /// asked for.
    pub fn from_map_with_optional_urls(
        vars: &HashMap<String, String>,
    ) -> Result<Self, SettingsError> {
        let env = Env(vars);
        let database_url = env.get(DATABASE_URL).map(str::to_owned);
        if let Some(url) = &database_url {
            check_url(DATABASE_URL, url, &["postgres", "postgresql"])?;
        }
        let redis_url = env.get(REDIS_URL).map(str::to_owned);
        if let Some(url) = &redis_url {
            if crate::urls::is_sentinel_url(url) {
                crate::urls::SentinelUrl::parse(url).map_err(|expected| {
                    SettingsError::Invalid {
                        name: REDIS_URL,
                        value: mask_password(url),
                        expected,
                    }
                })?;
            } else if crate::urls::is_cluster_url(url) {
                crate::urls::ClusterUrl::parse(url).map_err(|expected| SettingsError::Invalid {
                    name: REDIS_URL,
                    value: mask_password(url),
                    expected,
                })?;
            } else {
                check_url(REDIS_URL, url, &["redis", "rediss", "redis+unix", "unix"])?;
            }
        }

        let tz_name = env.get("TZ").unwrap_or("America/Lima");
        let tz: chrono_tz::Tz = tz_name.parse().map_err(|_| SettingsError::Invalid {
            name: "TZ",
            value: tz_name.to_owned(),
            expected: "an IANA time zone name such as America/Lima or America/Bogota".into(),
        })?;
        let api_bind = env.parsed(
            "FAENA_API_BIND",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            "an address and port such as 127.0.0.1:8080 or 0.0.0.0:8080",
        )?;
        let cors_origins = parse_origins(env.get("FAENA_CORS_ORIGINS").unwrap_or(""))?;
        let login_max_failures = env.parsed(
            "FAENA_LOGIN_MAX_FAILURES",
            5u32,
            "a whole number from 1, such as 5",
        )?;
        if login_max_failures == 0 {
            return Err(SettingsError::Invalid {
                name: "FAENA_LOGIN_MAX_FAILURES",
                value: "0".into(),
                expected: "a whole number from 1, such as 5 (0 would refuse every login)".into(),
            });
        }
        let login_max_failures_per_address = env.parsed(
            "FAENA_LOGIN_MAX_FAILURES_PER_ADDRESS",
            login_max_failures.saturating_mul(20),
            "a whole number such as 100, at least FAENA_LOGIN_MAX_FAILURES",
        )?;
        if login_max_failures_per_address < login_max_failures {
            return Err(SettingsError::Invalid {
                name: "FAENA_LOGIN_MAX_FAILURES_PER_ADDRESS",
                value: login_max_failures_per_address.to_string(),
                expected: format!(
                    "at least FAENA_LOGIN_MAX_FAILURES ({login_max_failures}): one user's failures \
                     must not lock out the other users of a shared address"
                ),
            });
        }
        let log_filter = env.get("FAENA_LOG").unwrap_or("info").to_owned();
        tracing_subscriber::EnvFilter::try_new(&log_filter).map_err(|e| {
            SettingsError::Invalid {
                name: "FAENA_LOG",
                value: log_filter.clone(),
                expected: format!(
                    "a tracing filter such as `info` or `faena_broker=debug,info` ({e})"
                ),
            }
        })?;
        let log_format = match env
            .get("LOG_FORMAT")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(SettingsError::Invalid {
                    name: "LOG_FORMAT",
                    value: other.to_owned(),
                    expected: "`text` or `json`".into(),
                })
            }
        };

        let defaults = BrokerSettings::default();
        let prefix = env.get("FAENA_REDIS_PREFIX").unwrap_or("faena").to_owned();
        if prefix.is_empty()
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(SettingsError::Invalid {
                name: "FAENA_REDIS_PREFIX",
                value: prefix,
                expected: "letters, digits, `_`, `-` or `.` (no braces, colons or spaces)".into(),
            });
        }
        let broker = BrokerSettings {
            prefix,
            lease: env.secs("FAENA_LEASE_SECS", defaults.lease.as_secs())?,
            result_ttl: env.secs("FAENA_RESULT_TTL_SECS", defaults.result_ttl.as_secs())?,
            dead_ttl: env.secs("FAENA_DEAD_TTL_SECS", defaults.dead_ttl.as_secs())?,
            idempotency_ttl: env.secs(
                "FAENA_IDEMPOTENCY_TTL_SECS",
                defaults.idempotency_ttl.as_secs(),
            )?,
            min_replicas: env.parsed(
                "FAENA_REDIS_MIN_REPLICAS",
                0u32,
                "a whole number of replicas, 0 (the default) to not wait for any",
            )?,
            replica_timeout: Duration::from_millis(env.parsed(
                "FAENA_REDIS_REPLICA_TIMEOUT_MS",
                1000u64,
                "a whole number of milliseconds greater than 0, such as 1000",
            )?),
        };
        if broker.replica_timeout.is_zero() {
            return Err(SettingsError::Invalid {
                name: "FAENA_REDIS_REPLICA_TIMEOUT_MS",
                value: "0".into(),
                expected: "a whole number of milliseconds greater than 0 (0 would make WAIT block forever)".into(),
            });
        }

        let queues = match env.get("FAENA_WORKER_QUEUES") {
            None => Vec::new(),
            Some(list) => parse_queue_list(list).map_err(|bad| SettingsError::Invalid {
                name: "FAENA_WORKER_QUEUES",
                value: list.to_owned(),
                expected: format!("comma-separated queue names; {bad}"),
            })?,
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let concurrency: usize = env.parsed(
            "FAENA_WORKER_CONCURRENCY",
            (cores * 32).max(32),
            "a whole number of jobs from 1 to 10000",
        )?;
        if !(1..=10_000).contains(&concurrency) {
            return Err(SettingsError::Invalid {
                name: "FAENA_WORKER_CONCURRENCY",
                value: concurrency.to_string(),
                expected: "a whole number of jobs from 1 to 10000".into(),
            });
        }
        let worker = WorkerSettings {
            queues,
            concurrency,
            stop_timeout: env.secs("FAENA_WORKER_STOP_TIMEOUT_SECS", 30)?,
            unknown_kind_grace: env.secs("FAENA_UNKNOWN_KIND_GRACE_SECS", 900)?,
        };

        Ok(Self {
            urls: OptionalUrls {
                database_url: database_url.map(SecretString::from),
                redis_url: redis_url.map(SecretString::from),
            },
            tz,
            api_bind,
            cors_origins,
            log_filter,
            log_format,
            broker,
            worker,
            beat_lease: env.secs("FAENA_BEAT_LEASE_SECS", 10)?,
            sales_auto_send: env.parsed("FAENA_SALES_AUTO_SEND", true, "true or false")?,
            db_pool_size: env.parsed("FAENA_DB_POOL_SIZE", 10, "a whole number such as 10")?,
            reservation_ttl: env.secs("FAENA_RESERVATION_TTL_SECS", 900)?,
            metrics_bind: match env.get("FAENA_METRICS_BIND") {
                None => None,
                Some(v) => Some(v.parse().map_err(|_| SettingsError::Invalid {
                    name: "FAENA_METRICS_BIND",
                    value: v.to_owned(),
                    expected: "an address and port such as 127.0.0.1:9091".into(),
                })?),
            },
            redis_pool_size: env.parsed(
                "FAENA_REDIS_POOL_SIZE",
                16,
                "a whole number such as 16",
            )?,
            sunat: SunatSettings {
                endpoint: {
                    let v = env
                        .get("SUNAT_ENDPOINT")
                        .unwrap_or("http://127.0.0.1:8099/ol-ti-itcpfegem-beta/billService")
                        .to_owned();
                    check_url("SUNAT_ENDPOINT", &v, &["http", "https"])?;
                    v
                },
                consult_endpoint: match env.get("SUNAT_CONSULT_ENDPOINT").map(str::trim) {
                    Some("") | Some("none") => None,
                    Some(v) => {
                        check_url("SUNAT_CONSULT_ENDPOINT", v, &["http", "https"])?;
                        Some(v.to_owned())
                    }
                    None if env.get("SUNAT_ENDPOINT").is_none() => Some(
                        "http://127.0.0.1:8099/ol-it-wsconscpegem/billConsultService".to_owned(),
                    ),
                    None => None,
                },
                company_ruc: env.get("FAENA_COMPANY_RUC").map(str::to_owned),
                company_name: env.get("FAENA_COMPANY_NAME").map(str::to_owned),
                company_address: env.get("FAENA_COMPANY_ADDRESS").unwrap_or("-").to_owned(),
                sol_user: env.get("SUNAT_SOL_USER").map(str::to_owned),
                sol_password: env
                    .get("SUNAT_SOL_PASSWORD")
                    .map(|s| SecretString::from(s.to_owned())),
                cert_path: env.get("SUNAT_CERT_PATH").map(std::path::PathBuf::from),
                cert_password: env
                    .get("SUNAT_CERT_PASSWORD")
                    .map(|s| SecretString::from(s.to_owned())),
                boleta_series: env.get("FAENA_BOLETA_SERIES").unwrap_or("B001").to_owned(),
                factura_series: env.get("FAENA_FACTURA_SERIES").unwrap_or("F001").to_owned(),
                boleta_note_series: note_series(
                    &env,
                    "FAENA_BOLETA_NOTE_SERIES",
                    "BC01",
                    'B',
                    env.get("FAENA_BOLETA_SERIES").unwrap_or("B001"),
                )?,
                factura_note_series: note_series(
                    &env,
                    "FAENA_FACTURA_NOTE_SERIES",
                    "FC01",
                    'F',
                    env.get("FAENA_FACTURA_SERIES").unwrap_or("F001"),
                )?,
                connect_timeout: env.secs("SUNAT_CONNECT_TIMEOUT_SECS", 10)?,
                read_timeout: env.secs("SUNAT_READ_TIMEOUT_SECS", 60)?,
                max_retries: env.parsed("SUNAT_MAX_RETRIES", 3, "a whole number such as 3")?,
                retry_delay: env.secs("SUNAT_RETRY_DELAY_SECS", 300)?,
                summary_time: match env.get("FAENA_SUNAT_SUMMARY_TIME") {
                    None => chrono::NaiveTime::from_hms_opt(0, 30, 0).unwrap_or_default(),
                    Some(v) => chrono::NaiveTime::parse_from_str(v, "%H:%M").map_err(|_| {
                        SettingsError::Invalid {
                            name: "FAENA_SUNAT_SUMMARY_TIME",
                            value: v.to_owned(),
                            expected: "a time of day as HH:MM, such as 00:30".into(),
                        }
                    })?,
                },
                ticket_poll: env.secs("SUNAT_TICKET_POLL_SECS", 30)?,
                ticket_max_polls: {
                    let n: u32 = env.parsed(
                        "SUNAT_TICKET_MAX_POLLS",
                        10,
                        "a whole number from 1 to 1000, such as 10",
                    )?;
                    if !(1..=1000).contains(&n) {
                        return Err(SettingsError::Invalid {
                            name: "SUNAT_TICKET_MAX_POLLS",
                            value: n.to_string(),
                            expected: "a whole number from 1 to 1000, such as 10".into(),
                        });
                    }
                    n
                },
            },
            files_dir: std::path::PathBuf::from(
                env.get("FAENA_FILES_DIR").unwrap_or("./var/files"),
            ),
            retention: RetentionSettings {
                xml_days: env.days("FAENA_XML_RETENTION_DAYS", 180)?,
                cancelled_pdf_days: env.days("FAENA_CANCELLED_PDF_RETENTION_DAYS", 90)?,
            },
            auth: AuthSettings {
                jwt_secret: env
                    .get("FAENA_JWT_SECRET")
                    .filter(|s| !s.is_empty())
                    .map(|s| SecretString::from(s.to_owned())),
                dev_mode: match env.get("FAENA_ENV").map(str::to_ascii_lowercase).as_deref() {
                    None | Some("production") | Some("prod") => false,
                    Some("dev") | Some("development") => true,
                    Some(other) => {
                        return Err(SettingsError::Invalid {
                            name: "FAENA_ENV",
                            value: other.to_owned(),
                            expected: "`production` (the default) or `dev`".into(),
                        })
                    }
                },
                access_ttl: env.secs("FAENA_ACCESS_TOKEN_TTL_SECS", 900)?,
                refresh_ttl: env.secs("FAENA_REFRESH_TOKEN_TTL_SECS", 30 * 86_400)?,
                login_max_failures,
                login_max_failures_per_address,
            },
        })
    }
}

/// Parses `a,b,c` into queue names; the error names the bad one.
pub fn parse_queue_list(list: &str) -> Result<Vec<crate::QueueName>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|q| crate::QueueName::parse(q).map_err(|e| e.to_string()))
        .collect()
}

/// Parses `FAENA_CORS_ORIGINS`: each entry a `scheme://host[:port]` origin, nothing after it.
fn parse_origins(list: &str) -> Result<Vec<String>, SettingsError> {
    let invalid = |value: &str, why: &str| SettingsError::Invalid {
        name: "FAENA_CORS_ORIGINS",
        value: value.to_owned(),
        expected: format!(
            "comma-separated origins such as https://shop.example.pe,http://localhost:5173 ({why})"
        ),
    };
    let mut origins = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        if raw == "*" {
            return Err(invalid(raw, "`*` is refused: name each origin"));
        }
        let url = url::Url::parse(raw).map_err(|e| invalid(raw, &e.to_string()))?;
        let origin = url.origin().ascii_serialization();
        if !matches!(url.scheme(), "http" | "https") || origin != raw.trim_end_matches('/') {
            return Err(invalid(
                raw,
                "an origin is a scheme, a host and an optional port, without a path",
            ));
        }
        origins.push(origin);
    }
    Ok(origins)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const BASE: [(&str, &str); 2] = [
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/faena"),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
    ];

    #[test]
    fn defaults_apply() -> Result<(), SettingsError> {
        let s = Settings::from_map(&vars(&BASE))?;
        assert_eq!(s.tz, chrono_tz::America::Lima);
        assert_eq!(s.api_bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.broker.prefix, "faena");
        assert!(s.worker.queues.is_empty());
        assert_eq!(s.retention, RetentionSettings::default());
        let mut v = vars(&BASE);
        v.insert("FAENA_XML_RETENTION_DAYS".into(), "0".into());
        let err = Settings::from_map(&v).map(|_| ()).unwrap_err().to_string();
        assert!(
            err.contains("FAENA_XML_RETENTION_DAYS") && err.contains("days"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn the_consult_endpoint_defaults_to_the_simulator_only_with_it() -> Result<(), SettingsError> {
        let sim = Settings::from_map(&vars(&BASE))?;
        assert_eq!(
            sim.sunat.consult_endpoint.as_deref(),
            Some("http://127.0.0.1:8099/ol-it-wsconscpegem/billConsultService")
        );
        let mut v = vars(&BASE);
        v.insert(
            "SUNAT_ENDPOINT".into(),
            "https://e-beta.sunat.gob.pe/ol-ti-itcpfegem-beta/billService".into(),
        );
        assert_eq!(Settings::from_map(&v)?.sunat.consult_endpoint, None);
        v.insert(
            "SUNAT_CONSULT_ENDPOINT".into(),
            "https://e-factura.sunat.gob.pe/ol-it-wsconscpegem/billConsultService".into(),
        );
        assert!(Settings::from_map(&v)?.sunat.consult_endpoint.is_some());
        v.insert("SUNAT_CONSULT_ENDPOINT".into(), "none".into());
        assert_eq!(Settings::from_map(&v)?.sunat.consult_endpoint, None);
        v.insert("SUNAT_CONSULT_ENDPOINT".into(), "ftp://x".into());
        let err = Settings::from_map(&v).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("SUNAT_CONSULT_ENDPOINT"), "{err}");
        Ok(())
    }

    #[test]
    fn note_series_default_and_are_checked_at_start() -> Result<(), SettingsError> {
        let s = Settings::from_map(&vars(&BASE))?;
        assert_eq!(
            (
                s.sunat.boleta_note_series.as_str(),
                s.sunat.factura_note_series.as_str()
            ),
            ("BC01", "FC01")
        );
        for (name, value) in [
            ("FAENA_BOLETA_NOTE_SERIES", "FC01"),
            ("FAENA_BOLETA_NOTE_SERIES", "bc01"),
            ("FAENA_FACTURA_NOTE_SERIES", "FC1"),
            ("FAENA_FACTURA_NOTE_SERIES", "F001"),
        ] {
            let mut v = vars(&BASE);
            v.insert(name.into(), value.into());
            let err = Settings::from_map(&v).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains(name), "{value}: {err}");
        }
        let mut v = vars(&BASE);
        v.insert("FAENA_FACTURA_NOTE_SERIES".into(), "FN07".into());
        assert_eq!(Settings::from_map(&v)?.sunat.factura_note_series, "FN07");
        Ok(())
    }

    #[test]
    fn missing_url_is_named() {
        let err = Settings::from_map(&vars(&BASE[1..]))
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(
            err,
            SettingsError::Missing {
                name: "DATABASE_URL",
                ..
            }
        ));
        assert!(err.to_string().contains("DATABASE_URL is not set"));
    }

    #[test]
    fn optional_urls_are_checked_when_set_and_named_when_asked_for() -> Result<(), SettingsError> {
        let none = Settings::from_map_with_optional_urls(&vars(&[]))?;
        assert_eq!(
            none.database_url(),
            Err(SettingsError::Missing {
                name: "DATABASE_URL",
                expected: DATABASE_URL_EXPECTED,
            })
        );
        let err = none.redis_url().map(|_| ()).unwrap_err().to_string();
        assert!(
            err.starts_with("REDIS_URL is not set: a Redis URL"),
            "{err}"
        );
        assert_eq!(none.tz, chrono_tz::America::Lima);
        let err = none.require_urls().map(|_| ()).unwrap_err();
        assert!(matches!(
            err,
            SettingsError::Missing {
                name: "DATABASE_URL",
                ..
            }
        ));

        let redis_only = Settings::from_map_with_optional_urls(&vars(&BASE[1..]))?;
        assert_eq!(redis_only.redis_url(), Ok("redis://127.0.0.1:6379"));
        assert!(redis_only.database_url().is_err());

        // A URL that is set is checked even when no command asks for it.
        let err = Settings::from_map_with_optional_urls(&vars(&[("DATABASE_URL", "mysql://h/db")]))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("DATABASE_URL"), "{err}");

        let both = Settings::from_map_with_optional_urls(&vars(&BASE))?.require_urls()?;
        assert_eq!(
            (both.database_url(), both.redis_url()),
            (BASE[0].1, BASE[1].1)
        );
        Ok(())
    }

    #[test]
    fn sentinel_and_cluster_redis_urls_are_accepted_and_a_bad_one_named_without_its_password() {
        let mut v = vars(&BASE);
        v.insert(
            "REDIS_URL".into(),
            "redis+sentinel://:hunter2@10.0.0.1:26379,10.0.0.2:26379/mymaster".into(),
        );
        v.insert("FAENA_REDIS_MIN_REPLICAS".into(), "1".into());
        let s = Settings::from_map(&v).expect("a Sentinel URL is a Redis URL");
        assert_eq!(s.broker.min_replicas, 1);
        assert_eq!(s.broker.replica_timeout, Duration::from_millis(1000));

        v.insert(
            "REDIS_URL".into(),
            "redis+sentinel://:hunter2@10.0.0.1:26379".into(),
        );
        let err = Settings::from_map(&v).map(|_| ()).unwrap_err().to_string();
        assert!(
            err.contains("REDIS_URL") && err.contains("service name") && !err.contains("hunter2"),
            "{err}"
        );

        v.insert(
            "REDIS_URL".into(),
            "redis+cluster://:hunter2@10.0.0.1:7000,10.0.0.2:7001".into(),
        );
        Settings::from_map(&v).expect("a cluster URL is a Redis URL");
        v.insert(
            "REDIS_URL".into(),
            "redis+cluster://:hunter2@10.0.0.1:7000/2".into(),
        );
        let err = Settings::from_map(&v).map(|_| ()).unwrap_err().to_string();
        assert!(
            err.contains("REDIS_URL") && err.contains("one database") && !err.contains("hunter2"),
            "{err}"
        );

        let mut v = vars(&BASE);
        v.insert("FAENA_REDIS_REPLICA_TIMEOUT_MS".into(), "0".into());
        let err = Settings::from_map(&v).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("FAENA_REDIS_REPLICA_TIMEOUT_MS"), "{err}");
    }

    #[test]
    fn malformed_values_are_named_with_what_is_expected() {
        let mut v = vars(&BASE);
        v.insert("TZ".into(), "Mars/Olympus".into());
        let err = Settings::from_map(&v).map(|_| ()).unwrap_err().to_string();
        assert!(
            err.contains("TZ=\"Mars/Olympus\"") && err.contains("IANA"),
            "{err}"
        );

        let mut v = vars(&BASE);
        v.insert("FAENA_API_BIND".into(), "localhost".into());
        let err = Settings::from_map(&v).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("FAENA_API_BIND"), "{err}");

        let mut v = vars(&BASE);
        v.insert("REDIS_URL".into(), "http://u:hunter2@h:1".into());
        let err = Settings::from_map(&v).map(|_| ()).unwrap_err().to_string();
        assert!(
            err.contains("REDIS_URL") && !err.contains("hunter2"),
            "{err}"
        );

        let mut v = vars(&BASE);
        v.insert("FAENA_WORKER_QUEUES".into(), "default,Bad".into());
        let err = Settings::from_map(&v).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("`Bad` is not a queue name"), "{err}");

        let mut v = vars(&BASE);
        v.insert("FAENA_LEASE_SECS".into(), "0".into());
        assert!(Settings::from_map(&v).is_err());
    }

    #[test]
    fn the_address_limit_of_logins_follows_the_user_limit_and_is_never_below_it(
    ) -> Result<(), SettingsError> {
        let s = Settings::from_map(&vars(&BASE))?;
        assert_eq!(
            (
                s.auth.login_max_failures,
                s.auth.login_max_failures_per_address
            ),
            (5, 100)
        );
        let mut v = vars(&BASE);
        v.insert("FAENA_LOGIN_MAX_FAILURES".into(), "3".into());
        let s = Settings::from_map(&v)?;
        assert_eq!(s.auth.login_max_failures_per_address, 60);
        v.insert("FAENA_LOGIN_MAX_FAILURES_PER_ADDRESS".into(), "7".into());
        assert_eq!(
            Settings::from_map(&v)?.auth.login_max_failures_per_address,
            7
        );
        v.insert("FAENA_LOGIN_MAX_FAILURES_PER_ADDRESS".into(), "2".into());
        let err = Settings::from_map(&v).map(|_| ()).unwrap_err().to_string();
        assert!(
            err.contains("FAENA_LOGIN_MAX_FAILURES_PER_ADDRESS") && err.contains("at least"),
            "{err}"
        );
        let mut v = vars(&BASE);
        v.insert("FAENA_LOGIN_MAX_FAILURES".into(), "0".into());
        let err = Settings::from_map(&v).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("FAENA_LOGIN_MAX_FAILURES"), "{err}");
        Ok(())
    }

    #[test]
    fn secrets_do_not_print() -> Result<(), SettingsError> {
        let mut v = vars(&BASE);
        v.insert("DATABASE_URL".into(), "postgres://u:s3cretpw@h/db".into());
        let s = Settings::from_map(&v)?;
        assert!(!format!("{s:?}").contains("s3cretpw"));
        assert_eq!(mask_password("redis://:pw@h:1"), "redis://:***@h:1");
        Ok(())
    }
}
