//! Operator API under `/api/v2`: tokens, devices, releases, assignments, rollbacks, audit.

use axum::Json;
use axum::Router;
use axum::extract::{Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fota_api::{
    ApiToken, AssignRequest, AssignResponse, AuditEntry, AuditRecord, Device, DeviceEvent,
    NewDeviceRequest, NewTokenRequest, NewTokenResponse, Provisioning, Release, Role,
    RollbackOrder, RollbackRequest,
};
use serde::Deserialize;

use crate::auth::Operator;
use crate::error::{AppError, AppJson, AppQuery, AppResult, body_rejection, doc};
use crate::state::AppState;
use crate::store::{NewDevice, StoreError, now_ms};
use crate::tokens::{self, TokenKind};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/tokens", post(create_token).get(list_tokens))
        .route("/api/v2/tokens/{id}", axum::routing::delete(revoke_token))
        .route("/api/v2/devices", post(create_device).get(list_devices))
        .route(
            "/api/v2/devices/{id}",
            get(show_device).delete(delete_device),
        )
        .route("/api/v2/devices/{id}/revoke", post(revoke_device))
        .route("/api/v2/devices/{id}/rotate", post(rotate_device))
        .route("/api/v2/devices/{id}/events", get(device_events))
        .route(
            "/api/v2/devices/{id}/rollback",
            post(order_rollback).get(list_rollbacks),
        )
        .route("/api/v2/releases", get(list_releases))
        .route("/api/v2/releases/{id}", get(show_release))
        .route("/api/v2/releases/{id}/manifest", get(release_manifest))
        .route("/api/v2/releases/{id}/assign", post(assign_release))
        .route("/api/v2/audit", get(list_audit))
}

pub(crate) fn upload_routes() -> Router<AppState> {
    Router::new().route("/api/v2/releases", post(create_release))
}

fn check_name(what: &str, s: &str) -> AppResult<()> {
    if fota_api::name::is_valid(s) {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "invalid_name",
            format!("{what} must be {}, not {s:?}", fota_api::name::RULE),
        ))
    }
}

fn audit(op: &Operator, action: &str, target: String, detail: serde_json::Value) -> AuditEntry {
    AuditEntry {
        actor: op.actor(),
        action: action.to_owned(),
        target,
        detail,
    }
}

fn trust(state: &AppState) -> AppResult<&crate::trust::Trust> {
    state.trust().ok_or_else(|| AppError::Unavailable {
        code: "v2_not_configured",
        message: "this server has no root record and status key; start it with --root \
                  K/root.bin --status-key K/status.key (see `fota keys init`)"
            .into(),
    })
}

// ---------------------------------------------------------------- tokens

/// Create an operator token (admin).
#[utoipa::path(post, path = "/api/v2/tokens", tag = "tokens", security(("bearer" = [])),
    request_body = NewTokenRequest,
    responses(
        (status = 201, description = "Token made; its secret is shown only in this answer",
            body = NewTokenResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 413, response = doc::PayloadTooLarge)))]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    op: Operator,
    AppJson(req): AppJson<NewTokenRequest>,
) -> AppResult<(StatusCode, Json<NewTokenResponse>)> {
    op.require(Role::Admin)?;
    // Characters, not bytes: the document's maxLength counts characters.
    if req.name.trim().is_empty() || req.name.chars().count() > 128 {
        return Err(AppError::bad_request(
            "invalid_name",
            "name must be 1-128 characters",
        ));
    }
    let secret = tokens::generate(TokenKind::Operator);
    let token = ApiToken {
        id: uuid::Uuid::new_v4().simple().to_string(),
        name: req.name,
        role: req.role,
        created_at: now_ms(),
        created_by: op.actor(),
        revoked_at: None,
    };
    let entry = audit(
        &op,
        "token.create",
        format!("token:{}", token.id),
        serde_json::json!({ "name": token.name, "role": token.role }),
    );
    state
        .store()
        .create_api_token(&token, &secret.digest().0, &entry)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewTokenResponse {
            id: token.id,
            name: token.name,
            role: token.role,
            token: secret.expose().to_owned(),
        }),
    ))
}

