//! The otadata partition: which OTA slot boots, and in which trial state.
//!
//! otadata is two 4 KiB sectors; each holds one [`OtaSelectEntry`] in its first 32 bytes and
//! 0xFF after it. This module has three parts, all pure and allocation-free:
//!
//! - the entry codec and the bootloader's validity and selection rules
//!   ([`OtaSelectEntry::is_valid`], [`Otadata::active`]);
//! - write planning: what ESP-IDF's app APIs write for `esp_ota_set_boot_partition`,
//!   `esp_ota_mark_app_valid_cancel_rollback`, `esp_ota_mark_app_invalid_rollback`, and
//!   `esp_ota_invalidate_inactive_ota_data_slot` ([`Otadata::set_boot_partition`] and
//!   friends). Each planned write is "erase the sector, program 32 bytes": two flash
//!   operations, not atomic;
//! - the second-stage bootloader's choice (`bootloader_utility_get_selected_boot_partition`
//!   and the fallback order of `bootloader_utility_load_boot_image`), with and without
//!   `CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE` ([`select_boot`]). Anti-rollback
//!   (`CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK`, eFuse secure version) is not modelled here.
//!
//! # Sequence numbers near the top of `u32`
//!
//! `ota_seq` 0xFFFFFFFF means "empty", so the highest usable sequence is 0xFFFFFFFE. ESP-IDF
//! computes the next sequence in 32-bit arithmetic and would write 0xFFFFFFFF (an entry the
//! bootloader ignores, so the switch silently does not happen) or wrap to a small number
//! (which then loses against the old, higher entry). [`Otadata::set_boot_partition`] computes
//! in 64 bits and returns [`PlanError::SequenceExhausted`] instead of planning such a write;
//! [`Otadata::renormalise`] then plans a power-safe rewrite that keeps the running slot
//! selected with the smallest sequence that selects it, after which the switch fits again.
//! Slot mapping of an existing entry uses ESP-IDF's wrapping `(seq - 1) % app_count`, so seq
//! 0 (valid if its CRC matches) maps to `0xFFFFFFFF % app_count` exactly as on the device.

use core::fmt;

use crate::codec::Reader;

/// Size of the otadata partition ESP-IDF requires (two sectors).
pub const OTADATA_SIZE: u32 = 0x2000;
/// Offset of the second entry's sector within the partition.
pub const SECTOR_SIZE: u32 = 0x1000;
/// Size of one entry.
pub const ENTRY_LEN: usize = 32;
/// `ota_seq` of an erased entry.
pub const SEQ_EMPTY: u32 = u32::MAX;

/// ESP-IDF's otadata CRC: `esp_rom_crc32_le(UINT32_MAX, &ota_seq, 4)`, i.e. a reflected
/// CRC-32 (poly 0x04C11DB7) with init 0 and xorout 0xFFFFFFFF. Not `CRC_32_ISO_HDLC`.
pub const ESP_OTADATA_CRC32: crc::Algorithm<u32> = crc::Algorithm {
    width: 32,
    poly: 0x04c1_1db7,
    init: 0,
    refin: true,
    refout: true,
    xorout: 0xffff_ffff,
    check: 0xd202_d277,
    residue: 0,
};

/// The CRC engine; `const` so its table is built at compile time.
pub const OTADATA_CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&ESP_OTADATA_CRC32);

/// CRC of a sequence number as stored in an entry (seq 1 → 0x4743989A).
pub fn seq_crc(seq: u32) -> u32 {
    OTADATA_CRC.checksum(&seq.to_le_bytes())
}

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
        let word = |at: usize| {
            let mut b = [0u8; 4];
            if let Some(src) = bytes.get(at..at + 4) {
                b.copy_from_slice(src);
            }
            u32::from_le_bytes(b)
        };
        let mut label = [0u8; 20];
        label.copy_from_slice(&bytes[4..24]);
        Self {
            seq: word(0),
            label,
            state: OtaState::from_raw(word(24)),
            crc: word(28),
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

/// Where the device boots from: a partition index as the bootloader numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BootIndex {
    /// The factory app (`FACTORY_INDEX`, −1).
    Factory,
    /// OTA slot N (`ota_N`).
    Ota(u32),
    /// The test app (`TEST_APP_INDEX`, −2).
    Test,
}

