//! v2 device records (check-ins and events) as a device of `vendor` named `device` sends
//! them: for tests of the server's device API and for load generators, which speak for
//! devices without running an agent.

use fota_protocol::v2::{self, FixedStr, ids};
use uuid::Uuid;

/// The format-2 check-in of an idle ESP32 that runs `running_fw` (`running_sha`) from ota_0, VALID,
/// at `sequence`, on root version 1; fields can be changed before encoding.
pub fn checkin(
    vendor: &Uuid,
    device: &str,
    running_fw: &str,
    running_sha: [u8; 32],
    sequence: u64,
) -> v2::CheckIn {
    v2::CheckIn {
        legacy_latched_off: true,
        device_id: *ids::device_uuid(vendor, device).as_bytes(),
        nonce: *Uuid::new_v4().as_bytes(),
        root_version: 1,
        installed_sequence: sequence,
        installed_security_counter: 0,
        running_fw_version: FixedStr::new(running_fw).expect("version fits"),
        running_image_sha256: running_sha,
        running_slot: 0,
        running_ota_state: 2,
        agent_state: v2::AgentState::Idle,
        last_result: v2::ReasonCode::None,
        pending_bytes_done: 0,
        pending_bytes_total: 0,
        pending_manifest_digest: [0; 32],
        rollback_order_id: 0,
        boot_count: 0,
        telemetry: Some(v2::checkin::Telemetry::new(v2::chip_ids::ESP32)),
    }
}

/// A check-in record of device `device` (running 1.0.0) with `nonce`, acknowledging rollback
/// order `rollback_ack` (0: none).
pub fn checkin_record(
    vendor: &Uuid,
    device: &str,
    nonce: [u8; 16],
    running_sha: [u8; 32],
    sequence: u64,
    rollback_ack: u64,
) -> Vec<u8> {
    let mut c = checkin(vendor, device, "1.0.0", running_sha, sequence);
    c.nonce = nonce;
    c.rollback_order_id = rollback_ack;
    c.to_vec().expect("check-in encodes")
}

/// An event record of device `device` (sequence 1, running 1.0.1, detail "test").
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per field a test varies, in the record's order"
)]
pub fn event_record(
    vendor: &Uuid,
    device: &str,
    kind: v2::EventKind,
    reason: v2::ReasonCode,
    digest: [u8; 32],
    done: u64,
    total: u64,
    order: u64,
) -> Vec<u8> {
    v2::Event {
        kind,
        reason,
        device_id: *ids::device_uuid(vendor, device).as_bytes(),
        seq: 1,
        manifest_digest: digest,
        bytes_done: done,
        bytes_total: total,
        fw_version: FixedStr::new("1.0.1").expect("version fits"),
        rollback_order_id: order,
        detail: "test",
    }
    .to_vec()
    .expect("event encodes")
}
