//! Rollback orders of a device (`/api/v2/devices/{id}/rollback`): order one, list them.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use fota_api::{Duty, Protocol, RollbackOrder, RollbackRequest};

use super::auth::Operator;
use super::devices::get_device;
use super::doc::{self, DeviceId};
use super::extract::AppJson;
use crate::domain::rollbacks;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v2/devices/{id}/rollback",
        post(order_rollback).get(list_rollbacks),
    )
}
/// Order a device to roll back to its previous image (operator). The order is carried out
/// once and closed by the device's report.
#[utoipa::path(post, path = "/api/v2/devices/{id}/rollback", tag = "devices",
    security(("bearer" = [])), params(DeviceId), request_body = RollbackRequest,
    responses(
        (status = 201, description = "Order opened; the device gets it at its next check-in",
            body = RollbackOrder),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound),
        (status = 409, description = "An order for this device is still open (`conflict`)",
            body = crate::error::ErrorBody),
        (status = 413, response = doc::PayloadTooLarge)))]
pub(crate) async fn order_rollback(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    AppJson(req): AppJson<RollbackRequest>,
) -> AppResult<(StatusCode, Json<RollbackOrder>)> {
    op.require(Duty::Release)?;
    // An order without a reason leaves the history unexplained.
    if req.reason.is_empty() {
        return Err(AppError::bad_request(
            "invalid_reason",
            "reason must not be empty",
        ));
    }
    rollbacks::check_reason(&req.reason)?;
    let order = rollbacks::open(&state, op.actor(), &id, req.reason, Protocol::V2).await?;
    Ok((StatusCode::CREATED, Json(order)))
}

/// A device's rollback orders, newest first (viewer).
#[utoipa::path(get, path = "/api/v2/devices/{id}/rollback", tag = "devices",
    security(("bearer" = [])), params(DeviceId),
    responses(
        (status = 200, description = "Orders, newest first", body = [RollbackOrder]),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 404, response = doc::NotFound)))]
pub(crate) async fn list_rollbacks(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> AppResult<Json<Vec<RollbackOrder>>> {
    op.require(Duty::Read)?;
    get_device(&state, &id).await?;
    Ok(Json(state.store().list_rollback_orders(&id).await?))
}
