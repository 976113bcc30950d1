//! The api's OpenAPI 3.1 document, served at `GET /api/openapi.json` and generated with utoipa
//! from the handlers' `#[utoipa::path]` annotations and the `ToSchema` derives of the types they
//! take and answer (most live in faena-core and faena-broker).
//!
//! # Shared error answers
//!
//! Most errors come from extractors rather than from a handler's own code, so they are grouped in
//! the `IntoResponses` types of [`crate::responses`], which the routes list in their
//! `responses(...)`; routes import them from there, never from this module, so routes and this
//! document do not import each other both ways.
//!
//! # The dashboard
//!
//! `/board` (apalis-board's UI and JSON API) is documented in [`board`]: the login route, the UI
//! pages and the JSON API's routes, whose answers are apalis-board's own types (given as free-form
//! JSON here). Every `/board` path but `/board/login` needs an admin.

use actix_web::{get, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::routes;

/// The name of the bearer security scheme in the document.
pub const BEARER: &str = "bearer";

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Faena",
        description = "Faena's HTTP API: jobs, schedules, products, checkout and reservations. \
            Every error answers `{\"error\":{\"code\",\"message\",\"field\"?,\"details\"?}}` \
            with a stable `code`. Authenticate with `Authorization: Bearer <access token>` from \
            `POST /api/auth/token`."
    ),
    modifiers(&Security),
    paths(
        openapi_json,
        routes::health::health,
        routes::metrics::metrics,
        routes::metrics::history,
        routes::auth::token,
        routes::auth::refresh,
        routes::auth::logout,
        routes::tasks::enqueue,
        routes::tasks::show,
        routes::workflows::start,
        routes::workflows::show,
        routes::periodic::list,
        routes::periodic::create,
        routes::periodic::show,
        routes::periodic::update,
        routes::periodic::remove,
        routes::periodic::run_now,
        routes::shop::create_product,
        routes::shop::list_products,
        routes::shop::get_product,
        routes::shop::update_product,
        routes::shop::adjust_stock,
        routes::shop::checkout,
        routes::shop::get_reservation,
        routes::shop::confirm,
        routes::shop::release,
        routes::sales::create,
        routes::sales::list,
        routes::sales::show,
        routes::sales::send_to_sunat,
        routes::sales::cancel,
        routes::sunat::list,
        routes::sales::create_credit_note,
        routes::reports::daily,
        routes::reports::list_insights,
        routes::reports::refresh_insights,
        routes::stores::list,
        routes::stores::show,
        routes::stores::create,
        routes::stores::update,
        board::login,
        board::ui_root,
        board::ui_page,
        board::queues,
        board::all_tasks,
        board::all_workers,
        board::overview,
        board::queue_tasks,
        board::push_task,
        board::queue_stats,
        board::queue_workers,
        board::queue_task,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "health", description = "Liveness, metrics and this document"),
        (name = "auth", description = "Access and refresh tokens"),
        (name = "sales", description = "Sales and their SUNAT receipts"),
        (name = "reports", description = "Daily SUNAT reports and insights (admins only)"),
        (name = "tasks", description = "Jobs: enqueue and look up"),
        (name = "workflows", description = "Chains and groups of jobs, with callbacks"),
        (name = "periodic", description = "Periodic schedules (admins only)"),
        (name = "shop", description = "Products, checkout and reservations"),
        (name = "stores", description = "Stores: SUNAT establishments with their own series (admins only)"),
        (name = "board", description = "The apalis-board dashboard (admins only)"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer scheme that operations name in `security(("bearer" = []))`.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `POST /api/auth/token` or `/api/auth/refresh`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as JSON; built once.
pub fn document() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi().to_json().unwrap_or_else(|e| {
            // Serializing the document's own types cannot fail; say so loudly if it ever does.
            tracing::error!(error = %e, "cannot serialize the OpenAPI document");
            String::from("{}")
        })
    })
}

