//! Who is looking at the console: the session cookie (HttpOnly, SameSite=Strict, Secure over
//! HTTPS) read into a [`Viewer`], the language of the page, and the CSRF check every form goes
//! through ([`Action`]: a POST handler cannot take a form without it).

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use faena_shop::sessions::{self, Session};
use futures::future::LocalBoxFuture;
use subtle::ConstantTimeEq;

use crate::console::error::{ConsoleError, Failure};
use crate::console::i18n::Lang;
use crate::console::layout::{Chrome, Tab};
use crate::error::ApiError;
use crate::AppState;

/// Where the console lives; its cookies are scoped to it.
pub const CONSOLE_PATH: &str = "/console";
/// The session cookie: a random token whose SHA-256 names the session row.
pub const SESSION_COOKIE: &str = "faena_console";
/// The language chosen with `?lang=`.
pub const LANG_COOKIE: &str = "faena_lang";
/// The sign-in form's own CSRF token (double submit: cookie and hidden field), before a session.
pub const LOGIN_CSRF_COOKIE: &str = "faena_console_login";
/// The form field (or `X-CSRF-Token` header, for htmx) that carries the session's CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// The page's language: `?lang=es|en` first, then the cookie it left, else Spanish.
pub fn lang_of(req: &HttpRequest) -> Lang {
    query_lang(req)
        .or_else(|| req.cookie(LANG_COOKIE).and_then(|c| Lang::parse(c.value())))
        .unwrap_or_default()
}

/// The language named by `?lang=`, when the query names one the console speaks.
pub fn query_lang(req: &HttpRequest) -> Option<Lang> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "lang")
        .and_then(|(_, v)| Lang::parse(&v))
}

/// The request's path and query without `lang`.
pub fn here(req: &HttpRequest) -> String {
    let rest: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .filter(|(k, _)| k != "lang")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if rest.is_empty() {
        req.path().to_owned()
    } else {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(rest)
            .finish();
        format!("{}?{q}", req.path())
    }
}

/// A console cookie: HttpOnly, SameSite=Strict, path `/console`, Secure when the request came
/// over HTTPS (directly, or as a proxy's `Forwarded`/`X-Forwarded-Proto` says).
pub fn cookie(req: &HttpRequest, name: &'static str, value: String) -> Cookie<'static> {
    let mut c = Cookie::build(name, value)
        .path(CONSOLE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    if req.connection_info().scheme() == "https" {
        c.set_secure(true);
    }
    c
}

/// The same cookie, expired: the browser forgets it.
pub fn removal(req: &HttpRequest, name: &'static str) -> Cookie<'static> {
    let mut c = cookie(req, name, String::new());
    c.set_max_age(time::Duration::ZERO);
    c
}

/// Two tokens compared in constant time (a CSRF token is a secret of the session).
pub fn same_token(a: &str, b: &str) -> bool {
    !a.is_empty() && a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A signed-in user of the console.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub session: Session,
    pub lang: Lang,
    /// The business time zone (`TZ`): times are shown in it.
    pub tz: chrono_tz::Tz,
    /// This page's path and query without `lang` (for the language switch).
    pub here: String,
}

impl Viewer {
    /// The user id as sales and tasks store their owner.
    pub fn user_id(&self) -> String {
        self.session.user_id.to_string()
    }

    pub fn is_admin(&self) -> bool {
        self.session.is_admin()
    }

    /// The shell of a page of section `tab`.
    pub fn chrome(&self, tab: Tab) -> Chrome {
        Chrome {
            lang: self.lang,
            username: self.session.username.clone(),
            is_admin: self.is_admin(),
            csrf: self.session.csrf_token.clone(),
            tab,
            here: self.here.clone(),
        }
    }

    /// `failure` in this viewer's language.
    pub fn fail(&self, failure: impl Into<Failure>) -> ConsoleError {
        ConsoleError::new(failure.into(), self.lang)
    }

    /// Reads the session of a request.
    pub async fn load(req: &HttpRequest) -> Result<Self, ConsoleError> {
        let lang = lang_of(req);
        let fail = |f: Failure| ConsoleError::new(f, lang);
        let state = req
            .app_data::<web::Data<AppState>>()
            .ok_or_else(|| fail(ApiError::Internal("the app state is missing".into()).into()))?;
        let token = req
            .cookie(SESSION_COOKIE)
            .map(|c| c.value().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| fail(Failure::SignIn))?;
        let mut conn = state.db_conn().await.map_err(|e| fail(e.into()))?;
        let session = sessions::find(&mut conn, &token)
            .await
            .map_err(|e| fail(ApiError::from(e).into()))?
            .ok_or_else(|| fail(Failure::SignIn))?;
        Ok(Self {
            session,
            lang,
            tz: state.sale_defaults.tz,
            here: here(req),
        })
    }
}

impl FromRequest for Viewer {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Self, ConsoleError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Viewer::load(&req).await })
    }
}

