//! `/api/auth`: log in (`token`), rotate a refresh token (`refresh`), log out (`logout`).
//! Repeated failed logins for one user, or many for one client address, answer 429 for a while.
//!
//! Every login attempt first reserves one failure under its user and its address
//! ([`Broker::reserve_events`](faena_broker::Broker::reserve_events), atomic); only then is the
//! password checked. A wrong password keeps the reservation; a right one forgets the user's
//! failures and gives the address's back; an attempt that fails for another reason (the database
//! is down) gives both back. So of N attempts at once only as many as the limit leaves check a
//! password, and an attempt refused by a limit never runs argon2. Policy: `docs/decisions.md`.

use std::time::Duration;

use actix_web::{post, web, HttpRequest, HttpResponse};
use faena_broker::{Admission, EventLimit};
use faena_shop::auth::{self, AuthError, Claims, User};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::responses::{JsonBody, Unavailable};
use crate::AppState;

/// How long failed logins are remembered (from the first failure of a window).
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// A login.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    username: String,
    password: String,
}

/// A refresh token to rotate or revoke.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// The answer of `token` and `refresh`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    pub username: String,
    pub role: auth::Role,
}

fn respond(state: &AppState, user: &User, refresh_token: String) -> Result<HttpResponse, ApiError> {
    let (access, claims): (String, Claims) = state.keys.issue_access(user)?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(TokenResponse {
            access_token: access,
            token_type: "Bearer",
            expires_in: state.keys.access_ttl.as_secs(),
            refresh_token,
            username: user.username.clone(),
            role: claims.role,
        }))
}

/// Logs in: an access token and a refresh token.
#[utoipa::path(
    tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        JsonBody,
        (status = 401, description = "Wrong username or password, or a disabled user \
            (`bad_credentials`, `user_disabled`)", body = ErrorBody),
        (status = 429, description = "Too many failed logins for this user, or for every user of \
            this client address (`too_many_requests`); the password was not checked. `Retry-After` \
            says how many seconds to wait", body = ErrorBody),
        Unavailable,
    )
)]
#[post("/api/auth/token")]
pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: ApiJson<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let user_key = format!("login:user:{}", body.username.to_lowercase());
    let addr_key = format!(
        "login:addr:{}",
        req.peer_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string())
    );
    let limits = [
        EventLimit {
            name: &user_key,
            max: u64::from(state.login_max_failures),
        },
        EventLimit {
            name: &addr_key,
            max: u64::from(state.login_max_failures_per_address),
        },
    ];
    if let Admission::Refused { index, retry_after } =
        state.broker.reserve_events(&limits, FAILURE_WINDOW).await?
    {
        let whom = if index == 0 {
            "this user"
        } else {
            "this address (all its users together)"
        };
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        tracing::info!(user = %body.username, limit = whom, "login refused by its limit");
        return Err(ApiError::TooManyRequests {
            message: format!(
                "too many failed logins for {whom}: wait {secs} seconds and try again"
            ),
            retry_after: secs.max(1),
        });
    }
    let checked = async {
        let mut conn = state.db_conn().await?;
        let user = auth::authenticate(&mut conn, &body.username, SecretString::from(body.password))
            .await?;
        Ok::<_, ApiError>((conn, user))
    }
    .await;
    match checked {
        Ok((mut conn, user)) => {
            state.broker.clear_events(&user_key).await?;
            state.broker.give_back_event(&addr_key).await?;
            let refresh_token =
                auth::issue_refresh(&mut conn, user.id, state.keys.refresh_ttl).await?;
            tracing::info!(user = %user.username, role = user.role().as_str(), "login");
            respond(&state, &user, refresh_token)
        }
        Err(ApiError::Unauthorized(e @ (AuthError::BadCredentials | AuthError::Disabled))) => {
            tracing::warn!(user = %body.username, "failed login");
            Err(ApiError::Unauthorized(e))
        }
        Err(e) => {
            // Not a failure of the user's: the attempt does not count.
            for name in [&user_key, &addr_key] {
                if let Err(b) = state.broker.give_back_event(name).await {
                    tracing::warn!(error = %b, limit = %name, "could not give back a login reservation");
                }
            }
            Err(e)
        }
    }
}

/// Exchanges a refresh token for a new access token and a new refresh token; the old refresh
/// token stops working.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new access token and a new refresh token", body = TokenResponse),
        JsonBody,
        (status = 401, description = "The refresh token is unknown, used, revoked or expired \
            (`invalid_refresh_token`)", body = ErrorBody),
        Unavailable,
    )
)]
#[post("/api/auth/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    body: ApiJson<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.db_conn().await?;
    let (user, new) =
        auth::rotate_refresh(&mut conn, &body.refresh_token, state.keys.refresh_ttl).await?;
    respond(&state, &user, new)
}

/// Revokes a refresh token. Answers 204 whether or not it was still valid.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "The refresh token no longer works"),
        JsonBody,
        Unavailable,
    )
)]
#[post("/api/auth/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    body: ApiJson<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.db_conn().await?;
    auth::revoke_refresh(&mut conn, &body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}
