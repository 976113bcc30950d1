//! The Faena console at `/console`: server-rendered pages (maud) for the people who run a shop's
//! back office, Spanish first (`?lang=en` switches to English and is remembered in a cookie;
//! every string is in [`i18n`]). *Resumen* (queues, workers, history graphs), *Tareas*,
//! *Programación* and *Comprobantes*; sellers see only their own receipts.
//!
//! Sign-in is a form (`signin`) over the api's users and failed-login limits; the session lives
//! in PostgreSQL (`faena_shop::sessions`) behind an HttpOnly, SameSite=Strict cookie, and every
//! POST carries the session's CSRF token ([`session::Action`]). Pages call the same library
//! functions as the JSON routes. htmx and uPlot are vendored ([`assets`]).

pub mod assets;
pub mod error;
pub mod i18n;
pub mod layout;
pub mod receipts;
pub mod schedules;
pub mod session;
pub mod signin;
pub mod summary;
pub mod tasks;

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{get, web, HttpRequest, HttpResponse};

use crate::console::layout::see_other;
use crate::console::session::{cookie, query_lang, Viewer, CONSOLE_PATH, LANG_COOKIE};

/// `/console`: the first page the user may see (sellers: their receipts).
#[get("")]
async fn home(req: HttpRequest) -> HttpResponse {
    match Viewer::load(&req).await {
        Ok(v) if v.is_admin() => see_other("/console/resumen"),
        Ok(_) => see_other("/console/comprobantes"),
        Err(_) => see_other("/console/login"),
    }
}

#[get("/")]
async fn home_slash() -> HttpResponse {
    see_other("/console")
}

/// Remembers `?lang=` in a cookie on whatever the page answers.
async fn remember_lang(
    req: ServiceRequest,
    next: Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    // Made before the call: the request must not be held (routing needs it unshared).
    let set = query_lang(req.request())
        .map(|l| cookie(req.request(), LANG_COOKIE, l.code().to_owned()).to_string());
    let mut res = next.call(req).await?;
    if let Some(v) = set.and_then(|c| actix_web::http::header::HeaderValue::from_str(&c).ok()) {
        res.headers_mut()
            .append(actix_web::http::header::SET_COOKIE, v);
    }
    Ok(res)
}

/// Every console route, under `/console`.
pub fn scope() -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::scope(CONSOLE_PATH)
        .wrap(actix_web::middleware::from_fn(remember_lang))
        .service(home)
        .service(home_slash)
        .service(assets::asset)
        .service(signin::login_form)
        .service(signin::login)
        .service(signin::logout)
        .service(summary::summary)
        .service(summary::queues)
        .service(summary::history)
        .service(tasks::list)
        .service(tasks::show_detail)
        .service(tasks::show)
        .service(tasks::retry)
        .service(tasks::cancel)
        .service(tasks::purge)
        .service(schedules::list)
        .service(schedules::new_form)
        .service(schedules::create)
        .service(schedules::edit_form)
        .service(schedules::update)
        .service(schedules::enable)
        .service(schedules::disable)
        .service(schedules::run_now)
        .service(schedules::delete)
        .service(receipts::list)
        .service(receipts::show)
        .service(receipts::resend)
        .service(receipts::file)
}
