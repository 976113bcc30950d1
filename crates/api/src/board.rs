//! The apalis-board dashboard, mounted at [`BOARD_PATH`] (`/board`) over Faena's apalis backend.
//!
//! # Layout
//!
//! - `/board/api/v1/...` is apalis-board's JSON API (`/queues`, `/tasks`, `/workers`,
//!   `/overview`, and per queue `/queues/{queue}/tasks|stats|workers|tasks/{id}`), served by one
//!   [`FaenaBackend`] per queue.
//! - every other `/board/...` path is the dashboard (a Leptos/WASM app embedded in the
//!   apalis-board crate): an asset when one has that name, else its `index.html`.
//!
//! # Queues
//!
//! apalis-board registers its per-queue routes once, when the app is built. [`Board::load`] reads
//! the known queues (`Broker::queues`, plus `default`) at startup. A queue first used after
//! startup still works: the listing routes (`/queues`, `/overview`, `/tasks`, `/workers`) are
//! queue independent, and per-queue reads of an unregistered queue are answered by a fallback
//! that builds its backend per request. Pushing a task through the board (`PUT
//! /queues/{queue}/tasks`, the arguments as the JSON body) is Faena's own handler ([`push_task`],
//! registered ahead of apalis-board's): it works on any queue, takes the job kind from the
//! `x-task-meta-faena.kind` header, and answers like `POST /api/tasks` (201 with the task id, or
//! the api's errors: 400 for a missing kind or arguments the kind refuses, 503 when Redis is
//! down). apalis-board's own push answered every failure, a missing kind included, with a 500.
//!
//! # Mounting under `/board`
//!
//! The embedded UI was built to live at `/`: it loads `/<asset>`, calls `/api/v1/...` and routes on
//! `/`, `/queues/...`, `/tasks/...`. Faena owns those paths, so the served `index.html` is
//! rewritten: its asset URLs get the `/board` prefix, and a small script that runs before the app
//! (see [`SHIM`]) sends `/api/v1/...` requests (fetch and EventSource) to `/board/api/v1/...`,
//! strips `/board` from the address the app's router reads at start, and puts it back on the
//! addresses the app pushes, so reloading a board page lands on the board again.
//!
//! # What Faena changes in the page
//!
//! The compiled UI is apalis-board 1.0's; Faena adapts it by what it serves, not by patching it:
//!
//! - **Health.** The sidebar's "System Status" is the state of the app's EventSource on
//!   `/api/v1/events` (Healthy until that stream errors; apalis-board's own stream carries task
//!   logs, the `events` feature, not enabled here). Faena answers that path itself ([`events`]):
//!   503 when `GET /api/health` would not be 200, else an open stream of SSE comments (no
//!   messages) re-checked every [`EVENTS_CHECK`], closed as soon as a check fails. So the indicator
//!   reads Faena's health: Healthy while `/api/health` answers 200, Unhealthy once it does not
//!   (until the page is reloaded: the app does not reconnect).
//! - **Statistic titles.** The app titles an overview card by looking its `title` up in its own
//!   list of known statistics and shows "Total Jobs" for any other, so Faena's statistics
//!   (`SCHEDULED_JOBS`, `DEAD_JOBS`, `QUEUES`...) all read "Total Jobs". [`SHIM`] keeps the titles of
//!   the `/overview` answer it sees and writes each card's own title ([`STAT_LABELS`]) over the
//!   app's, in the order the app renders them (the answer's order), whenever the page changes.
//!   The JSON keeps Faena's stable keys.
//! - **"Pro" entries.** Stepped, Complex and Schedules (the "Advanced" section) link to
//!   apalis-board's paid edition and cannot work over Faena: [`SHIM`] hides them with CSS and hides
//!   the section's heading. Beat's schedules are Faena's own (`faena beat`, `/api/schedules`).
//!
//! Live task logs (`/api/v1/events` messages, the `events` feature) are not enabled.
//!
//! # Admins only
//!
//! Every `/board` path needs an admin's access token: the `Authorization: Bearer` header, or the
//! `faena_access` cookie that `GET /board/login?token=<access token>` sets (HttpOnly, SameSite
//! Strict, path `/board`, for the token's remaining life) before redirecting to the board, since a
//! browser cannot add a header to the page's own requests.

