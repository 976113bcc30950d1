//! `HEAD` answered like `GET` without a body (RFC 9110, 9.3.2) on every route, from one middleware.
//!
//! Routes are declared for GET (`#[get]`, `web::get()`, apalis-board's scope), which refuses HEAD.
//! [`as_get`] routes a HEAD request as a GET, so it gets the GET's status and headers, its
//! `Content-Length` included; actix-http sends no body, because the connection decided when it read
//! the request that the answer to a HEAD has none. A route without GET answers HEAD with 405 (the
//! default service's `Allow`), as it answers GET.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;

/// Routes a HEAD request as a GET (the innermost middleware, so the log and metrics show HEAD).
pub async fn as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    next.call(req).await
}
