//! The check-in request: what a device runs and where its update stands.

use crate::codec::{CodecError, Reader, Writer};
use crate::v2::codes::{AgentState, ReasonCode};
use crate::v2::{Error, FieldCheck, FixedStr};

/// Magic of a check-in request.
pub const MAGIC: [u8; 4] = *b"FCI1";
/// Format version of a check-in request this crate writes (it reads 1 and 2).
pub const FMT_VERSION: u16 = 2;
/// Format version of the first layout, sent by agents built before format 2.
pub const FMT_VERSION_1: u16 = 1;
/// Length of a format-1 check-in request, and of the part format 2 shares with it.
pub const LEN_V1: usize = 184;
/// Length of a format-2 check-in request without attributes.
pub const FIXED_LEN_V2: usize = 206;
/// Longest attribute section.
pub const MAX_ATTRIBUTES_LEN: usize = 256;
/// Longest check-in request of any format.
pub const MAX_LEN: usize = FIXED_LEN_V2 + MAX_ATTRIBUTES_LEN;
/// Longest attribute key.
pub const MAX_ATTRIBUTE_KEY: usize = 32;
/// Longest attribute value.
pub const MAX_ATTRIBUTE_VALUE: usize = 64;
/// `free_heap` value for "not known".
pub const FREE_HEAP_UNKNOWN: u32 = u32::MAX;

const FLAG_LEGACY_LATCHED_OFF: u16 = 1;

/// Running slot value for the factory app or an unknown slot.
pub const SLOT_FACTORY_OR_UNKNOWN: u8 = 0xFF;
/// otadata state value for "no state recorded" (`ESP_OTA_IMG_UNDEFINED`).
pub const OTA_STATE_UNDEFINED: u8 = 0xFF;

/// A check-in request (device → server), integers little-endian.
///
/// Format 2 (what this crate writes) is format 1's 184 bytes followed by the device's
/// [`Telemetry`]; format 1 (agents built before format 2) ends at byte 184 and is still read,
/// with `telemetry` `None`.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 4 | magic | `FCI1` (the record's name; the version is the next field) |
/// | 4 | 2 | fmt | 2 (or 1) |
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
/// | 184 | 8 | counter | format 2: u64, grows with every check-in of the device; 0 = not kept |
/// | 192 | 2 | chip_id | format 2: `esp_chip_id_t` of the device ([`chip_ids`](crate::v2::chip_ids)) |
/// | 194 | 1 | reset_reason | format 2: `esp_reset_reason_t` of the last reset (0 = unknown) |
/// | 195 | 1 | reserved | zero |
/// | 196 | 4 | uptime_s | format 2: seconds since this boot |
/// | 200 | 4 | free_heap | format 2: free heap bytes; 0xFFFF_FFFF = not known |
/// | 204 | 2 | attributes_len | format 2: ≤ 256 |
/// | 206 | attributes_len | attributes | format 2: [`Attributes`] |
///
/// Nothing follows the attributes.
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
    /// What a format-2 agent reports about itself; `None` in a format-1 record.
    pub telemetry: Option<Telemetry>,
}

/// The part of a format-2 check-in that describes the device rather than its update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Telemetry {
    /// Grows with every check-in of the device; 0 when the agent does not keep one.
    pub counter: u64,
    /// The device's `esp_chip_id_t`.
    pub chip_id: u16,
    /// `esp_reset_reason_t` of the last reset; 0 (`ESP_RST_UNKNOWN`) when not known.
    pub reset_reason: u8,
    /// Seconds since this boot.
    pub uptime_s: u32,
    /// Free heap in bytes, or [`FREE_HEAP_UNKNOWN`].
    pub free_heap: u32,
    /// The application's own key/values.
    pub attributes: Attributes,
}

impl Telemetry {
    /// Telemetry with nothing known but the chip.
    pub const fn new(chip_id: u16) -> Self {
        Self {
            counter: 0,
            chip_id,
            reset_reason: 0,
            uptime_s: 0,
            free_heap: FREE_HEAP_UNKNOWN,
            attributes: Attributes::EMPTY,
        }
    }
}

/// Why an attribute could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttributeError {
    /// The key is empty, longer than 32 bytes, or has a byte outside `[A-Za-z0-9_.-]`.
    #[error("attribute keys are 1 to 32 characters of A-Z a-z 0-9 _ . -")]
    BadKey,
    /// The value is longer than 64 bytes or holds a control character.
    #[error("attribute values are at most 64 bytes of text without control characters")]
    BadValue,
    /// The key is there already.
    #[error("the attribute is there already")]
    Duplicate,
    /// The section would exceed 256 bytes.
    #[error("the attributes exceed 256 bytes")]
    Full,
}

/// The application's key/values of a check-in, at most 256 bytes encoded: each entry is
/// `key_len` (u8, 1..=32), the key (`[A-Za-z0-9_.-]`), `value_len` (u8, 0..=64) and the value
/// (UTF-8 without control characters); keys are unique. The bound keeps the check-in inside
/// the agent's `io` buffer (DESIGN §3's RAM budget).
#[derive(Clone, PartialEq, Eq)]
pub struct Attributes {
    buf: [u8; MAX_ATTRIBUTES_LEN],
    len: usize,
}

impl Attributes {
    /// No attributes.
    pub const EMPTY: Self = Self {
        buf: [0; MAX_ATTRIBUTES_LEN],
        len: 0,
    };

