//! Rollback orders: an operator orders a device back to its previous image; the device gets
//! the order once (v2 check-in, or the legacy rollback-status read) and its report closes it.

use fota_api::{AuditEntry, Protocol, RollbackOrder};

use crate::clock::now_ms;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// Longest rollback reason, in characters (as the document's maxLength counts).
const MAX_REASON_CHARS: usize = 512;

/// A reason of at most [`MAX_REASON_CHARS`] characters, or a 400.
pub(crate) fn check_reason(reason: &str) -> AppResult<()> {
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(AppError::bad_request(
            "invalid_reason",
            format!("reason must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Opens an order for `device_id` by `actor`, with its audit record. Through the legacy API
/// (`protocol` legacy) an unknown device is created as a legacy device, and a v2 device is
/// not found; through the operator API the device must exist. Conflict if an order is open.
pub(crate) async fn open(
    state: &AppState,
    actor: String,
    device_id: &str,
    reason: String,
    protocol: Protocol,
) -> AppResult<RollbackOrder> {
    // Devices acknowledge orders by a u64 id in their binary records, so the id is a number
    // from a persisted counter.
    let id = state.store().next_counter("rollback_order").await?;
    let order = RollbackOrder {
        id: id.to_string(),
        device_id: device_id.to_owned(),
        reason,
        created_at: now_ms(),
        created_by: actor.clone(),
        delivered_at: None,
        closed_at: None,
        outcome: None,
    };
    let legacy = protocol == Protocol::Legacy;
    let mut detail = serde_json::json!({ "order": order.id, "reason": order.reason });
    if legacy {
        detail["legacy"] = true.into();
    }
    let entry = AuditEntry {
        actor,
        action: "rollback.order".into(),
        target: format!("device:{device_id}"),
        detail,
    };
    state
        .store()
        .create_rollback_order(&order, legacy, &entry)
        .await?;
    // The order is delivered at the next contact; a legacy order may also have created the
    // device, so a cached "unknown" must go.
    state.hot().invalidate();
    Ok(order)
}
