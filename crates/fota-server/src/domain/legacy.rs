//! The seed's protocol, decided: uploads checked and stored, the newest upload's manifest and
//! chunks, status reports, and whether a device must roll back. The records and their MACs are
//! `fota_protocol::legacy`'s; which device ids a request may touch is [`admission`]'s.
//!
//! Answers are MACed with the fleet's PSK, or with `legacy.per_device_keys` with the key of
//! the device the request names ([`DeviceKey`]): then one key read out of a device forges
//! answers for that device alone.
//!
//! [`admission`]: super::admission

use std::net::IpAddr;

use bytes::Bytes;
use fota_api::{AuditEntry, Protocol, RollbackOrder};
use fota_protocol::legacy::json::{
    ChunkAnswer, ManifestAnswer, RollbackStatusAnswer, UploadRequest,
};
use fota_protocol::legacy::mac::{Hex64, chunk_mac};
use fota_protocol::legacy::{DeviceKey, LegacyError, paths};

use super::admission::{self, Admission, NotRecorded, admit, note_seen};
use super::rollbacks;
use crate::clock::now_ms;
use crate::error::{AppError, AppResult, parse_json};
use crate::state::{AppState, CachedChunk};
use crate::store::{LegacyRelease, LegacyStatus, LegacyStatusOutcome, Report};
use crate::trust::LegacyKey;

/// Checks and stores a seed upload by `actor`; from then on it is the one served. A rejected
/// upload changes nothing.
pub(crate) async fn upload(
    state: &AppState,
    actor: String,
    body: Bytes,
) -> AppResult<LegacyRelease> {
    let upload = validate_upload(&body)?;
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
        created_by: actor.clone(),
    };
    let entry = AuditEntry {
        actor,
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
    state.hot().invalidate();
    Ok(release)
}

/// The key that MACs an answer to a request naming `device_id`.
enum AnswerKey<'a> {
    /// The fleet's PSK.
    Fleet(&'a [u8]),
    /// The named device's own key (`legacy.per_device_keys`).
    Device(DeviceKey),
}

impl AnswerKey<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Fleet(psk) => psk,
            Self::Device(key) => key.as_bytes(),
        }
    }
}

/// The fleet's PSK, or with `legacy.per_device_keys` the key of `device_id`, derived per
/// request (the server holds the master only). Without a `device_id` there is no key to
/// answer with in that mode: a 400 that says so.
fn answer_key<'a>(
    state: &AppState,
    key: &'a LegacyKey,
    device_id: Option<&str>,
) -> AppResult<AnswerKey<'a>> {
    if !state.config().legacy.per_device_keys {
        return Ok(AnswerKey::Fleet(&key.psk));
    }
    let id = device_id.ok_or_else(|| {
        AppError::bad_request(
            "device_id_required",
            "this server MACs legacy answers with per-device keys (legacy.per_device_keys): \
             every request must name its device_id, chunk requests included",
        )
    })?;
    admission::check_device_id(id)?;
    Ok(AnswerKey::Device(DeviceKey::derive(&key.psk, id)))
}

/// The newest upload's manifest, sealed for `device_id` (the empty string when the request
/// names none) with a fresh nonce.
pub(crate) async fn manifest(
    state: &AppState,
    key: &LegacyKey,
    ip: Option<IpAddr>,
    device_id: Option<&str>,
) -> AppResult<Vec<u8>> {
    let key = answer_key(state, key, device_id)?;
    if let Some(id) = device_id {
        let admission = admit(state, id, ip, paths::MANIFEST).await?;
        note_seen(state, id, admission, None);
    }
    let release = state
        .store()
        .latest_legacy_release()
        .await?
        .ok_or_else(|| AppError::NotFound("no firmware available".into()))?;
    let nonce = state.store().next_counter("legacy_nonce").await?;
    manifest_answer(&key, &release, nonce, device_id.unwrap_or(""))
}