impl fmt::Display for BootIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Factory => f.write_str("factory"),
            Self::Ota(n) => write!(f, "ota_{n}"),
            Self::Test => f.write_str("test"),
        }
    }
}

/// One planned otadata change. Each is performed as ESP-IDF does: erase the sector, then
/// (for [`Self::Write`]) program the 32-byte entry at its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtadataOp {
    /// Erase sector `sector` (0 or 1) and write `entry` at its start.
    Write {
        /// 0 or 1: byte offset `sector * 0x1000` in the otadata partition.
        sector: usize,
        /// The entry to program.
        entry: OtaSelectEntry,
    },
    /// Erase sector `sector` and leave it erased.
    Erase {
        /// 0 or 1.
        sector: usize,
    },
}

impl OtadataOp {
    /// The sector this operation touches.
    pub const fn sector(&self) -> usize {
        match self {
            Self::Write { sector, .. } | Self::Erase { sector } => *sector,
        }
    }

    /// Applies the operation to an in-memory copy of the two entries.
    pub fn apply(&self, entries: &mut [OtaSelectEntry; 2]) {
        match *self {
            Self::Write { sector, entry } => {
                if let Some(e) = entries.get_mut(sector) {
                    *e = entry;
                }
            }
            Self::Erase { sector } => {
                if let Some(e) = entries.get_mut(sector) {
                    *e = OtaSelectEntry::ERASED;
                }
            }
        }
    }
}

/// Up to three otadata operations, in the order they must be performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OtadataPlan {
    ops: [Option<OtadataOp>; 3],
}

impl OtadataPlan {
    /// No operation.
    pub const EMPTY: Self = Self { ops: [None; 3] };

    fn push(&mut self, op: OtadataOp) {
        if let Some(free) = self.ops.iter_mut().find(|o| o.is_none()) {
            *free = Some(op);
        }
    }

    fn one(op: OtadataOp) -> Self {
        let mut plan = Self::EMPTY;
        plan.push(op);
        plan
    }

    /// The operations in order.
    pub fn iter(&self) -> impl Iterator<Item = &OtadataOp> {
        self.ops.iter().flatten()
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether nothing needs to be written.
    pub fn is_empty(&self) -> bool {
        self.ops.iter().all(Option::is_none)
    }

    /// Applies every operation to an in-memory copy of the two entries.
    pub fn apply(&self, entries: &mut [OtaSelectEntry; 2]) {
        for op in self.iter() {
            op.apply(entries);
        }
    }
}

/// Why a write could not be planned. Mirrors the ESP-IDF error each case returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanError {
    /// The target slot is not below the number of OTA slots (`ESP_ERR_INVALID_ARG`).
    SlotOutOfRange {
        /// Requested slot.
        slot: u32,
        /// OTA slots in the table.
        app_count: u32,
    },
    /// The table has no OTA slots (`ESP_ERR_NOT_FOUND` / `ESP_FAIL`).
    NoOtaSlots,
    /// Neither entry is valid: the device runs factory or booted by default
    /// (`ESP_FAIL`, "Running firmware is factory").
    NoActiveEntry,
    /// No valid other entry with a verifying image, and no verifying factory
    /// (`ESP_ERR_OTA_ROLLBACK_FAILED`).
    RollbackNotPossible,
    /// The next sequence number would reach 0xFFFFFFFF (see the module documentation).
    SequenceExhausted {
        /// The active sequence number.
        current: u32,
    },
    /// [`Otadata::renormalise`] would rewrite an entry that is still on trial (NEW,
    /// PENDING_VERIFY or a torn state) as VALID, confirming an image nobody checked.
    NotConfirmed {
        /// The active entry's state.
        state: OtaState,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SlotOutOfRange { slot, app_count } => {
                write!(f, "OTA slot {slot} does not exist ({app_count} slots)")
            }
            Self::NoOtaSlots => f.write_str("the partition table has no OTA slots"),
            Self::NoActiveEntry => f.write_str("no valid otadata entry (running factory?)"),
            Self::RollbackNotPossible => {
                f.write_str("rollback not possible: no other bootable app to return to")
            }
            Self::SequenceExhausted { current } => write!(
                f,
                "otadata sequence {current:#x} cannot advance without reaching 0xffffffff"
            ),
            Self::NotConfirmed { state } => write!(
                f,
                "the active otadata entry is {state}, not confirmed: it cannot be renormalised"
            ),
        }
    }
}