/// List operator tokens (admin). Secrets are never listed.
#[utoipa::path(get, path = "/api/v2/tokens", tag = "tokens", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every token, revoked ones included (never a secret)",
            body = [ApiToken]),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden)))]
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    op: Operator,
) -> AppResult<Json<Vec<ApiToken>>> {
    op.require(Role::Admin)?;
    Ok(Json(state.store().list_api_tokens().await?))
}

/// Revoke an operator token (admin). The last active admin token cannot be revoked (409
/// `last_admin_token`): make another admin token first.
#[utoipa::path(delete, path = "/api/v2/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "Token id (`bootstrap` or 32 hex digits)",
        pattern = r"^(bootstrap|[0-9a-f]{32})$")),
    responses(
        (status = 204, description = "Revoked; requests with it now get 401"),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, description = "No active token of this id (`not_found`)",
            body = crate::error::ErrorBody),
        (status = 409, description = "The last active admin token (`last_admin_token`): make \
            another admin token first", body = crate::error::ErrorBody)))]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    op.require(Role::Admin)?;
    let entry = audit(
        &op,
        "token.revoke",
        format!("token:{id}"),
        serde_json::json!({}),
    );
    state
        .store()
        .revoke_api_token(&id, now_ms(), &entry)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- devices

/// The device named in the path.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct DeviceId {
    /// Device name (1-64 of `A-Za-z0-9._-`).
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    id: String,
}

/// The release named in the path.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct ReleaseId {
    /// Release id: the first 16 hex digits of its manifest digest.
    #[param(pattern = r"^[0-9a-f]{16}$")]
    id: String,
}

fn provisioning(
    state: &AppState,
    device_id: &str,
    class: &str,
    token: &tokens::Secret,
) -> AppResult<Provisioning> {
    let trust = trust(state)?;
    let vendor = trust.vendor_id();
    Ok(Provisioning {
        device_id: device_id.to_owned(),
        token: token.expose().to_owned(),
        vendor_id: vendor,
        class_id: crate::v2::class_id(vendor, class),
        root: trust.root_bytes().to_vec(),
        class: Some(class.to_owned()),
        device_uuid: crate::v2::device_uuid(vendor, device_id),
    })
}

/// Provision a v2 device (operator). Answers its provisioning file.
#[utoipa::path(post, path = "/api/v2/devices", tag = "devices", security(("bearer" = [])),
    request_body = NewDeviceRequest,
    responses(
        (status = 201, description = "Provisioned; the file holds the only copy of its token",
            body = Provisioning),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
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
    op.require(Role::Operator)?;
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
    let entry = audit(
        &op,
        "device.create",
        format!("device:{}", req.id),
        serde_json::json!({ "class": req.class }),
    );
    state.store().create_device(&device, &entry).await?;
    // A legacy device just converted to v2 must stop being served as legacy at once.
    state.0.hot.invalidate();
    Ok((StatusCode::CREATED, Json(prov)))
}

/// Filter of device and release listings.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ClassFilter {
    /// Only this class (a name no device or release has lists nothing).
    pub class: Option<String>,
}

/// List devices with version, state, last seen and progress (viewer).
#[utoipa::path(get, path = "/api/v2/devices", tag = "devices", security(("bearer" = [])),
    params(ClassFilter),
    responses(
        (status = 200, description = "Devices (v2 and legacy), by id", body = [Device]),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized)))]
pub(crate) async fn list_devices(
    State(state): State<AppState>,
    op: Operator,
    AppQuery(filter): AppQuery<ClassFilter>,
) -> AppResult<Json<Vec<Device>>> {
    op.require(Role::Viewer)?;
    Ok(Json(
        state.store().list_devices(filter.class.as_deref()).await?,
    ))
}

