//! A v2 check-in: what the device reports is recorded, and the answer says what it must do
//! next (nothing, install the assigned release, or roll back), in a status statement signed
//! over the device's nonce. Every byte layout is `fota_protocol::v2`'s.

use std::time::Duration;

use fota_api::Protocol;
use fota_protocol::v2::{self, Action, AgentState, CheckIn, CheckInAnswer, RootList, StatusBody};

use crate::clock::{now_ms, unix_s};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::{CheckinView, NewEvent, Progress, Report, Seen, SeenTelemetry};
use crate::trust::Trust;

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
pub(crate) async fn answer(
    state: &AppState,
    trust: &Trust,
    view: &CheckinView,
    body: &[u8],
) -> AppResult<Vec<u8>> {
    let ci = CheckIn::decode(body)
        .map_err(|e| AppError::bad_request("invalid_checkin", format!("check-in record: {e}")))?;
    let uuid = v2::ids::device_uuid(&trust.vendor_id, &view.device_id);
    if ci.device_id != *uuid.as_bytes() {
        return Err(AppError::Forbidden(
            "the check-in names another device than the credential's".into(),
        ));
    }
    let now = now_ms();
    let counter = ci
        .telemetry
        .as_ref()
        .map_or(0, |t| i64::try_from(t.counter).unwrap_or(i64::MAX));
    // A check-in older than one already applied (delayed, or replayed by whoever holds the
    // device's token) is answered, but what it reports is not applied.
    let stale = counter != 0 && counter < view.checkin_counter;
    let report = Report {
        fw_version: Some(ci.running_fw_version.as_str().to_owned()),
        fw_sequence: i64::try_from(ci.installed_sequence).ok(),
        fw_sha256: Some(hex::encode(ci.running_image_sha256)),
        slot: Some(i64::from(ci.running_slot)),
        ota_state: Some(ota_state_name(ci.running_ota_state)),
        last_result: Some(ci.last_result.as_str().to_owned()),
        agent_format: Some(i64::from(if ci.telemetry.is_some() {
            v2::checkin::FMT_VERSION
        } else {
            v2::checkin::FMT_VERSION_1
        })),
        chip_id: ci.telemetry.as_ref().map(|t| i64::from(t.chip_id)),
        reset_reason: ci.telemetry.as_ref().map(|t| i64::from(t.reset_reason)),
    };
    // A format-1 agent after a format-2 one must still be recorded (counter 0 forgets the
    // highest applied), and so must the first counter after one that kept none.
    let counter_restarts = counter == 0 && view.checkin_counter != 0;
    if !stale && (report != view.report || counter_restarts) {
        state
            .store()
            .record_report(&view.device_id, Protocol::V2, &report, counter, now)
            .await?;
    }
    let downloading = ci.agent_state == AgentState::Downloading && ci.pending_bytes_total > 0;
    state.seen().note(Seen {
        device_id: view.device_id.clone(),
        at: now,
        protocol: Protocol::V2,
        progress: (downloading && !stale).then(|| Progress {
            done: i64::try_from(ci.pending_bytes_done).unwrap_or(i64::MAX),
            total: i64::try_from(ci.pending_bytes_total).unwrap_or(i64::MAX),
            at: now,
        }),
        create: false,
        telemetry: ci
            .telemetry
            .as_ref()
            .filter(|_| !stale)
            .map(|t| SeenTelemetry {
                counter,
                uptime_s: i64::from(t.uptime_s),
                free_heap: (t.free_heap != v2::checkin::FREE_HEAP_UNKNOWN)
                    .then_some(i64::from(t.free_heap)),
                attributes: serde_json::Value::Object(
                    t.attributes
                        .iter()
                        .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
                        .collect(),
                )
                .to_string(),
                at: now,
            }),
    });

    let open_order = view
        .rollback
        .as_ref()
        .and_then(|o| o.id.parse::<u64>().ok().map(|n| (o, n)));
    // The device acknowledging the open order in its check-in closes it, like its event does.
    if let Some((order, n)) = open_order
        && !stale
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
    let poll = jittered(state.config().poll_interval, state.config().poll_jitter);
    let poll_s = u32::try_from(poll.as_secs().max(1)).unwrap_or(u32::MAX);
    let pending_order = open_order.filter(|(_, n)| ci.rollback_order_id != *n);
    let offer = view.offer.as_ref().filter(|o| {
        view.suppressed_release_id.as_deref() != Some(o.release_id.as_str())
            && report.fw_sha256.as_deref() != Some(o.image_sha256.as_str())
    });
    // A release signed only by a key a root rotation removed is not offered any more: the
    // device, holding the new root, would refuse it.
    let offer = offer.filter(|o| {
        let ok = trust.offerable(&o.manifest);
        if !ok {
            tracing::debug!(release = %o.release_id, device = %view.device_id,
                "not offered: signed by a key the newest root no longer lists");
        }
        ok
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
    let chain = trust.chain();
    let statement = StatusBody {
        device_id: ci.device_id,
        nonce: ci.nonce,
        server_time,
        // Long enough for a device that polls late; short enough that a captured "nothing to
        // do" cannot freeze a device for long.
        expires_at: server_time + 2 * u64::from(poll_s) + 300,
        action,
        poll_interval_s: poll_s,
        root_version: chain.newest().version(),
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
    // A device several versions behind walks the chain: the versions after its own, a few a
    // check-in, each verified by the one before.
    let newer_root = chain.after(ci.root_version, v2::answer::MAX_ROOTS);
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

/// Poll hint with jitter: `interval` ± `jitter` fraction, uniformly, so a fleet that booted
/// together spreads out.
fn jittered(interval: Duration, jitter: f64) -> Duration {
    let f: f64 = rand::random::<f64>() * 2.0 - 1.0;
    interval.mul_f64((1.0 + f * jitter).max(0.0))
}
