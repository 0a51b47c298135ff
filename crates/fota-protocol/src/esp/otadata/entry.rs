//! The otadata entries (`esp_ota_select_entry_t`): their codec and the bootloader's validity
//! and selection rules.

use core::fmt;

use super::{ENTRY_LEN, SECTOR_SIZE, SEQ_EMPTY, seq_crc};
use crate::codec::Reader;

/// A raw `ota_state` value that is none of the named states. It still boots: the bootloader
/// only refuses INVALID and ABORTED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnknownState(u32);

impl UnknownState {
    /// The raw value.
    pub const fn raw(self) -> u32 {
        self.0
    }
}

/// `esp_ota_img_states_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OtaState {
    /// 0: set by `esp_ota_set_boot_partition` with rollback enabled; the bootloader turns it
    /// into PENDING_VERIFY on the next boot.
    New,
    /// 1: running on trial; the bootloader turns it into ABORTED on the next boot.
    PendingVerify,
    /// 2: confirmed.
    Valid,
    /// 3: rejected by the app; never selected.
    Invalid,
    /// 4: trial boot not confirmed; never selected.
    Aborted,
    /// 0xFFFFFFFF: written without rollback; selectable, never changed.
    Undefined,
    /// Anything else (e.g. a torn write); selectable, like UNDEFINED.
    Other(UnknownState),
}

impl OtaState {
    /// The state a raw value means.
    pub const fn from_raw(raw: u32) -> Self {
        match raw {
            0 => Self::New,
            1 => Self::PendingVerify,
            2 => Self::Valid,
            3 => Self::Invalid,
            4 => Self::Aborted,
            u32::MAX => Self::Undefined,
            other => Self::Other(UnknownState(other)),
        }
    }

    /// The raw value.
    pub const fn raw(self) -> u32 {
        match self {
            Self::New => 0,
            Self::PendingVerify => 1,
            Self::Valid => 2,
            Self::Invalid => 3,
            Self::Aborted => 4,
            Self::Undefined => u32::MAX,
            Self::Other(s) => s.0,
        }
    }

    /// ESP-IDF's name (`NEW`, `PENDING_VERIFY`, …; `UNKNOWN` for other values).
    pub const fn name(self) -> &'static str {
        match self {
            Self::New => "NEW",
            Self::PendingVerify => "PENDING_VERIFY",
            Self::Valid => "VALID",
            Self::Invalid => "INVALID",
            Self::Aborted => "ABORTED",
            Self::Undefined => "UNDEFINED",
            Self::Other(_) => "UNKNOWN",
        }
    }

    /// Whether an entry in this state may be selected (everything but INVALID and ABORTED).
    pub const fn is_selectable(self) -> bool {
        !matches!(self, Self::Invalid | Self::Aborted)
    }
}

impl fmt::Display for OtaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Other(s) => write!(f, "UNKNOWN({:#x})", s.0),
            known => f.write_str(known.name()),
        }
    }
}

/// One `esp_ota_select_entry_t`.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 4 | ota_seq | u32 LE, 1-based; slot = (seq − 1) % app_count; 0xFFFFFFFF = empty |
/// | 4 | 20 | seq_label | unused; ESP-IDF rewrites whatever it read (0xFF when erased) |
/// | 24 | 4 | ota_state | u32 LE, [`OtaState`]; **not** covered by the CRC |
/// | 28 | 4 | crc | [`seq_crc`] of the 4 `ota_seq` bytes only |
///
/// Example, seq 1 VALID: `01000000` + `ff`×20 + `02000000` + `9a984347`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OtaSelectEntry {
    /// `ota_seq`.
    pub seq: u32,
    /// `seq_label` as stored.
    pub label: [u8; 20],
    /// `ota_state`.
    pub state: OtaState,
    /// `crc` as stored.
    pub crc: u32,
}

impl OtaSelectEntry {
    /// An erased entry (all 0xFF).
    pub const ERASED: Self = Self {
        seq: SEQ_EMPTY,
        label: [0xFF; 20],
        state: OtaState::Undefined,
        crc: u32::MAX,
    };

    /// A fresh entry as ESP-IDF writes it into an erased sector: label 0xFF, CRC computed.
    pub fn new(seq: u32, state: OtaState) -> Self {
        Self {
            seq,
            label: [0xFF; 20],
            state,
            crc: seq_crc(seq),
        }
    }

    /// The same entry with a new sequence and state, CRC recomputed and label kept (what
    /// `rewrite_ota_seq` writes).
    #[must_use]
    pub fn rewritten(self, seq: u32, state: OtaState) -> Self {
        Self {
            seq,
            state,
            crc: seq_crc(seq),
            ..self
        }
    }

    /// Decodes 32 bytes; every bit pattern is an entry.
    pub fn decode(bytes: &[u8; ENTRY_LEN]) -> Self {
        let [s0, s1, s2, s3, label @ .., t0, t1, t2, t3, c0, c1, c2, c3] = *bytes;
        Self {
            seq: u32::from_le_bytes([s0, s1, s2, s3]),
            label,
            state: OtaState::from_raw(u32::from_le_bytes([t0, t1, t2, t3])),
            crc: u32::from_le_bytes([c0, c1, c2, c3]),
        }
    }

