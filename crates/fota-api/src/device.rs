//! Devices, their update state, their events and rollback orders.

use serde::{Deserialize, Serialize};

use crate::Millis;

/// Which API a device speaks. An id belongs to one protocol: a v2 device is never created,
/// read or written through the legacy endpoints.
///
/// The set is closed on purpose: what may be done with a device depends on its protocol, so
/// an answer naming one this version does not know is refused as a whole rather than guessed
/// at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Provisioned with its own credential; binary check-ins and signed manifests.
    V2,
    /// Seen on the seed's JSON API.
    Legacy,
}

/// A protocol name that is neither `v2` nor `legacy`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown device protocol {0:?} (expected v2 or legacy)")]
pub struct UnknownProtocol(pub String);

impl Protocol {
    /// The name on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2 => "v2",
            Self::Legacy => "legacy",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Result<Self, UnknownProtocol> {
        match s {
            "v2" => Ok(Self::V2),
            "legacy" => Ok(Self::Legacy),
            other => Err(UnknownProtocol(other.to_owned())),
        }
    }
}

impl core::fmt::Display for Protocol {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a device is in an update, as its last event or report says.
///
/// v2 devices only ever reach the named states. A legacy device's state is the status word it
/// last posted, which can be anything: known words map to their variant and every other word
/// is kept as it was sent in [`DeviceState::Other`], as is a state a newer server may add.
/// On the wire it is always the plain word.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeviceState {
    /// Nothing under way (a new device).
    Idle,
    /// A download is under way; see the device's progress fields.
    Downloading,
    /// The whole image is on flash and its SHA-256 checked.
    Verified,
    /// Switching slots.
    Installing,
    /// The new image runs on trial, not yet confirmed.
    Trial,
    /// The new image confirmed itself.
    Confirmed,
    /// The device went back to its previous image (a failed trial, or an order).
    RolledBack,
    /// The update failed; see the event's reason.
    Failed,
    /// The device refused a rollback order.
    RollbackRefused,
    /// Any other word: a legacy device's own status word, or a state of a newer server. Never
    /// one of the words above (those parse to their variants).
    Other(String),
}

impl DeviceState {
    /// The word for this state.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Idle => "idle",
            Self::Downloading => "downloading",
            Self::Verified => "verified",
            Self::Installing => "installing",
            Self::Trial => "trial",
            Self::Confirmed => "confirmed",
            Self::RolledBack => "rolled_back",
            Self::Failed => "failed",
            Self::RollbackRefused => "rollback_refused",
            Self::Other(word) => word,
        }
    }

    /// The state a word names: its variant when it is a known one, else [`Self::Other`].
    pub fn from_word(word: &str) -> Self {
        match word {
            "idle" => Self::Idle,
            "downloading" => Self::Downloading,
            "verified" => Self::Verified,
            "installing" => Self::Installing,
            "trial" => Self::Trial,
            "confirmed" => Self::Confirmed,
            "rolled_back" => Self::RolledBack,
            "failed" => Self::Failed,
            "rollback_refused" => Self::RollbackRefused,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl From<&str> for DeviceState {
    fn from(word: &str) -> Self {
        Self::from_word(word)
    }
}

impl From<String> for DeviceState {
    fn from(word: String) -> Self {
        match Self::from_word(&word) {
            Self::Other(_) => Self::Other(word),
            known => known,
        }
    }
}

impl core::fmt::Display for DeviceState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for DeviceState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DeviceState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::from)
    }
}

/// A device as the operator API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Device {
    /// The device's name, e.g. `EcoWatt001`.
    pub id: String,
    /// UUIDv5(vendor id, "device/" + id), for v2 devices.
    pub uuid: Option<String>,
    /// Hardware class name, for v2 devices.
    pub class: Option<String>,
    /// `v2` (provisioned) or `legacy` (seen on the seed API).
    #[schema(value_type = String)]
    pub protocol: Protocol,
    /// When it was provisioned or first seen, unix ms.
    pub created_at: Millis,
    /// When its credential was revoked, unix ms.
    pub revoked_at: Option<Millis>,
    /// Last contact, unix ms (flushed in batches).
    pub last_seen_at: Option<Millis>,
    /// Running firmware version as last reported.
    pub fw_version: Option<String>,
    /// Running release sequence as last reported.
    pub fw_sequence: Option<i64>,
    /// Running image SHA-256 (hex) as last reported.
    pub fw_sha256: Option<String>,
    /// Running slot as last reported.
    pub slot: Option<i64>,
    /// otadata state of the running slot as last reported.
    pub ota_state: Option<String>,
    /// Outcome of the last update as last reported.
    pub last_result: Option<String>,
    /// Update state: `idle`, `downloading`, `verified`, `installing`, `trial`, `confirmed`,
    /// `rolled_back`, `failed`, ...
    #[schema(value_type = String)]
    pub state: DeviceState,
    /// Release the progress refers to.
    pub progress_release_id: Option<String>,
    /// Bytes downloaded of that release.
    pub progress_bytes: i64,
    /// Size of that release.
    pub progress_total: i64,
    /// When `state` last changed, unix ms.
    pub state_changed_at: Option<Millis>,
    /// Explicit assignment of this device.
    pub assigned_release_id: Option<String>,
    /// What the device is offered: the explicit assignment, else its class's.
    pub effective_release_id: Option<String>,
    /// A release this device is not offered again until a new explicit assignment.
    pub suppressed_release_id: Option<String>,
    /// The open rollback order, if any.
    pub rollback_order: Option<RollbackOrder>,
    /// What a v2 device says about itself at check-in; `None` before its first check-in and
    /// for legacy devices.
    pub telemetry: Option<DeviceTelemetry>,
}