async fn get_device(state: &AppState, id: &str) -> AppResult<Device> {
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
        (status = 404, response = doc::NotFound)))]
pub(crate) async fn show_device(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> AppResult<Json<Device>> {
    op.require(Role::Viewer)?;
    Ok(Json(get_device(&state, &id).await?))
}

/// Remove a device of either protocol with its events, check-ins and rollback orders
/// (admin). The audit log keeps the deletion.
#[utoipa::path(delete, path = "/api/v2/devices/{id}", tag = "devices",
    security(("bearer" = [])), params(DeviceId),
    responses(
        (status = 204, description = "Deleted, with its history"),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, response = doc::NotFound)))]
pub(crate) async fn delete_device(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    op.require(Role::Admin)?;
    let device = get_device(&state, &id).await?;
    let entry = audit(
        &op,
        "device.delete",
        format!("device:{id}"),
        serde_json::json!({ "protocol": device.protocol, "class": device.class }),
    );
    state.store().delete_device(&id, &entry).await?;
    state.0.hot.invalidate();
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke a device's credential (operator); its requests then get 401.
#[utoipa::path(post, path = "/api/v2/devices/{id}/revoke", tag = "devices",
    security(("bearer" = [])), params(DeviceId),
    responses(
        (status = 204, description = "Revoked; the device's requests now get 401"),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, description = "No v2 device of this id with an active credential \
            (`not_found`)",
            body = crate::error::ErrorBody)))]
pub(crate) async fn revoke_device(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    op.require(Role::Operator)?;
    let entry = audit(
        &op,
        "device.revoke",
        format!("device:{id}"),
        serde_json::json!({}),
    );
    state.store().revoke_device(&id, now_ms(), &entry).await?;
    state.0.hot.invalidate();
    Ok(StatusCode::NO_CONTENT)
}

/// Options of a credential rotation.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RotateQuery {
    /// Also lift a revocation (default false: a revoked device is refused with 409).
    pub reactivate: Option<bool>,
}

/// Issue a new credential for a device (operator); the old one stops working at once. A
/// revoked device stays revoked (409 `device_revoked`) unless `reactivate=true`: a rotation
/// must not quietly undo a revocation.
#[utoipa::path(post, path = "/api/v2/devices/{id}/rotate", tag = "devices",
    security(("bearer" = [])), params(DeviceId, RotateQuery),
    responses(
        (status = 200, description = "The new provisioning file; the old token no longer works",
            body = Provisioning),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
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
    op.require(Role::Operator)?;
    let reactivate = query.reactivate.unwrap_or(false);
    let device = get_device(&state, &id).await?;
    let class = device
        .class
        .ok_or_else(|| AppError::NotFound(format!("{id:?} is not a v2 device")))?;
    let secret = tokens::generate(TokenKind::Device);
    let prov = provisioning(&state, &id, &class, &secret)?;
    let entry = audit(
        &op,
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
    state.0.hot.invalidate();
    Ok(Json(prov))
}

/// Paging of histories: newest first, `before` = the smallest id already seen.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Only records with a smaller id (ids start at 1).
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// At most this many (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<i64>,
}

impl Page {
    fn before(&self) -> AppResult<Option<i64>> {
        match self.before {
            Some(n) if n < 1 => Err(AppError::bad_request(
                "invalid_query",
                format!("before must be at least 1, not {n}"),
            )),
            other => Ok(other),
        }
    }

    fn limit(&self) -> AppResult<i64> {
        match self.limit {
            None => Ok(100),
            Some(n @ 1..=1000) => Ok(n),
            Some(n) => Err(AppError::bad_request(
                "invalid_query",
                format!("limit must be 1-1000, not {n}"),
            )),
        }
    }
}