/// The methods the document lists for a concrete path (`/api/products/7` matches
/// `/api/products/{id}`: a `{parameter}` stands for one non-empty segment), in upper case.
pub fn methods_of(path: &str) -> Vec<String> {
    type Routes = Vec<(Vec<String>, Vec<String>)>;
    static ROUTES: std::sync::OnceLock<Routes> = std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap_or_default();
        doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(template, item)| {
                let segments = template.split('/').map(str::to_owned).collect();
                let methods = item
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(m, _)| m.to_ascii_uppercase())
                    .filter(|m| {
                        [
                            "GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE",
                        ]
                        .contains(&m.as_str())
                    })
                    .collect();
                (segments, methods)
            })
            .collect()
    });
    let segments: Vec<&str> = path.split('/').collect();
    let mut methods: Vec<String> = routes
        .iter()
        .filter(|(template, _)| {
            template.len() == segments.len()
                && template.iter().zip(&segments).all(|(t, s)| {
                    t == s || (t.starts_with('{') && t.ends_with('}') && !s.is_empty())
                })
        })
        .flat_map(|(_, m)| m.iter().cloned())
        .collect();
    methods.sort();
    methods.dedup();
    methods
}

/// 405 with `Allow` when the path is a documented one and only the method is wrong.
pub fn method_not_allowed(req: &actix_web::HttpRequest) -> Option<HttpResponse> {
    let allowed = methods_of(req.path());
    if allowed.is_empty() || allowed.iter().any(|m| m == req.method().as_str()) {
        return None;
    }
    let allow = allowed.join(", ");
    Some(
        HttpResponse::MethodNotAllowed()
            .insert_header((actix_web::http::header::ALLOW, allow.clone()))
            .json(ErrorBody {
                error: ErrorDetail {
                    code: "method_not_allowed",
                    message: format!(
                        "{} is not a method of {}: use {allow}",
                        req.method(),
                        req.path()
                    ),
                    field: None,
                    details: None,
                },
            }),
    )
}

/// This document.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this api", body = serde_json::Value,
            content_type = "application/json"),
    )
)]
#[get("/api/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}

/// The dashboard's routes, which `crate::board` registers and apalis-board serves; these
/// functions only carry their documentation.
pub mod board {
    #![allow(dead_code)]

    use crate::error::ErrorBody;
    use crate::responses::{
        BadInput, JsonBody, NeedsAdmin, Unavailable, BAD_REQUEST, UNAUTHORIZED,
    };
    use crate::routes::tasks::Enqueued;