impl core::error::Error for PlanError {}

/// What to boot when rolling back (`esp_ota_check_rollback_is_possible`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RollbackCandidate {
    /// The other entry is valid and selects this OTA slot; its image must verify.
    Ota(u32),
    /// The other entry is not valid; the factory image must verify.
    Factory,
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

    fn entry(&self, sector: usize) -> OtaSelectEntry {
        self.entries.get(sector).copied().unwrap_or_default()
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

    /// `esp_ota_set_boot_partition` (through `esp_rewrite_ota_data`) for an OTA slot.
    ///
    /// - The active entry already selects `slot`: rewrite that sector with the same seq.
    /// - No active entry: sector 0 with seq = slot + 1.
    /// - Otherwise the other sector, with the smallest seq ≥ the active one that maps to
    ///   `slot` (for two slots: active + 1).
    ///
    /// The state written is NEW with rollback enabled, else UNDEFINED. The label bytes of
    /// the rewritten sector are kept, as ESP-IDF copies what it read.
    pub fn set_boot_partition(
        &self,
        slot: u32,
        app_count: u32,
        rollback_enabled: bool,
    ) -> Result<OtadataPlan, PlanError> {
        if app_count == 0 {
            return Err(PlanError::NoOtaSlots);
        }
        if slot >= app_count {
            return Err(PlanError::SlotOutOfRange { slot, app_count });
        }
        let state = if rollback_enabled {
            OtaState::New
        } else {
            OtaState::Undefined
        };
        let Some(active) = self.active() else {
            let entry = self.entry(0).rewritten(slot + 1, state);
            return Ok(OtadataPlan::one(OtadataOp::Write { sector: 0, entry }));
        };
        let current = self.entry(active);
        if current.slot(app_count) == Some(slot) {
            let entry = current.rewritten(current.seq, state);
            return Ok(OtadataPlan::one(OtadataOp::Write {
                sector: active,
                entry,
            }));
        }
        let n = u64::from(app_count);
        let base = (u64::from(slot) + 1) % n;
        let cur = u64::from(current.seq);
        // Smallest base + i·n that is >= cur.
        let steps = cur.saturating_sub(base).div_ceil(n);
        let next = base + steps * n;
        let seq = u32::try_from(next).ok().filter(|&s| s != SEQ_EMPTY).ok_or(
            PlanError::SequenceExhausted {
                current: current.seq,
            },
        )?;
        let other = 1 - active;
        let entry = self.entry(other).rewritten(seq, state);
        Ok(OtadataPlan::one(OtadataOp::Write {
            sector: other,
            entry,
        }))
    }

    /// Renormalisation: the way out of [`PlanError::SequenceExhausted`]. ESP-IDF has no such
    /// API; its sequence simply stops working near the top of `u32`.
    ///
    /// The result selects `slot` with the smallest sequence that selects it (`slot + 1`, as
    /// the bootloader maps `(seq - 1) % app_count`), state VALID, in the sector that is not
    /// active now (b), and leaves the active sector (a) erased, so every later
    /// [`Self::set_boot_partition`] has the whole `u32` range again. The plan is two
    /// operations, three flash operations:
    ///
    /// 1. erase b, 2. program the fresh entry into b, 3. erase a.
    ///
    /// Before step 3, a is untouched and b is erased, torn, or the fresh entry. A torn b fails
    /// its CRC, or (seq and CRC intact, junk state) is invalid or selects `slot`; so whichever
    /// entry wins selects what a selected, or `slot`. (a keeps winning when its sequence is
    /// the higher, which is the exhausted case.) After step 3 only b is valid. A torn erase
    /// of a only sets bits: its entry then fails its CRC (b wins), turns INVALID/ABORTED (b
    /// wins), or still selects a's slot; a coincidence of a wrong sequence with a matching
    /// CRC is the 2^-32 risk of every otadata write, as is a torn erase of b reviving an
    /// INVALID/ABORTED entry whose sequence is above a's (when exhausted, none is above a's,
    /// and an equal one selects the same slot). So when the active entry selects `slot`,
    /// a power cut at any instant boots `slot`; when it selects another slot (the bootloader
    /// fell back from it), every instant boots what the unchanged otadata booted, or `slot`.
    ///
    /// Re-planning from any intermediate state gives the same plan (a is still active) or
    /// finds nothing exhausted any more, so a caller interrupted by a reset just plans again.
    ///
    /// The entry is written VALID, so when the active entry selects `slot` it must already be
    /// confirmed (VALID, or UNDEFINED as written without rollback): a trial is refused with
    /// [`PlanError::NotConfirmed`]. Nothing to write when the active entry is already
    /// `{slot + 1, VALID}`. With no active entry there is nothing to renormalise
    /// ([`PlanError::NoActiveEntry`]; `set_boot_partition` then starts at `slot + 1` anyway).
    pub fn renormalise(&self, slot: u32, app_count: u32) -> Result<OtadataPlan, PlanError> {
        let a = self.require_active(app_count)?;
        if slot >= app_count {
            return Err(PlanError::SlotOutOfRange { slot, app_count });
        }
        let active = self.entry(a);
        let fresh = OtaSelectEntry::new(slot + 1, OtaState::Valid);
        if active.slot(app_count) == Some(slot) {
            if !matches!(active.state, OtaState::Valid | OtaState::Undefined) {
                return Err(PlanError::NotConfirmed {
                    state: active.state,
                });
            }
            if active.seq == fresh.seq && active.state == OtaState::Valid {
                return Ok(OtadataPlan::EMPTY);
            }
        }
        let b = 1 - a;
        let mut plan = OtadataPlan::EMPTY;
        plan.push(OtadataOp::Write {
            sector: b,
            entry: fresh,
        });
        plan.push(OtadataOp::Erase { sector: a });
        Ok(plan)
    }

    /// `esp_ota_set_boot_partition` for the factory app: erase both sectors.
    pub fn set_boot_factory(&self) -> OtadataPlan {
        let mut plan = OtadataPlan::EMPTY;
        plan.push(OtadataOp::Erase { sector: 0 });
        plan.push(OtadataOp::Erase { sector: 1 });
        plan
    }

    /// `esp_ota_mark_app_valid_cancel_rollback`: set the active entry VALID (same seq, same
    /// sector); nothing to write when it already is.
    pub fn mark_valid(&self, app_count: u32) -> Result<OtadataPlan, PlanError> {
        let active = self.require_active(app_count)?;
        let current = self.entry(active);
        if current.state == OtaState::Valid {
            return Ok(OtadataPlan::EMPTY);
        }
        Ok(OtadataPlan::one(OtadataOp::Write {
            sector: active,
            entry: current.rewritten(current.seq, OtaState::Valid),
        }))
    }

    /// `esp_ota_mark_app_invalid_rollback`: set the active entry INVALID, after the caller
    /// established with [`Self::rollback_candidate`] that rollback is possible (ESP-IDF
    /// changes nothing and returns `ESP_ERR_OTA_ROLLBACK_FAILED` otherwise).
    pub fn mark_invalid(
        &self,
        app_count: u32,
        rollback_possible: bool,
    ) -> Result<OtadataPlan, PlanError> {
        let active = self.require_active(app_count)?;
        if !rollback_possible {
            return Err(PlanError::RollbackNotPossible);
        }
        let current = self.entry(active);
        Ok(OtadataPlan::one(OtadataOp::Write {
            sector: active,
            entry: current.rewritten(current.seq, OtaState::Invalid),
        }))
    }

    fn require_active(&self, app_count: u32) -> Result<usize, PlanError> {
        if app_count == 0 {
            return Err(PlanError::NoOtaSlots);
        }
        self.active().ok_or(PlanError::NoActiveEntry)
    }

    /// The first half of `esp_ota_check_rollback_is_possible`: which image must verify for
    /// a rollback to be possible. `None` when it is not possible whatever the images hold
    /// (no OTA slots, no active entry, or no valid other entry and no factory). The caller
    /// then verifies that image; rollback is possible iff it does.
    pub fn rollback_candidate(
        &self,
        app_count: u32,
        has_factory: bool,
    ) -> Option<RollbackCandidate> {
        if app_count == 0 {
            return None;
        }
        let active = self.active()?;
        let other = self.entry(1 - active);
        if other.is_valid() {
            other.slot(app_count).map(RollbackCandidate::Ota)
        } else if has_factory {
            Some(RollbackCandidate::Factory)
        } else {
            None
        }
    }

    /// `esp_ota_check_rollback_is_possible` with the image check supplied by the caller.
    pub fn check_rollback_is_possible(
        &self,
        app_count: u32,
        has_factory: bool,
        mut image_verifies: impl FnMut(RollbackCandidate) -> bool,
    ) -> bool {
        self.rollback_candidate(app_count, has_factory)
            .is_some_and(&mut image_verifies)
    }

    /// `esp_ota_invalidate_inactive_ota_data_slot` (ESP-IDF ≥ 5.5, called by `esp_ota_begin`
    /// with rollback enabled): erase the inactive sector when it is not empty and selects a
    /// slot other than the running one, so a stale entry can never select a half-written
    /// slot. `running` is what actually runs (after a fallback this differs from what
    /// otadata selects).
    pub fn invalidate_inactive(&self, app_count: u32, running: BootIndex) -> OtadataPlan {
        let Some(active) = self.active() else {
            return OtadataPlan::EMPTY;
        };
        let inactive = 1 - active;
        let entry = self.entry(inactive);
        if entry.seq == SEQ_EMPTY {
            return OtadataPlan::EMPTY;
        }
        let points_at_running =
            matches!(running, BootIndex::Ota(r) if entry.slot(app_count) == Some(r));
        if points_at_running {
            OtadataPlan::EMPTY
        } else {
            OtadataPlan::one(OtadataOp::Erase { sector: inactive })
        }
    }
}