/// A device's event history, newest first (viewer).
#[utoipa::path(get, path = "/api/v2/devices/{id}/events", tag = "devices",
    security(("bearer" = [])), params(DeviceId, Page),
    responses(
        (status = 200, description = "Events, newest first", body = [DeviceEvent]),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound)))]
pub(crate) async fn device_events(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    AppQuery(page): AppQuery<Page>,
) -> AppResult<Json<Vec<DeviceEvent>>> {
    op.require(Role::Viewer)?;
    // A malformed query is a 400 whether or not the device exists.
    let (before, limit) = (page.before()?, page.limit()?);
    get_device(&state, &id).await?;
    Ok(Json(state.store().list_events(&id, before, limit).await?))
}

/// Longest rollback reason, in characters (as the document's maxLength counts).
const MAX_REASON_CHARS: usize = 512;

pub(crate) fn check_reason(reason: &str) -> AppResult<()> {
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(AppError::bad_request(
            "invalid_reason",
            format!("reason must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(())
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
    op.require(Role::Operator)?;
    // An order without a reason leaves the history unexplained.
    if req.reason.is_empty() {
        return Err(AppError::bad_request(
            "invalid_reason",
            "reason must not be empty",
        ));
    }
    check_reason(&req.reason)?;
    let order = new_order(&state, &op, &id, req.reason).await?;
    let entry = audit(
        &op,
        "rollback.order",
        format!("device:{id}"),
        serde_json::json!({ "order": order.id, "reason": order.reason }),
    );
    state
        .store()
        .create_rollback_order(&order, false, &entry)
        .await?;
    state.0.hot.invalidate();
    Ok((StatusCode::CREATED, Json(order)))
}

/// A new order; its id is a number from a persisted counter, because devices acknowledge
/// orders by a u64 id in their binary records.
pub(crate) async fn new_order(
    state: &AppState,
    op: &Operator,
    device_id: &str,
    reason: String,
) -> AppResult<RollbackOrder> {
    let id = state.store().next_counter("rollback_order").await?;
    Ok(RollbackOrder {
        id: id.to_string(),
        device_id: device_id.to_owned(),
        reason,
        created_at: now_ms(),
        created_by: op.actor(),
        delivered_at: None,
        closed_at: None,
        outcome: None,
    })
}

/// A device's rollback orders, newest first (viewer).
#[utoipa::path(get, path = "/api/v2/devices/{id}/rollback", tag = "devices",
    security(("bearer" = [])), params(DeviceId),
    responses(
        (status = 200, description = "Orders, newest first", body = [RollbackOrder]),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound)))]
