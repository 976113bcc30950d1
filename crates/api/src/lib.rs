//! faena-api: the HTTP API. The only crate that knows actix-web.
//!
//! [`Application::build`] binds (port 0 in tests) and returns a server that tests can start.

pub mod auth;
pub mod board;
pub mod console;
pub mod error;
pub mod head;
pub mod input;
pub mod json;
pub mod login;
pub mod openapi;
pub mod responses;
pub mod routes;

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use faena_broker::Broker;
use faena_core::db::PgPool;
use faena_core::{db, redis_pool, Settings};

use crate::error::ApiError;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub broker: Broker,
    /// How long a checkout holds stock.
    pub reservation_ttl: std::time::Duration,
    /// Signs and checks access tokens.
    pub keys: faena_shop::auth::TokenKeys,
    /// Failed logins per user before 429 (`FAENA_LOGIN_MAX_FAILURES`).
    pub login_max_failures: u32,
    /// Failed logins per client address, of every user, before 429
    /// (`FAENA_LOGIN_MAX_FAILURES_PER_ADDRESS`).
    pub login_max_failures_per_address: u32,
    /// Series and time zone of new sales.
    pub sale_defaults: faena_shop::sales::SaleDefaults,
    /// Series and time zone of new credit notes.
    pub note_defaults: faena_shop::credit_notes::NoteDefaults,
    /// Other origins whose browser pages may call the api (`FAENA_CORS_ORIGINS`).
    pub cors_origins: Vec<String>,
    /// Where receipts' files are (`FAENA_FILES_DIR`): the console serves them.
    pub files_dir: std::path::PathBuf,
}

impl AppState {
    /// A database connection, or 503 when PostgreSQL cannot give one.
    pub async fn db_conn(&self) -> Result<faena_core::db::PooledConnection, ApiError> {
        self.db.get().await.map_err(|e| {
            tracing::warn!(target: "faena::db", error = %e, "no database connection");
            ApiError::Unavailable("the database is unavailable; try again shortly".into())
        })
    }
}

/// The largest JSON body accepted.
pub const MAX_JSON_BYTES: usize = 256 * 1024;

/// A bound, not yet running, api server.
pub struct Application {
    port: u16,
    server: Server,
    /// Stops the outbox relay when the application is dropped or stops.
    _relay_stop: tokio::sync::watch::Sender<bool>,
}

