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
//! Legacy mode is insecure by construction (one fleet-wide key); see the README.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fota_api::{AuditEntry, Protocol, Role};
use serde::Deserialize;

use crate::api::operator::{check_reason, new_order};
use crate::auth::{ClientIp, Operator};
use crate::error::{AppError, AppJson, AppQuery, AppResult, doc, parse_json};
use crate::legacy_guard::{self, Admission, NotRecorded};
use crate::state::AppState;
use crate::store::{
    LegacyRelease, LegacyStatus, LegacyStatusOutcome, Progress, Report, Seen, now_ms,
};
use crate::trust::LegacyKey;

/// Path of the manifest endpoint (part of the replay MAC input).
pub const MANIFEST_PATH: &str = "/api/inverter/fota/manifest";
/// Path of the rollback-status endpoint (part of the replay MAC input).
pub const ROLLBACK_STATUS_PATH: &str = "/api/inverter/fota/rollback-status";
const CHUNK_PATH: &str = fota_protocol::legacy::paths::CHUNK;
const STATUS_PATH: &str = fota_protocol::legacy::paths::STATUS;
const ROLLBACK_PATH: &str = fota_protocol::legacy::paths::ROLLBACK;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(MANIFEST_PATH, get(manifest))
        .route(CHUNK_PATH, get(chunk))
        .route(STATUS_PATH, post(status))
        .route(ROLLBACK_PATH, post(rollback))
        .route(ROLLBACK_STATUS_PATH, get(rollback_status))
}

pub(crate) fn upload_routes() -> Router<AppState> {
    Router::new().route("/api/cloud/fota/upload", post(upload))
}

fn legacy(state: &AppState) -> AppResult<&LegacyKey> {
    state
        .0
        .legacy
        .as_ref()
        .ok_or_else(|| AppError::Unavailable {
            code: "legacy_disabled",
            message: "the legacy (seed) API is off; configure FOTA_LEGACY_PSK or --legacy-psk-file"
                .into(),
        })
}

fn check_device_id(id: &str) -> AppResult<()> {
    if fota_api::name::is_valid(id) {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "invalid_device_id",
            format!("device_id must be {}", fota_api::name::RULE),
        ))
    }
}

/// The optional `device_id` every device endpoint accepts.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    /// The device naming itself (recorded as a check-in): 1-64 of `A-Za-z0-9._-`.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub device_id: Option<String>,
}

// The seed's records, for the OpenAPI document only: the server reads and writes them through
// fota-protocol's `legacy::json` types (or, for status reports, as any JSON object).

/// `POST /api/cloud/fota/upload` body.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct LegacyUpload {
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
#[allow(dead_code)]
pub struct LegacyUploadAnswer {
    /// Always `true`.
    success: bool,
    /// ceil(size / chunk_size).
    #[schema(minimum = 1)]
    total_chunks: u64,
}

/// The newest upload, with replay protection (`nonce`, `mac`).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct LegacyManifest {
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
#[allow(dead_code)]
pub struct LegacyChunk {
    /// Index of the chunk.
    chunk_number: u64,
    /// The chunk's bytes, padded standard base64.
    #[schema(content_encoding = "base64")]
    data: String,
    /// Lowercase hex HMAC-SHA256(PSK, chunk bytes).
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
#[allow(dead_code)]
pub struct LegacyStatusReport {
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
#[allow(dead_code)]
pub struct LegacyStatusAnswer {
    /// Always `true`.
    success: bool,
    /// The rollback order this report closed, if any.
    rollback_closed: Option<String>,
}

/// Answer to a rollback order.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct LegacyRollbackAnswer {
    /// Always `true`.
    success: bool,
    /// The order's id (decimal).
    order_id: String,
}

/// Whether a device must roll back, with replay protection (`nonce`, `mac`).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct LegacyRollbackStatus {
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

/// Checks the id a request names and decides what the request may do with it
/// ([`legacy_guard`]): a v2 device is refused as unknown.
async fn admit(
    state: &AppState,
    id: &str,
    ip: ClientIp,
    route: &'static str,
) -> AppResult<Admission> {
    check_device_id(id)?;
    legacy_guard::admit(state, id, ip.0, route).await
}

/// Notes a contact of an admitted device for the next batch (nothing for one answered
/// unrecorded).
fn note_seen(state: &AppState, id: &str, admission: Admission, progress: Option<(i64, i64)>) {
    if admission == Admission::NotRecorded {
        return;
    }
    let at = now_ms();
    state.0.seen.note(Seen {
        device_id: id.to_owned(),
        at,
        protocol: Protocol::Legacy,
        progress: progress.map(|(done, total)| Progress { done, total, at }),
        create: admission == Admission::New,
    });
}

async fn latest(state: &AppState) -> AppResult<LegacyRelease> {
    state
        .store()
        .latest_legacy_release()
        .await?
        .ok_or_else(|| AppError::NotFound("no firmware available".into()))
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
        (status = 403, response = doc::Forbidden),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 503, response = doc::LegacyUnavailable)))]