pub(crate) async fn list_rollbacks(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> AppResult<Json<Vec<RollbackOrder>>> {
    op.require(Role::Viewer)?;
    get_device(&state, &id).await?;
    Ok(Json(state.store().list_rollback_orders(&id).await?))
}

// ---------------------------------------------------------------- releases

/// Multipart body of a release upload (`multipart/form-data`, parts in this order).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ReleaseUpload {
    /// Optional class name; must match the manifest's class id. Without it the class is
    /// looked up among known classes (of provisioned devices and earlier releases).
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    class: Option<String>,
    /// The signed manifest envelope (binary).
    #[schema(format = Binary, value_type = String)]
    manifest: Vec<u8>,
    /// The chunk hash list `FHL1` (binary).
    #[schema(format = Binary, value_type = String)]
    hashlist: Vec<u8>,
    /// The ESP32 app image (binary), streamed to storage.
    #[schema(format = Binary, value_type = String)]
    image: Vec<u8>,
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> AppError {
    body_rejection(e.status(), e.body_text())
}

async fn read_small_field(
    field: &mut axum::extract::multipart::Field<'_>,
    max: usize,
    what: &str,
) -> AppResult<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if out.len() + chunk.len() > max {
            return Err(AppError::PayloadTooLarge(format!(
                "{what} larger than {max} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Upload a signed release (operator): multipart parts `class` (optional, text), `manifest`,
/// `hashlist`, `image`. The server checks the signatures against its root record (release role
/// threshold), the vendor and class, the image's size and SHA-256, the hash list against the
/// manifest and the image's chunks, the ESP image format and that its app descriptor's
/// version and project equal the manifest's, and that the sequence is above the class's
/// highest. Any mismatch is a 4xx and leaves nothing behind. Uploading a release the server
/// already holds (the same signed manifest, after the same checks) answers 200 with the
/// stored release and changes nothing, so an interrupted or repeated upload can simply be
/// run again.
#[utoipa::path(post, path = "/api/v2/releases", tag = "releases", security(("bearer" = [])),
    request_body(content = ReleaseUpload, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Verified and stored", body = Release),
        (status = 200, description = "This very release (same signed manifest) is already \
            stored: nothing changed", body = Release),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 409, description = "The sequence is not above the class's highest, or the \
            version exists in the class (`conflict`)", body = crate::error::ErrorBody),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 422, description = "A signature, hash, size, image format, app descriptor \
            or class that does not check out (`invalid_manifest`, `image_hash_mismatch`, \
            `unknown_class`, ...)", body = crate::error::ErrorBody),
        (status = 503, response = doc::V2Unavailable)))]
pub(crate) async fn create_release(
    State(state): State<AppState>,
    op: Operator,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> AppResult<(StatusCode, Json<Release>)> {
    op.require(Role::Operator)?;
    let trust = trust(&state)?;
    let mut multipart =
        multipart.map_err(|e| AppError::bad_request("invalid_multipart", e.body_text()))?;
    let max = state.config().limits.max_release_bytes;
    let mut class = None;
    let mut manifest = None;
    let mut hashlist = None;
    let mut image = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "class" => {
                let bytes = read_small_field(&mut field, 256, "class").await?;
                class = Some(String::from_utf8(bytes).map_err(|_| {
                    AppError::bad_request("invalid_multipart", "class is not UTF-8")
                })?);
            }
            "manifest" => manifest = Some(read_small_field(&mut field, 4096, "manifest").await?),
            "hashlist" => {
                let limit = usize::try_from(max).unwrap_or(usize::MAX);
                hashlist = Some(read_small_field(&mut field, limit, "hashlist").await?);
            }
            "image" => {
                let mut writer = state.blobs().create().await.map_err(AppError::internal)?;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if writer.written() + chunk.len() as u64 > max {
                        return Err(AppError::PayloadTooLarge(format!(
                            "image larger than {max} bytes"
                        )));
                    }
                    writer.write(&chunk).await.map_err(AppError::internal)?;
                }
                image = Some(writer.finish().await.map_err(AppError::internal)?);
            }
            other => {
                return Err(AppError::bad_request(
                    "invalid_multipart",
                    format!("unexpected part {other:?}; expected class, manifest, hashlist, image"),
                ));
            }
        }
    }
    let missing = |what| AppError::bad_request("missing_part", format!("missing part {what:?}"));
    let manifest = manifest.ok_or_else(|| missing("manifest"))?;
    let hashlist = hashlist.ok_or_else(|| missing("hashlist"))?;
    let image = image.ok_or_else(|| missing("image"))?;
    if let Some(c) = &class {
        check_name("class", c)?;
    }
    let image_bytes = image.read_all().await.map_err(AppError::internal)?;
    let verified = crate::v2::verify_release(trust, &manifest, &hashlist, &image_bytes)?;
    drop(image_bytes);
    if verified.image_sha256 != image.sha256() {
        return Err(AppError::unprocessable(
            "image_mismatch",
            "image SHA-256 differs from the manifest's",
        ));
    }
    // Which class name the manifest's class id stands for.
    let candidates = match class {
        Some(c) => vec![c],
        None => state.store().list_classes().await?,
    };
    let class = candidates
        .into_iter()
        .find(|c| crate::v2::class_id(trust.vendor_id(), c) == verified.class_id)
        .ok_or_else(|| {
            AppError::unprocessable(
                "unknown_class",
                format!(
                    "the manifest's class id {} is not a known class (name it in the `class` part)",
                    verified.class_id
                ),
            )
        })?;
    if let Some(stored) = stored_release(&state, &verified.manifest_digest).await? {
        return Ok((StatusCode::OK, Json(stored)));
    }
    // Hash list blob.
    let mut hl_writer = state.blobs().create().await.map_err(AppError::internal)?;
    hl_writer
        .write(&hashlist)
        .await
        .map_err(AppError::internal)?;
    let hl_blob = hl_writer.finish().await.map_err(AppError::internal)?;
    let release = Release {
        id: verified.manifest_digest[..16].to_owned(),
        class: class.clone(),
        class_id: verified.class_id.to_string(),
        sequence: verified.sequence,
        security_counter: verified.security_counter,
        version: verified.version.clone(),
        project: verified.project.clone(),
        image_sha256: image.sha256().to_owned(),
        image_size: i64::try_from(image.size()).unwrap_or(i64::MAX),
        chunk_size: verified.chunk_size,
        chunk_count: verified.chunk_count,
        hashlist_sha256: hl_blob.sha256().to_owned(),
        hashlist_size: i64::try_from(hl_blob.size()).unwrap_or(i64::MAX),
        manifest_digest: verified.manifest_digest.clone(),
        created_at: now_ms(),
        created_by: op.actor(),
    };
    // Blobs first, then the row: a crash in between leaves only unreferenced blobs, which
    // garbage collection removes; a release row never points at a missing blob.
    image.publish().await.map_err(AppError::internal)?;
    hl_blob.publish().await.map_err(AppError::internal)?;
    let entry = audit(
        &op,
        "release.create",
        format!("release:{}", release.id),
        serde_json::json!({
            "class": release.class, "version": release.version, "sequence": release.sequence,
            "image_sha256": release.image_sha256, "manifest_digest": release.manifest_digest,
        }),
    );
    match state
        .store()
        .create_release(&release, &manifest, &entry)
        .await
    {
        Ok(()) => {}
        // The same manifest stored by a concurrent upload since the check above.
        Err(StoreError::Conflict(message)) => {
            return match stored_release(&state, &release.manifest_digest).await? {
                Some(stored) => Ok((StatusCode::OK, Json(stored))),
                None => Err(AppError::conflict("conflict", message)),
            };
        }
        Err(e) => return Err(e.into()),
    }
    ::metrics::counter!("fota_releases_created_total").increment(1);
    Ok((StatusCode::CREATED, Json(release)))
}