impl Application {
    /// Checks migrations, builds the pools, binds `settings.api_bind`.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let keys = faena_shop::auth::token_keys(&settings.auth)?;
        if settings.auth.jwt_secret.is_none() {
            tracing::warn!(
                "FAENA_ENV=dev and no FAENA_JWT_SECRET: access tokens are signed with a random key and die with this process"
            );
        }
        db::ensure_migrated(settings.database_url()).await?;
        let db = db::create_pool(settings.database_url(), settings.db_pool_size)?;
        adopt_series_settings(&db, settings).await?;
        let redis = redis_pool::create_pool(settings.redis_url(), settings.redis_pool_size)?;
        let broker = Broker::new(
            redis,
            settings.redis_url(),
            settings.broker.clone(),
            faena_shop::jobs::catalog(),
        )?;
        let listener = TcpListener::bind(settings.api_bind).map_err(|e| {
            anyhow::anyhow!("cannot listen on FAENA_API_BIND={}: {e}", settings.api_bind)
        })?;
        let port = listener.local_addr()?.port();
        let board = board::Board::load(broker.clone()).await;
        // Jobs written in a transaction (a sale's send) reach Redis through the outbox; the api
        // relays them as the worker does, so either process alone is enough.
        let (relay_stop, relay_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(faena_broker::relay::run(
            broker.clone(),
            db.clone(),
            relay_rx,
        ));
        let server = run(
            listener,
            AppState {
                db,
                broker,
                reservation_ttl: settings.reservation_ttl,
                keys,
                login_max_failures: settings.auth.login_max_failures,
                login_max_failures_per_address: settings.auth.login_max_failures_per_address,
                cors_origins: settings.cors_origins.clone(),
                note_defaults: faena_shop::credit_notes::NoteDefaults { tz: settings.tz },
                files_dir: settings.files_dir.clone(),
                sale_defaults: faena_shop::sales::SaleDefaults {
                    boleta_series: settings.sunat.boleta_series.clone(),
                    factura_series: settings.sunat.factura_series.clone(),
                    tz: settings.tz,
                    auto_send: settings.sales_auto_send,
                },
            },
            board,
        )?;
        Ok(Self {
            port,
            server,
            _relay_stop: relay_stop,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until the server stops; actix drains in-flight requests on SIGTERM/SIGINT.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Applies `FAENA_BOLETA_SERIES` / `FAENA_FACTURA_SERIES` to the main store while it has issued
/// nothing of that type, and `FAENA_BOLETA_NOTE_SERIES` / `FAENA_FACTURA_NOTE_SERIES` while it
/// has issued no credit note of that type, and says what it did (`docs/decisions.md`).
async fn adopt_series_settings(db: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    use faena_shop::stores::SeriesSetting;
    let mut conn = db.get().await?;
    let mut done = faena_shop::stores::adopt_series_settings(
        &mut conn,
        &settings.sunat.boleta_series,
        &settings.sunat.factura_series,
    )
    .await?;
    done.extend(
        faena_shop::stores::adopt_note_series_settings(
            &mut conn,
            &settings.sunat.boleta_note_series,
            &settings.sunat.factura_note_series,
        )
        .await?,
    );
    for d in done {
        match d {
            SeriesSetting::Adopted { variable, from, to } => tracing::info!(
                variable,
                from,
                to,
                "the main store had issued nothing of this type: its series follows the setting"
            ),
            SeriesSetting::Ignored {
                variable,
                setting,
                store_series,
                store_code,
            } => tracing::warn!(
                variable,
                setting,
                store_series,
                "the main store already issued on its own series, which stays; change a store's \
                 series with `faena stores set {store_code} --boleta-series|--factura-series|\
                 --boleta-note-series|--factura-note-series`"
            ),
            SeriesSetting::Refused {
                variable,
                setting,
                reason,
            } => tracing::warn!(variable, setting, reason, "the series setting is not used"),
        }
    }
    Ok(())
}

fn json_error(
    err: actix_web::error::JsonPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let (code, message) = match &err {
        E::OverflowKnownLength { length, limit } => (
            "body_too_large",
            format!("the body has {length} bytes; the limit is {limit}"),
        ),
        E::Overflow { limit } => (
            "body_too_large",
            format!("the body is larger than {limit} bytes"),
        ),
        E::ContentType => (
            "unsupported_media_type",
            "send JSON with `Content-Type: application/json`".into(),
        ),
        E::Deserialize(e) => (
            "invalid_json",
            format!("the body is not valid for this endpoint: {e}"),
        ),
        other => ("invalid_json", other.to_string()),
    };
    let status = match &err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => {
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE
        }
        E::ContentType => actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => actix_web::http::StatusCode::BAD_REQUEST,
    };
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    actix_web::error::InternalError::from_response(err, HttpResponse::build(status).json(body))
        .into()
}

fn path_error(err: actix_web::error::PathError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    let body =
        serde_json::json!({ "error": { "code": "invalid_path", "message": err.to_string() } });
    actix_web::error::InternalError::from_response(err, HttpResponse::BadRequest().json(body))
        .into()
}

fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    let body =
        serde_json::json!({ "error": { "code": "invalid_query", "message": err.to_string() } });
    actix_web::error::InternalError::from_response(err, HttpResponse::BadRequest().json(body))
        .into()
}

async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    if let Some(res) = openapi::method_not_allowed(&req) {
        return Ok(res);
    }
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// CORS for the configured origins: the api's methods and the headers a browser client sends
/// (`authorization`, `content-type`, `if-match`), credentials never with `*` (origins are exact).
/// A same-origin request (the board's own pages: browsers send `Origin` on their POSTs) is always
/// allowed. Only wrapped when `FAENA_CORS_ORIGINS` names an origin.
fn cors(origins: &[String]) -> actix_cors::Cors {
    use actix_web::http::header;
    let allowed = origins.to_vec();
    actix_cors::Cors::default()
        .allowed_origin_fn(move |origin, head| {
            let same = head
                .headers()
                .get(header::HOST)
                .zip(origin.to_str().ok())
                .is_some_and(|(host, o)| {
                    host.to_str().is_ok_and(|h| {
                        o.strip_prefix("http://").or(o.strip_prefix("https://")) == Some(h)
                    })
                });
            same || origin
                .to_str()
                .is_ok_and(|o| allowed.iter().any(|a| a == o))
        })
        .allowed_methods(["GET", "POST", "PATCH", "PUT", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::IF_MATCH,
        ])
        .expose_headers([header::WWW_AUTHENTICATE, header::RETRY_AFTER, header::ETAG])
        .max_age(3600)
}

/// Starts the server on a listener, with the apalis-board dashboard at `/board`.
pub fn run(listener: TcpListener, state: AppState, board: board::Board) -> std::io::Result<Server> {
    faena_core::metrics::recorder();
    let cors_origins = state.cors_origins.clone();
    let state = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_JSON_BYTES)
                    .error_handler(json_error),
            )
            .app_data(web::PayloadConfig::new(MAX_JSON_BYTES))
            .app_data(web::PathConfig::default().error_handler(path_error))
            .app_data(web::QueryConfig::default().error_handler(query_error))
            // Innermost: HEAD is routed as GET after the log and metrics saw it as HEAD.
            .wrap(actix_web::middleware::from_fn(head::as_get))
            .wrap(
                // Method and path only: a query string may carry a token (`/board/login`).
                actix_web::middleware::Logger::new("%{method}xi %U %s %Dms")
                    .custom_request_replace("method", |req| req.method().to_string())
                    .log_target("faena_api::http"),
            )
            .wrap_fn(|req, srv| {
                use actix_web::dev::Service;
                let started = std::time::Instant::now();
                let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
                let method = req.method().to_string();
                let fut = srv.call(req);
                async move {
                    let res = fut.await?;
                    faena_core::metrics::http_request(
                        &route,
                        &method,
                        res.status().as_u16(),
                        started.elapsed(),
                    );
                    Ok(res)
                }
            })
            .wrap(actix_web::middleware::from_fn(input::reject_nul))
            // Outermost, so preflights are answered before anything else looks at them.
            .wrap(actix_web::middleware::Condition::new(
                !cors_origins.is_empty(),
                cors(&cors_origins),
            ))
            .service(routes::health::health)
            .service(openapi::openapi_json)
            .service(routes::auth::token)
            .service(routes::auth::refresh)
            .service(routes::auth::logout)
            .service(routes::metrics::metrics)
            .service(routes::metrics::history)
            .service(routes::tasks::enqueue)
            .service(routes::tasks::show)
            .service(routes::workflows::start)
            .service(routes::workflows::show)
            .service(routes::periodic::list)
            .service(routes::periodic::create)
            .service(routes::periodic::show)
            .service(routes::periodic::update)
            .service(routes::periodic::remove)
            .service(routes::periodic::run_now)
            .service(routes::shop::create_product)
            .service(routes::shop::list_products)
            .service(routes::shop::get_product)
            .service(routes::shop::update_product)
            .service(routes::shop::adjust_stock)
            .service(routes::shop::checkout)
            .service(routes::sales::create)
            .service(routes::sales::list)
            .service(routes::sales::show)
            .service(routes::sales::send_to_sunat)
            .service(routes::sales::cancel)
            .service(routes::sunat::list)
            .service(routes::sales::create_credit_note)
            .service(routes::reports::daily)
            .service(routes::reports::list_insights)
            .service(routes::reports::refresh_insights)
            .service(routes::stores::list)
            .service(routes::stores::create)
            .service(routes::stores::show)
            .service(routes::stores::update)
            .service(routes::shop::get_reservation)
            .service(routes::shop::confirm)
            .service(routes::shop::release)
            // apalis-board, for admins only (see `Board::scope`).
            .service(board.scope())
            // The Faena console: signed-in users (see `console`).
            .service(console::scope())
            .default_service(web::route().to(not_found))
    })
    .shutdown_timeout(30)
    .listen(listener)?
    .run();
    Ok(server)
}
