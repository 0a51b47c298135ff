//! A v2 device event: kept in the device's history, and applied to its state (progress and
//! outcomes; a rollback or a failure also stops the release being offered again; a rollback
//! done or refused closes the open order).

use fota_api::DeviceState;
use fota_protocol::v2::{self, Event, EventKind, ReasonCode};

use crate::clock::now_ms;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::NewEvent;
use crate::trust::Trust;

/// Stores a device event and applies it to the device's state.
pub(crate) async fn record(
    state: &AppState,
    trust: &Trust,
    device_id: &str,
    body: &[u8],
) -> AppResult<()> {
    let ev = Event::decode(body)
        .map_err(|e| AppError::bad_request("invalid_event", format!("event record: {e}")))?;
    if ev.device_id != *v2::ids::device_uuid(&trust.vendor_id, device_id).as_bytes() {
        return Err(AppError::Forbidden(
            "the event names another device than the credential's".into(),
        ));
    }
    let release =
        (ev.manifest_digest != [0; 32]).then(|| fota_api::release::release_id(&ev.manifest_digest));
    let transient = matches!(
        ev.reason,
        ReasonCode::Network | ReasonCode::Timeout | ReasonCode::Cancelled | ReasonCode::Superseded
    );
    let (new_state, suppress, close) = match ev.kind {
        EventKind::Progress | EventKind::Resumed => (Some(DeviceState::Downloading), None, None),
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
    let progress = matches!(
        ev.kind,
        EventKind::Progress | EventKind::Resumed | EventKind::Verified
    ) || ev.bytes_total > 0;
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