/// Why the bootloader chose its starting partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BootReason {
    /// The table has no otadata partition: factory.
    NoOtadataPartition,
    /// The otadata partition is smaller than two sectors: the bootloader gives up.
    OtadataTooSmall,
    /// Both entries are empty, INVALID or ABORTED, or there are no OTA slots: factory if
    /// present, else slot 0.
    NoSelectableEntry {
        /// Whether there are no OTA slots at all.
        no_ota_slots: bool,
    },
    /// The active entry selects a slot.
    ActiveEntry {
        /// Sector of the active entry.
        sector: usize,
        /// Its sequence number.
        seq: u32,
        /// Its state as read (before the NEW → PENDING_VERIFY rewrite).
        state: OtaState,
    },
    /// No entry is valid although not both are empty/INVALID/ABORTED (e.g. a CRC-bad
    /// entry): factory if present, else every slot in order.
    NoValidEntry,
}

/// The bootloader's decision before it loads an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootSelection {
    /// otadata rewrites performed before loading, in order: PENDING_VERIFY → ABORTED for
    /// each such entry (sector 0 first), then NEW → PENDING_VERIFY for the selected one. The
    /// entries are written back as read apart from the state, CRC included.
    pub rewrites: OtadataPlan,
    /// Where loading starts; `None` when the bootloader gives up (otadata too small).
    pub start: Option<BootIndex>,
    /// `ota_has_initial_contents`: no factory and both entries empty or CRC-bad. When an OTA
    /// slot then boots, [`Self::after_boot`] writes its sequence into sector 0.
    pub initial_contents: bool,
    /// Why.
    pub reason: BootReason,
    /// Whether the rollback rules were applied.
    pub rollback_enabled: bool,
}

