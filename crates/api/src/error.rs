//! The api's error type: every error answers JSON `{error:{code,message,field?}}` with a stable code.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use faena_broker::BrokerError;
use faena_core::db::QueryError;
use serde::Serialize;

/// An error the api answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    #[error("{0}")]
    NotFound(String),
    /// 401: no token, a bad one or an expired one.
    #[error(transparent)]
    Unauthorized(faena_shop::auth::AuthError),
    /// 403: authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    #[error("{0}")]
    Conflict(String),
    /// 409 with machine-readable details (e.g. the current `status`).
    #[error("{message}")]
    ConflictWith {
        message: String,
        details: serde_json::Value,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Shop(#[from] faena_shop::shop::ShopError),
}

/// The body of every error answer (`components.schemas.ErrorBody` in the OpenAPI document).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

/// What went wrong.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// A stable code: `invalid_json`, `unknown_field`, `missing_field`, `invalid_field`,
    /// `invalid_value`, `invalid_path`, `invalid_query`, `invalid_header`, `missing_token`,
    /// `invalid_token`, `token_expired`, `forbidden`, `not_found`, `conflict`, `version_conflict`,
    /// `expired`, `body_too_large`,
    /// `unsupported_media_type`, `too_many_requests`, `service_unavailable`...
    #[schema(example = "invalid_field")]
    pub code: &'a str,
    /// What was wrong, with what value, and what to do.
    pub message: String,
    /// The path of the request body's field at fault (`items[2].quantity`), or the header's name
    /// (`If-Match`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
    /// Machine-readable particulars: `shortages` of a checkout, the `status` of a reservation,
    /// the `current_version` of a product.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } => code,
            Self::NotFound(_) => "not_found",
            Self::Unauthorized(e) => e.code(),
            Self::Forbidden(_) => "forbidden",
            Self::TooLarge(_) => "body_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::Conflict(_) | Self::ConflictWith { .. } => "conflict",
            Self::Unavailable(_) => "service_unavailable",
            Self::Internal(_) => "internal",
            Self::Shop(e) => e.code(),
        }
    }

    /// A database error: 400 or 409 in our words when it refused the data, else 503. `field`: the
    /// refused column is the request's field of that name (products, schedules), so it is named.
    pub fn from_query(e: &QueryError, field: bool) -> Self {
        match e {
            QueryError::Refused(r) if r.rule.is_conflict() => Self::Conflict(r.to_string()),
            QueryError::Refused(r) => {
                Self::bad_request(r.code(), r.to_string(), r.column.clone().filter(|_| field))
            }
            QueryError::Unavailable => Self::Unavailable(e.to_string()),
        }
    }

    pub fn bad_request(
        code: &'static str,
        message: impl Into<String>,
        field: Option<String>,
    ) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
            field,
        }
    }
}

/// The status of a store a shop request named and cannot use.
fn store_status(e: &faena_shop::stores::StoreError) -> StatusCode {
    use faena_shop::stores::StoreError as St;
    match e {
        St::Invalid { .. } => StatusCode::BAD_REQUEST,
        St::NotFound(_) => StatusCode::NOT_FOUND,
        St::Forbidden(_) => StatusCode::FORBIDDEN,
        St::Conflict(_) => StatusCode::CONFLICT,
        St::Db(QueryError::Refused(r)) if r.rule.is_conflict() => StatusCode::CONFLICT,
        St::Db(QueryError::Refused(_)) => StatusCode::BAD_REQUEST,
        St::Db(QueryError::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Conflict(_) | Self::ConflictWith { .. } => StatusCode::CONFLICT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Shop(e) => {
                use faena_shop::shop::ShopError as S;
                match e {
                    S::NotFound { .. } => StatusCode::NOT_FOUND,
                    S::Invalid { .. } => StatusCode::BAD_REQUEST,
                    S::Store(e) => store_status(e),
                    S::InsufficientStock(_)
                    | S::WrongState { .. }
                    | S::SkuExists(_)
                    | S::Contention(_)
                    | S::VersionConflict { .. }
                    | S::DecimalStock { .. } => StatusCode::CONFLICT,
                    S::Expired { .. } => StatusCode::GONE,
                    S::Db(QueryError::Refused(r)) if r.rule.is_conflict() => StatusCode::CONFLICT,
                    S::Db(QueryError::Refused(_)) => StatusCode::BAD_REQUEST,
                    S::Db(QueryError::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
                }
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        use faena_shop::shop::{ReservationStatus, ShopError as S};
        let field = match self {
            Self::BadRequest { field, .. } => field.as_deref(),
            Self::Shop(S::Invalid { field, .. }) => Some(field.as_str()),
            Self::Shop(S::Store(faena_shop::stores::StoreError::Invalid { field, .. })) => {
                Some(field.as_str())
            }
            Self::Shop(S::DecimalStock { .. }) => Some("decimal_quantity"),
            // A product's columns are the fields of its requests.
            Self::Shop(S::Db(QueryError::Refused(r))) if !r.rule.is_conflict() => {
                r.column.as_deref()
            }
            _ => None,
        };
        let details = match self {
            Self::Shop(S::InsufficientStock(s)) => Some(serde_json::json!({ "shortages": s })),
            Self::Shop(S::WrongState { status, .. }) => {
                Some(serde_json::json!({ "status": status }))
            }
            Self::Shop(S::Expired { expires_at, .. }) => Some(
                serde_json::json!({ "status": ReservationStatus::Expired, "expires_at": expires_at }),
            ),
            Self::Shop(S::VersionConflict { current, .. }) => {
                Some(serde_json::json!({ "current_version": current }))
            }
            Self::ConflictWith { details, .. } => Some(details.clone()),
            _ => None,
        };
        let mut res = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized(_) => {
                res.insert_header((
                    actix_web::http::header::WWW_AUTHENTICATE,
                    "Bearer realm=\"faena\"",
                ));
            }
            Self::TooManyRequests { retry_after, .. } => {
                res.insert_header((
                    actix_web::http::header::RETRY_AFTER,
                    retry_after.to_string(),
                ));
            }
            _ => {}
        }
        res.json(ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                field,
                details,
            },
        })
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::Enqueue(e) => Self::bad_request(e.code(), e.to_string(), e.field()),
            BrokerError::Workflow(e) => Self::bad_request(e.code(), e.to_string(), e.field()),
            BrokerError::Unavailable(m) => {
                Self::Unavailable(format!("the queue (Redis) is unavailable: {m}"))
            }
            BrokerError::Invalid(m) => Self::bad_request("invalid_request", m, None),
            BrokerError::Redis(m) => {
                // Redis's own words stay in the log.
                tracing::error!(error = %m, "the queue (Redis) answered an unexpected error");
                Self::Internal("the queue answered an unexpected error; it is logged".into())
            }
        }
    }
}