/// The stored release whose signed manifest has the digest `manifest_digest` (hex), if any.
async fn stored_release(state: &AppState, manifest_digest: &str) -> AppResult<Option<Release>> {
    let id = manifest_digest.get(..16).unwrap_or(manifest_digest);
    Ok(state
        .store()
        .release(id)
        .await?
        .filter(|r| r.manifest_digest == manifest_digest))
}

/// List releases, newest first per class (viewer).
#[utoipa::path(get, path = "/api/v2/releases", tag = "releases", security(("bearer" = [])),
    params(ClassFilter),
    responses(
        (status = 200, description = "Releases, newest first per class", body = [Release]),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized)))]
pub(crate) async fn list_releases(
    State(state): State<AppState>,
    op: Operator,
    AppQuery(filter): AppQuery<ClassFilter>,
) -> AppResult<Json<Vec<Release>>> {
    op.require(Role::Viewer)?;
    Ok(Json(
        state.store().list_releases(filter.class.as_deref()).await?,
    ))
}

async fn get_release(state: &AppState, id: &str) -> AppResult<Release> {
    state
        .store()
        .release(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no release {id:?}")))
}

/// Show one release (viewer).
#[utoipa::path(get, path = "/api/v2/releases/{id}", tag = "releases", security(("bearer" = [])),
    params(ReleaseId),
    responses(
        (status = 200, description = "The release", body = Release),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound)))]