/// `bootloader_utility_get_selected_boot_partition` as a pure function.
///
/// `sectors` are the first 32 bytes of otadata sectors 0 and 1, `layout` the table as the
/// bootloader sees it, `rollback_enabled` `CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`.
pub fn select_boot(
    sectors: [&[u8; ENTRY_LEN]; 2],
    layout: &super::partition::BootLayout,
    rollback_enabled: bool,
) -> BootSelection {
    let mut sel = BootSelection {
        rewrites: OtadataPlan::EMPTY,
        start: Some(BootIndex::Factory),
        initial_contents: false,
        reason: BootReason::NoOtadataPartition,
        rollback_enabled,
    };
    let Some(ota_info) = layout.otadata.filter(|p| p.offset != 0) else {
        return sel;
    };
    if ota_info.size < OTADATA_SIZE {
        sel.start = None;
        sel.reason = BootReason::OtadataTooSmall;
        return sel;
    }
    let mut od = Otadata::decode(sectors[0], sectors[1]);
    if rollback_enabled {
        for (sector, entry) in od.entries.iter_mut().enumerate() {
            if entry.state == OtaState::PendingVerify {
                entry.state = OtaState::Aborted;
                sel.rewrites.push(OtadataOp::Write {
                    sector,
                    entry: *entry,
                });
            }
        }
    }
    let has_factory = layout.factory.is_some_and(|p| p.offset != 0);
    let [e0, e1] = od.entries;
    if (e0.is_invalid() && e1.is_invalid()) || layout.app_count == 0 {
        sel.reason = BootReason::NoSelectableEntry {
            no_ota_slots: layout.app_count == 0,
        };
        if has_factory {
            sel.start = Some(BootIndex::Factory);
        } else {
            sel.start = Some(BootIndex::Ota(0));
            sel.initial_contents = e0.is_initial_or_corrupt() && e1.is_initial_or_corrupt();
        }
        return sel;
    }
    match od.active() {
        Some(active) => {
            let entry = od.entry(active);
            sel.reason = BootReason::ActiveEntry {
                sector: active,
                seq: entry.seq,
                state: entry.state,
            };
            sel.start = entry.slot(layout.app_count).map(BootIndex::Ota);
            if rollback_enabled && entry.state == OtaState::New {
                sel.rewrites.push(OtadataOp::Write {
                    sector: active,
                    entry: OtaSelectEntry {
                        state: OtaState::PendingVerify,
                        ..entry
                    },
                });
            }
        }
        None => {
            sel.reason = BootReason::NoValidEntry;
            sel.start = Some(BootIndex::Factory);
        }
    }
    sel
}

