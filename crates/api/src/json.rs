//! `ApiJson<T>`: the strict JSON body extractor of every endpoint. It checks the content type and
//! the size limit (413), and reports a body that does not fit with the path of the bad field
//! (`items[2].quantity`), unknown fields included, in the api's error shape.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body, parsed strictly.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T> ApiJson<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for ApiJson<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Parses a body with the path of the first field that does not fit.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => {
            de.end().map_err(|e| {
                ApiError::bad_request(
                    "invalid_json",
                    format!("the body is not valid JSON: {e}"),
                    None,
                )
            })?;
            if has_nul_escape(body) {
                return Err(nul_error(body));
            }
            Ok(v)
        }
        Err(e) => {
            let inner = e.inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ApiError::bad_request(
                    "invalid_json",
                    format!("the body is not valid JSON: {inner}"),
                    None,
                ));
            }
            let path = e.path().to_string();
            let msg = inner.to_string();
            if path == "." && !msg.starts_with("missing field") {
                // The body as a whole has the wrong shape (an array, a string...).
                return Err(ApiError::bad_request(
                    "invalid_json",
                    format!("the body does not have the shape this endpoint takes: {msg}"),
                    None,
                ));
            }
            // The path ends at an unknown field already; a missing one is named in the message.
            let named = msg
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next());
            let field = match (named, path.as_str()) {
                (Some(f), ".") => f.to_owned(),
                (Some(f), p) => format!("{p}.{f}"),
                (None, p) => p.to_owned(),
            };
            let code = if msg.starts_with("unknown field") {
                "unknown_field"
            } else if msg.starts_with("missing field") {
                "missing_field"
            } else {
                "invalid_field"
            };
            Err(ApiError::bad_request(
                code,
                format!("field `{field}`: {msg}"),
                Some(field),
            ))
        }
    }
}

/// True when a JSON text has a `\u0000` escape: PostgreSQL can store U+0000 neither in text nor in
/// jsonb, so no string of any body may have it. (A raw NUL byte is not valid JSON already.)
fn has_nul_escape(body: &[u8]) -> bool {
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\\' {
            if body.get(i + 1..i + 6) == Some(b"u0000".as_slice()) {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// The path (`items[2].name`) of the first string, or object key, with U+0000.
fn nul_path(v: &serde_json::Value, path: &str) -> Option<String> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match v {
        serde_json::Value::String(s) if s.contains('\0') => Some(path.to_owned()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, &format!("{path}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, item)| {
            if k.contains('\0') {
                Some(join(k))
            } else {
                nul_path(item, &join(k))
            }
        }),
        _ => None,
    }
}

fn nul_error(body: &[u8]) -> ApiError {
    let field = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| nul_path(&v, ""))
        .filter(|f| !f.is_empty());
    let at = field
        .as_deref()
        .map_or_else(|| "the body".to_owned(), |f| format!("field `{f}`"));
    ApiError::bad_request(
        "invalid_field",
        format!("{at}: has the NUL character (\\u0000), which cannot be stored: remove it"),
        field,
    )
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = crate::MAX_JSON_BYTES;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Box::pin(std::future::ready(Err(ApiError::TooLarge(limit))));
        }
        if !is_json(req) {
            return Box::pin(std::future::ready(Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ))));
        }
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let body = bytes.await.map_err(|e| {
                if matches!(
                    e.as_error::<actix_web::error::PayloadError>(),
                    Some(actix_web::error::PayloadError::Overflow)
                ) {
                    ApiError::TooLarge(limit)
                } else {
                    ApiError::bad_request(
                        "invalid_body",
                        format!("the body could not be read: {e}"),
                        None,
                    )
                }
            })?;
            parse(&body).map(ApiJson)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        id: i64,
        qty: i32,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        items: Vec<Item>,
    }

    fn field(body: &str) -> Option<String> {
        match parse::<Body>(body.as_bytes()) {
            Err(ApiError::BadRequest { field, .. }) => field,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            field(r#"{"items":[{"id":1,"qty":1},{"id":2,"qty":"x"}]}"#).as_deref(),
            Some("items[1].qty")
        );
        assert_eq!(
            field(r#"{"items":[{"id":1,"qty":1,"extra":2}]}"#).as_deref(),
            Some("items[0].extra")
        );
        assert_eq!(field(r#"{"items":[], "x": 1}"#).as_deref(), Some("x"));
        assert_eq!(field(r#"{}"#).as_deref(), Some("items"));
        assert_eq!(field(r#"{"items": [}"#), None);
        assert!(parse::<Body>(br#"{"items":[]} trailing"#).is_err());
    }

    #[test]
    fn a_nul_character_is_refused_with_its_field() {
        let args = |body: &str| match parse::<serde_json::Value>(body.as_bytes()) {
            Err(ApiError::BadRequest { code, field, .. }) => (code, field),
            other => panic!("expected a bad request, got {other:?}"),
        };
        assert_eq!(
            args(r#"{"a":{"b":["x","y\u0000"]}}"#),
            ("invalid_field", Some("a.b[1]".to_owned()))
        );
        assert_eq!(
            args(r#"{"k\u0000":1}"#),
            ("invalid_field", Some("k\u{0}".to_owned()))
        );
        assert_eq!(args(r#""\u0000""#), ("invalid_field", None));
        // An escaped backslash followed by `u0000` is text, not a NUL.
        assert!(parse::<serde_json::Value>(br#"{"a":"\\u0000"}"#).is_ok());
    }
}
