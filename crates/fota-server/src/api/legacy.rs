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
use serde::Deserialize;

use crate::api::operator::{check_reason, new_order};
use crate::auth::{ClientIp, Operator};
use crate::error::{AppError, AppJson, AppQuery, AppResult, parse_json};
use crate::legacy_guard::{self, Admission, NotRecorded};
use crate::state::AppState;
use crate::store::{
    AuditEntry, LegacyRelease, LegacyStatus, LegacyStatusOutcome, Progress, Report, Role, Seen,
    now_ms,
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
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "invalid_device_id",
            "device_id must be 1-64 characters of A-Z a-z 0-9 . _ -",
        ))
    }
}

/// The optional `device_id` every device endpoint accepts.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DeviceQuery {
    /// The device naming itself (recorded as a check-in).
    pub device_id: Option<String>,
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
        protocol: "legacy",
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
    request_body(content = Object, description = "{version, size, hash, chunk_size, firmware_data}"),
    responses((status = 200, description = "{success: true, total_chunks}"),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody)))]
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
    responses((status = 200, description = "{version, size, hash, chunk_size, total_chunks, nonce, mac}"),
        (status = 404, body = crate::error::ErrorBody)))]
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
    params(("chunk_number" = u64, Query), DeviceQuery),
    responses((status = 200, description = "{chunk_number, data, mac}"),
        (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
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
    request_body(content = Object, description = "{device_id, status?, version?, reason?, ...}"),
    responses((status = 200, description = "{success: true}"),
        (status = 400, body = crate::error::ErrorBody)))]
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
            Some(serde_json::Value::String(s)) if s.len() <= 512 => Ok(Some(s.clone())),
            Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
            Some(serde_json::Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(AppError::bad_request(
                "invalid_field",
                format!("{k} must be a short string"),
            )),
        }
    };
    let device_id = text("device_id")?
        .or(q.device_id)
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
    /// Device.
    pub device_id: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// Order a legacy device to roll back (operator bearer token).
#[utoipa::path(post, path = "/api/cloud/fota/rollback", tag = "legacy", security(("bearer" = [])),
    request_body = LegacyRollback,
    responses((status = 200, description = "{success: true, order_id}"),
        (status = 409, body = crate::error::ErrorBody)))]
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
        .is_some_and(|p| p != "legacy")
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
    params(("device_id" = String, Query)),
    responses((status = 200, description = "{rollback_required, reason, nonce, mac}"),
        (status = 400, body = crate::error::ErrorBody)))]
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