/// What a v2 device reports about itself (check-in format 2; an agent of format 1 reports
/// only its format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceTelemetry {
    /// The check-in format its agent speaks: 1 or 2.
    pub agent_format: i64,
    /// `esp_chip_id_t`.
    pub chip_id: Option<i64>,
    /// esptool's name of the chip (`esp32`, `esp32c3`), when the id is one.
    pub chip: Option<String>,
    /// `esp_reset_reason_t` of its last reset (0 = unknown, 1 power-on, 3 software, 4 panic,
    /// 5-7 watchdogs, 8 deep sleep, 9 brown-out).
    pub reset_reason: Option<i64>,
    /// Seconds since it booted, as of `last_seen_at` (flushed in batches).
    pub uptime_s: Option<i64>,
    /// Free heap bytes, when the device knows.
    pub free_heap: Option<i64>,
    /// The application's own key/values.
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// An order to roll a device back to its previous image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RollbackOrder {
    /// Order id: a decimal u64 (devices acknowledge orders by number).
    pub id: String,
    /// Device.
    pub device_id: String,
    /// Why.
    pub reason: String,
    /// Ordered at, unix ms.
    pub created_at: Millis,
    /// Ordered by.
    pub created_by: String,
    /// When the device read it.
    pub delivered_at: Option<Millis>,
    /// When the device's report closed it.
    pub closed_at: Option<Millis>,
    /// The device's report.
    pub outcome: Option<String>,
}

/// A device event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceEvent {
    /// Increasing id (use as `before` cursor).
    pub id: i64,
    /// Device.
    pub device_id: String,
    /// When received, unix ms.
    pub at: Millis,
    /// Event kind, e.g. `progress`, `verified`, `confirmed`, `rolled_back`, `failed`,
    /// `legacy_status`, `checkin`.
    pub kind: String,
    /// Typed reason, if any.
    pub reason: Option<String>,
    /// Release concerned.
    pub release_id: Option<String>,
    /// Progress.
    pub bytes_done: Option<i64>,
    /// Progress total.
    pub bytes_total: Option<i64>,
    /// Extra JSON.
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

/// A device to provision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeviceRequest {
    /// The device's name, e.g. `EcoWatt001` (1-64 of `A-Za-z0-9._-`).
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub id: String,
    /// Its hardware class name, e.g. `ecowatt-v1` (1-64 of `A-Za-z0-9._-`).
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub class: String,
}

/// A rollback order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Why (kept in the history; shown to legacy devices): 1-512 characters.
    #[schema(min_length = 1, max_length = 512)]
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_state_word_round_trips_to_its_variant() {
        for word in [
            "idle",
            "downloading",
            "verified",
            "installing",
            "trial",
            "confirmed",
            "rolled_back",
            "failed",
            "rollback_refused",
        ] {
            let state = DeviceState::from_word(word);
            assert!(!matches!(state, DeviceState::Other(_)), "{word}");
            assert_eq!(state.as_str(), word);
            assert_eq!(serde_json::to_value(&state).unwrap(), word);
            assert_eq!(
                serde_json::from_value::<DeviceState>(word.into()).unwrap(),
                state
            );
        }
    }

    #[test]
    fn a_legacy_status_word_is_kept_as_the_device_sent_it() {
        for word in ["rebooting", "reported", "", "Confirmed", "true", "1.0.6 ok"] {
            let state: DeviceState = serde_json::from_value(word.into()).unwrap();
            assert_eq!(state, DeviceState::Other(word.to_owned()));
            assert_eq!(serde_json::to_value(&state).unwrap(), word);
        }
        // A known word from a legacy device is the known state, whoever sent it.
        assert_eq!(
            DeviceState::from("confirmed".to_owned()),
            DeviceState::Confirmed
        );
    }

    #[test]
    fn protocols_keep_their_names_and_refuse_others() {
        assert_eq!(serde_json::to_value(Protocol::V2).unwrap(), "v2");
        assert_eq!(serde_json::to_value(Protocol::Legacy).unwrap(), "legacy");
        assert_eq!(Protocol::parse("legacy"), Ok(Protocol::Legacy));
        assert_eq!(Protocol::parse("v3"), Err(UnknownProtocol("v3".to_owned())));
        assert!(serde_json::from_value::<Protocol>("v3".into()).is_err());
    }
}
