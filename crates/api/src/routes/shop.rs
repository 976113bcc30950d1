//! Products (admins write, everyone signed in reads), checkout and reservations (their owner or
//! an admin).

use actix_web::{delete, get, patch, post, web, HttpResponse};
use faena_core::shop::{self, CheckoutRequest, NewProduct, ProductPatch};
use serde::Deserialize;

use crate::auth::{AdminCaller, Caller};
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::AppState;

#[post("/api/products")]
pub async fn create_product(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<NewProduct>,
) -> Result<HttpResponse, ApiError> {
    let p = shop::create_product(&mut *state.db_conn().await?, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(p))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
}

#[get("/api/products")]
pub async fn list_products(
    _caller: Caller,
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(HttpResponse::Ok().json(shop::list_products(&mut *state.db_conn().await?, limit).await?))
}

#[get("/api/products/{id}")]
pub async fn get_product(
    _caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(shop::get_product(&mut *state.db_conn().await?, *id).await?))
}

#[patch("/api/products/{id}")]
pub async fn update_product(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: ApiJson<ProductPatch>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .json(shop::update_product(&mut *state.db_conn().await?, *id, body.into_inner()).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockAdjustment {
    delta: i32,
}

/// Adds (or with a negative delta removes) stock.
#[post("/api/products/{id}/stock")]
pub async fn adjust_stock(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: ApiJson<StockAdjustment>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .json(shop::adjust_stock(&mut *state.db_conn().await?, *id, body.delta).await?))
}

/// Reserves every item or none for the reservation TTL.
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
        Some(caller.user_id()),
    )
    .await?;
    Ok(HttpResponse::Created().json(r))
}

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
