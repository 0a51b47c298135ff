//! Write planning: the otadata writes of ESP-IDF's app-side OTA APIs, as pure functions.

use core::fmt;
use core::num::NonZeroU64;

use super::{BootIndex, OtaSelectEntry, OtaState, Otadata, SEQ_EMPTY};

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

    pub(super) fn push(&mut self, op: OtadataOp) {
        if let Some(free) = self.ops.iter_mut().find(|o| o.is_none()) {
            *free = Some(op);
        }
    }

    pub(super) fn one(op: OtadataOp) -> Self {
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

impl Otadata {
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
        let Some(n) = NonZeroU64::new(u64::from(app_count)) else {
            return Err(PlanError::NoOtaSlots);
        };
        if slot >= app_count {
            return Err(PlanError::SlotOutOfRange { slot, app_count });
        }
        // slot < app_count, so slot + 1 fits a u32.
        let first_seq = slot.saturating_add(1);
        let state = if rollback_enabled {
            OtaState::New
        } else {
            OtaState::Undefined
        };
        let Some(active) = self.active() else {
            let entry = self.entry(0).rewritten(first_seq, state);
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
        let base = u64::from(first_seq) % n;
        let cur = u64::from(current.seq);
        // Smallest base + i·n that is >= cur.
        let steps = cur.saturating_sub(base).div_ceil(n.get());
        let seq = steps
            .checked_mul(n.get())
            .and_then(|v| v.checked_add(base))
            .and_then(|next| u32::try_from(next).ok())
            .filter(|&s| s != SEQ_EMPTY)
            .ok_or(PlanError::SequenceExhausted {
                current: current.seq,
            })?;
        let other = Self::other_sector(active);
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
        // slot < app_count, so slot + 1 fits a u32.
        let fresh = OtaSelectEntry::new(slot.saturating_add(1), OtaState::Valid);
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
        let b = Self::other_sector(a);
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
        let other = self.entry(Self::other_sector(active));
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
        let inactive = Self::other_sector(active);
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
