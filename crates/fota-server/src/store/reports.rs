//! What devices tell the server: reports of what they run (with the check-in history),
//! events, and the batched contacts and progress samples.

use fota_api::{DeviceEvent, DeviceState, Millis, Protocol};

use super::error::StoreResult;

/// What a device reports running (v2 check-in or legacy status).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Firmware version.
    pub fw_version: Option<String>,
    /// Release sequence.
    pub fw_sequence: Option<i64>,
    /// Image SHA-256, hex.
    pub fw_sha256: Option<String>,
    /// Running slot.
    pub slot: Option<i64>,
    /// otadata state.
    pub ota_state: Option<String>,
    /// Last update outcome.
    pub last_result: Option<String>,
    /// v2 check-in format of the agent (1 or 2); `None` for legacy devices.
    pub agent_format: Option<i64>,
    /// `esp_chip_id_t` the device reports (check-in format 2).
    pub chip_id: Option<i64>,
    /// `esp_reset_reason_t` of its last reset (check-in format 2).
    pub reset_reason: Option<i64>,
}

/// A new event and the device state it implies.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Device.
    pub device_id: String,
    /// Now.
    pub at: Millis,
    /// Kind.
    pub kind: String,
    /// Reason.
    pub reason: Option<String>,
    /// Release.
    pub release_id: Option<String>,
    /// Progress.
    pub bytes_done: Option<i64>,
    /// Progress total.
    pub bytes_total: Option<i64>,
    /// Extra JSON.
    pub detail: Option<serde_json::Value>,
    /// New device state, if the event changes it.
    pub new_state: Option<DeviceState>,
    /// Suppress this release for the device (it rolled back from it or failed it).
    pub suppress_release: Option<String>,
    /// Close the device's open rollback order with this outcome (only if it was delivered).
    pub close_rollback: Option<String>,
}

/// Progress or contact noted in memory and flushed in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Device.
    pub device_id: String,
    /// Last contact.
    pub at: Millis,
    /// The protocol the contact came in on: a batch only ever touches a device row of that
    /// protocol.
    pub protocol: Protocol,
    /// Download progress, with the time the sample was taken.
    pub progress: Option<Progress>,
    /// Create the device as a legacy device when it does not exist (a legacy contact the
    /// server admitted under its limits; see [`ReportStore::apply_seen`]). v2 contacts never create.
    pub create: bool,
    /// What a format-2 check-in says that changes at every contact.
    pub telemetry: Option<SeenTelemetry>,
}

/// The parts of a format-2 check-in that change at every contact, so they are batched with
/// the last-seen time instead of written at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenTelemetry {
    /// The check-in's counter (0: not kept by the agent).
    pub counter: i64,
    /// Seconds since the device booted.
    pub uptime_s: i64,
    /// Free heap bytes, when known.
    pub free_heap: Option<i64>,
    /// The application's attributes, a JSON object of strings.
    pub attributes: String,
    /// When the check-in came (orders two samples of a batch when the agent keeps no
    /// counter).
    pub at: Millis,
}

/// A download progress sample.
///
/// It carries its own time because a batch is written later than it was taken: a sample older
/// than the state an event or a status report set since (`state_set_at`) is dropped, so a
/// flush can never put back `downloading` over an outcome the device reported after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes done.
    pub done: i64,
    /// Bytes in all.
    pub total: i64,
    /// When the sample was taken.
    pub at: Millis,
}

/// What [`ReportStore::apply_seen`] could not do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenApplied {
    /// Legacy devices not created because `legacy.max_devices` was reached.
    pub not_created: Vec<String>,
}

/// Device reports, events and contacts.
#[async_trait::async_trait]
pub trait ReportStore: Send + Sync {
    /// Records a changed report and its check-in history row.
    ///
    /// `counter` is the check-in's (0 when the agent keeps none, and for legacy reports). A
    /// report whose counter is below the highest applied is not applied; 0 applies and
    /// forgets the highest (an agent that keeps no counter ran, so the next that does starts
    /// afresh).
    async fn record_report(
        &self,
        device_id: &str,
        protocol: Protocol,
        report: &Report,
        counter: i64,
        at: Millis,
    ) -> StoreResult<()>;

    /// Stores an event and applies its effect on the device, in one transaction.
    async fn add_event(&self, event: &NewEvent) -> StoreResult<()>;

    /// A device's events, newest first.
    async fn list_events(
        &self,
        device_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<DeviceEvent>>;

    /// Applies a batch of contacts (see [`Seen`]): moves `last_seen_at` forward and applies
    /// progress samples newer than the device's `state_set_at`. Legacy contacts marked
    /// `create` make their device when it is missing, unless `max_legacy_devices` legacy
    /// devices exist already.
    async fn apply_seen(&self, batch: &[Seen], max_legacy_devices: u64)
    -> StoreResult<SeenApplied>;
}