/// A signed-in admin.
#[derive(Debug, Clone)]
pub struct AdminViewer(pub Viewer);

impl AdminViewer {
    fn check(v: Viewer) -> Result<Self, ConsoleError> {
        if v.is_admin() {
            Ok(Self(v))
        } else {
            Err(v.fail(Failure::AdminsOnly))
        }
    }
}

impl FromRequest for AdminViewer {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Self, ConsoleError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Self::check(Viewer::load(&req).await?) })
    }
}

/// The fields of a submitted form (`application/x-www-form-urlencoded`), read leniently: bytes
/// that are not UTF-8 become U+FFFD, so no form is "malformed" before its fields are checked.
#[derive(Debug, Clone, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Self {
        Self(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The field's value, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The field's value as sent (untrimmed), or "".
    pub fn raw(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Whether a checkbox (or a confirmation) was sent.
    pub fn is_on(&self, name: &str) -> bool {
        matches!(self.get(name), Some("on" | "1" | "true" | "si" | "yes"))
    }
}

/// Reads a form body: URL-encoded only (what a browser's form and htmx send).
async fn read_form(
    req: &HttpRequest,
    body: impl std::future::Future<Output = Result<web::Bytes, actix_web::Error>>,
    lang: Lang,
) -> Result<Form, ConsoleError> {
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let bytes = body.await.map_err(|e| {
        ConsoleError::new(
            ApiError::bad_request(
                "invalid_form",
                format!("the form could not be read: {e}"),
                None,
            )
            .into(),
            lang,
        )
    })?;
    if !bytes.is_empty() && !ctype.starts_with("application/x-www-form-urlencoded") {
        return Err(ConsoleError::new(
            ApiError::UnsupportedMediaType(format!(
                "send the form as application/x-www-form-urlencoded, not {ctype:?}"
            ))
            .into(),
            lang,
        ));
    }
    Ok(Form::parse(&bytes))
}

/// A form posted by a signed-in user with this session's CSRF token (field `csrf`, or the
/// `X-CSRF-Token` header that htmx sends), compared in constant time. Every console POST but the
/// sign-in form takes one, so none can forget the check.
#[derive(Debug)]
pub struct Action {
    pub viewer: Viewer,
    pub form: Form,
}

impl Action {
    async fn load(
        req: HttpRequest,
        body: impl std::future::Future<Output = Result<web::Bytes, actix_web::Error>>,
    ) -> Result<Self, ConsoleError> {
        let viewer = Viewer::load(&req).await?;
        let form = read_form(&req, body, viewer.lang).await?;
        let sent = form
            .get(CSRF_FIELD)
            .map(str::to_owned)
            .or_else(|| {
                req.headers()
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        if !same_token(&sent, &viewer.session.csrf_token) {
            tracing::warn!(user = %viewer.session.username, path = %req.path(), "console form refused: CSRF token mismatch");
            return Err(viewer.fail(Failure::Csrf));
        }
        Ok(Self { viewer, form })
    }
}

impl FromRequest for Action {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Self, ConsoleError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::Bytes::from_request(req, payload);
        Box::pin(Self::load(req.clone(), body))
    }
}

/// An [`Action`] of an admin.
#[derive(Debug)]
pub struct AdminAction {
    pub viewer: Viewer,
    pub form: Form,
}

impl FromRequest for AdminAction {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Self, ConsoleError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::Bytes::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let a = Action::load(req, body).await?;
            let AdminViewer(viewer) = AdminViewer::check(a.viewer)?;
            Ok(Self {
                viewer,
                form: a.form,
            })
        })
    }
}

/// The sign-in form's body, with its double-submit check (no session exists yet).
#[derive(Debug)]
pub struct LoginForm {
    pub lang: Lang,
    pub form: Form,
    pub csrf_ok: bool,
}

impl FromRequest for LoginForm {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Self, ConsoleError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::Bytes::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let lang = lang_of(&req);
            let form = read_form(&req, body, lang).await?;
            let cookie = req
                .cookie(LOGIN_CSRF_COOKIE)
                .map(|c| c.value().to_owned())
                .unwrap_or_default();
            let csrf_ok = same_token(form.raw(CSRF_FIELD), &cookie);
            Ok(Self {
                lang,
                form,
                csrf_ok,
            })
        })
    }
}