    /// Adds `key = value`.
    pub fn push(&mut self, key: &str, value: &str) -> Result<(), AttributeError> {
        if !key_ok(key.as_bytes()) {
            return Err(AttributeError::BadKey);
        }
        if !value_ok(value) {
            return Err(AttributeError::BadValue);
        }
        if self.get(key).is_some() {
            return Err(AttributeError::Duplicate);
        }
        let need = 2usize.saturating_add(key.len()).saturating_add(value.len());
        let end = self.len.saturating_add(need);
        let out = self
            .buf
            .get_mut(self.len..end)
            .ok_or(AttributeError::Full)?;
        let mut w = Writer::new(out);
        // Both lengths were bounded above (32 and 64), and the slice has exactly `need` bytes.
        let put = |w: &mut Writer<'_>| -> Result<(), CodecError> {
            w.u8(u8::try_from(key.len()).unwrap_or(u8::MAX))?;
            w.bytes(key.as_bytes())?;
            w.u8(u8::try_from(value.len()).unwrap_or(u8::MAX))?;
            w.bytes(value.as_bytes())
        };
        put(&mut w).map_err(|_| AttributeError::Full)?;
        self.len = end;
        Ok(())
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The entries, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut rest = self.as_bytes();
        core::iter::from_fn(move || {
            let (key, value, tail) = split_entry(rest)?;
            rest = tail;
            Some((key, value))
        })
    }

    /// Whether there are none.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The encoded section.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Reads a section, checking every entry; `offset` is where it starts in the record.
    fn decode(bytes: &[u8], offset: usize) -> Result<Self, Error> {
        let bad =
            |at: usize| Error::field("attributes", offset.saturating_add(at), FieldCheck::Text);
        let mut out = Self::EMPTY;
        let mut rest = bytes;
        while !rest.is_empty() {
            let at = bytes.len().saturating_sub(rest.len());
            let (key, value, tail) = split_entry(rest).ok_or_else(|| bad(at))?;
            out.push(key, value).map_err(|_| bad(at))?;
            rest = tail;
        }
        Ok(out)
    }
}

fn key_ok(key: &[u8]) -> bool {
    (1..=MAX_ATTRIBUTE_KEY).contains(&key.len())
        && key
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn value_ok(value: &str) -> bool {
    value.len() <= MAX_ATTRIBUTE_VALUE && !value.chars().any(char::is_control)
}

/// One entry off the front of `bytes`: key, value, and what follows; `None` when it is not
/// a well-formed entry.
fn split_entry(bytes: &[u8]) -> Option<(&str, &str, &[u8])> {
    let (&key_len, rest) = bytes.split_first()?;
    let (key, rest) = rest.split_at_checked(usize::from(key_len))?;
    let (&value_len, rest) = rest.split_first()?;
    let (value, rest) = rest.split_at_checked(usize::from(value_len))?;
    let key = core::str::from_utf8(key)
        .ok()
        .filter(|k| key_ok(k.as_bytes()))?;
    let value = core::str::from_utf8(value).ok().filter(|v| value_ok(v))?;
    Some((key, value, rest))
}

// By hand: as a map of texts, not 256 numbers.
impl core::fmt::Debug for Attributes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
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

    /// Bytes the encoded record takes.
    pub fn encoded_len(&self) -> usize {
        self.telemetry.as_ref().map_or(LEN_V1, |t| {
            FIXED_LEN_V2.saturating_add(t.attributes.as_bytes().len())
        })
    }

    /// Writes the record into `out`: format 2 with telemetry, format 1 without. Returns the
    /// bytes written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        self.check()?;
        let mut w = Writer::new(out);
        w.bytes(&MAGIC)?;
        w.u16(if self.telemetry.is_some() {
            FMT_VERSION
        } else {
            FMT_VERSION_1
        })?;
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
        if let Some(t) = &self.telemetry {
            w.u64(t.counter)?;
            w.u16(t.chip_id)?;
            w.u8(t.reset_reason)?;
            w.u8(0)?;
            w.u32(t.uptime_s)?;
            w.u32(t.free_heap)?;
            let attributes = t.attributes.as_bytes();
            w.u16(Error::length(attributes.len(), "attributes_len", 204)?)?;
            w.bytes(attributes)?;
        }
        Ok(w.written())
    }

    /// The encoded record in a new vector.
    #[cfg(feature = "alloc")]
    pub fn to_vec(&self) -> Result<alloc::vec::Vec<u8>, Error> {
        let mut out = [0u8; MAX_LEN];
        let n = self.encode(&mut out)?;
        Ok(crate::codec::written(&out, n)?.to_vec())
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
        if fmt != FMT_VERSION && fmt != FMT_VERSION_1 {
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
            telemetry: None,
        };
        let record = if fmt == FMT_VERSION {
            let counter = r.u64()?;
            let chip_id = r.u16()?;
            let reset_reason = r.u8()?;
            if r.u8()? != 0 {
                return Err(Error::field("reserved", 195, FieldCheck::ReservedNotZero));
            }
            let uptime_s = r.u32()?;
            let free_heap = r.u32()?;
            let attributes_len = usize::from(r.u16()?);
            if attributes_len > MAX_ATTRIBUTES_LEN {
                return Err(Error::field("attributes_len", 204, FieldCheck::OutOfRange));
            }
            let attributes = Attributes::decode(r.take(attributes_len)?, FIXED_LEN_V2)?;
            Self {
                telemetry: Some(Telemetry {
                    counter,
                    chip_id,
                    reset_reason,
                    uptime_s,
                    free_heap,
                    attributes,
                }),
                ..record
            }
        } else {
            record
        };
        r.finish()?;
        record.check()?;
        Ok(record)
    }
}
