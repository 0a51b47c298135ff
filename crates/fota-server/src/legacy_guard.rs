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

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fota_api::{AuditEntry, Protocol};

use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// The window of both rate limits.
const MINUTE: Duration = Duration::from_secs(60);
/// Past this many entries, a map of the guard drops what is older than [`MINUTE`]; past ten
/// times as many, everything (memory stays bounded whatever addresses and ids come in).
const TIDY_AT: usize = 10_000;

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
    fn as_str(self) -> &'static str {
        match self {
            Self::Rate => "new_devices_per_minute",
            Self::MaxDevices => "max_devices",
        }
    }
}

/// The in-memory side of the rules: rate windows and audit throttles. Losing it (a restart)
/// only resets the windows.
#[derive(Debug, Default)]
pub(crate) struct LegacyGuard {
    /// Per client address: start of its window and new devices admitted in it.
    per_ip: Mutex<HashMap<Option<IpAddr>, (Instant, u32)>>,
    /// Unknown ids admitted lately: a new device polling again before the batch that creates
    /// it is written does not count twice.
    admitted: Mutex<HashMap<String, Instant>>,
    /// Per v2 device: when its last `legacy_request_for_v2_device` entry was written.
    v2_audited: Mutex<HashMap<String, Instant>>,
    /// When the last `legacy.device_not_recorded` entry was written, and how many devices went
    /// unrecorded since.
    not_recorded: Mutex<(Option<Instant>, u64)>,
}

fn tidy<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, at: impl Fn(&V) -> Instant) {
    if map.len() >= TIDY_AT {
        map.retain(|_, v| at(v).elapsed() < MINUTE);
        if map.len() >= TIDY_AT * 10 {
            map.clear();
        }
    }
}

fn actor(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "legacy:unknown".to_owned(), |ip| format!("legacy:{ip}"))
}

impl LegacyGuard {
    /// Whether `id`, which no device has, may become a new legacy device for a request from
    /// `ip` (counting it against that address's rate if so).
    fn admit_new(&self, id: &str, ip: Option<IpAddr>, per_minute: u32) -> bool {
        let now = Instant::now();
        let mut admitted = self.admitted.lock().unwrap_or_else(|e| e.into_inner());
        if admitted.get(id).is_some_and(|t| t.elapsed() < MINUTE) {
            return true;
        }
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        tidy(&mut per_ip, |v| v.0);
        let window = per_ip.entry(ip).or_insert((now, 0));
        if window.0.elapsed() >= MINUTE {
            *window = (now, 0);
        }
        if window.1 >= per_minute {
            return false;
        }
        window.1 += 1;
        tidy(&mut admitted, |t| *t);
        admitted.insert(id.to_owned(), now);
        true
    }

    /// Whether a `legacy_request_for_v2_device` entry for `id` is due (one a minute).
    fn v2_audit_due(&self, id: &str) -> bool {
        let mut audited = self.v2_audited.lock().unwrap_or_else(|e| e.into_inner());
        if audited.get(id).is_some_and(|t| t.elapsed() < MINUTE) {
            return false;
        }
        tidy(&mut audited, |t| *t);
        audited.insert(id.to_owned(), Instant::now());
        true
    }

    /// Counts one unrecorded device; `Some(n)` when an entry is due, `n` devices since the last.
    fn not_recorded_due(&self) -> Option<u64> {
        let mut g = self.not_recorded.lock().unwrap_or_else(|e| e.into_inner());
        g.1 += 1;
        if g.0.is_some_and(|t| t.elapsed() < MINUTE) {
            return None;
        }
        let n = g.1;
        *g = (Some(Instant::now()), 0);
        Some(n)
    }
}

/// Writes an audit entry of the guard. A failure is logged, not answered: the request itself
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
    if let Some(count) = state.0.legacy_guard.not_recorded_due() {
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
/// an error for a v2 device, otherwise whether it is known, new, or answered unrecorded.
/// The id itself must have been checked already.
pub(crate) async fn admit(
    state: &AppState,
    id: &str,
    ip: Option<IpAddr>,
    route: &'static str,
) -> AppResult<Admission> {
    let protocol = match state.0.hot.protocol(id) {
        Some(p) => p,
        None => {
            let p = state.store().device_protocol(id).await?;
            state.0.hot.set_protocol(id, p);
            p
        }
    };
    match protocol {
        Some(Protocol::Legacy) => Ok(Admission::Known),
        Some(Protocol::V2) => Err(refuse_v2_device(state, id, ip, route).await),
        None => {
            let per_minute = state.config().legacy.new_devices_per_minute;
            if state.0.legacy_guard.admit_new(id, ip, per_minute) {
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
    if state.0.legacy_guard.v2_audit_due(id) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_devices_are_limited_per_address_and_counted_once_per_id() {
        let g = LegacyGuard::default();
        let a: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let b: Option<IpAddr> = Some("192.0.2.2".parse().unwrap());
        assert!(g.admit_new("d1", a, 2));
        assert!(g.admit_new("d1", a, 2), "the same id again does not count");
        assert!(g.admit_new("d2", a, 2));
        assert!(
            !g.admit_new("d3", a, 2),
            "a third new id from a is over the rate"
        );
        assert!(g.admit_new("d3", b, 2), "b has its own window");
        assert!(g.admit_new("d1", b, 2), "an admitted id stays admitted");
    }

    #[test]
    fn audits_are_throttled_to_one_a_minute() {
        let g = LegacyGuard::default();
        assert!(g.v2_audit_due("v"));
        assert!(!g.v2_audit_due("v"));
        assert!(g.v2_audit_due("w"));
        assert_eq!(g.not_recorded_due(), Some(1));
        assert_eq!(g.not_recorded_due(), None);
        assert_eq!(g.not_recorded_due(), None);
    }
}