pub(crate) async fn upload(
    State(state): State<AppState>,
    op: Operator,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Json<serde_json::Value>> {
    op.require(Role::Operator)?;
    legacy(&state)?;
    let body = body?;
    let upload = crate::legacy_proto::validate_upload(&body)?;
    drop(body);
    let max = state.config().limits.max_release_bytes;
    if upload.image.len() as u64 > max {
        return Err(AppError::PayloadTooLarge(format!(
            "firmware larger than {max} bytes"
        )));
    }
    let mut writer = state.blobs().create().await.map_err(AppError::internal)?;
    writer
        .write(&upload.image)
        .await
        .map_err(AppError::internal)?;
    let blob = writer.finish().await.map_err(AppError::internal)?;
    if blob.sha256() != upload.sha256 {
        return Err(AppError::internal("stored legacy image hash differs"));
    }
    blob.publish().await.map_err(AppError::internal)?;
    let release = LegacyRelease {
        id: 0,
        version: upload.version.clone(),
        size: upload.image.len() as i64,
        sha256: upload.sha256.clone(),
        chunk_size: upload.chunk_size,
        total_chunks: upload.total_chunks,
        created_at: now_ms(),
        created_by: op.actor(),
    };
    let entry = AuditEntry {
        actor: op.actor(),
        action: "legacy.upload".into(),
        target: format!("legacy:{}", release.version),
        detail: serde_json::json!({
            "version": release.version, "size": release.size, "sha256": release.sha256,
            "chunk_size": release.chunk_size,
        }),
    };
    state
        .store()
        .create_legacy_release(&release, &entry)
        .await?;
    state.0.hot.invalidate();
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
        (status = 503, response = doc::LegacyUnavailable)))]
pub(crate) async fn manifest(
    State(state): State<AppState>,
    ip: ClientIp,
    AppQuery(q): AppQuery<DeviceQuery>,
) -> AppResult<Response> {
    let key = legacy(&state)?;
    if let Some(id) = q.device_id.as_deref() {
        let admission = admit(&state, id, ip, MANIFEST_PATH).await?;
        note_seen(&state, id, admission, None);
    }
    let release = latest(&state).await?;
    let nonce = state.store().next_counter("legacy_nonce").await?;
    let device_id = q.device_id.as_deref().unwrap_or("");
    let body = crate::legacy_proto::manifest_answer(key, &release, nonce, device_id)?;
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
        (status = 503, response = doc::LegacyUnavailable)))]
pub(crate) async fn chunk(
    State(state): State<AppState>,
    ip: ClientIp,
    AppQuery(params): AppQuery<HashMap<String, String>>,
) -> AppResult<Response> {
    let key = legacy(&state)?;
    let n = chunk_number(&params)?;
    let device = match params.get("device_id") {
        Some(id) => Some((id, admit(&state, id, ip, CHUNK_PATH).await?)),
        None => None,
    };
    // The newest upload, reused for up to a second: chunks of an immutable upload are what a
    // device downloads in bulk (the manifest always reads the store).
    let release = match state.0.hot.legacy_latest() {
        Some(cached) => cached,
        None => {
            let fresh = state.store().latest_legacy_release().await?;
            state.0.hot.set_legacy_latest(fresh.clone());
            fresh
        }
    }
    .ok_or_else(|| AppError::NotFound("no firmware available".into()))?;
    let total = u64::try_from(release.total_chunks).unwrap_or(0);
    if n >= total {
        return Err(AppError::NotFound(format!(
            "chunk {n} out of range (total_chunks {total})"
        )));
    }
    let chunk_size = u64::try_from(release.chunk_size).unwrap_or(1);
    let size = u64::try_from(release.size).unwrap_or(0);
    let offset = n * chunk_size;
    let len = chunk_size.min(size - offset);
    if let Some((id, admission)) = device {
        let done = i64::try_from(offset + len).unwrap_or(i64::MAX);
        note_seen(&state, id, admission, Some((done, release.size)));
    }
    ::metrics::counter!("fota_legacy_chunks_total").increment(1);
    if let Some(body) = state.0.chunk_cache.get((release.id, n)) {
        return Ok(json_bytes(body));
    }
    let data = state
        .blobs()
        .read_at(&release.sha256, offset, usize::try_from(len).unwrap_or(0))
        .await
        .map_err(AppError::internal)?;
    let body = Bytes::from(crate::legacy_proto::chunk_answer(key, n, &data)?);
    state.0.chunk_cache.insert((release.id, n), body.clone());
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
        (status = 503, response = doc::LegacyUnavailable)))]
