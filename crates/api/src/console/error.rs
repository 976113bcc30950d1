//! The console's one error type: what a page answers when something went wrong, as an HTML page
//! in the reader's language with a stable code (or a redirect to the sign-in form).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use maud::html;

use crate::console::i18n::{Lang, Msg};
use crate::console::layout;
use crate::error::ApiError;

/// Why a console request failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No live session: the browser is sent to the sign-in form.
    #[error("sign in first")]
    SignIn,
    /// Signed in, but this page is for admins.
    #[error("this page is for admins")]
    AdminsOnly,
    /// A form without this session's CSRF token (or with another one).
    #[error("the form's security token is missing or stale: reload the page and try again")]
    Csrf,
    /// A form field the console itself could not read (the api never saw it).
    #[error("field `{field}`: {message}")]
    Field {
        field: &'static str,
        message: String,
    },
    /// What the api's library functions answered (the same message and code as the JSON api).
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// A console error in the reader's language.
#[derive(Debug, thiserror::Error)]
#[error("{failure}")]
pub struct ConsoleError {
    pub failure: Failure,
    pub lang: Lang,
}

impl ConsoleError {
    pub fn new(failure: Failure, lang: Lang) -> Self {
        Self { failure, lang }
    }

    /// A stable code, as the api's (`csrf_mismatch`, `forbidden`, `invalid_schedule`...).
    pub fn code(&self) -> &'static str {
        match &self.failure {
            Failure::SignIn => "sign_in",
            Failure::AdminsOnly => "forbidden",
            Failure::Csrf => "csrf_mismatch",
            Failure::Field { .. } => "invalid_field",
            Failure::Api(e) => e.code(),
        }
    }
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        Self::new(Failure::Api(e), Lang::default())
    }
}

impl From<Failure> for ConsoleError {
    fn from(f: Failure) -> Self {
        Self::new(f, Lang::default())
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match &self.failure {
            Failure::SignIn => StatusCode::SEE_OTHER,
            Failure::AdminsOnly | Failure::Csrf => StatusCode::FORBIDDEN,
            Failure::Field { .. } => StatusCode::BAD_REQUEST,
            Failure::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Failure::SignIn = self.failure {
            // htmx follows `HX-Redirect`; a page load follows `Location`.
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/console/login"))
                .insert_header(("HX-Redirect", "/console/login"))
                .finish();
        }
        let l = self.lang;
        let lead = match &self.failure {
            Failure::AdminsOnly => Msg::ErrAdminsOnly,
            Failure::Csrf => Msg::ErrCsrf,
            Failure::Field { .. } => Msg::ErrField,
            Failure::Api(e) if e.status_code().is_client_error() => Msg::ErrRefused,
            Failure::Api(_) => Msg::ErrServer,
            Failure::SignIn => Msg::SignIn,
        };
        let body = html! {
            section.card.error {
                h1 { (lead.text(l)) }
                p.message data-code=(self.code()) { (self.failure.to_string()) }
                p.muted { (Msg::ErrCode.text(l)) " " code { (self.code()) } }
                p { a href="/console" { (Msg::BackToConsole.text(l)) } }
            }
        };
        let mut res = HttpResponse::build(self.status_code());
        if let Failure::Api(ApiError::TooManyRequests { retry_after, .. }) = &self.failure {
            res.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        res.content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(layout::bare(l, lead.text(l), body).into_string())
    }
}
