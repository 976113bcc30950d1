//! Products (admins write, everyone signed in reads), checkout and reservations (their owner or
//! an admin).

use actix_web::http::header::{self, ETag, EntityTag};
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse, HttpResponseBuilder};
use faena_shop::sales::Seller;
use faena_shop::shop::{self, CheckoutRequest, NewProduct, Product, ProductPatch, ReservationView};
use faena_shop::stores::StoreKey;
use serde::Deserialize;

use crate::auth::{AdminCaller, Caller};
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::responses::{BadInput, JsonBody, NeedsAdmin, NeedsOwner, NeedsToken, Unavailable};
use crate::AppState;

/// Adds a product.
#[utoipa::path(
    tag = "shop",
    security(("bearer" = [])),
    request_body = NewProduct,
    responses(
        (status = 201, description = "Added", body = Product, headers(
            ("ETag" = String, description = "The product's `version` as a strong ETag (`\"0\"`)"),
        )),
        JsonBody,
        NeedsAdmin,
        (status = 409, description = "A product has that sku (`already_exists`)", body = ErrorBody),
        Unavailable,
    )
)]
#[post("/api/products")]
pub async fn create_product(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<NewProduct>,
) -> Result<HttpResponse, ApiError> {
    let p = shop::create_product(&mut *state.db_conn().await?, body.into_inner()).await?;
    Ok(with_etag(HttpResponse::Created(), &p))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// At most this many products (1 to 1000, default 100; out-of-range values are clamped).
    limit: Option<i64>,
    /// Only this store's stock (its id or code): each product's `stock` and `by_store` are that
    /// store's. Every store's when absent.
    #[param(example = "principal")]
    store: Option<String>,
}

/// Products by id.
#[utoipa::path(
    tag = "shop",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "Products by id", body = Vec<Product>),
        BadInput,
        NeedsToken,
        (status = 404, description = "`store` names no store (`not_found`)", body = ErrorBody),
        Unavailable,
    )
)]
#[get("/api/products")]
pub async fn list_products(
    _caller: Caller,
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let store = q
        .store
        .as_deref()
        .map(|raw| StoreKey::parse("store", raw))
        .transpose()?;
    let products = shop::list_products(&mut *state.db_conn().await?, limit, store.as_ref()).await?;
    Ok(HttpResponse::Ok().json(products))
}

/// One product, with its `version` as a strong `ETag` (`"3"`) to send back in `If-Match` when
/// changing it.
#[utoipa::path(
    tag = "shop",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The product's id")),
    responses(
        (status = 200, description = "The product", body = Product, headers(
            ("ETag" = String, description = "The product's `version` as a strong ETag (`\"3\"`)"),
        )),
        BadInput,
        NeedsToken,
        (status = 404, description = "No such product (`not_found`)", body = ErrorBody),
        Unavailable,
    )
)]
#[get("/api/products/{id}")]
pub async fn get_product(
    _caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let p = shop::get_product(&mut *state.db_conn().await?, *id).await?;
    Ok(with_etag(HttpResponse::Ok(), &p))
}

/// Changes a product's name, price, threshold or taxation, and with `stock` its stock in one
/// store (`store_id`, the main store by default); absent fields stay as they are. With
/// `If-Match: "3"` (or `expected_version: 3`), only if the product is still at version 3.
#[utoipa::path(
    tag = "shop",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "The product's id"),
        ("If-Match" = Option<String>, Header, description = IF_MATCH, example = "\"3\""),
    ),
    request_body = ProductPatch,
    responses(
        (status = 200, description = "The changed product", body = Product, headers(
            ("ETag" = String, description = "The product's new `version` as a strong ETag"),
        )),
        (status = 400, description = "The body does not fit (see `JsonBody`), `store_id` names \
            no store (`invalid_field`), or `If-Match` is not one strong ETag such as `\"3\"` or \
            `*` (`invalid_header`), or disagrees with `expected_version` (`invalid_field`)",
            body = ErrorBody),
        (status = 413, description = "The body is larger than 256 KiB (`body_too_large`).",
            body = ErrorBody),
        (status = 415, description = "The body is not sent as `Content-Type: application/json` \
            (`unsupported_media_type`).", body = ErrorBody),
        NeedsAdmin,
        (status = 404, description = "No such product (`not_found`)", body = ErrorBody),
        (status = 409, description = "The product is no longer at the version of `If-Match` or \
            `expected_version` (`version_conflict`, with `details.current_version`), or \
            `decimal_quantity: false` while its stock or an ACTIVE reservation of it has decimals \
            (`decimal_stock`); nothing was changed", body = ErrorBody),
        Unavailable,
    )
)]
#[patch("/api/products/{id}")]
pub async fn update_product(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    req: HttpRequest,
    body: ApiJson<ProductPatch>,
) -> Result<HttpResponse, ApiError> {
    let mut patch = body.into_inner();
    patch.expected_version = expected_version(&req, patch.expected_version)?;
    let p = shop::update_product(&mut *state.db_conn().await?, *id, patch).await?;
    Ok(with_etag(HttpResponse::Ok(), &p))
}

