//! Signing in and out of the console: `/console/login` (the same users and failed-login limits
//! as `POST /api/auth/token`, through [`crate::login::check_password`]) and `/console/logout`
//! (the session row is deleted, so the cookie is worthless even if kept).

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use faena_shop::auth::AuthError;
use faena_shop::sessions;
use maud::html;
use secrecy::SecretString;

use crate::console::error::ConsoleError;
use crate::console::i18n::{Lang, Msg};
use crate::console::layout::{bare, html_response, see_other};
use crate::console::session::{
    cookie, lang_of, removal, Action, LoginForm, Viewer, LOGIN_CSRF_COOKIE, SESSION_COOKIE,
};
use crate::error::ApiError;
use crate::AppState;

fn form(lang: Lang, csrf: &str, username: &str, error: Option<&str>) -> maud::Markup {
    let l = lang;
    bare(
        l,
        Msg::SignIn.text(l),
        html! {
            section.card.login {
                h1 { "Faena · " (Msg::SignIn.text(l)) }
                @if let Some(e) = error { p.form-error #login-error { (e) } }
                form method="post" action="/console/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    div.field {
                        label for="username" { (Msg::Username.text(l)) }
                        input #username name="username" autocomplete="username" required value=(username);
                    }
                    div.field {
                        label for="password" { (Msg::Password.text(l)) }
                        input #password type="password" name="password" autocomplete="current-password" required;
                    }
                    button #signin type="submit" { (Msg::SignIn.text(l)) }
                }
                p.muted { a href="/console/login?lang=es" { "Español" } " · " a href="/console/login?lang=en" { "English" } }
            }
        },
    )
}

/// A fresh sign-in form with its own CSRF token (cookie and hidden field).
fn fresh_form(
    req: &HttpRequest,
    status: StatusCode,
    username: &str,
    error: Option<&str>,
) -> HttpResponse {
    let lang = lang_of(req);
    let csrf = sessions::random_hex();
    let mut res = html_response(status, form(lang, &csrf, username, error));
    let _ = res.add_cookie(&cookie(req, LOGIN_CSRF_COOKIE, csrf));
    res
}

/// The sign-in form; a signed-in user goes straight to the console.
#[get("/login")]
pub async fn login_form(req: HttpRequest) -> HttpResponse {
    if Viewer::load(&req).await.is_ok() {
        return see_other("/console");
    }
    fresh_form(&req, StatusCode::OK, "", None)
}

/// Checks the password (under the api's limits), opens a session and sets its cookie.
#[post("/login")]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: LoginForm,
) -> Result<HttpResponse, ConsoleError> {
    let l = body.lang;
    let username = body.form.get("username").unwrap_or("").to_owned();
    if !body.csrf_ok {
        return Ok(fresh_form(
            &req,
            StatusCode::FORBIDDEN,
            &username,
            Some(Msg::ErrCsrf.text(l)),
        ));
    }
    let password = body.form.raw("password").to_owned();
    if username.is_empty() || password.is_empty() {
        return Ok(fresh_form(
            &req,
            StatusCode::BAD_REQUEST,
            &username,
            Some(Msg::LoginMissing.text(l)),
        ));
    }
    let peer = req.peer_addr().map(|a| a.ip());
    let checked =
        crate::login::check_password(&state, &username, SecretString::from(password), peer).await;
    let (mut conn, user) = match checked {
        Ok(ok) => ok,
        Err(ApiError::Unauthorized(AuthError::BadCredentials)) => {
            return Ok(fresh_form(
                &req,
                StatusCode::UNAUTHORIZED,
                &username,
                Some(Msg::LoginWrong.text(l)),
            ))
        }
        Err(ApiError::Unauthorized(AuthError::Disabled)) => {
            return Ok(fresh_form(
                &req,
                StatusCode::UNAUTHORIZED,
                &username,
                Some(Msg::LoginDisabled.text(l)),
            ))
        }
        Err(ApiError::TooManyRequests { retry_after, .. }) => {
            let msg = Msg::LoginThrottled
                .text(l)
                .replace("{}", &retry_after.to_string());
            let mut res = fresh_form(&req, StatusCode::TOO_MANY_REQUESTS, &username, Some(&msg));
            res.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(retry_after),
            );
            return Ok(res);
        }
        Err(e) => return Err(ConsoleError::new(e.into(), l)),
    };
    let session = sessions::open(&mut conn, &user, sessions::SESSION_TTL)
        .await
        .map_err(|e| ConsoleError::new(ApiError::from(e).into(), l))?;
    let mut res = see_other("/console");
    let _ = res.add_cookie(&cookie(&req, SESSION_COOKIE, session.token));
    let _ = res.add_removal_cookie(&removal(&req, LOGIN_CSRF_COOKIE));
    Ok(res)
}

/// Ends the session (its row is deleted) and forgets the cookie.
#[post("/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    action: Action,
) -> Result<HttpResponse, ConsoleError> {
    let v = action.viewer;
    sessions::close(
        &mut *state.db_conn().await.map_err(|e| v.fail(e))?,
        v.session.id,
    )
    .await
    .map_err(|e| v.fail(ApiError::from(e)))?;
    tracing::info!(user = %v.session.username, "console sign-out");
    let mut res = see_other("/console/login");
    let _ = res.add_removal_cookie(&removal(&req, SESSION_COOKIE));
    Ok(res)
}
