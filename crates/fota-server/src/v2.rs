//! The v2 records, through `fota-protocol`: root record checks, release verification,
//! check-in answers and events. This module holds the server's decisions; every byte layout
//! is `fota_protocol::v2`'s.

use ed25519_dalek::SigningKey;
use fota_api::{DeviceState, Protocol};
use fota_protocol::esp::image::{self as esp_image, VerifyOptions};
use fota_protocol::v2::{
    self, Action, AgentState, CheckIn, CheckInAnswer, Event, EventKind, Manifest, PayloadFormat,
    ReasonCode, Role, RootList, RootRecord, StatusBody,
};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::{CheckinView, NewEvent, Progress, Report, Seen, now_ms};
use crate::trust::{Trust, TrustError};

/// Class UUID = UUIDv5(vendor id, class name).
pub fn class_id(vendor: Uuid, name: &str) -> Uuid {
    v2::ids::class_id(&vendor, name)
}

/// Device UUID = UUIDv5(vendor id, "device/" + id).
pub fn device_uuid(vendor: Uuid, id: &str) -> Uuid {
    v2::ids::device_uuid(&vendor, id)
}

/// Key id of a public key (first 8 bytes of its SHA-256).
pub fn key_id(public_key: &[u8; 32]) -> [u8; 8] {
    v2::key_id(public_key)
}

/// Release id: the first 16 hex digits of the manifest digest, so that the id a device
/// reports (by digest) and the id operators see are the same thing.
pub fn release_id(manifest_digest: &[u8; 32]) -> String {
    fota_api::release::release_id(manifest_digest)
}

fn unix_s() -> u64 {
    u64::try_from(now_ms() / 1000).unwrap_or(0)
}

/// Verifies a self-signed root record and that `status_key` is one of its status keys.
pub(crate) fn verify_root(root: &[u8], status_key: &SigningKey) -> Result<RootRecord, TrustError> {
    let record = RootRecord::verify_initial(root).map_err(|e| TrustError::Root {
        path: Default::default(),
        message: e.to_string(),
    })?;
    if record.is_expired(unix_s()) {
        return Err(TrustError::Root {
            path: Default::default(),
            message: "the root record has expired".into(),
        });
    }
    let pk = status_key.verifying_key().to_bytes();
    if !record.keys(Role::Status).contains(&pk) {
        return Err(TrustError::StatusKeyNotTrusted {
            path: Default::default(),
        });
    }
    Ok(record)
}

/// What a verified upload says about itself.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedRelease {
    pub(crate) class_id: Uuid,
    pub(crate) sequence: i64,
    pub(crate) security_counter: i64,
    pub(crate) version: String,
    pub(crate) project: String,
    pub(crate) image_sha256: String,
    pub(crate) chunk_size: i64,
    pub(crate) chunk_count: i64,
    pub(crate) manifest_digest: String,
}

fn reject(code: &'static str, message: impl Into<String>) -> AppError {
    AppError::unprocessable(code, message)
}