use std::sync::{Arc, OnceLock};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, Scope};
use apalis_board::actix::framework::{ApiBuilder, RegisterRoute};
use apalis_board::actix::ui::ServeUI;
use apalis_board::actix::RawTask;
use apalis_core::backend::Filter;
use faena_apalis::FaenaBackend;
use faena_broker::Broker;
use faena_core::QueueName;
use serde_json::Value;
use tokio::sync::RwLock;

use crate::AppState;

/// Where the dashboard is mounted (defined with its cookie in `crate::auth`).
pub use crate::auth::BOARD_PATH;

/// Where its JSON API is mounted, under [`BOARD_PATH`].
pub const API_PATH: &str = "/api/v1";

/// The backend the board reads: Faena's apalis backend with raw JSON arguments.
pub type BoardBackend = FaenaBackend<Value>;

/// What the board needs to build its routes in every actix worker.
#[derive(Clone, Debug)]
pub struct Board {
    broker: Broker,
    queues: Vec<QueueName>,
}

impl Board {
    /// A board over `queues` (`default` is always added).
    pub fn new(broker: Broker, queues: impl IntoIterator<Item = QueueName>) -> Self {
        let mut queues: Vec<QueueName> = queues
            .into_iter()
            .chain([QueueName::default_queue()])
            .collect();
        queues.sort();
        queues.dedup();
        Self { broker, queues }
    }

    /// A board over the queues the broker knows now, plus `default`. When Redis cannot answer,
    /// only `default` is registered up front (the others are still served by the fallback).
    pub async fn load(broker: Broker) -> Self {
        let queues = match broker.queues().await {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!(error = %e, "board: cannot list the queues; registering only `default`");
                Vec::new()
            }
        };
        Self::new(broker, queues)
    }

    /// The queues registered up front.
    pub fn queues(&self) -> &[QueueName] {
        &self.queues
    }

    /// The `/board` scope: the API and the UI.
    pub fn scope(
        &self,
    ) -> Scope<
        impl actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<
                actix_web::body::EitherBody<actix_web::body::BoxBody>,
            >,
            Error = actix_web::Error,
            InitError = (),
        >,
    > {
        let mut api = ApiBuilder::new(web::scope(API_PATH));
        for q in &self.queues {
            api = api.register(
                q.as_str(),
                BoardBackend::new(self.broker.clone(), q.clone()),
            );
        }
        // Registered after apalis-board's own `/queues/{name}` scopes, so only queues it does
        // not know reach it.
        let api = api.build().service(
            web::scope("/queues/{queue}")
                .route("/tasks", web::get().to(fallback_tasks))
                .route("/stats", web::get().to(fallback_stats))
                .route("/workers", web::get().to(fallback_workers))
                .route("/tasks/{id}", web::get().to(fallback_task)),
        );
        web::scope(BOARD_PATH)
            .wrap_fn(|req, srv| {
                use actix_web::dev::Service;
                let login = req.path() == format!("{BOARD_PATH}/login");
                let denied = if login {
                    None
                } else {
                    crate::auth::authenticate_admin(req.request()).err()
                };
                let fut = denied.is_none().then(|| srv.call(req));
                async move {
                    match (fut, denied) {
                        (Some(fut), _) => fut.await.map(json_not_found),
                        (None, Some(e)) => Err(e.into()),
                        (None, None) => Err(crate::error::ApiError::Internal(
                            "board guard reached no decision".into(),
                        )
                        .into()),
                    }
                }
            })
            .route("/login", web::get().to(login))
            .route(&format!("{API_PATH}/events"), web::get().to(events))
            .service(
                web::resource(format!("{API_PATH}/queues/{{queue}}/tasks"))
                    .guard(actix_web::guard::Put())
                    .to(push_task),
            )
            .service(api)
            .route("", web::get().to(ui))
            .route("/{tail:.*}", web::get().to(ui))
    }
}

