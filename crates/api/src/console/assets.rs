//! The console's vendored scripts and stylesheet, compiled into the binary (`include_bytes!`) and
//! served with a year of caching: no network at run time and no build step. Versions, sources and
//! licences: `crates/api/assets/console/README.md`. A new version gets a new file name.

use actix_web::http::header;
use actix_web::{get, web, HttpResponse};

/// (name, content type, bytes) of every asset.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "htmx.min.js",
        "application/javascript; charset=utf-8",
        include_bytes!("../../assets/console/htmx.min.js"),
    ),
    (
        "uPlot.iife.min.js",
        "application/javascript; charset=utf-8",
        include_bytes!("../../assets/console/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/console/uPlot.min.css"),
    ),
    (
        "console.js",
        "application/javascript; charset=utf-8",
        include_bytes!("../../assets/console/console.js"),
    ),
];

/// One asset, cached for a year (`immutable`), or 404.
#[get("/assets/{name}")]
pub async fn asset(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, ctype, bytes)) => HttpResponse::Ok()
            .content_type(*ctype)
            .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
            .body(*bytes),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such console asset"),
    }
}