/// Checks an upload completely before anything of it becomes visible: the release-role
/// signatures over the raw envelope (before any field is read), vendor, target, expiry, image
/// size and SHA-256, the hash list (header, page table digest = `chunk_list_sha256`, and every
/// chunk hash against the image's actual chunks), and the ESP image with its app descriptor.
pub(crate) fn verify_release(
    trust: &Trust,
    manifest: &[u8],
    hashlist: &[u8],
    image: &[u8],
) -> AppResult<VerifiedRelease> {
    let m = Manifest::verify(&trust.root, manifest)
        .map_err(|e| reject("invalid_manifest", format!("manifest rejected: {e}")))?;
    let b = m.body();
    if b.vendor_id != *trust.root.vendor_id() {
        return Err(reject(
            "wrong_vendor",
            format!(
                "manifest vendor {} is not this server's vendor {}",
                Uuid::from_bytes(b.vendor_id),
                trust.vendor_id
            ),
        ));
    }
    if b.device_id != [0; 16] {
        return Err(reject(
            "device_specific_manifest",
            "manifests for a single device are not supported; sign it for the whole class and \
             assign it to the device",
        ));
    }
    if b.payload_format != PayloadFormat::RawEspApp {
        return Err(reject(
            "unsupported_payload",
            "only raw ESP32 app images are supported",
        ));
    }
    if m.is_expired(unix_s()) {
        return Err(reject("manifest_expired", "the manifest has expired"));
    }
    if image.len() as u64 != b.image_size {
        return Err(reject(
            "image_size_mismatch",
            format!(
                "image is {} bytes, the manifest says {}",
                image.len(),
                b.image_size
            ),
        ));
    }
    let sha: [u8; 32] = Sha256::digest(image).into();
    if sha != b.image_sha256 {
        return Err(reject(
            "image_hash_mismatch",
            "image SHA-256 differs from the manifest's",
        ));
    }
    let built = v2::hashlist::build(image, b.chunk_size)
        .map_err(|e| reject("invalid_hashlist", e.to_string()))?;
    if built.chunk_list_sha256 != b.chunk_list_sha256 {
        return Err(reject(
            "hashlist_mismatch",
            "the manifest's chunk_list_sha256 does not match the image's chunks",
        ));
    }
    if hashlist != built.blob.as_slice() {
        let layout = built.layout;
        let detail = match layout.check_header(hashlist.get(..16).unwrap_or(hashlist)) {
            Err(e) => format!("hash list header: {e}"),
            Ok(()) if hashlist.len() as u64 != layout.total_len() => format!(
                "hash list is {} bytes, {} expected",
                hashlist.len(),
                layout.total_len()
            ),
            Ok(()) => "hash list differs from the image's chunk hashes".into(),
        };
        return Err(reject("hashlist_mismatch", detail));
    }
    let report = esp_image::verify(image, VerifyOptions::default())
        .map_err(|e| reject("invalid_image", format!("not a valid ESP32 app image: {e}")))?;
    if report.image_len != Some(image.len() as u32) {
        return Err(reject(
            "image_trailing_bytes",
            format!(
                "the ESP image ends at {:?} bytes but {} were uploaded",
                report.image_len,
                image.len()
            ),
        ));
    }
    let desc = report
        .app_desc
        .ok_or_else(|| reject("invalid_image", "the image has no app descriptor"))?;
    let version = desc.version().unwrap_or_default();
    if version != b.fw_version.as_str() {
        return Err(reject(
            "version_mismatch",
            format!(
                "manifest fw_version {:?} differs from the image's app descriptor {version:?}",
                b.fw_version.as_str()
            ),
        ));
    }
    let project = desc.project_name().unwrap_or_default();
    if project != b.project_name.as_str() {
        return Err(reject(
            "project_mismatch",
            format!(
                "manifest project {:?} differs from the image's app descriptor {project:?}",
                b.project_name.as_str()
            ),
        ));
    }
    Ok(VerifiedRelease {
        class_id: Uuid::from_bytes(b.class_id),
        sequence: i64::try_from(b.sequence)
            .map_err(|_| reject("invalid_manifest", "sequence too large"))?,
        security_counter: i64::from(b.security_counter),
        version: version.to_owned(),
        project: project.to_owned(),
        image_sha256: hex::encode(sha),
        chunk_size: i64::from(b.chunk_size),
        chunk_count: i64::from(b.chunk_count),
        manifest_digest: hex::encode(m.digest()),
    })
}

const OTA_STATES: [&str; 5] = ["new", "pending_verify", "valid", "invalid", "aborted"];

fn ota_state_name(code: u8) -> String {
    OTA_STATES
        .get(usize::from(code))
        .map_or_else(|| "undefined".to_owned(), |s| (*s).to_owned())
}

fn blob_url(state: &AppState, sha256: &str) -> String {
    format!("{}/api/v2/device/blobs/{sha256}", state.config().public_url)
}

