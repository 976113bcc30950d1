//! `/api/stores` (admins): the shop's stores, each a SUNAT establishment with its own series. A
//! store is named in the path by its id or its code (`/api/stores/lima-centro`). The rules are in
//! `faena_shop::stores`; this only translates.

use actix_web::{get, patch, post, web, HttpResponse};
use faena_shop::stores::{self, NewStore, Store, StoreError, StoreKey, StorePatch};

use crate::auth::AdminCaller;
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::responses::{NeedsAdmin, Unavailable};
use crate::AppState;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::Invalid { field, .. } => {
                Self::bad_request(e.code(), e.to_string(), Some(field.clone()))
            }
            StoreError::NotFound(m) => Self::NotFound(m.clone()),
            StoreError::Forbidden(m) => Self::Forbidden(m.clone()),
            StoreError::Conflict(m) => Self::Conflict(m.clone()),
            StoreError::Db(q) => Self::from_query(q, true),
        }
    }
}

/// The path's store: an id (digits) or a code; anything else is a 400 naming `store`.
fn key(raw: &str) -> Result<StoreKey, ApiError> {
    Ok(StoreKey::parse("store", raw)?)
}

const BAD_STORE: &str = "A field that does not fit, named in `error.field` (`invalid_field`: a \
    code that is not 2 to 32 lowercase letters, digits or `-`; an establishment code that is not \
    exactly 4 digits; a series that is not B or F and 3 digits or uppercase letters, or a note \
    series equal to its document's), or a body that is not this object (`invalid_json`, \
    `unknown_field`, `missing_field`); 413 and 415 as for every JSON body";

const STORE_CONFLICT: &str = "The code, the establishment code or a series is another store's \
    (a series used by another store's sales counts), or the establishment code of a store that \
    has sales, or of the main store, would change (`conflict`; the message names the field)";

/// Every store, by id.
#[utoipa::path(
    tag = "stores",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stores", body = Vec<Store>),
        NeedsAdmin,
        Unavailable,
    )
)]
#[get("/api/stores")]
pub async fn list(
    _admin: AdminCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(stores::list_stores(&mut *state.db_conn().await?).await?))
}

/// One store.
#[utoipa::path(
    tag = "stores",
    security(("bearer" = [])),
    params(("store" = String, Path, description = "The store's id or code", example = "lima-centro")),
    responses(
        (status = 200, description = "The store", body = Store),
        (status = 400, description = "Neither an id nor a store code (`invalid_field`, field \
            `store`)", body = ErrorBody),
        NeedsAdmin,
        (status = 404, description = "No such store (`not_found`)", body = ErrorBody),
        Unavailable,
    )
)]
#[get("/api/stores/{store}")]
pub async fn show(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = key(&path)?;
    Ok(HttpResponse::Ok().json(stores::get_store(&mut *state.db_conn().await?, &key).await?))
}

/// Creates a store: its code, name, SUNAT establishment code and four series (boleta, factura
/// and their notes), unique across stores.
#[utoipa::path(
    tag = "stores",
    security(("bearer" = [])),
    request_body = NewStore,
    responses(
        (status = 201, description = "The store", body = Store),
        (status = 400, description = BAD_STORE, body = ErrorBody),
        (status = 413, description = "The body is larger than 256 KiB (`body_too_large`).",
            body = ErrorBody),
        (status = 415, description = "The body is not sent as `Content-Type: application/json` \
            (`unsupported_media_type`).", body = ErrorBody),
        NeedsAdmin,
        (status = 409, description = STORE_CONFLICT, body = ErrorBody),
        Unavailable,
    )
)]
#[post("/api/stores")]
pub async fn create(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<NewStore>,
) -> Result<HttpResponse, ApiError> {
    let store = stores::create_store(&mut *state.db_conn().await?, &body).await?;
    Ok(HttpResponse::Created().json(store))
}

/// Changes a store: only the fields given. `{"active": false}` disables it (it cannot sell); the
/// code never changes.
#[utoipa::path(
    tag = "stores",
    security(("bearer" = [])),
    params(("store" = String, Path, description = "The store's id or code", example = "lima-centro")),
    request_body = StorePatch,
    responses(
        (status = 200, description = "The changed store", body = Store),
        (status = 400, description = BAD_STORE, body = ErrorBody),
        (status = 413, description = "The body is larger than 256 KiB (`body_too_large`).",
            body = ErrorBody),
        (status = 415, description = "The body is not sent as `Content-Type: application/json` \
            (`unsupported_media_type`).", body = ErrorBody),
        NeedsAdmin,
        (status = 404, description = "No such store (`not_found`)", body = ErrorBody),
        (status = 409, description = STORE_CONFLICT, body = ErrorBody),
        Unavailable,
    )
)]
#[patch("/api/stores/{store}")]
pub async fn update(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: ApiJson<StorePatch>,
) -> Result<HttpResponse, ApiError> {
    let key = key(&path)?;
    let store = stores::update_store(&mut *state.db_conn().await?, &key, &body).await?;
    Ok(HttpResponse::Ok().json(store))
}
