//! The seed's Flask API, wire-compatible (DESIGN §4.1), on when a legacy PSK is configured.
//!
//! | method | path | auth | body / query | answer |
//! |---|---|---|---|---|
//! | POST | `/api/cloud/fota/upload` | operator bearer | `{version, size, hash, chunk_size, firmware_data}` | `{success, total_chunks}` |
//! | GET | `/api/inverter/fota/manifest` | – | `device_id`? | `{version, size, hash, chunk_size, total_chunks, nonce, mac}` |
//! | GET | `/api/inverter/fota/chunk` | – | `chunk_number`, `device_id`? | `{chunk_number, data, mac}` |
//! | POST | `/api/inverter/fota/status` | – | any JSON object with `device_id` | `{success}` |
//! | POST | `/api/cloud/fota/rollback` | operator bearer | `{device_id, reason}` | `{success, order_id}` |
//! | GET | `/api/inverter/fota/rollback-status` | – | `device_id` (required) | `{rollback_required, reason, nonce, mac}` |
//!
//! With `legacy.per_device_keys` every device endpoint needs `device_id` and MACs with that
//! device's key (`domain::legacy`).
//!
//! Legacy mode is insecure by construction (one fleet-wide key, no signature on the image):
//! docs/SERVER.md says what it cannot protect against.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fota_api::Duty;
use fota_protocol::legacy::paths;
use serde::Deserialize;

use super::auth::{ClientIp, Operator};
use super::doc;
use super::extract::{AppJson, AppQuery};
use crate::domain::admission::check_device_id;
use crate::domain::{legacy, rollbacks};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::trust::LegacyKey;

/// The seed's operator routes other than the upload (operator token).
pub(crate) fn operator_routes() -> Router<AppState> {
    Router::new().route(paths::ROLLBACK, post(rollback))
}

/// What seed devices call (`/api/inverter/fota/…`): no operator token on any of them, so these
/// alone are served on the plain-HTTP legacy listener.
pub(crate) fn device_routes() -> Router<AppState> {
    Router::new()
        .route(paths::MANIFEST, get(manifest))
        .route(paths::CHUNK, get(chunk))
        .route(paths::STATUS, post(status))
        .route(paths::ROLLBACK_STATUS, get(rollback_status))
}

/// Uploads carry a base64 image: they get their own body limit and no request timeout.
pub(crate) fn upload_routes() -> Router<AppState> {
    Router::new().route(paths::UPLOAD, post(upload))
}

/// The PSK, or the 503 of a server without the legacy API.
fn key(state: &AppState) -> AppResult<&LegacyKey> {
    state.legacy_key().ok_or_else(|| AppError::Unavailable {
        code: "legacy_disabled",
        message: "the legacy (seed) API is off; configure FOTA_LEGACY_PSK or --legacy-psk-file"
            .into(),
    })
}

/// The optional `device_id` every device endpoint accepts.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeviceQuery {
    /// The device naming itself (recorded as a check-in): 1-64 of `A-Za-z0-9._-`.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub(crate) device_id: Option<String>,
}

// The seed's records, for the OpenAPI document only: the server reads and writes them through
// fota-protocol's `legacy::json` types (or, for status reports, as any JSON object).

/// `POST /api/cloud/fota/upload` body.
#[derive(Debug, utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "an OpenAPI schema only: utoipa reads the fields, the handlers never do"
)]
pub(crate) struct LegacyUpload {
    /// Firmware version string: 1-64 bytes of UTF-8.
    #[schema(min_length = 1, max_length = 64)]
    version: String,
    /// Firmware length in bytes; must equal the decoded `firmware_data`'s.
    #[schema(minimum = 1)]
    size: u64,
    /// Lowercase hex SHA-256 of the firmware.
    #[schema(pattern = r"^[0-9a-f]{64}$")]
    hash: String,
    /// Chunk length the devices will fetch.
    #[schema(minimum = 1)]
    chunk_size: u64,
    /// The firmware, padded standard base64.
    #[schema(content_encoding = "base64")]
    firmware_data: String,
}

