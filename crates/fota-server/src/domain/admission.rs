//! What the legacy (seed) endpoints may do with the device id a request names.
//!
//! Legacy devices are not authenticated: anyone can name any id. Two rules keep that from
//! reaching further than the seed's own server allowed:
//!
//! - **An id provisioned for v2 is never created, read or written through the legacy
//!   endpoints.** They answer it as an unknown device (404 `unknown_device`), add an audit
//!   entry `legacy_request_for_v2_device` (at most one per device a minute; the route and the
//!   client address, never the request's body) and count it in
//!   `fota_legacy_v2_device_requests_total`. The store enforces the same rule on every legacy
//!   write, so a device provisioned a moment ago is safe from a stale cached look-up too.
//! - **Unknown ids are recorded on their first request, within bounds.** At most
//!   `legacy.max_devices` legacy devices exist (the store checks it when it creates one), and
//!   one client address makes at most `legacy.new_devices_per_minute` new ones. Beyond either
//!   the request is still answered (real devices keep updating), no row is made, and one audit
//!   entry a minute, `legacy.device_not_recorded`, says so and how many went unrecorded.
//!
//! The windows and throttles are process memory (`state::LegacyWindows`); the rules are here.

use std::net::IpAddr;

use fota_api::{AuditEntry, Protocol};

use crate::clock::now_ms;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::{Progress, Seen};

/// What a legacy request may do with its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A known legacy device.
    Known,
    /// An unknown id that may be recorded as a new legacy device.
    New,
    /// An unknown id that is answered but not recorded.
    NotRecorded,
}

/// Why an unknown legacy device was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotRecorded {
    /// Its client address made `legacy.new_devices_per_minute` new devices this minute.
    Rate,
    /// `legacy.max_devices` legacy devices exist.
    MaxDevices,
}

impl NotRecorded {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Rate => "new_devices_per_minute",
            Self::MaxDevices => "max_devices",
        }
    }
}

fn actor(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "legacy:unknown".to_owned(), |ip| format!("legacy:{ip}"))
}

/// A device id as the legacy endpoints take it, or a 400.
pub(crate) fn check_device_id(id: &str) -> AppResult<()> {
    if fota_api::name::is_valid(id) {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "invalid_device_id",
            format!("device_id must be {}", fota_api::name::RULE),
        ))
    }
}

/// Notes a contact of an admitted device for the next batch (nothing for one answered
/// unrecorded). `progress` is (bytes done, bytes in all).
pub(crate) fn note_seen(
    state: &AppState,
    id: &str,
    admission: Admission,
    progress: Option<(i64, i64)>,
) {
    if admission == Admission::NotRecorded {
        return;
    }
    let at = now_ms();
    state.seen().note(Seen {
        device_id: id.to_owned(),
        at,
        protocol: Protocol::Legacy,
        progress: progress.map(|(done, total)| Progress { done, total, at }),
        create: admission == Admission::New,
        telemetry: None,
    });
}

/// Writes an audit entry of these rules. A failure is logged, not answered: the request itself
/// was handled correctly.
async fn write_audit(state: &AppState, entry: AuditEntry) {
    if let Err(e) = state.store().audit(&entry).await {
        tracing::warn!(error = %e, action = %entry.action, "writing an audit entry failed");
    }
}

/// Counts (and, once a minute, audits) a legacy device that was answered but not recorded.
pub(crate) async fn not_recorded(state: &AppState, id: &str, ip: Option<IpAddr>, why: NotRecorded) {
    ::metrics::counter!("fota_legacy_devices_not_recorded_total", "reason" => why.as_str())
        .increment(1);
    if let Some(count) = state.legacy_windows().not_recorded_due() {
        tracing::warn!(
            device_id = id,
            reason = why.as_str(),
            count,
            "legacy device not recorded (limit reached)"
        );
        write_audit(
            state,
            AuditEntry {
                actor: actor(ip),
                action: "legacy.device_not_recorded".into(),
                target: format!("device:{id}"),
                detail: serde_json::json!({
                    "reason": why.as_str(),
                    "client": ip.map(|ip| ip.to_string()),
                    "unrecorded_since_last_entry": count,
                }),
            },
        )
        .await;
    }
}

/// Decides what a legacy request from `ip` naming device `id` may do (see the module docs):
/// a 400 for a malformed id, an error for a v2 device, otherwise whether it is known, new, or
/// answered unrecorded.
pub(crate) async fn admit(
    state: &AppState,
    id: &str,
    ip: Option<IpAddr>,
    route: &'static str,
) -> AppResult<Admission> {
    check_device_id(id)?;
    let protocol = match state.hot().protocol(id) {
        Some(p) => p,
        None => {
            let p = state.store().device_protocol(id).await?;
            state.hot().set_protocol(id, p);
            p
        }
    };
    match protocol {
        Some(Protocol::Legacy) => Ok(Admission::Known),
        Some(Protocol::V2) => Err(refuse_v2_device(state, id, ip, route).await),
        None => {
            let per_minute = state.config().legacy.new_devices_per_minute;
            if state.legacy_windows().admit_new(id, ip, per_minute) {
                Ok(Admission::New)
            } else {
                not_recorded(state, id, ip, NotRecorded::Rate).await;
                Ok(Admission::NotRecorded)
            }
        }
    }
}

/// The answer to a legacy request naming a v2 device, after counting and auditing it.
pub(crate) async fn refuse_v2_device(
    state: &AppState,
    id: &str,
    ip: Option<IpAddr>,
    route: &'static str,
) -> AppError {
    ::metrics::counter!("fota_legacy_v2_device_requests_total").increment(1);
    if state.legacy_windows().v2_audit_due(id) {
        tracing::warn!(
            device_id = id,
            route,
            "legacy request for a v2 device refused"
        );
        write_audit(
            state,
            AuditEntry {
                actor: actor(ip),
                action: "legacy_request_for_v2_device".into(),
                target: format!("device:{id}"),
                detail: serde_json::json!({
                    "route": route,
                    "client": ip.map(|ip| ip.to_string()),
                }),
            },
        )
        .await;
    }
    unknown_device(id)
}

/// The 404 of an id the legacy API does not know (or must not show).
pub(crate) fn unknown_device(id: &str) -> AppError {
    AppError::UnknownDevice(format!("unknown device {id:?}"))
}