/// Answers a check-in: records what changed, decides the action, signs the status statement
/// over the device's nonce.
pub(crate) async fn checkin(
    state: &AppState,
    trust: &Trust,
    view: &CheckinView,
    body: &[u8],
) -> AppResult<Vec<u8>> {
    let ci = CheckIn::decode(body)
        .map_err(|e| AppError::bad_request("invalid_checkin", format!("check-in record: {e}")))?;
    let uuid = device_uuid(trust.vendor_id, &view.device_id);
    if ci.device_id != *uuid.as_bytes() {
        return Err(AppError::Forbidden(
            "the check-in names another device than the credential's".into(),
        ));
    }
    let now = now_ms();
    let report = Report {
        fw_version: Some(ci.running_fw_version.as_str().to_owned()),
        fw_sequence: i64::try_from(ci.installed_sequence).ok(),
        fw_sha256: Some(hex::encode(ci.running_image_sha256)),
        slot: Some(i64::from(ci.running_slot)),
        ota_state: Some(ota_state_name(ci.running_ota_state)),
        last_result: Some(ci.last_result.as_str().to_owned()),
    };
    if report != view.report {
        state
            .store()
            .record_report(&view.device_id, Protocol::V2, &report, now)
            .await?;
    }
    let downloading = ci.agent_state == AgentState::Downloading && ci.pending_bytes_total > 0;
    state.0.seen.note(Seen {
        device_id: view.device_id.clone(),
        at: now,
        protocol: Protocol::V2,
        progress: downloading.then(|| Progress {
            done: i64::try_from(ci.pending_bytes_done).unwrap_or(i64::MAX),
            total: i64::try_from(ci.pending_bytes_total).unwrap_or(i64::MAX),
            at: now,
        }),
        create: false,
    });

    let open_order = view
        .rollback
        .as_ref()
        .and_then(|o| o.id.parse::<u64>().ok().map(|n| (o, n)));
    // The device acknowledging the open order in its check-in closes it, like its event does.
    if let Some((order, n)) = open_order
        && ci.rollback_order_id == n
        && order.delivered_at.is_some()
    {
        state
            .store()
            .add_event(&NewEvent {
                device_id: view.device_id.clone(),
                at: now,
                kind: "rollback_acknowledged".into(),
                reason: Some(ci.last_result.as_str().to_owned()),
                release_id: None,
                bytes_done: None,
                bytes_total: None,
                detail: Some(serde_json::json!({ "rollback_order_id": n })),
                new_state: None,
                suppress_release: None,
                close_rollback: Some(format!("acknowledged: {}", ci.last_result.as_str())),
            })
            .await?;
    }
    let poll = crate::jittered(state.config().poll_interval, state.config().poll_jitter);
    let poll_s = u32::try_from(poll.as_secs().max(1)).unwrap_or(u32::MAX);
    let pending_order = open_order.filter(|(_, n)| ci.rollback_order_id != *n);
    let offer = view.offer.as_ref().filter(|o| {
        view.suppressed_release_id.as_deref() != Some(o.release_id.as_str())
            && report.fw_sha256.as_deref() != Some(o.image_sha256.as_str())
    });
    let (action, manifest, reason, order_id) = match (pending_order, offer) {
        (Some((order, n)), _) => {
            if order.delivered_at.is_none() {
                state
                    .store()
                    .mark_rollback_delivered(&order.id, now)
                    .await?;
            }
            (
                Action::Rollback { order_id: n },
                None,
                order.reason.as_str(),
                n,
            )
        }
        (None, Some(offer)) => (
            Action::Install {
                manifest_digest: v2::manifest_digest(&offer.manifest),
            },
            Some(offer),
            "",
            0,
        ),
        (None, None) => (Action::None, None, "", 0),
    };
    let server_time = unix_s();
    let statement = StatusBody {
        device_id: ci.device_id,
        nonce: ci.nonce,
        server_time,
        // Long enough for a device that polls late; short enough that a captured "nothing to
        // do" cannot freeze a device for long.
        expires_at: server_time + 2 * u64::from(poll_s) + 300,
        action,
        poll_interval_s: poll_s,
        root_version: trust.root.version(),
        // Generations start at 1, so 0 keeps meaning "not tracked" for unassigned devices.
        assignment_generation: view
            .offer
            .as_ref()
            .map_or(0, |o| u32::try_from(o.generation).unwrap_or(u32::MAX)),
    }
    .sign(&[&trust.status_key])
    .map_err(AppError::internal)?;
    let image_url = manifest.map(|o| blob_url(state, &o.image_sha256));
    let hashlist_url = manifest.map(|o| blob_url(state, &o.hashlist_sha256));
    let newer_root: Vec<&[u8]> = if ci.root_version < trust.root.version() {
        vec![trust.root.as_bytes()]
    } else {
        Vec::new()
    };
    let reason = truncate(reason, v2::answer::MAX_REASON_LEN);
    let answer = CheckInAnswer {
        poll_hint_s: poll_s,
        status: &statement,
        manifest: manifest.map(|o| o.manifest.as_slice()),
        image_url: image_url.as_deref().unwrap_or(""),
        hashlist_url: hashlist_url.as_deref().unwrap_or(""),
        rollback_order_id: order_id,
        reason,
        roots: RootList::new(&newer_root).unwrap_or(RootList::EMPTY),
    };
    answer.to_vec().map_err(AppError::internal)
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Stores a device event and applies it to the device's state.
pub(crate) async fn event(state: &AppState, device_id: &str, body: &[u8]) -> AppResult<()> {
    let trust = crate::api::device::trust(state)?;
    let ev = Event::decode(body)
        .map_err(|e| AppError::bad_request("invalid_event", format!("event record: {e}")))?;
    if ev.device_id != *device_uuid(trust.vendor_id, device_id).as_bytes() {
        return Err(AppError::Forbidden(
            "the event names another device than the credential's".into(),
        ));
    }
    let release = (ev.manifest_digest != [0; 32]).then(|| release_id(&ev.manifest_digest));
    let transient = matches!(
        ev.reason,
        ReasonCode::Network | ReasonCode::Timeout | ReasonCode::Cancelled | ReasonCode::Superseded
    );
    let (new_state, suppress, close) = match ev.kind {
        EventKind::Progress => (Some(DeviceState::Downloading), None, None),
        EventKind::Verified => (Some(DeviceState::Verified), None, None),
        EventKind::Installing => (Some(DeviceState::Installing), None, None),
        EventKind::BootedOnTrial => (Some(DeviceState::Trial), None, None),
        EventKind::Confirmed => (Some(DeviceState::Confirmed), None, None),
        EventKind::RolledBack => (Some(DeviceState::RolledBack), release.clone(), None),
        EventKind::Failed if transient => (Some(DeviceState::Failed), None, None),
        EventKind::Failed => (Some(DeviceState::Failed), release.clone(), None),
        EventKind::RollbackDone => (Some(DeviceState::RolledBack), None, Some("done".to_owned())),
        EventKind::RollbackRefused => (
            Some(DeviceState::RollbackRefused),
            None,
            Some(format!("refused: {}", ev.reason.as_str())),
        ),
        // Kinds newer than this server: kept in the history, the state left alone.
        _ => (None, None, None),
    };
    let progress =
        matches!(ev.kind, EventKind::Progress | EventKind::Verified) || ev.bytes_total > 0;
    let mut detail = serde_json::json!({
        "seq": ev.seq,
        "fw_version": ev.fw_version.as_str(),
    });
    if ev.rollback_order_id != 0 {
        detail["rollback_order_id"] = ev.rollback_order_id.into();
    }
    if !ev.detail.is_empty() {
        detail["text"] = ev.detail.into();
    }
    state
        .store()
        .add_event(&NewEvent {
            device_id: device_id.to_owned(),
            at: now_ms(),
            kind: ev.kind.as_str().to_owned(),
            reason: (ev.reason != ReasonCode::None).then(|| ev.reason.as_str().to_owned()),
            release_id: release,
            bytes_done: progress.then(|| i64::try_from(ev.bytes_done).unwrap_or(i64::MAX)),
            bytes_total: progress.then(|| i64::try_from(ev.bytes_total).unwrap_or(i64::MAX)),
            detail: Some(detail),
            new_state,
            suppress_release: suppress,
            close_rollback: close,
        })
        .await?;
    Ok(())
}