/// A change of stock.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockAdjustment {
    /// What to add, or with a minus sign to remove: a JSON number or a decimal string, whole
    /// unless the product has `decimal_quantity` (then up to 3 decimals, `-0.250`).
    #[serde(with = "faena_shop::quantity::number")]
    #[schema(value_type = f64, example = 12)]
    delta: bigdecimal::BigDecimal,
    /// Change it only if the product is still at this `version`, else `version_conflict`; the
    /// same as `If-Match: "3"`. Absent: whatever its version.
    #[schema(minimum = 0, example = 3)]
    expected_version: Option<i32>,
    /// The store whose stock changes; the main store when absent.
    #[schema(example = 2)]
    store_id: Option<i64>,
}

/// Adds (or with a negative delta removes) stock in one store (`store_id`, the main store by
/// default). With `If-Match: "3"` (or `expected_version: 3`), only if the product is still at
/// version 3.
#[utoipa::path(
    tag = "shop",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "The product's id"),
        ("If-Match" = Option<String>, Header, description = IF_MATCH, example = "\"3\""),
    ),
    request_body = StockAdjustment,
    responses(
        (status = 200, description = "The product with its new stock", body = Product, headers(
            ("ETag" = String, description = "The product's new `version` as a strong ETag"),
        )),
        (status = 400, description = "The body does not fit (see `JsonBody`), `store_id` names \
            no store (`invalid_field`), or `If-Match` is not one strong ETag such as `\"3\"` or \
            `*` (`invalid_header`), or disagrees with `expected_version` (`invalid_field`)",
            body = ErrorBody),
        (status = 413, description = "The body is larger than 256 KiB (`body_too_large`).",
            body = ErrorBody),
        (status = 415, description = "The body is not sent as `Content-Type: application/json` \
            (`unsupported_media_type`).", body = ErrorBody),
        NeedsAdmin,
        (status = 404, description = "No such product (`not_found`)", body = ErrorBody),
        (status = 409, description = VERSION_CONFLICT, body = ErrorBody),
        Unavailable,
    )
)]
#[post("/api/products/{id}/stock")]
pub async fn adjust_stock(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    req: HttpRequest,
    body: ApiJson<StockAdjustment>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let expected = expected_version(&req, body.expected_version)?;
    let p = shop::adjust_stock(
        &mut *state.db_conn().await?,
        *id,
        body.store_id,
        body.delta,
        expected,
    )
    .await?;
    Ok(with_etag(HttpResponse::Ok(), &p))
}

const VERSION_CONFLICT: &str = "The product is no longer at the version of `If-Match` or \
    `expected_version` (`version_conflict`, with `details.current_version`); nothing was changed: \
    read it again and retry";

const IF_MATCH: &str = "Change the product only if it is still at this version: the `ETag` its \
    last answer carried, such as `\"3\"` (or `*`: whatever its version). Absent: whatever its \
    version.";

/// The answer with the product as JSON and its `version` as a strong `ETag`.
fn with_etag(mut res: HttpResponseBuilder, p: &Product) -> HttpResponse {
    res.insert_header(ETag(EntityTag::new_strong(p.version.to_string())))
        .json(p)
}

/// The version a write expects: `If-Match` (one strong ETag such as `"3"`, or `*` for none) or
/// the body's `expected_version`; both may be sent if they agree.
fn expected_version(req: &HttpRequest, body: Option<i32>) -> Result<Option<i32>, ApiError> {
    let mut values = req.headers().get_all(header::IF_MATCH);
    let Some(raw) = values.next() else {
        return Ok(body);
    };
    let bad = || {
        ApiError::bad_request(
            "invalid_header",
            format!(
                "If-Match {raw:?} is not one strong ETag: send the ETag the product's last answer \
                 carried, such as \"3\" (or * for any version)"
            ),
            Some("If-Match".into()),
        )
    };
    if values.next().is_some() {
        return Err(bad());
    }
    let text = raw.to_str().map_err(|_| bad())?.trim();
    let from_header = if text == "*" {
        None
    } else {
        let version = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<i32>().ok())
            .ok_or_else(bad)?;
        Some(version)
    };
    match (from_header, body) {
        (Some(h), Some(b)) if h != b => Err(ApiError::bad_request(
            "invalid_field",
            format!("expected_version {b} disagrees with If-Match \"{h}\": send one of them"),
            Some("expected_version".into()),
        )),
        (h, b) => Ok(h.or(b)),
    }
}