/// apalis-board answers an unknown task with an empty 404: give it the api's error body instead.
fn json_not_found<B>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>>
where
    B: actix_web::body::MessageBody,
{
    use actix_web::body::BodySize;
    let empty = matches!(
        res.response().body().size(),
        BodySize::None | BodySize::Sized(0)
    );
    if res.status() != actix_web::http::StatusCode::NOT_FOUND || !empty {
        return res.map_into_left_body();
    }
    let (req, _) = res.into_parts();
    let answer = actix_web::ResponseError::error_response(&crate::error::ApiError::NotFound(
        format!("nothing at {}: no such task or queue", req.path()),
    ));
    actix_web::dev::ServiceResponse::new(req, answer).map_into_right_body()
}

/// How often the board's health stream re-checks Faena's health.
pub const EVENTS_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// `GET /board/api/v1/events`: the stream whose life is the board's health indicator (see the
/// module documentation). 503 with the health report when a dependency is down; else
/// `text/event-stream` with an SSE comment now and after every passing check, ended by the first
/// failing one. Comments carry no message, so the app (which parses every message as a log
/// entry) never sees one.
async fn events(state: web::Data<AppState>) -> HttpResponse {
    let report = faena_core::health::check(&state.db, state.broker.pool()).await;
    if !report.ok() {
        return HttpResponse::ServiceUnavailable().json(report);
    }
    let ticks = futures::stream::unfold((state, true), |(state, first)| async move {
        if !first {
            tokio::time::sleep(EVENTS_CHECK).await;
            let report = faena_core::health::check(&state.db, state.broker.pool()).await;
            if !report.ok() {
                tracing::warn!(down = ?report.down(), "board: health stream closed");
                return None;
            }
        }
        Some((
            Ok::<_, actix_web::Error>(web::Bytes::from_static(b": faena healthy\n\n")),
            (state, false),
        ))
    });
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(ticks)
}

/// The title [`SHIM`] gives each overview card, by the statistic's key in the JSON (a key not
/// listed is shown as itself, in words). Kept in step with `faena_apalis::queue_statistics` and
/// `Metrics::global` by the board's browser test.
pub const STAT_LABELS: &[(&str, &str)] = &[
    ("PENDING_JOBS", "Pending jobs"),
    ("SCHEDULED_JOBS", "Scheduled jobs"),
    ("RUNNING_JOBS", "Running jobs"),
    ("DEAD_JOBS", "Dead jobs"),
    ("SUCCEEDED_ATTEMPTS", "Succeeded attempts"),
    ("FAILED_ATTEMPTS", "Failed attempts"),
    ("RETRIED_ATTEMPTS", "Retried attempts"),
    ("ENQUEUED_JOBS", "Enqueued jobs"),
    ("PAUSED", "Paused"),
    ("PAUSED_QUEUES", "Paused queues"),
    ("QUEUES", "Queues"),
    ("WORKERS", "Workers"),
];

/// Hides the "Pro" entries (links to `/pro?interest=...`) of the sidebar.
const STYLE: &str = r#"<style>
a[href^="/pro"], a[href^="/board/pro"] { display: none !important; }
</style>"#;

