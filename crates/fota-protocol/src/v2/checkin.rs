//! The check-in request: what a device runs and where its update stands.

use crate::codec::{Reader, Writer};
use crate::v2::codes::{AgentState, ReasonCode};
use crate::v2::{Error, FieldCheck, FixedStr};

/// Magic of a check-in request.
pub const MAGIC: [u8; 4] = *b"FCI1";
/// Format version of a check-in request.
pub const FMT_VERSION: u16 = 1;
/// Length of a check-in request.
pub const LEN: usize = 184;

const FLAG_LEGACY_LATCHED_OFF: u16 = 1;

/// Running slot value for the factory app or an unknown slot.
pub const SLOT_FACTORY_OR_UNKNOWN: u8 = 0xFF;
/// otadata state value for "no state recorded" (`ESP_OTA_IMG_UNDEFINED`).
pub const OTA_STATE_UNDEFINED: u8 = 0xFF;

/// A check-in request (device → server), fixed 184 bytes, integers little-endian.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 4 | magic | `FCI1` |
/// | 4 | 2 | fmt | 1 |
/// | 6 | 2 | flags | bit 0: legacy mode latched off; other bits zero |
/// | 8 | 16 | device_id | the device's UUID |
/// | 24 | 16 | nonce | fresh random bytes; the status statement echoes them |
/// | 40 | 4 | root_version | version of the device's trusted root record |
/// | 44 | 8 | installed_sequence | sequence of the installed (confirmed) release |
/// | 52 | 4 | installed_security_counter | committed security counter |
/// | 56 | 32 | running fw_version | NUL-padded UTF-8 (0..=31 bytes) |
/// | 88 | 32 | running image sha256 | SHA-256 of the running image |
/// | 120 | 1 | running slot | OTA slot 0..=15; 0xFF = factory or unknown |
/// | 121 | 1 | running otadata state | low byte of `esp_ota_img_states_t`: 0 NEW, 1 PENDING_VERIFY, 2 VALID, 3 INVALID, 4 ABORTED; 0xFF UNDEFINED |
/// | 122 | 1 | agent state | [`AgentState`] code |
/// | 123 | 1 | last result | [`ReasonCode`] code |
/// | 124 | 8 | pending bytes_done | bytes of the pending image durably written |
/// | 132 | 8 | pending bytes_total | size of the pending image (0 = none); ≥ bytes_done |
/// | 140 | 32 | pending manifest digest | digest of the pending manifest, zero = none |
/// | 172 | 8 | rollback_order_id | rollback order being acknowledged, 0 = none |
/// | 180 | 4 | boot_count | boots since the last confirmation |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckIn {
    /// Legacy mode is latched off (the device accepted a v2 manifest).
    pub legacy_latched_off: bool,
    /// The device's UUID.
    pub device_id: [u8; 16],
    /// Fresh random nonce.
    pub nonce: [u8; 16],
    /// Version of the trusted root record.
    pub root_version: u32,
    /// Sequence of the installed release.
    pub installed_sequence: u64,
    /// Committed security counter.
    pub installed_security_counter: u32,
    /// Version of the running image.
    pub running_fw_version: FixedStr,
    /// SHA-256 of the running image.
    pub running_image_sha256: [u8; 32],
    /// OTA slot of the running image, or [`SLOT_FACTORY_OR_UNKNOWN`].
    pub running_slot: u8,
    /// otadata state of the running slot, or [`OTA_STATE_UNDEFINED`].
    pub running_ota_state: u8,
    /// What the agent is doing.
    pub agent_state: AgentState,
    /// Result of the last operation.
    pub last_result: ReasonCode,
    /// Bytes of the pending image durably written.
    pub pending_bytes_done: u64,
    /// Size of the pending image.
    pub pending_bytes_total: u64,
    /// Digest of the pending manifest, zero for none.
    pub pending_manifest_digest: [u8; 32],
    /// Rollback order acknowledged, 0 for none.
    pub rollback_order_id: u64,
    /// Boots since the last confirmation.
    pub boot_count: u32,
}