/// Reserves every item or none for the reservation TTL, from the stock of the caller's store
/// (an admin may name another with `store_id`).
#[utoipa::path(
    tag = "shop",
    security(("bearer" = [])),
    request_body = CheckoutRequest,
    responses(
        (status = 201, description = "Reserved", body = ReservationView),
        (status = 400, description = "The body does not fit (see `JsonBody`), or `store_id` \
            names no store (`invalid_field`)", body = ErrorBody),
        (status = 413, description = "The body is larger than 256 KiB (`body_too_large`).",
            body = ErrorBody),
        (status = 415, description = "The body is not sent as `Content-Type: application/json` \
            (`unsupported_media_type`).", body = ErrorBody),
        NeedsToken,
        (status = 403, description = "A seller named another store than their own \
            (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such product (`not_found`)", body = ErrorBody),
        (status = 409, description = "Not enough stock in the store (`insufficient_stock`, with \
            `details.shortages`: each product, the store, what was requested and what it has), \
            the store is disabled (`conflict`), or the products stayed locked by other checkouts \
            (`contention`); try again", body = ErrorBody),
        Unavailable,
    )
)]
#[post("/api/checkout")]
pub async fn checkout(
    caller: Caller,
    state: web::Data<AppState>,
    body: ApiJson<CheckoutRequest>,
) -> Result<HttpResponse, ApiError> {
    let r = shop::checkout(
        &mut *state.db_conn().await?,
        &body,
        state.reservation_ttl,
        Some(&Seller {
            user_id: caller.user_id().to_owned(),
            is_admin: caller.is_admin(),
        }),
    )
    .await?;
    Ok(HttpResponse::Created().json(r))
}

/// One reservation (its owner's or, for an admin, anyone's).
#[utoipa::path(
    tag = "shop",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The reservation's id")),
    responses(
        (status = 200, description = "The reservation", body = ReservationView),
        BadInput,
        NeedsOwner,
        (status = 404, description = "No such reservation (`not_found`)", body = ErrorBody),
        Unavailable,
    )
)]
#[get("/api/reservations/{id}")]
pub async fn get_reservation(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let r = shop::get_reservation(&mut *state.db_conn().await?, *id).await?;
    caller.require_owner(r.user_id.as_deref(), "reservation")?;
    Ok(HttpResponse::Ok().json(r))
}

/// Confirms an ACTIVE reservation: its stock is sold.
#[utoipa::path(
    tag = "shop",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The reservation's id")),
    responses(
        (status = 200, description = "Confirmed", body = ReservationView),
        BadInput,
        NeedsOwner,
        (status = 404, description = "No such reservation (`not_found`)", body = ErrorBody),
        (status = 409, description = "The reservation is not ACTIVE (`wrong_state`, with \
            `details.status`)", body = ErrorBody),
        (status = 410, description = "The reservation expired (`expired`, with \
            `details.expires_at`)", body = ErrorBody),
        Unavailable,
    )
)]
#[post("/api/reservations/{id}/confirm")]
pub async fn confirm(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.db_conn().await?;
    let r = shop::get_reservation(&mut conn, *id).await?;
    caller.require_owner(r.user_id.as_deref(), "reservation")?;
    Ok(HttpResponse::Ok().json(shop::confirm(&mut conn, *id).await?))
}

/// Releases an ACTIVE reservation at once, returning its stock.
#[utoipa::path(
    tag = "shop",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The reservation's id")),
    responses(
        (status = 200, description = "Released", body = ReservationView),
        BadInput,
        NeedsOwner,
        (status = 404, description = "No such reservation (`not_found`)", body = ErrorBody),
        (status = 409, description = "The reservation is not ACTIVE (`wrong_state`, with \
            `details.status`), or it stayed locked (`contention`)", body = ErrorBody),
        Unavailable,
    )
)]
#[delete("/api/reservations/{id}")]
pub async fn release(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.db_conn().await?;
    let r = shop::get_reservation(&mut conn, *id).await?;
    caller.require_owner(r.user_id.as_deref(), "reservation")?;
    Ok(HttpResponse::Ok().json(shop::release(&mut conn, *id).await?))
}
