//! Devices (`/api/v2/devices`): v2 provisioning, listing, credentials (revoke, rotate),
//! deletion, and each device's event history.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use fota_api::{Device, DeviceEvent, Duty, NewDeviceRequest, Provisioning};
use fota_protocol::v2;
use serde::Deserialize;

use super::auth::Operator;
use super::doc::{self, DeviceId};
use super::extract::{AppJson, AppQuery, ClassFilter, Page, check_name, v2_trust};
use crate::clock::now_ms;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::NewDevice;
use crate::tokens::{self, TokenKind};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/devices", post(create_device).get(list_devices))
        .route(
            "/api/v2/devices/{id}",
            get(show_device).delete(delete_device),
        )
        .route("/api/v2/devices/{id}/revoke", post(revoke_device))
        .route("/api/v2/devices/{id}/rotate", post(rotate_device))
        .route("/api/v2/devices/{id}/events", get(device_events))
}

fn provisioning(
    state: &AppState,
    device_id: &str,
    class: &str,
    token: &tokens::Secret,
) -> AppResult<Provisioning> {
    let trust = v2_trust(state)?;
    let vendor = trust.vendor_id();
    Ok(Provisioning {
        device_id: device_id.to_owned(),
        token: token.expose().to_owned(),
        vendor_id: vendor,
        class_id: v2::ids::class_id(&vendor, class),
        root: trust.root_bytes(),
        class: Some(class.to_owned()),
        device_uuid: v2::ids::device_uuid(&vendor, device_id),
    })
}

/// Provision a v2 device (provisioner). Answers its provisioning file.
#[utoipa::path(post, path = "/api/v2/devices", tag = "devices", security(("bearer" = [])),
    request_body = NewDeviceRequest,
    responses(
        (status = 201, description = "Provisioned; the file holds the only copy of its token",
            body = Provisioning),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 403, response = doc::Forbidden),
        (status = 409, description = "A v2 device of this id exists (`conflict`)",
            body = crate::error::ErrorBody),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 503, response = doc::V2Unavailable)))]
pub(crate) async fn create_device(
    State(state): State<AppState>,
    op: Operator,
    AppJson(req): AppJson<NewDeviceRequest>,
) -> AppResult<(StatusCode, Json<Provisioning>)> {
    op.require(Duty::Provision)?;
    check_name("device id", &req.id)?;
    check_name("class", &req.class)?;
    let secret = tokens::generate(TokenKind::Device);
    let prov = provisioning(&state, &req.id, &req.class, &secret)?;
    let device = NewDevice {
        id: req.id.clone(),
        uuid: prov.device_uuid.to_string(),
        class: req.class.clone(),
        digest: secret.digest().0,
        created_at: now_ms(),
    };
    let entry = op.audit(
        "device.create",
        format!("device:{}", req.id),
        serde_json::json!({ "class": req.class }),
    );
    state.store().create_device(&device, &entry).await?;
    // A legacy device just converted to v2 must stop being served as legacy at once.
    state.hot().invalidate();
    Ok((StatusCode::CREATED, Json(prov)))
}

/// List devices with version, state, last seen and progress (viewer).
#[utoipa::path(get, path = "/api/v2/devices", tag = "devices", security(("bearer" = [])),
    params(ClassFilter),
    responses(
        (status = 200, description = "Devices (v2 and legacy), by id", body = [Device]),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures)))]
pub(crate) async fn list_devices(
    State(state): State<AppState>,
    op: Operator,
    AppQuery(filter): AppQuery<ClassFilter>,
) -> AppResult<Json<Vec<Device>>> {
    op.require(Duty::Read)?;
    Ok(Json(
        state.store().list_devices(filter.class.as_deref()).await?,
    ))
}

pub(crate) async fn get_device(state: &AppState, id: &str) -> AppResult<Device> {
    state
        .store()
        .device(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no device {id:?}")))
}

/// Show one device (viewer).
#[utoipa::path(get, path = "/api/v2/devices/{id}", tag = "devices", security(("bearer" = [])),
    params(DeviceId),
    responses(
        (status = 200, description = "The device", body = Device),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 404, response = doc::NotFound)))]