impl CheckIn {
    /// Checks the fields that have a restricted range.
    pub fn check(&self) -> Result<(), Error> {
        if self.running_slot > 15 && self.running_slot != SLOT_FACTORY_OR_UNKNOWN {
            return Err(Error::field("running_slot", 120, FieldCheck::OutOfRange));
        }
        if self.running_ota_state > 4 && self.running_ota_state != OTA_STATE_UNDEFINED {
            return Err(Error::field(
                "running_otadata_state",
                121,
                FieldCheck::OutOfRange,
            ));
        }
        if self.pending_bytes_done > self.pending_bytes_total {
            return Err(Error::field(
                "pending_bytes_done",
                124,
                FieldCheck::Inconsistent,
            ));
        }
        Ok(())
    }

    /// The 184-byte record.
    pub fn encode(&self) -> Result<[u8; LEN], Error> {
        self.check()?;
        let mut out = [0u8; LEN];
        let mut w = Writer::new(&mut out);
        w.bytes(&MAGIC)?;
        w.u16(FMT_VERSION)?;
        w.u16(if self.legacy_latched_off {
            FLAG_LEGACY_LATCHED_OFF
        } else {
            0
        })?;
        w.bytes(&self.device_id)?;
        w.bytes(&self.nonce)?;
        w.u32(self.root_version)?;
        w.u64(self.installed_sequence)?;
        w.u32(self.installed_security_counter)?;
        w.bytes(self.running_fw_version.as_bytes())?;
        w.bytes(&self.running_image_sha256)?;
        w.u8(self.running_slot)?;
        w.u8(self.running_ota_state)?;
        w.u8(self.agent_state.code())?;
        w.u8(self.last_result.code())?;
        w.u64(self.pending_bytes_done)?;
        w.u64(self.pending_bytes_total)?;
        w.bytes(&self.pending_manifest_digest)?;
        w.u64(self.rollback_order_id)?;
        w.u32(self.boot_count)?;
        Ok(out)
    }

    /// Decodes a record; the whole input must be exactly one record.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let magic: [u8; 4] = r.array()?;
        if magic != MAGIC {
            return Err(Error::BadMagic {
                expected: MAGIC,
                found: magic,
            });
        }
        let fmt = r.u16()?;
        if fmt != FMT_VERSION {
            return Err(Error::FormatVersion {
                expected: FMT_VERSION,
                found: fmt,
            });
        }
        let flags = r.u16()?;
        if flags & !FLAG_LEGACY_LATCHED_OFF != 0 {
            return Err(Error::field("flags", 6, FieldCheck::ReservedNotZero));
        }
        let device_id = r.array()?;
        let nonce = r.array()?;
        let root_version = r.u32()?;
        let installed_sequence = r.u64()?;
        let installed_security_counter = r.u32()?;
        let running_fw_version = FixedStr::from_field(&r.array()?).ok_or(Error::field(
            "running_fw_version",
            56,
            FieldCheck::Text,
        ))?;
        let running_image_sha256 = r.array()?;
        let running_slot = r.u8()?;
        let running_ota_state = r.u8()?;
        let agent_state = AgentState::from_code(r.u8()?).ok_or(Error::field(
            "agent_state",
            122,
            FieldCheck::UnknownCode,
        ))?;
        let last_result = ReasonCode::from_code(r.u8()?).ok_or(Error::field(
            "last_result",
            123,
            FieldCheck::UnknownCode,
        ))?;
        let record = Self {
            legacy_latched_off: flags & FLAG_LEGACY_LATCHED_OFF != 0,
            device_id,
            nonce,
            root_version,
            installed_sequence,
            installed_security_counter,
            running_fw_version,
            running_image_sha256,
            running_slot,
            running_ota_state,
            agent_state,
            last_result,
            pending_bytes_done: r.u64()?,
            pending_bytes_total: r.u64()?,
            pending_manifest_digest: r.array()?,
            rollback_order_id: r.u64()?,
            boot_count: r.u32()?,
        };
        r.finish()?;
        record.check()?;
        Ok(record)
    }
}