/// Answer to an accepted upload.
#[derive(Debug, utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "an OpenAPI schema only: utoipa reads the fields, the handlers never do"
)]
pub(crate) struct LegacyUploadAnswer {
    /// Always `true`.
    success: bool,
    /// ceil(size / chunk_size).
    #[schema(minimum = 1)]
    total_chunks: u64,
}

/// The newest upload, with replay protection (`nonce`, `mac`).
#[derive(Debug, utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "an OpenAPI schema only: utoipa reads the fields, the handlers never do"
)]
pub(crate) struct LegacyManifest {
    /// Firmware version string.
    version: String,
    /// Firmware length in bytes.
    size: u64,
    /// Lowercase hex SHA-256 of the firmware.
    #[schema(pattern = r"^[0-9a-f]{64}$")]
    hash: String,
    /// Chunk length.
    chunk_size: u64,
    /// Number of chunks.
    total_chunks: u64,
    /// Server-wide, strictly increasing counter.
    nonce: u64,
    /// Lowercase hex replay MAC over the path, the request's device_id, the fields and the nonce.
    #[schema(pattern = r"^[0-9a-f]{64}$")]
    mac: String,
}

/// One chunk of the newest upload.
#[derive(Debug, utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "an OpenAPI schema only: utoipa reads the fields, the handlers never do"
)]
pub(crate) struct LegacyChunk {
    /// Index of the chunk.
    chunk_number: u64,
    /// The chunk's bytes, padded standard base64.
    #[schema(content_encoding = "base64")]
    data: String,
    /// Lowercase hex HMAC-SHA256(PSK, chunk bytes); with `legacy.per_device_keys` the key
    /// is the named device's, HKDF-SHA256(PSK, "fota-legacy" ‖ device_id).
    #[schema(pattern = r"^[0-9a-f]{64}$")]
    mac: String,
}

/// A status word or version as seed devices send it: a string (at most 512 characters), a
/// number or a boolean (recorded as text), or `null` (absent).
fn lenient_text(description: &str) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .description(Some(description))
        .schema_type(SchemaType::from_iter([
            Type::String,
            Type::Number,
            Type::Boolean,
            Type::Null,
        ]))
        .max_length(Some(512))
        .build()
}

fn status_word() -> utoipa::openapi::schema::Object {
    lenient_text("Status word, e.g. `success`, `failed`, `rolled_back` (default `reported`)")
}

fn running_version() -> utoipa::openapi::schema::Object {
    lenient_text("Firmware version the device runs")
}

/// `POST /api/inverter/fota/status` body: any JSON object naming the device; the fields
/// below are recorded, every other one is kept in the event's detail.
#[derive(Debug, utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "an OpenAPI schema only: utoipa reads the fields, the handlers never do"
)]
pub(crate) struct LegacyStatusReport {
    /// The reporting device, a string (the server also takes it from the `device_id` query
    /// parameter when the body has none).
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    device_id: String,
    #[schema(schema_with = status_word)]
    status: Option<String>,
    #[schema(schema_with = running_version)]
    version: Option<String>,
}

/// Answer to a status report.
#[derive(Debug, utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "an OpenAPI schema only: utoipa reads the fields, the handlers never do"
)]
pub(crate) struct LegacyStatusAnswer {
    /// Always `true`.
    success: bool,
    /// The rollback order this report closed, if any.
    rollback_closed: Option<String>,
}

/// Answer to a rollback order.
#[derive(Debug, utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "an OpenAPI schema only: utoipa reads the fields, the handlers never do"
)]
pub(crate) struct LegacyRollbackAnswer {
    /// Always `true`.
    success: bool,
    /// The order's id (decimal).
    order_id: String,
}

/// Whether a device must roll back, with replay protection (`nonce`, `mac`).
#[derive(Debug, utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "an OpenAPI schema only: utoipa reads the fields, the handlers never do"
)]
pub(crate) struct LegacyRollbackStatus {
    /// Whether an order is open for the device.
    rollback_required: bool,
    /// The order's reason, `null` without an order.
    #[schema(required = true)]
    reason: Option<String>,
    /// Server-wide, strictly increasing counter.
    nonce: u64,
    /// Lowercase hex replay MAC over the path, device_id, rollback_required, reason, nonce.
    #[schema(pattern = r"^[0-9a-f]{64}$")]
    mac: String,
}