/// Chunk `n` of the newest upload, as its JSON answer; a device naming itself has its
/// download progress noted.
pub(crate) async fn chunk(
    state: &AppState,
    key: &LegacyKey,
    ip: Option<IpAddr>,
    n: u64,
    device_id: Option<&str>,
) -> AppResult<Bytes> {
    let key = answer_key(state, key, device_id)?;
    let device = match device_id {
        Some(id) => Some((id, admit(state, id, ip, paths::CHUNK).await?)),
        None => None,
    };
    // The newest upload, reused for up to a second: chunks of an immutable upload are what a
    // device downloads in bulk (the manifest always reads the store).
    let release = match state.hot().legacy_latest() {
        Some(cached) => cached,
        None => {
            let fresh = state.store().latest_legacy_release().await?;
            state.hot().set_legacy_latest(fresh.clone());
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
        note_seen(state, id, admission, Some((done, release.size)));
    }
    ::metrics::counter!("fota_legacy_chunks_total").increment(1);
    if let Some(body) = state
        .chunk_cache()
        .get((release.id, n))
        .and_then(|cached| answer_from(&cached, &key))
    {
        return Ok(body);
    }
    let data = state
        .blobs()
        .read_at(&release.sha256, offset, usize::try_from(len).unwrap_or(0))
        .await
        .map_err(AppError::internal)?;
    let cached = match key {
        AnswerKey::Fleet(psk) => CachedChunk::Sealed(Bytes::from(chunk_answer(psk, n, &data)?)),
        AnswerKey::Device(_) => CachedChunk::Open {
            head: chunk_head(n, &data),
            raw: Bytes::from(data),
        },
    };
    let body = answer_from(&cached, &key)
        .ok_or_else(|| AppError::internal("a chunk answer built for another key mode"))?;
    state.chunk_cache().insert((release.id, n), cached);
    Ok(body)
}

/// The answer a cached chunk gives under `key`: a fleet answer as cached; a per-device one
/// with its MAC made now, over the cached bytes. `None` when the entry was built for the other
/// mode (then it is built again).
fn answer_from(cached: &CachedChunk, key: &AnswerKey<'_>) -> Option<Bytes> {
    match (cached, key) {
        (CachedChunk::Sealed(body), AnswerKey::Fleet(_)) => Some(body.clone()),
        (CachedChunk::Open { head, raw }, AnswerKey::Device(k)) => {
            Some(open_answer(head, raw, k.as_bytes()))
        }
        _ => None,
    }
}

/// `{"chunk_number":N,"data":"BASE64","mac":"`: what serde_json writes for a
/// [`ChunkAnswer`] up to the MAC's digits (base64 and hex need no JSON escapes).
fn chunk_head(n: u64, data: &[u8]) -> Bytes {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    Bytes::from(format!(
        "{{\"chunk_number\":{n},\"data\":\"{b64}\",\"mac\":\""
    ))
}

/// `head` completed with HMAC-SHA256(`key`, `raw`): one HMAC over the chunk and a copy, no
/// base64 encoding, per request.
fn open_answer(head: &[u8], raw: &[u8], key: &[u8]) -> Bytes {
    let mac = Hex64::new(&chunk_mac(key, raw));
    let mut out = Vec::with_capacity(head.len() + 66);
    out.extend_from_slice(head);
    out.extend_from_slice(mac.as_str().as_bytes());
    out.extend_from_slice(b"\"}");
    Bytes::from(out)
}

/// Records a status report: any JSON object naming the device (in the body, else by the
/// `device_id` query parameter); `status` and `version` are recorded, the whole body kept as
/// the event's detail. Closes a rollback order the device has read. Answers the JSON answer.
pub(crate) async fn status(
    state: &AppState,
    ip: Option<IpAddr>,
    query_device_id: Option<String>,
    body: &[u8],
) -> AppResult<serde_json::Value> {
    let value: serde_json::Value = parse_json(body)?;
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
        None | Some(serde_json::Value::Null) => query_device_id,
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
    let create_under = match admit(state, &device_id, ip, paths::STATUS).await? {
        Admission::Known => None,
        Admission::New => Some(state.config().legacy.max_devices),
        Admission::NotRecorded => return Ok(serde_json::json!({ "success": true })),
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
            state.hot().invalidate();
            return Err(admission::refuse_v2_device(state, &device_id, ip, paths::STATUS).await);
        }
        LegacyStatusOutcome::NotRecorded => {
            if create_under.is_some() {
                admission::not_recorded(state, &device_id, ip, NotRecorded::MaxDevices).await;
            }
        }
    }
    Ok(answer)
}

/// Orders legacy device `device_id` (created if unknown) to roll back. A v2 device is refused
/// as unknown: v2 devices take orders through the operator API.
pub(crate) async fn order_rollback(
    state: &AppState,
    ip: Option<IpAddr>,
    actor: String,
    device_id: &str,
    reason: String,
) -> AppResult<RollbackOrder> {
    if state
        .store()
        .device_protocol(device_id)
        .await?
        .is_some_and(|p| p != Protocol::Legacy)
    {
        admission::refuse_v2_device(state, device_id, ip, paths::ROLLBACK).await;
        return Err(AppError::UnknownDevice(format!(
            "no legacy device {device_id:?}: v2 devices take rollback orders at \
             POST /api/v2/devices/{{id}}/rollback (`fota rollback`)"
        )));
    }
    rollbacks::open(state, actor, device_id, reason, Protocol::Legacy).await
}