impl From<faena_core::periodic::PeriodicError> for ApiError {
    fn from(e: faena_core::periodic::PeriodicError) -> Self {
        use faena_core::periodic::PeriodicError as P;
        match &e {
            P::NotFound(_) => Self::NotFound(e.to_string()),
            P::Exists(_) => Self::Conflict(e.to_string()),
            P::Invalid { .. } | P::Schedule { .. } => {
                Self::bad_request(e.code(), e.to_string(), e.field())
            }
            P::Db(q) => Self::from_query(q, true),
        }
    }
}

impl From<faena_shop::auth::AuthError> for ApiError {
    fn from(e: faena_shop::auth::AuthError) -> Self {
        use faena_shop::auth::AuthError as A;
        match e {
            A::Invalid { field, .. } => {
                Self::bad_request(e.code(), e.to_string(), Some(field.to_owned()))
            }
            A::Exists(_) => Self::Conflict(e.to_string()),
            A::NoSuchUser(_) => Self::NotFound(e.to_string()),
            A::Db(ref q) => Self::from_query(q, false),
            A::Hash(_) => Self::Internal(e.to_string()),
            A::BadCredentials
            | A::Disabled
            | A::MissingToken
            | A::InvalidToken(_)
            | A::ExpiredToken
            | A::InvalidRefresh => Self::Unauthorized(e),
        }
    }
}

impl From<faena_shop::credit_notes::CreditNoteError> for ApiError {
    fn from(e: faena_shop::credit_notes::CreditNoteError) -> Self {
        use faena_shop::credit_notes::CreditNoteError as C;
        match &e {
            C::Invalid { field, .. } => {
                Self::bad_request(e.code(), e.to_string(), Some(field.clone()))
            }
            C::NotFound { .. } => Self::NotFound(e.to_string()),
            C::NotCreditable {
                status,
                is_cancelled,
                ..
            } => Self::ConflictWith {
                message: e.to_string(),
                details: serde_json::json!({ "status": status, "is_cancelled": is_cancelled }),
            },
            C::Exceeds { remaining, .. } => Self::ConflictWith {
                message: e.to_string(),
                details: serde_json::json!({ "remaining": faena_shop::money::format(remaining) }),
            },
            C::Db(q) => Self::from_query(q, false),
        }
    }
}

impl From<faena_shop::sales::SaleError> for ApiError {
    fn from(e: faena_shop::sales::SaleError) -> Self {
        use faena_shop::sales::SaleError as S;
        match &e {
            S::Invalid { field, .. } => {
                Self::bad_request(e.code(), e.to_string(), Some(field.clone()))
            }
            S::NotFound { .. } => Self::NotFound(e.to_string()),
            // As a checkout's: 409 with the shortage in `details.shortages`.
            S::InsufficientStock {
                product_id,
                sku,
                store_id,
                available,
                requested,
            } => Self::Shop(faena_shop::shop::ShopError::InsufficientStock(vec![
                faena_shop::shop::Shortage {
                    product_id: *product_id,
                    sku: sku.clone(),
                    store_id: *store_id,
                    requested: requested.clone(),
                    available: available.clone(),
                },
            ])),
            S::Conflict(_) => Self::Conflict(e.to_string()),
            S::Forbidden(m) => Self::Forbidden(m.clone()),
            S::Db(q) => Self::from_query(q, false),
        }
    }
}

impl From<faena_shop::cancel::CancelError> for ApiError {
    fn from(e: faena_shop::cancel::CancelError) -> Self {
        use faena_shop::cancel::CancelError as C;
        match e {
            C::Invalid { field, .. } => {
                let code = e.code();
                Self::bad_request(code, e.to_string(), Some(field.into()))
            }
            C::NotFound(_) => Self::NotFound(e.to_string()),
            C::Forbidden(m) => Self::Forbidden(m),
            C::Refused {
                reason,
                message,
                status,
            } => Self::ConflictWith {
                message,
                details: serde_json::json!({ "reason": reason, "status": status }),
            },
            C::Db(q) => Self::from_query(&q, false),
        }
    }
}

impl From<faena_shop::summaries::SummaryError> for ApiError {
    fn from(e: faena_shop::summaries::SummaryError) -> Self {
        use faena_shop::summaries::SummaryError as S;
        match &e {
            S::NotFound(_) => Self::NotFound(e.to_string()),
            S::Invalid { field, .. } => {
                Self::bad_request(e.code(), e.to_string(), Some((*field).into()))
            }
            S::Corrupt { .. } => Self::Internal(e.to_string()),
            S::Db(q) => Self::from_query(q, false),
        }
    }
}