pub(crate) async fn show_release(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> AppResult<Json<Release>> {
    op.require(Role::Viewer)?;
    Ok(Json(get_release(&state, &id).await?))
}

/// The signed manifest envelope of a release, as uploaded (viewer).
#[utoipa::path(get, path = "/api/v2/releases/{id}/manifest", tag = "releases",
    security(("bearer" = [])), params(ReleaseId),
    responses(
        (status = 200, description = "The signed manifest envelope, byte for byte",
            content_type = "application/octet-stream", body = inline(crate::api::Binary)),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 404, response = doc::NotFound)))]
pub(crate) async fn release_manifest(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> AppResult<Response> {
    op.require(Role::Viewer)?;
    let manifest = state
        .store()
        .release_manifest(&id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no release {id:?}")))?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        manifest,
    )
        .into_response())
}

/// Assign a release to devices or to its class (operator).
#[utoipa::path(post, path = "/api/v2/releases/{id}/assign", tag = "releases",
    security(("bearer" = [])), params(ReleaseId), request_body = AssignRequest,
    responses(
        (status = 200, description = "Assigned; devices get it at their next check-in",
            body = AssignResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 404, description = "No such release, or a named device does not exist \
            (`not_found`)", body = crate::error::ErrorBody),
        (status = 409, description = "The class is not the release's, or a named device is \
            of another class (`class_mismatch`, `conflict`)", body = crate::error::ErrorBody),
        (status = 413, response = doc::PayloadTooLarge)))]
pub(crate) async fn assign_release(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    AppJson(req): AppJson<AssignRequest>,
) -> AppResult<Json<AssignResponse>> {
    op.require(Role::Operator)?;
    // The release is looked up in the arms, so a malformed body is a 400 whether or not it
    // exists (the store answers 404 for an unknown release in the devices arm).
    match (req.devices, req.class) {
        (Some(devices), None) if !devices.is_empty() && devices.len() <= 10_000 => {
            let entry = audit(
                &op,
                "release.assign",
                format!("release:{id}"),
                serde_json::json!({ "devices": devices }),
            );
            state.store().assign_devices(&id, &devices, &entry).await?;
            state.0.hot.invalidate();
            Ok(Json(AssignResponse {
                release_id: id,
                devices,
                class: None,
            }))
        }
        (None, Some(class)) => {
            let release = get_release(&state, &id).await?;
            if class != release.class {
                return Err(AppError::conflict(
                    "class_mismatch",
                    format!(
                        "release {id} is of class {:?}, not {class:?}",
                        release.class
                    ),
                ));
            }
            let entry = audit(
                &op,
                "release.assign",
                format!("release:{id}"),
                serde_json::json!({ "class": class }),
            );
            state
                .store()
                .assign_class(&class, &id, now_ms(), &entry)
                .await?;
            state.0.hot.invalidate();
            Ok(Json(AssignResponse {
                release_id: id,
                devices: Vec::new(),
                class: Some(class),
            }))
        }
        _ => Err(AppError::bad_request(
            "invalid_assignment",
            "give exactly one of `devices` (1-10000 names) or `class`",
        )),
    }
}

// ---------------------------------------------------------------- audit

/// The audit log, newest first (viewer).
#[utoipa::path(get, path = "/api/v2/audit", tag = "audit", security(("bearer" = [])),
    params(Page),
    responses(
        (status = 200, description = "Audit records, newest first", body = [AuditRecord]),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized)))]
pub(crate) async fn list_audit(
    State(state): State<AppState>,
    op: Operator,
    AppQuery(page): AppQuery<Page>,
) -> AppResult<Json<Vec<AuditRecord>>> {
    op.require(Role::Viewer)?;
    Ok(Json(
        state
            .store()
            .list_audit(page.before()?, page.limit()?)
            .await?,
    ))
}