/// Seed upload: JSON with the image in padded base64; operator bearer token required. Checks
/// base64, size, hash and chunk_size >= 1 (not the ESP format). A rejected upload changes
/// nothing: the previous one keeps being served.
#[utoipa::path(post, path = "/api/cloud/fota/upload", tag = "legacy",
    security(("bearer" = [])),
    request_body = LegacyUpload,
    responses(
        (status = 200, description = "Stored; it is served from now on", body = LegacyUploadAnswer),
        (status = 400, description = "Malformed, or base64, size, hash or chunk size that do \
            not check out (`invalid_base64`, `size_mismatch`, `hash_mismatch`, ...)",
            body = crate::error::ErrorBody),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 403, response = doc::Forbidden),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 503, response = doc::LegacyUploadUnavailable)))]
pub(crate) async fn upload(
    State(state): State<AppState>,
    op: Operator,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Json<serde_json::Value>> {
    op.require(Duty::Release)?;
    key(&state)?;
    let body = body?;
    let release = legacy::upload(&state, op.actor(), body).await?;
    Ok(Json(serde_json::json!({
        "success": true,
        "total_chunks": release.total_chunks,
    })))
}

/// Seed manifest of the newest legacy upload, with `nonce` and `mac` (replay protection).
#[utoipa::path(get, path = "/api/inverter/fota/manifest", tag = "legacy", params(DeviceQuery),
    responses(
        (status = 200, description = "The newest legacy upload", body = LegacyManifest),
        (status = 400, response = doc::BadRequest),
        (status = 404, description = "Nothing uploaded yet (`not_found`), or the device_id is \
            a v2 device's (`unknown_device`)", body = crate::error::ErrorBody),
        (status = 429, response = doc::LegacyThrottled),
        (status = 503, response = doc::LegacyUnavailable)))]
pub(crate) async fn manifest(
    State(state): State<AppState>,
    ip: ClientIp,
    AppQuery(q): AppQuery<DeviceQuery>,
) -> AppResult<Response> {
    let key = key(&state)?;
    let body = legacy::manifest(&state, key, ip.0, q.device_id.as_deref()).await?;
    Ok(json_bytes(body))
}

fn json_bytes(body: impl Into<Bytes>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.into(),
    )
        .into_response()
}

/// Parses `chunk_number` strictly: non-numeric, negative and huge values are 400s.
fn chunk_number(params: &HashMap<String, String>) -> AppResult<u64> {
    let raw = params
        .get("chunk_number")
        .ok_or_else(|| AppError::bad_request("missing_parameter", "chunk_number is required"))?;
    let raw = raw.trim();
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AppError::bad_request(
            "invalid_chunk_number",
            format!("chunk_number must be a non-negative integer, not {raw:?}"),
        ));
    }
    raw.parse::<u64>()
        .map_err(|_| AppError::bad_request("invalid_chunk_number", "chunk_number is too large"))
}

/// One chunk of the newest legacy upload: `{chunk_number, data (base64), mac (hex
/// HMAC-SHA256(PSK, chunk))}`.
#[utoipa::path(get, path = "/api/inverter/fota/chunk", tag = "legacy",
    params(("chunk_number" = u64, Query, description = "Index of the chunk, from 0"),
        DeviceQuery),
    responses(
        (status = 200, description = "The chunk", body = LegacyChunk),
        (status = 400, response = doc::BadRequest),
        (status = 404, description = "Nothing uploaded yet, or past the last chunk \
            (`not_found`); or the device_id is a v2 device's (`unknown_device`)",
            body = crate::error::ErrorBody),
        (status = 429, response = doc::LegacyThrottled),
        (status = 503, response = doc::LegacyUnavailable)))]
pub(crate) async fn chunk(
    State(state): State<AppState>,
    ip: ClientIp,
    AppQuery(params): AppQuery<HashMap<String, String>>,
) -> AppResult<Response> {
    let key = key(&state)?;
    let n = chunk_number(&params)?;
    let device_id = params.get("device_id").map(String::as_str);
    let body = legacy::chunk(&state, key, ip.0, n, device_id).await?;
    Ok(json_bytes(body))
}