/// Runs in the page before the app: see the module documentation. `__LABELS__` is replaced by
/// [`STAT_LABELS`] as a JSON object.
pub const SHIM: &str = r#"<script>
(function () {
  var board = "/board", api = "/api/v1";
  var labels = __LABELS__;
  var overview = null;
  var label = function (key) {
    if (Object.prototype.hasOwnProperty.call(labels, key)) return labels[key];
    var s = String(key).toLowerCase().replace(/_/g, " ");
    return s.charAt(0).toUpperCase() + s.slice(1);
  };
  // Each overview card gets the title of its own statistic (the app renders them in order).
  var relabel = function () {
    if (overview) {
      var ps = document.querySelectorAll("section > p");
      for (var i = 0; i < ps.length; i++) {
        if (ps[i].textContent.trim() !== "Backend stats overview") continue;
        var grid = ps[i].parentElement.querySelector("div.grid");
        if (!grid) continue;
        for (var j = 0; j < grid.children.length && j < overview.length; j++) {
          var h3 = grid.children[j].querySelector("h3");
          var want = label(overview[j]);
          if (h3 && h3.textContent !== want) {
            h3.textContent = want;
            h3.setAttribute("data-faena-stat", overview[j]);
          }
        }
      }
    }
    // The "Advanced" heading holds only the hidden "Pro" entries.
    var hs = document.querySelectorAll("h2");
    for (var k = 0; k < hs.length; k++) {
      if (hs[k].textContent.trim() === "Advanced" && hs[k].parentElement &&
          hs[k].parentElement.style.display !== "none") {
        hs[k].parentElement.style.display = "none";
      }
    }
  };
  new MutationObserver(relabel).observe(document.documentElement,
    { childList: true, subtree: true, characterData: true });
  var under = function (p, root) { return p === root || p.indexOf(root + "/") === 0; };
  var toBoard = function (u) {
    try {
      var url = new URL(u, location.href);
      if (url.origin === location.origin && under(url.pathname, api)) {
        url.pathname = board + url.pathname;
        return url.href;
      }
    } catch (e) {}
    return u;
  };
  var fetch0 = window.fetch;
  window.fetch = function (input, init) {
    if (input instanceof Request) {
      var moved = toBoard(input.url);
      if (moved !== input.url) input = new Request(moved, input);
    } else if (typeof input === "string" || input instanceof URL) {
      input = toBoard(String(input));
    }
    var answer = fetch0.call(this, input, init);
    try {
      var path = new URL(input instanceof Request ? input.url : String(input), location.href).pathname;
      if (path === board + api + "/overview") {
        answer.then(function (res) { return res.clone().json(); })
          .then(function (list) {
            overview = list.map(function (s) { return s.title; });
            relabel();
          })
          .catch(function () {});
      }
    } catch (e) {}
    return answer;
  };
  if (window.EventSource) {
    var ES = window.EventSource;
    var Moved = function (u, c) { return new ES(toBoard(String(u)), c); };
    Moved.prototype = ES.prototype;
    Moved.CONNECTING = 0; Moved.OPEN = 1; Moved.CLOSED = 2;
    window.EventSource = Moved;
  }
  var withBoard = function (u) {
    if (u === undefined || u === null) return u;
    try {
      var url = new URL(String(u), location.href);
      if (url.origin === location.origin && !under(url.pathname, board)) {
        url.pathname = board + (url.pathname === "/" ? "" : url.pathname);
        return url.href;
      }
    } catch (e) {}
    return u;
  };
  var withoutBoard = function () {
    var p = location.pathname;
    if (under(p, board)) {
      replace0.call(history, history.state, "",
        (p.slice(board.length) || "/") + location.search + location.hash);
    }
  };
  var push0 = history.pushState, replace0 = history.replaceState;
  history.pushState = function (s, t, u) { return push0.call(this, s, t, withBoard(u)); };
  history.replaceState = function (s, t, u) { return replace0.call(this, s, t, withBoard(u)); };
  // Back/forward: the app reads the address in its own popstate listener, added after this one.
  window.addEventListener("popstate", function () {
    withoutBoard();
    setTimeout(function () {
      if (!under(location.pathname, board)) {
        replace0.call(history, history.state, "", withBoard(location.href));
      }
    }, 0);
  });
  withoutBoard();
  // Once the app has read its start address, show the `/board` one again.
  window.addEventListener("TrunkApplicationStarted", function () {
    setTimeout(function () {
      if (!under(location.pathname, board)) {
        replace0.call(history, history.state, "", withBoard(location.href));
      }
    }, 0);
  });
})();
</script>"#;

