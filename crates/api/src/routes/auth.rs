//! `/api/auth`: log in (`token`), rotate a refresh token (`refresh`), log out (`logout`).
//! Repeated failed logins for one user, or many for one client address, answer 429 for a while:
//! the password is checked by [`crate::login::check_password`], which the console's sign-in
//! form uses too.

use actix_web::{post, web, HttpRequest, HttpResponse};
use faena_shop::auth::{self, Claims, User};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::responses::{JsonBody, Unavailable};
use crate::AppState;

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
    let peer = req.peer_addr().map(|a| a.ip());
    let (mut conn, user) = crate::login::check_password(
        &state,
        &body.username,
        SecretString::from(body.password),
        peer,
    )
    .await?;
    let refresh_token = auth::issue_refresh(&mut conn, user.id, state.keys.refresh_ttl).await?;
    respond(&state, &user, refresh_token)
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