    /// Decodes the first 32 bytes of `bytes` (a sector or more may be passed).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, crate::CodecError> {
        Ok(Self::decode(&Reader::new(bytes).array()?))
    }

    /// Encodes the 32 bytes.
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[0..4].copy_from_slice(&self.seq.to_le_bytes());
        out[4..24].copy_from_slice(&self.label);
        out[24..28].copy_from_slice(&self.state.raw().to_le_bytes());
        out[28..32].copy_from_slice(&self.crc.to_le_bytes());
        out
    }

    /// Whether the stored CRC matches the sequence.
    pub fn crc_ok(&self) -> bool {
        self.crc == seq_crc(self.seq)
    }

    /// `bootloader_common_ota_select_valid`: not empty, not INVALID/ABORTED, CRC matches.
    pub fn is_valid(&self) -> bool {
        self.seq != SEQ_EMPTY && self.state.is_selectable() && self.crc_ok()
    }

    /// `bootloader_common_ota_select_invalid`: empty, INVALID or ABORTED. The CRC is not
    /// looked at, so an entry can be neither valid nor invalid.
    pub fn is_invalid(&self) -> bool {
        self.seq == SEQ_EMPTY || !self.state.is_selectable()
    }

    /// Empty or CRC-bad: the "initial contents" test of the bootloader.
    pub fn is_initial_or_corrupt(&self) -> bool {
        self.seq == SEQ_EMPTY || !self.crc_ok()
    }

    /// The slot this entry selects: `(seq - 1) % app_count` in wrapping 32-bit arithmetic.
    pub fn slot(&self, app_count: u32) -> Option<u32> {
        self.seq.wrapping_sub(1).checked_rem(app_count)
    }
}

impl Default for OtaSelectEntry {
    fn default() -> Self {
        Self::ERASED
    }
}

/// Both otadata entries, sector 0 first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Otadata {
    /// `entries[0]` from offset 0, `entries[1]` from offset 0x1000.
    pub entries: [OtaSelectEntry; 2],
}

impl Otadata {
    /// Both sectors erased.
    pub const ERASED: Self = Self {
        entries: [OtaSelectEntry::ERASED; 2],
    };

    /// Decodes the first 32 bytes of each sector.
    pub fn decode(sector0: &[u8; ENTRY_LEN], sector1: &[u8; ENTRY_LEN]) -> Self {
        Self {
            entries: [
                OtaSelectEntry::decode(sector0),
                OtaSelectEntry::decode(sector1),
            ],
        }
    }

    /// Decodes the whole otadata partition (at least 0x1020 bytes).
    pub fn from_partition(bytes: &[u8]) -> Result<Self, crate::CodecError> {
        let at = SECTOR_SIZE as usize;
        let second = bytes.get(at..).ok_or(crate::CodecError::Truncated {
            offset: at,
            needed: ENTRY_LEN,
        })?;
        let e1 = OtaSelectEntry::from_bytes(second).map_err(|_| crate::CodecError::Truncated {
            offset: at,
            needed: ENTRY_LEN,
        })?;
        Ok(Self {
            entries: [OtaSelectEntry::from_bytes(bytes)?, e1],
        })
    }

    /// The entry of `sector`; an erased one for a sector other than 0 and 1.
    pub(super) fn entry(&self, sector: usize) -> OtaSelectEntry {
        self.entries.get(sector).copied().unwrap_or_default()
    }

    /// The sector that is not `sector` (of 0 and 1).
    pub(super) const fn other_sector(sector: usize) -> usize {
        sector ^ 1
    }

    /// `bootloader_common_get_active_otadata`: of the valid entries, the one with the higher
    /// `ota_seq` (sector 0 on a tie); `None` if neither is valid.
    pub fn active(&self) -> Option<usize> {
        let [a, b] = self.entries;
        match (a.is_valid(), b.is_valid()) {
            (true, true) => Some(if a.seq >= b.seq { 0 } else { 1 }),
            (true, false) => Some(0),
            (false, true) => Some(1),
            (false, false) => None,
        }
    }

    /// The active entry's sector and slot.
    pub fn active_slot(&self, app_count: u32) -> Option<(usize, u32)> {
        let sector = self.active()?;
        Some((sector, self.entry(sector).slot(app_count)?))
    }

    /// `esp_ota_get_state_partition`: the state of the first entry (sector 0 first) whose
    /// slot is `slot` and whose CRC matches. INVALID/ABORTED entries are not skipped.
    pub fn state_of_slot(&self, slot: u32, app_count: u32) -> Option<OtaState> {
        self.entries
            .iter()
            .find(|e| e.seq != SEQ_EMPTY && e.crc_ok() && e.slot(app_count) == Some(slot))
            .map(|e| e.state)
    }
}