/// The embedded `index.html`, with its asset URLs under `/board`, and [`STYLE`] and [`SHIM`] first
/// in `<head>`.
fn index_html() -> &'static str {
    static INDEX: OnceLock<String> = OnceLock::new();
    INDEX.get_or_init(|| {
        let raw = ServeUI::get_file("index.html")
            .and_then(|f| f.contents_utf8())
            .unwrap_or("<!DOCTYPE html><html><head></head><body></body></html>");
        let prefixed = raw
            .replace("'/", &format!("'{BOARD_PATH}/"))
            .replace("\"/", &format!("\"{BOARD_PATH}/"))
            // The app resolves its own links against `/`.
            .replace(&format!("<base href=\"{BOARD_PATH}/\""), "<base href=\"/\"");
        let labels: serde_json::Map<String, Value> = STAT_LABELS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect();
        let shim = SHIM.replace("__LABELS__", &Value::Object(labels).to_string());
        prefixed.replacen("<head>", &format!("<head>\n{STYLE}\n{shim}"), 1)
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginQuery {
    token: String,
}

/// Checks an admin's access token, keeps it in the `faena_access` cookie and goes to the board.
async fn login(
    state: web::Data<AppState>,
    q: web::Query<LoginQuery>,
) -> Result<HttpResponse, crate::error::ApiError> {
    let claims = state
        .keys
        .verify_access(&q.token)
        .map_err(crate::error::ApiError::Unauthorized)?;
    if !claims.is_admin() {
        return Err(crate::error::ApiError::Forbidden(format!(
            "the dashboard is for admins; user `{}` is a {}",
            claims.name,
            claims.role.as_str()
        )));
    }
    let left = (claims.exp - chrono::Utc::now().timestamp()).max(0);
    let cookie = actix_web::cookie::Cookie::build(crate::auth::BOARD_COOKIE, q.token.clone())
        .path(BOARD_PATH)
        .http_only(true)
        .same_site(actix_web::cookie::SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::seconds(left))
        .finish();
    Ok(HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, format!("{BOARD_PATH}/")))
        .finish())
}

/// An embedded asset by name, else the dashboard's `index.html`.
async fn ui(req: HttpRequest) -> HttpResponse {
    let tail = req.match_info().query("tail").trim_start_matches('/');
    if !tail.is_empty() && tail != "index.html" {
        if let Some(file) = apalis_board::actix::ui::ServeUI::get_file(tail).filter(|f| {
            f.path()
                .to_str()
                .is_some_and(|p| p.trim_start_matches('/') != "index.html")
        }) {
            let path = file.path().to_str().unwrap_or_default();
            let mut res = HttpResponse::Ok();
            res.insert_header((header::CONTENT_TYPE, ServeUI::content_type(path)));
            if let Some(cache) = ServeUI::cache_control(path) {
                res.insert_header((header::CACHE_CONTROL, cache));
            }
            return res.body(file.contents().to_vec());
        }
        if tail.contains('.') && !tail.contains('/') {
            return actix_web::ResponseError::error_response(&crate::error::ApiError::NotFound(
                format!("the dashboard has no asset named {tail:?}"),
            ));
        }
    }
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(index_html())
}

/// The header that names a pushed task's job kind (apalis-board's task metadata `faena.kind`).
pub const PUSH_KIND_HEADER: &str = "x-task-meta-faena.kind";