/// The partitions `bootloader_utility_load_boot_image` tries, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TryOrder {
    items: [Option<BootIndex>; super::partition::MAX_OTA_SLOTS + 2],
}

impl TryOrder {
    /// The indices in order.
    pub fn iter(&self) -> impl Iterator<Item = BootIndex> + '_ {
        self.items.iter().flatten().copied()
    }
}

impl BootSelection {
    /// The fallback order: the start index, then every lower index down to factory, then
    /// every higher OTA index below `app_count`, then the test app. Entries whose partition
    /// does not exist (or, for OTA, lies beyond `app_count` or slot 15) are skipped, as
    /// `index_to_partition` yields a zero-size position for them. Each is tried with a full
    /// image verification; the first that verifies boots. A fallback writes no otadata,
    /// except [`Self::after_boot`].
    pub fn try_order(&self, layout: &super::partition::BootLayout) -> TryOrder {
        let mut order = TryOrder {
            items: [None; super::partition::MAX_OTA_SLOTS + 2],
        };
        let Some(start) = self.start else {
            return order;
        };
        let mut n = 0;
        let mut add = |i: BootIndex| {
            if let Some(slot) = order.items.get_mut(n) {
                *slot = Some(i);
                n += 1;
            }
        };
        let exists = |i: BootIndex| match i {
            BootIndex::Factory => layout.factory.is_some_and(|p| p.size != 0),
            BootIndex::Test => layout.test.is_some_and(|p| p.size != 0),
            BootIndex::Ota(k) => layout.slot(k).is_some(),
        };
        let start_ota = match start {
            BootIndex::Ota(k) => Some(k),
            _ => None,
        };
        if start == BootIndex::Test {
            if exists(BootIndex::Test) {
                add(BootIndex::Test);
            }
            return order;
        }
        // Downwards from the start index. Indices at or above 16 have no partition.
        if let Some(k) = start_ota {
            for i in (0..=k.min(15)).rev() {
                if exists(BootIndex::Ota(i)) {
                    add(BootIndex::Ota(i));
                }
            }
        }
        if exists(BootIndex::Factory) {
            add(BootIndex::Factory);
        }
        // Upwards from the index after the start.
        let first_up = start_ota.map_or(0, |k| k.saturating_add(1));
        for i in first_up..layout.app_count.min(16) {
            if exists(BootIndex::Ota(i)) {
                add(BootIndex::Ota(i));
            }
        }
        if exists(BootIndex::Test) {
            add(BootIndex::Test);
        }
        order
    }

