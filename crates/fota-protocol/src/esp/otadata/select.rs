//! The second-stage bootloader's choice of what to boot, and its fallback order.

use core::fmt;

use super::{
    BootIndex, ENTRY_LEN, OTADATA_SIZE, OtaSelectEntry, OtaState, Otadata, OtadataOp, OtadataPlan,
};
use crate::esp::partition;

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
    layout: &partition::BootLayout,
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
    items: [Option<BootIndex>; partition::MAX_OTA_SLOTS + 2],
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
    pub fn try_order(&self, layout: &partition::BootLayout) -> TryOrder {
        let mut order = TryOrder {
            items: [None; partition::MAX_OTA_SLOTS + 2],
        };
        let Some(start) = self.start else {
            return order;
        };
        let mut free = order.items.iter_mut();
        let mut add = |i: BootIndex| {
            if let Some(slot) = free.next() {
                *slot = Some(i);
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
