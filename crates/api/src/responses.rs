//! The error answers shared by many routes, as utoipa `IntoResponses` groups: [`NeedsToken`] /
//! [`NeedsAdmin`] / [`NeedsOwner`] ([`Caller`](crate::auth::Caller) and
//! [`AdminCaller`](crate::auth::AdminCaller)), [`JsonBody`] ([`ApiJson`](crate::json::ApiJson):
//! 400, 413, 415), [`BadInput`] (a path or query parameter that does not parse) and
//! [`Unavailable`] (PostgreSQL or Redis down). Every error answer has the `ErrorBody` schema.
//!
//! The routes list them in their `#[utoipa::path(responses(...))]`; `openapi.rs` collects the
//! routes. This module imports neither.

use std::collections::BTreeMap;

use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::IntoResponses;

/// An error answer with the [`ErrorBody`] schema.
fn error(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

fn responses(list: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(status, description)| ((*status).to_owned(), error(description)))
        .collect()
}

pub const UNAUTHORIZED: &str = "No bearer token, or an invalid or expired one (`missing_token`, \
    `invalid_token`, `token_expired`); the answer has `WWW-Authenticate: Bearer`.";

/// 401 of [`Caller`](crate::auth::Caller).
pub struct NeedsToken;

impl IntoResponses for NeedsToken {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[("401", UNAUTHORIZED)])
    }
}

/// 401 and 403 of [`AdminCaller`](crate::auth::AdminCaller).
pub struct NeedsAdmin;

impl IntoResponses for NeedsAdmin {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[
            ("401", UNAUTHORIZED),
            ("403", "The token's user is not an admin (`forbidden`)."),
        ])
    }
}

/// 401 of [`Caller`](crate::auth::Caller) and 403 of its owner check.
pub struct NeedsOwner;

impl IntoResponses for NeedsOwner {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[
            ("401", UNAUTHORIZED),
            (
                "403",
                "It belongs to another user: only its owner or an admin may use it (`forbidden`).",
            ),
        ])
    }
}

pub const BAD_REQUEST: &str = "The request does not fit: `error.code` says how (`invalid_json`, \
    `unknown_field`, `missing_field`, `invalid_field` with `error.field`, `invalid_value` (a value \
    the database refused, with `error.field` when it names one), `invalid_path`, `invalid_query`...).";

/// 400, 413 and 415 of [`ApiJson`](crate::json::ApiJson).
pub struct JsonBody;

impl IntoResponses for JsonBody {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[
            ("400", BAD_REQUEST),
            ("413", "The body is larger than 256 KiB (`body_too_large`)."),
            (
                "415",
                "The body is not sent as `Content-Type: application/json` (`unsupported_media_type`).",
            ),
        ])
    }
}

/// 400 of a path or query parameter that does not parse.
pub struct BadInput;

impl IntoResponses for BadInput {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[("400", BAD_REQUEST)])
    }
}

/// 503 when PostgreSQL or Redis cannot answer.
pub struct Unavailable;

impl IntoResponses for Unavailable {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[(
            "503",
            "PostgreSQL or Redis is unavailable (`service_unavailable`); try again later.",
        )])
    }
}