    /// An admin's access token, kept in the `faena_access` cookie, then a redirect to the board.
    #[utoipa::path(
        get,
        path = "/board/login",
        tag = "board",
        params(("token" = String, Query, description = "An admin's access token")),
        responses(
            (status = 303, description = "The token is an admin's: the `faena_access` cookie is set \
                (HttpOnly, SameSite Strict, path `/board`) and `Location` is `/board/`"),
            (status = 400, description = BAD_REQUEST, body = ErrorBody),
            (status = 401, description = UNAUTHORIZED, body = ErrorBody),
            (status = 403, description = "The token's user is not an admin (`forbidden`).",
                body = ErrorBody),
        )
    )]
    pub fn login() {}

    /// The dashboard's page.
    #[utoipa::path(
        get,
        path = "/board",
        tag = "board",
        security(("bearer" = [])),
        responses(
            (status = 200, description = "The dashboard's `index.html`", body = String,
                content_type = "text/html"),
            NeedsAdmin,
        )
    )]
    pub fn ui_root() {}

    /// An embedded asset by name, else the dashboard's page (the app routes on the address).
    #[utoipa::path(
        get,
        path = "/board/{page}",
        tag = "board",
        security(("bearer" = [])),
        params(("page" = String, Path, description = "An asset's name or a dashboard address")),
        responses(
            (status = 200, description = "The asset, with its own content type, or the \
                dashboard's `index.html`", content(
                (String = "text/html"),
                (String = "*/*"),
            )),
            (status = 404, description = "A name with a dot that is no asset (`not_found`)",
                body = ErrorBody),
            BadInput,
            NeedsAdmin,
        )
    )]
    pub fn ui_page() {}

    /// Every queue with its statistics.
    #[utoipa::path(
        get,
        path = "/board/api/v1/queues",
        tag = "board",
        security(("bearer" = [])),
        responses(
            (status = 200, description = "apalis-board's queue list", body = serde_json::Value),
            NeedsAdmin,
        )
    )]
    pub fn queues() {}

    /// Tasks of every queue.
    #[utoipa::path(
        get,
        path = "/board/api/v1/tasks",
        tag = "board",
        security(("bearer" = [])),
        responses(
            (status = 200, description = "apalis-board's task list", body = serde_json::Value),
            BadInput,
            NeedsAdmin,
        )
    )]
    pub fn all_tasks() {}

    /// Workers of every queue.
    #[utoipa::path(
        get,
        path = "/board/api/v1/workers",
        tag = "board",
        security(("bearer" = [])),
        responses(
            (status = 200, description = "apalis-board's worker list", body = serde_json::Value),
            NeedsAdmin,
        )
    )]
    pub fn all_workers() {}

    /// Totals over every queue.
    #[utoipa::path(
        get,
        path = "/board/api/v1/overview",
        tag = "board",
        security(("bearer" = [])),
        responses(
            (status = 200, description = "apalis-board's overview", body = serde_json::Value),
            NeedsAdmin,
        )
    )]
    pub fn overview() {}

    /// Tasks of one queue.
    #[utoipa::path(
        get,
        path = "/board/api/v1/queues/{queue}/tasks",
        tag = "board",
        security(("bearer" = [])),
        params(("queue" = String, Path, description = "A queue name")),
        responses(
            (status = 200, description = "apalis-board's task list", body = serde_json::Value),
            (status = 404, description = "No such queue (`not_found`)", body = ErrorBody),
            BadInput,
            NeedsAdmin,
            Unavailable,
        )
    )]
    pub fn queue_tasks() {}

    /// Enqueues a task (Faena's handler, see `crate::board`): the body is the job's arguments.
    #[utoipa::path(
        put,
        path = "/board/api/v1/queues/{queue}/tasks",
        tag = "board",
        security(("bearer" = [])),
        params(
            ("queue" = String, Path, description = "The queue"),
            ("x-task-meta-faena.kind" = String, Header, description = "The job kind"),
            ("x-task-idempotency-key" = Option<String>, Header,
                description = "Enqueue at most once per key"),
            ("x-task-max-attempts" = Option<u32>, Header, description = "Overrides the kind's"),
            ("x-task-run-at" = Option<u64>, Header, description = "Run at (Unix seconds)"),
        ),
        request_body(content = serde_json::Value, description = "The job's arguments",
            content_type = "application/json"),
        responses(
            (status = 201, description = "Enqueued", body = Enqueued),
            JsonBody,
            NeedsAdmin,
            Unavailable,
        )
    )]
    pub fn push_task() {}

    /// Statistics of one queue.
    #[utoipa::path(
        get,
        path = "/board/api/v1/queues/{queue}/stats",
        tag = "board",
        security(("bearer" = [])),
        params(("queue" = String, Path, description = "A queue name")),
        responses(
            (status = 200, description = "apalis-board's queue statistics", body = serde_json::Value),
            (status = 404, description = "No such queue (`not_found`)", body = ErrorBody),
            BadInput,
            NeedsAdmin,
            Unavailable,
        )
    )]
    pub fn queue_stats() {}

    /// Workers of one queue.
    #[utoipa::path(
        get,
        path = "/board/api/v1/queues/{queue}/workers",
        tag = "board",
        security(("bearer" = [])),
        params(("queue" = String, Path, description = "A queue name")),
        responses(
            (status = 200, description = "apalis-board's worker list", body = serde_json::Value),
            (status = 404, description = "No such queue (`not_found`)", body = ErrorBody),
            BadInput,
            NeedsAdmin,
            Unavailable,
        )
    )]
    pub fn queue_workers() {}

    /// One task of one queue.
    #[utoipa::path(
        get,
        path = "/board/api/v1/queues/{queue}/tasks/{id}",
        tag = "board",
        security(("bearer" = [])),
        params(
            ("queue" = String, Path, description = "A queue name"),
            ("id" = String, Path, description = "A task id"),
        ),
        responses(
            (status = 200, description = "apalis-board's task", body = serde_json::Value),
            (status = 404, description = "No such queue or task (`not_found`)",
                body = ErrorBody),
            BadInput,
            NeedsAdmin,
            Unavailable,
        )
    )]
    pub fn queue_task() {}
}