/// Device status report: any JSON object with `device_id`; `status`, `version`, `reason` are
/// recorded, other fields kept in the event detail. Closes a rollback order the device has read.
#[utoipa::path(post, path = "/api/inverter/fota/status", tag = "legacy",
    params(("device_id" = Option<String>, Query, description = "Names the device when the \
        body does not (then 1-64 of `A-Za-z0-9._-`); ignored when it does")),
    request_body = LegacyStatusReport,
    responses(
        (status = 200, description = "Recorded", body = LegacyStatusAnswer),
        (status = 400, response = doc::BadRequest),
        (status = 404, description = "The device_id is a v2 device's (`unknown_device`)",
            body = crate::error::ErrorBody),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 429, response = doc::LegacyThrottled),
        (status = 503, response = doc::LegacyUnavailable)))]
pub(crate) async fn status(
    State(state): State<AppState>,
    ip: ClientIp,
    AppQuery(q): AppQuery<DeviceQuery>,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Json<serde_json::Value>> {
    key(&state)?;
    let body = body?;
    Ok(Json(
        legacy::status(&state, ip.0, q.device_id, &body).await?,
    ))
}

/// A seed rollback order.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct LegacyRollback {
    /// Device: 1-64 of `A-Za-z0-9._-` (a device not seen yet is created as a legacy device).
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub(crate) device_id: String,
    /// Why, shown to the device: at most 512 characters (the seed's scripts may leave it out).
    #[serde(default)]
    #[schema(max_length = 512)]
    pub(crate) reason: String,
}

/// Order a legacy device to roll back (operator bearer token).
#[utoipa::path(post, path = "/api/cloud/fota/rollback", tag = "legacy", security(("bearer" = [])),
    request_body = LegacyRollback,
    responses(
        (status = 200, description = "Order opened; the device reads it at rollback-status",
            body = LegacyRollbackAnswer),
        (status = 400, response = doc::BadRequest),
        (status = 404, description = "The device_id is a v2 device's (`unknown_device`): v2 \
            devices take orders at `/api/v2/devices/{id}/rollback`",
            body = crate::error::ErrorBody),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 403, response = doc::Forbidden),
        (status = 409, description = "An order for this device is still open (`conflict`)",
            body = crate::error::ErrorBody),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 503, response = doc::LegacyUnavailable)))]
pub(crate) async fn rollback(
    State(state): State<AppState>,
    ip: ClientIp,
    op: Operator,
    AppJson(req): AppJson<LegacyRollback>,
) -> AppResult<Json<serde_json::Value>> {
    op.require(Duty::Release)?;
    key(&state)?;
    check_device_id(&req.device_id)?;
    rollbacks::check_reason(&req.reason)?;
    let order =
        legacy::order_rollback(&state, ip.0, op.actor(), &req.device_id, req.reason).await?;
    Ok(Json(
        serde_json::json!({ "success": true, "order_id": order.id }),
    ))
}

/// Whether this device has a pending rollback order; reading it marks it delivered, and the
/// device's next status report closes it.
#[utoipa::path(get, path = "/api/inverter/fota/rollback-status", tag = "legacy",
    params(("device_id" = String, Query, description = "The device asking",
        pattern = r"^[A-Za-z0-9._-]{1,64}$")),
    responses(
        (status = 200, description = "Whether the device must roll back", body = LegacyRollbackStatus),
        (status = 400, response = doc::BadRequest),
        (status = 404, description = "The device_id is a v2 device's (`unknown_device`)",
            body = crate::error::ErrorBody),
        (status = 429, response = doc::LegacyThrottled),
        (status = 503, response = doc::LegacyUnavailable)))]
pub(crate) async fn rollback_status(
    State(state): State<AppState>,
    ip: ClientIp,
    AppQuery(q): AppQuery<DeviceQuery>,
) -> AppResult<Response> {
    let key = key(&state)?;
    let device_id = q
        .device_id
        .ok_or_else(|| AppError::bad_request("missing_parameter", "device_id is required"))?;
    let body = legacy::rollback_status(&state, key, ip.0, &device_id).await?;
    Ok(json_bytes(body))
}