pub(crate) async fn status(
    State(state): State<AppState>,
    ip: ClientIp,
    AppQuery(q): AppQuery<DeviceQuery>,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Json<serde_json::Value>> {
    legacy(&state)?;
    let body = body?;
    let value: serde_json::Value = parse_json(&body)?;
    let serde_json::Value::Object(obj) = &value else {
        return Err(AppError::bad_request(
            "invalid_json",
            "status body must be a JSON object",
        ));
    };
    let text = |k: &str| -> AppResult<Option<String>> {
        match obj.get(k) {
            None | Some(serde_json::Value::Null) => Ok(None),
            // Characters, as the document's maxLength counts them.
            Some(serde_json::Value::String(s)) if s.chars().count() <= 512 => Ok(Some(s.clone())),
            Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
            Some(serde_json::Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(AppError::bad_request(
                "invalid_field",
                format!("{k} must be a short string"),
            )),
        }
    };
    // Unlike the status words, an id is only ever a string: `5` and `"5"` must not name the
    // same device.
    let device_id = match obj.get("device_id") {
        None | Some(serde_json::Value::Null) => q.device_id,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(AppError::bad_request(
                "invalid_field",
                "device_id must be a string",
            ));
        }
    }
    .ok_or_else(|| AppError::bad_request("missing_field", "device_id is required"))?;
    let status = text("status")?.unwrap_or_else(|| "reported".into());
    let report = Report {
        fw_version: text("version")?,
        last_result: Some(status.clone()),
        ..Report::default()
    };
    let create_under = match admit(&state, &device_id, ip, STATUS_PATH).await? {
        Admission::Known => None,
        Admission::New => Some(state.config().legacy.max_devices),
        Admission::NotRecorded => return Ok(Json(serde_json::json!({ "success": true }))),
    };
    let outcome = state
        .store()
        .legacy_status(
            &LegacyStatus {
                device_id: device_id.clone(),
                report,
                status,
                detail: value,
                at: now_ms(),
            },
            create_under,
        )
        .await?;
    let mut answer = serde_json::json!({ "success": true });
    match outcome {
        LegacyStatusOutcome::Recorded { closed } => {
            if let Some(order) = closed {
                answer["rollback_closed"] = serde_json::Value::String(order.id);
            }
        }
        // Provisioned for v2 since the look-up: the store refused to touch it.
        LegacyStatusOutcome::V2Device => {
            state.0.hot.invalidate();
            return Err(
                legacy_guard::refuse_v2_device(&state, &device_id, ip.0, STATUS_PATH).await,
            );
        }
        LegacyStatusOutcome::NotRecorded => {
            if create_under.is_some() {
                legacy_guard::not_recorded(&state, &device_id, ip.0, NotRecorded::MaxDevices).await;
            }
        }
    }
    Ok(Json(answer))
}

/// A seed rollback order.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LegacyRollback {
    /// Device: 1-64 of `A-Za-z0-9._-` (a device not seen yet is created as a legacy device).
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub device_id: String,
    /// Why, shown to the device: at most 512 characters (the seed's scripts may leave it out).
    #[serde(default)]
    #[schema(max_length = 512)]
    pub reason: String,
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
    op.require(Role::Operator)?;
    legacy(&state)?;
    check_device_id(&req.device_id)?;
    check_reason(&req.reason)?;
    if state
        .store()
        .device_protocol(&req.device_id)
        .await?
        .is_some_and(|p| p != Protocol::Legacy)
    {
        legacy_guard::refuse_v2_device(&state, &req.device_id, ip.0, ROLLBACK_PATH).await;
        return Err(AppError::UnknownDevice(format!(
            "no legacy device {:?}: v2 devices take rollback orders at \
             POST /api/v2/devices/{{id}}/rollback (`fota rollback`)",
            req.device_id
        )));
    }
    let order = new_order(&state, &op, &req.device_id, req.reason).await?;
    let entry = AuditEntry {
        actor: op.actor(),
        action: "rollback.order".into(),
        target: format!("device:{}", order.device_id),
        detail: serde_json::json!({ "order": order.id, "reason": order.reason, "legacy": true }),
    };
    state
        .store()
        .create_rollback_order(&order, true, &entry)
        .await?;
    // The order may have created the device: forget a cached "unknown".
    state.0.hot.invalidate();
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
        (status = 503, response = doc::LegacyUnavailable)))]
pub(crate) async fn rollback_status(
    State(state): State<AppState>,
    ip: ClientIp,
    AppQuery(q): AppQuery<DeviceQuery>,
) -> AppResult<Response> {
    let key = legacy(&state)?;
    let device_id = q
        .device_id
        .ok_or_else(|| AppError::bad_request("missing_parameter", "device_id is required"))?;
    let admission = admit(&state, &device_id, ip, ROLLBACK_STATUS_PATH).await?;
    note_seen(&state, &device_id, admission, None);
    // Read whatever the look-up said: an operator's order may have created the device since.
    let order = state
        .store()
        .deliver_legacy_rollback_order(&device_id, now_ms())
        .await?;
    let nonce = state.store().next_counter("legacy_nonce").await?;
    let reason = order.as_ref().map(|o| o.reason.as_str());
    let body = crate::legacy_proto::rollback_status_answer(key, reason, nonce, &device_id)?;
    Ok(json_bytes(body))
}