/// Whether `device_id` must roll back, sealed with a fresh nonce; reading an order marks it
/// delivered, and the device's next status report closes it.
pub(crate) async fn rollback_status(
    state: &AppState,
    key: &LegacyKey,
    ip: Option<IpAddr>,
    device_id: &str,
) -> AppResult<Vec<u8>> {
    let key = answer_key(state, key, Some(device_id))?;
    let admission = admit(state, device_id, ip, paths::ROLLBACK_STATUS).await?;
    note_seen(state, device_id, admission, None);
    // Read whatever the look-up said: an operator's order may have created the device since.
    let order = state
        .store()
        .deliver_legacy_rollback_order(device_id, now_ms())
        .await?;
    let nonce = state.store().next_counter("legacy_nonce").await?;
    let reason = order.as_ref().map(|o| o.reason.as_str());
    rollback_status_answer(&key, reason, nonce, device_id)
}

/// A checked seed upload.
struct ValidUpload {
    version: String,
    sha256: String,
    chunk_size: i64,
    total_chunks: i64,
    image: Vec<u8>,
}

/// Parses and checks a seed upload body: JSON shape and types, then base64, size, hash and
/// chunk size (fota-protocol's rules). Every failure is a 400 naming the check.
fn validate_upload(body: &[u8]) -> AppResult<ValidUpload> {
    let req: UploadRequest<String> = parse_json(body)?;
    if req.version.is_empty() || req.version.len() > 64 {
        return Err(AppError::bad_request(
            "invalid_field",
            "version must be 1-64 characters",
        ));
    }
    let valid = req.validate().map_err(|e| {
        let code = match e {
            LegacyError::Base64 => "invalid_base64",
            LegacyError::SizeMismatch { .. } => "size_mismatch",
            LegacyError::HashMismatch => "hash_mismatch",
            LegacyError::HashFormat => "invalid_hash",
            _ => "invalid_field",
        };
        AppError::bad_request(code, e.to_string())
    })?;
    let too_big = |_| AppError::bad_request("invalid_field", "chunk_size too large");
    Ok(ValidUpload {
        version: req.version,
        sha256: hex::encode(valid.sha256),
        chunk_size: i64::try_from(valid.chunk_size).map_err(too_big)?,
        total_chunks: i64::try_from(valid.total_chunks).map_err(too_big)?,
        image: valid.firmware,
    })
}

fn internal(e: LegacyError) -> AppError {
    AppError::internal(e)
}

fn to_json<T: serde::Serialize>(v: &T) -> AppResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(AppError::internal)
}

fn manifest_answer(
    key: &AnswerKey<'_>,
    release: &LegacyRelease,
    nonce: u64,
    device_id: &str,
) -> AppResult<Vec<u8>> {
    let mut answer = ManifestAnswer {
        version: release.version.clone(),
        size: u64::try_from(release.size).unwrap_or(0),
        hash: release.sha256.clone(),
        chunk_size: u64::try_from(release.chunk_size).unwrap_or(0),
        total_chunks: u64::try_from(release.total_chunks).unwrap_or(0),
        nonce: None,
        mac: None,
    };
    answer
        .seal(key.bytes(), paths::MANIFEST, device_id, nonce)
        .map_err(internal)?;
    to_json(&answer)
}

fn chunk_answer(psk: &[u8], n: u64, data: &[u8]) -> AppResult<Vec<u8>> {
    to_json(&ChunkAnswer::new_signed(psk, n, data))
}

fn rollback_status_answer(
    key: &AnswerKey<'_>,
    reason: Option<&str>,
    nonce: u64,
    device_id: &str,
) -> AppResult<Vec<u8>> {
    let mut answer = RollbackStatusAnswer {
        rollback_required: reason.is_some(),
        reason: reason.map(str::to_owned),
        nonce: None,
        mac: None,
    };
    answer
        .seal(key.bytes(), paths::ROLLBACK_STATUS, device_id, nonce)
        .map_err(internal)?;
    to_json(&answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_per_device_chunk_answer_is_byte_for_byte_what_serde_json_writes() {
        let key = DeviceKey::derive(b"master", "EcoWatt001");
        for data in [&b""[..], b"a", b"ab", b"abc", &[0xFFu8; 1000][..]] {
            for n in [0, 7, u64::MAX] {
                let built = open_answer(&chunk_head(n, data), data, key.as_bytes());
                let reference = chunk_answer(key.as_bytes(), n, data).unwrap();
                assert_eq!(&built[..], &reference[..], "chunk {n}");
            }
        }
    }
}