/// `PUT /board/api/v1/queues/{queue}/tasks`: enqueues the body (the job's arguments) on `queue`.
/// Optional headers, as apalis-board sends them: `x-task-idempotency-key`,
/// `x-task-max-attempts`, `x-task-run-at` (Unix seconds).
async fn push_task(
    state: web::Data<AppState>,
    req: HttpRequest,
    queue: web::Path<String>,
    args: crate::json::ApiJson<Value>,
) -> Result<HttpResponse, crate::error::ApiError> {
    use crate::error::ApiError;
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        req.headers()
            .get(name)
            .map(|v| {
                v.to_str().map(str::to_owned).map_err(|_| {
                    ApiError::bad_request(
                        "invalid_header",
                        format!("header `{name}` is not visible ASCII text"),
                        Some(name.to_owned()),
                    )
                })
            })
            .transpose()
    };
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        text(name)?
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_header",
                        format!("header `{name}`: `{v}` is not a whole number"),
                        Some(name.to_owned()),
                    )
                })
            })
            .transpose()
    };
    let kind = text(PUSH_KIND_HEADER)?.ok_or_else(|| {
        ApiError::bad_request(
            "missing_header",
            format!("a pushed task needs a job kind: send it in the `{PUSH_KIND_HEADER}` header"),
            Some(PUSH_KIND_HEADER.to_owned()),
        )
    })?;
    let max_attempts = number("x-task-max-attempts")?
        .map(|n| {
            u32::try_from(n).map_err(|_| {
                ApiError::bad_request(
                    "invalid_header",
                    format!("header `x-task-max-attempts`: {n} is too large"),
                    Some("x-task-max-attempts".to_owned()),
                )
            })
        })
        .transpose()?;
    let eta = number("x-task-run-at")?
        .and_then(|s| i64::try_from(s).ok())
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .filter(|t| *t > chrono::Utc::now());
    let request = faena_core::jobs::EnqueueRequest {
        kind,
        args: args.into_inner(),
        queue: Some(queue.into_inner()),
        eta,
        max_attempts,
        idempotency_key: text("x-task-idempotency-key")?,
        ..Default::default()
    };
    let id = state.broker.enqueue(request).await?;
    Ok(HttpResponse::Created().json(crate::routes::tasks::Enqueued { task_id: id }))
}

/// The backend of a queue the broker knows, for the fallback routes.
async fn backend_of(
    state: &AppState,
    queue: &str,
) -> Result<Arc<RwLock<BoardBackend>>, HttpResponse> {
    let not_found = || {
        HttpResponse::NotFound().json(serde_json::json!({
            "error": { "code": "not_found", "message": format!("no queue named {queue:?}") }
        }))
    };
    let queue = QueueName::parse(queue).map_err(|_| not_found())?;
    let known = state.broker.queues().await.map_err(|e| {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "error": { "code": "unavailable", "message": format!("the broker is unavailable: {e}") }
        }))
    })?;
    if !known.contains(&queue) {
        return Err(not_found());
    }
    Ok(Arc::new(RwLock::new(BoardBackend::new(
        state.broker.clone(),
        queue,
    ))))
}

async fn fallback_tasks(
    state: web::Data<AppState>,
    queue: web::Path<String>,
    filter: web::Query<Filter>,
) -> HttpResponse {
    let backend = match backend_of(&state, &queue).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    match apalis_board::actix::get_tasks::<BoardBackend, Value>(backend, filter.into_inner()).await
    {
        Ok(tasks) => HttpResponse::Ok().json(tasks.into_iter().map(RawTask).collect::<Vec<_>>()),
        Err(e) => HttpResponse::InternalServerError().json(e),
    }
}

async fn fallback_stats(state: web::Data<AppState>, queue: web::Path<String>) -> HttpResponse {
    let backend = match backend_of(&state, &queue).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    match apalis_board::actix::stats_by_queue(backend).await {
        Ok(stats) => HttpResponse::Ok().json(stats),
        Err(e) => HttpResponse::InternalServerError().json(e),
    }
}

async fn fallback_workers(state: web::Data<AppState>, queue: web::Path<String>) -> HttpResponse {
    let backend = match backend_of(&state, &queue).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    match apalis_board::actix::get_workers(backend).await {
        Ok(workers) => HttpResponse::Ok().json(workers),
        Err(e) => HttpResponse::InternalServerError().json(e),
    }
}

async fn fallback_task(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (queue, id) = path.into_inner();
    let backend = match backend_of(&state, &queue).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    match apalis_board::actix::get_task_by_id::<BoardBackend, Value>(id, backend).await {
        Ok(Some(task)) => HttpResponse::Ok().json(RawTask(task)),
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(e) => HttpResponse::InternalServerError().json(e),
    }
}
