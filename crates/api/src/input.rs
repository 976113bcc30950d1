//! Rules every request obeys before it reaches a handler: no NUL character (`%00`) in the path or
//! the query string. PostgreSQL cannot store or compare text with U+0000, so a name such as
//! `/api/periodic-tasks/a%00b` would otherwise reach the database and fail there (a 503).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use crate::error::ApiError;

/// True when percent-encoded text decodes to a NUL somewhere.
fn has_encoded_nul(s: &str) -> bool {
    s.as_bytes().windows(3).any(|w| w == b"%00")
}

/// Answers 400 (`invalid_path` or `invalid_query`) to a request whose path or query has `%00`.
pub async fn reject_nul(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let uri = req.uri();
    let error = if has_encoded_nul(uri.path()) {
        Some(ApiError::bad_request(
            "invalid_path",
            "the path has a NUL character (%00), which no resource name contains: remove it",
            None,
        ))
    } else if uri.query().is_some_and(has_encoded_nul) {
        Some(ApiError::bad_request(
            "invalid_query",
            "the query string has a NUL character (%00), which no parameter accepts: remove it",
            None,
        ))
    } else {
        None
    };
    match error {
        Some(e) => Ok(req.error_response(e)),
        None => Ok(next.call(req).await?.map_into_boxed_body()),
    }
}

#[cfg(test)]
mod tests {
    use super::has_encoded_nul;

    #[test]
    fn finds_an_encoded_nul_only() {
        assert!(has_encoded_nul("/api/periodic-tasks/a%00b"));
        assert!(has_encoded_nul("token=%00"));
        assert!(!has_encoded_nul("/api/periodic-tasks/a%2500"));
        assert!(!has_encoded_nul("/api/products/100"));
    }
}
