//! Who is calling: bearer-token extractors ([`Caller`], [`AdminCaller`]) that answer 401 for a
//! missing, invalid or expired token and 403 for the wrong role, plus the owner check.
//!
//! The dashboard at `/board` is opened in a browser, which cannot send a bearer header: there the
//! token may also come in the `faena_access` cookie that `GET /board/login?token=...` sets.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use faena_shop::auth::{AuthError, Claims};

use crate::error::ApiError;
use crate::AppState;

/// Where the apalis-board dashboard is mounted; its requests may authenticate with [`BOARD_COOKIE`].
pub const BOARD_PATH: &str = "/board";

/// The cookie that carries an admin's access token for the dashboard.
pub const BOARD_COOKIE: &str = "faena_access";

/// Any authenticated user.
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

/// An authenticated admin.
#[derive(Debug, Clone)]
pub struct AdminCaller(pub Claims);

impl Caller {
    pub fn user_id(&self) -> &str {
        self.0.user_id()
    }

    pub fn is_admin(&self) -> bool {
        self.0.is_admin()
    }

    /// Admins may touch anything; anyone else only what they own.
    pub fn require_owner(&self, owner: Option<&str>, what: &str) -> Result<(), ApiError> {
        require_owner(self.user_id(), self.is_admin(), owner, what)
    }
}

/// Admins may touch anything; anyone else only what they own (`what`: "sale", "task"...). The
/// api's [`Caller`] and the console's signed-in user both ask this.
pub fn require_owner(
    user_id: &str,
    is_admin: bool,
    owner: Option<&str>,
    what: &str,
) -> Result<(), ApiError> {
    if is_admin || owner == Some(user_id) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "this {what} belongs to another user: only its owner or an admin may use it"
        )))
    }
}

/// The bearer token of a request, or (under `/board` only) the dashboard cookie.
fn token(req: &HttpRequest) -> Option<String> {
    if let Some(v) = req.headers().get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let (scheme, rest) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim().to_owned());
    }
    if req.path().starts_with(BOARD_PATH) {
        return req.cookie(BOARD_COOKIE).map(|c| c.value().to_owned());
    }
    None
}

/// Checks the request's token.
pub fn authenticate(req: &HttpRequest) -> Result<Claims, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("the app state is missing".into()))?;
    let token = token(req).ok_or(ApiError::Unauthorized(AuthError::MissingToken))?;
    state
        .keys
        .verify_access(&token)
        .map_err(ApiError::Unauthorized)
}

/// Checks the token and the admin role.
pub fn authenticate_admin(req: &HttpRequest) -> Result<Claims, ApiError> {
    let claims = authenticate(req)?;
    if claims.is_admin() {
        Ok(claims)
    } else {
        Err(ApiError::Forbidden(format!(
            "{} {} is for admins; user `{}` is a {}",
            req.method(),
            req.match_pattern().unwrap_or_else(|| req.path().to_owned()),
            claims.name,
            claims.role.as_str()
        )))
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).map(Caller))
    }
}

impl FromRequest for AdminCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate_admin(req).map(AdminCaller))
    }
}