pub(crate) async fn show_device(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> AppResult<Json<Device>> {
    op.require(Duty::Read)?;
    Ok(Json(get_device(&state, &id).await?))
}

/// Remove a device of either protocol with its events, check-ins and rollback orders
/// (provisioner). The audit log keeps the deletion.
#[utoipa::path(delete, path = "/api/v2/devices/{id}", tag = "devices",
    security(("bearer" = [])), params(DeviceId),
    responses(
        (status = 204, description = "Deleted, with its history"),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound)))]
pub(crate) async fn delete_device(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    op.require(Duty::Provision)?;
    let device = get_device(&state, &id).await?;
    let entry = op.audit(
        "device.delete",
        format!("device:{id}"),
        serde_json::json!({ "protocol": device.protocol, "class": device.class }),
    );
    state.store().delete_device(&id, &entry).await?;
    state.hot().invalidate();
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke a device's credential (provisioner); its requests then get 401.
#[utoipa::path(post, path = "/api/v2/devices/{id}/revoke", tag = "devices",
    security(("bearer" = [])), params(DeviceId),
    responses(
        (status = 204, description = "Revoked; the device's requests now get 401"),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 403, response = doc::Forbidden),
        (status = 404, description = "No v2 device of this id with an active credential \
            (`not_found`)",
            body = crate::error::ErrorBody)))]
pub(crate) async fn revoke_device(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    op.require(Duty::Provision)?;
    let entry = op.audit(
        "device.revoke",
        format!("device:{id}"),
        serde_json::json!({}),
    );
    state.store().revoke_device(&id, now_ms(), &entry).await?;
    state.hot().invalidate();
    Ok(StatusCode::NO_CONTENT)
}

/// Options of a credential rotation.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateQuery {
    /// Also lift a revocation (default false: a revoked device is refused with 409).
    pub(crate) reactivate: Option<bool>,
}

/// Issue a new credential for a device (provisioner); the old one stops working at once. A
/// revoked device stays revoked (409 `device_revoked`) unless `reactivate=true`: a rotation
/// must not quietly undo a revocation.
#[utoipa::path(post, path = "/api/v2/devices/{id}/rotate", tag = "devices",
    security(("bearer" = [])), params(DeviceId, RotateQuery),
    responses(
        (status = 200, description = "The new provisioning file; the old token no longer works",
            body = Provisioning),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 403, response = doc::Forbidden),
        (status = 404, description = "No device of this id, or not a v2 device (`not_found`)",
            body = crate::error::ErrorBody),
        (status = 409, description = "The device is revoked (`device_revoked`); \
            `reactivate=true` lifts the revocation", body = crate::error::ErrorBody),
        (status = 503, response = doc::V2Unavailable)))]
pub(crate) async fn rotate_device(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    AppQuery(query): AppQuery<RotateQuery>,
) -> AppResult<Json<Provisioning>> {
    op.require(Duty::Provision)?;
    let reactivate = query.reactivate.unwrap_or(false);
    let device = get_device(&state, &id).await?;
    let class = device
        .class
        .ok_or_else(|| AppError::NotFound(format!("{id:?} is not a v2 device")))?;
    let secret = tokens::generate(TokenKind::Device);
    let prov = provisioning(&state, &id, &class, &secret)?;
    let entry = op.audit(
        "device.rotate",
        format!("device:{id}"),
        serde_json::json!({ "reactivated": reactivate && device.revoked_at.is_some() }),
    );
    // The store decides on the revocation in the same transaction as the update, so a revoke
    // that lands between the read above and this write is not undone either.
    state
        .store()
        .set_device_token(&id, &secret.digest().0, reactivate, &entry)
        .await?;
    state.hot().invalidate();
    Ok(Json(prov))
}

/// A device's event history, newest first (viewer).
#[utoipa::path(get, path = "/api/v2/devices/{id}/events", tag = "devices",
    security(("bearer" = [])), params(DeviceId, Page),
    responses(
        (status = 200, description = "Events, newest first", body = [DeviceEvent]),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 404, response = doc::NotFound)))]
pub(crate) async fn device_events(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    AppQuery(page): AppQuery<Page>,
) -> AppResult<Json<Vec<DeviceEvent>>> {
    op.require(Duty::Read)?;
    // A malformed query is a 400 whether or not the device exists.
    let (before, limit) = (page.before()?, page.limit()?);
    get_device(&state, &id).await?;
    Ok(Json(state.store().list_events(&id, before, limit).await?))
}