    /// `set_actual_ota_seq`: after `booted` loaded, the write the bootloader makes: with
    /// initial contents and an OTA slot booted, sector 0 = {seq = index + 1, VALID}.
    pub fn after_boot(&self, booted: BootIndex) -> Option<OtadataOp> {
        match booted {
            BootIndex::Ota(index) if self.initial_contents => Some(OtadataOp::Write {
                sector: 0,
                entry: OtaSelectEntry::new(index.saturating_add(1), OtaState::Valid),
            }),
            _ => None,
        }
    }
}

impl fmt::Display for BootSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.reason, self.start) {
            (BootReason::NoOtadataPartition, _) => {
                f.write_str("no otadata partition: boot factory")
            }
            (BootReason::OtadataTooSmall, _) => {
                f.write_str("otadata partition smaller than two sectors: bootloader halts")
            }
            (BootReason::NoSelectableEntry { no_ota_slots }, start) => {
                if no_ota_slots {
                    f.write_str("no OTA slots in the table")?;
                } else {
                    f.write_str("both otadata entries are empty, INVALID or ABORTED")?;
                }
                match start {
                    Some(BootIndex::Factory) => f.write_str(": boot factory"),
                    _ if self.initial_contents => f.write_str(
                        ": no factory, try ota_0 (and record its sequence once it boots)",
                    ),
                    _ => f.write_str(": no factory, try ota_0"),
                }
            }
            (BootReason::ActiveEntry { sector, seq, state }, start) => {
                write!(f, "otadata[{sector}] seq {seq} ({state}) is active")?;
                match start {
                    Some(s) => write!(f, ": boot {s}")?,
                    None => f.write_str(": no OTA slots")?,
                }
                if self.rollback_enabled && state == OtaState::New {
                    f.write_str(" on trial (NEW -> PENDING_VERIFY)")?;
                }
                Ok(())
            }
            (BootReason::NoValidEntry, _) => f.write_str(
                "no valid otadata entry (CRC mismatch): boot factory, else try every slot",
            ),
        }?;
        let aborted = self
            .rewrites
            .iter()
            .filter(|op| {
                matches!(op, OtadataOp::Write { entry, .. } if entry.state == OtaState::Aborted)
            })
            .count();
        if aborted > 0 {
            write!(
                f,
                "; {aborted} unconfirmed trial entr{} marked ABORTED",
                if aborted == 1 { "y" } else { "ies" }
            )?;
        }
        Ok(())
    }
}
