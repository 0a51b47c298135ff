//! Layout discovery: the partition table at 0x8000, read and verified the way the bootloader
//! does, reduced to what the agent needs (app slots, otadata, the journal's two sectors).

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::esp::partition::{
    DataSubtype, MAX_OTA_SLOTS, PartitionKind, PartitionTable, TABLE_MAX_LEN, TABLE_OFFSET,
};

use crate::error::{AgentError, LayoutError};
use crate::flash::{Region, SECTOR, Storage};

/// Which app the bootloader started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Running {
    /// OTA slot `n` (`ota_n`).
    Ota(u8),
    /// The factory app.
    Factory,
}

impl Running {
    /// The slot number for records: `n`, or 0xFF for factory.
    pub const fn slot_code(self) -> u8 {
        match self {
            Self::Ota(n) => n,
            Self::Factory => 0xFF,
        }
    }

    /// Inverse of [`Self::slot_code`].
    pub const fn from_code(code: u8) -> Self {
        match code {
            0xFF => Self::Factory,
            n => Self::Ota(n),
        }
    }

    /// The bootloader's index type.
    pub const fn boot_index(self) -> fota_protocol::esp::otadata::BootIndex {
        use fota_protocol::esp::otadata::BootIndex;
        match self {
            Self::Ota(n) => BootIndex::Ota(n as u32),
            Self::Factory => BootIndex::Factory,
        }
    }
}

/// What the device knows about how it booted; on ESP-IDF, `esp_ota_get_running_partition()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootInfo {
    /// The partition whose code runs.
    pub running: Running,
}

/// Where the journal lives, in the order the agent looks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalHome {
    /// The first two sectors of a data partition labelled `fota`.
    FotaPartition,
    /// The last two sectors of the `coredump` partition. A core dump large enough to reach
    /// them destroys the journal: its CRC fails and the download in progress starts over,
    /// which costs bandwidth, never safety.
    CoredumpTail,
    /// The last two sectors of the flash, which no partition covers.
    FlashTail,
}

/// The partitions the agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    slots: [Region; MAX_OTA_SLOTS],
    app_count: u8,
    factory: Option<Region>,
    otadata: Region,
    journal: Region,
    journal_home: JournalHome,
    boot_area: Region,
}

impl Layout {
    /// Reads and verifies the table at 0x8000 (`scratch` must hold 0xC00 bytes) and derives
    /// the layout.
    pub fn discover<F: NorFlash>(
        storage: &mut Storage<F>,
        scratch: &mut [u8],
    ) -> Result<Self, AgentError> {
        let raw = scratch
            .get_mut(..TABLE_MAX_LEN)
            .ok_or(AgentError::BufferTooSmall("partition table (0xC00 bytes)"))?;
        let whole = Region::new(0, storage.capacity()).ok_or(AgentError::Geometry)?;
        storage.read(whole, TABLE_OFFSET, raw)?;
        let table = PartitionTable::parse(raw, storage.capacity())
            .map_err(|e| AgentError::Layout(LayoutError::Table(e)))?;
        Self::from_table(&table, storage.capacity())
    }

    /// The layout of a verified table on a flash of `flash_size` bytes.
    pub fn from_table(table: &PartitionTable, flash_size: u32) -> Result<Self, AgentError> {
        let boot = table.boot_layout();
        let region = |p: &fota_protocol::esp::partition::Partition| {
            Region::new(p.offset, p.size)
                .filter(Region::sector_aligned)
                .ok_or(AgentError::Layout(LayoutError::Alignment))
        };
        let otadata = boot
            .otadata
            .as_ref()
            .ok_or(AgentError::Layout(LayoutError::NoOtadata))?;
        if otadata.size != 2 * SECTOR {
            return Err(AgentError::Layout(LayoutError::NoOtadata));
        }
        let otadata = region(otadata)?;
        if !boot.ota_contiguous() || boot.app_count < 2 {
            return Err(AgentError::Layout(LayoutError::Slots));
        }
        let mut slots = [Region::default(); MAX_OTA_SLOTS];
        for (i, slot) in slots.iter_mut().enumerate() {
            if let Some(p) = boot.ota.get(i).copied().flatten() {
                *slot = region(&p)?;
            }
        }
        let factory = boot.factory.as_ref().map(region).transpose()?;
        let (journal, journal_home) = find_journal(table, flash_size)?;
        let first = table.iter().map(|p| p.offset).min().unwrap_or(TABLE_OFFSET);
        let boot_area =
            Region::new(0, first.max(TABLE_OFFSET + SECTOR)).ok_or(AgentError::Geometry)?;
        for used in [otadata, journal] {
            if used.overlaps(&boot_area) || slots.iter().any(|s| s.overlaps(&used)) {
                return Err(AgentError::Layout(LayoutError::Alignment));
            }
        }
        Ok(Self {
            slots,
            app_count: u8::try_from(boot.app_count)
                .map_err(|_| AgentError::Layout(LayoutError::Slots))?,
            factory,
            otadata,
            journal,
            journal_home,
            boot_area,
        })
    }

    /// Number of OTA slots.
    pub const fn app_count(&self) -> u8 {
        self.app_count
    }

    /// OTA slot `n`.
    pub fn slot(&self, n: u8) -> Option<Region> {
        if n >= self.app_count {
            return None;
        }
        self.slots.get(usize::from(n)).copied()
    }

    /// The factory partition.
    pub const fn factory(&self) -> Option<Region> {
        self.factory
    }

    /// The partition of `running`.
    pub fn app(&self, running: Running) -> Option<Region> {
        match running {
            Running::Ota(n) => self.slot(n),
            Running::Factory => self.factory,
        }
    }

    /// The otadata partition (two sectors).
    pub const fn otadata(&self) -> Region {
        self.otadata
    }

    /// The journal's two sectors.
    pub const fn journal(&self) -> Region {
        self.journal
    }

    /// Where the journal was found.
    pub const fn journal_home(&self) -> JournalHome {
        self.journal_home
    }

    /// Bootloader and partition table: never written.
    pub const fn boot_area(&self) -> Region {
        self.boot_area
    }

    /// The slot an update goes to: the OTA slot after the running one, wrapping, as
    /// `esp_ota_get_next_update_partition` picks it (factory → `ota_0`). Never the running
    /// slot, because there are at least two.
    pub fn target(&self, running: Running) -> u8 {
        match running {
            Running::Factory => 0,
            Running::Ota(n) => {
                let next = u16::from(n).saturating_add(1);
                next.checked_rem(u16::from(self.app_count))
                    .and_then(|t| u8::try_from(t).ok())
                    .unwrap_or(0)
            }
        }
    }
}

fn find_journal(
    table: &PartitionTable,
    flash_size: u32,
) -> Result<(Region, JournalHome), AgentError> {
    let two = 2 * SECTOR;
    if let Some(p) = table
        .iter()
        .find(|p| p.has_label("fota") && matches!(p.kind(), PartitionKind::Data(_)))
        && p.size >= two
        && let Some(r) = Region::new(p.offset, two).filter(Region::sector_aligned)
    {
        return Ok((r, JournalHome::FotaPartition));
    }
    if let Some(p) = table.find_kind(PartitionKind::Data(DataSubtype::Coredump))
        && p.size >= two
        && let Some(r) = p
            .size
            .checked_sub(two)
            .and_then(|at| Region::new(p.offset, p.size)?.sub(at, two))
            .filter(Region::sector_aligned)
    {
        return Ok((r, JournalHome::CoredumpTail));
    }
    if let Some(r) = flash_size
        .checked_sub(two)
        .and_then(|at| Region::new(at, two))
        .filter(Region::sector_aligned)
        && !table
            .iter()
            .any(|p| Region::new(p.offset, p.size).is_some_and(|q| q.overlaps(&r)))
    {
        return Ok((r, JournalHome::FlashTail));
    }
    Err(AgentError::NoJournalRegion)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fota_protocol::esp::layouts;
    use fota_protocol::esp::partition::Partition;

    #[test]
    fn ecowatt_journal_is_the_coredump_tail() {
        let l = Layout::from_table(&layouts::ecowatt(), 0x40_0000).unwrap();
        assert_eq!(l.journal_home(), JournalHome::CoredumpTail);
        assert_eq!(l.journal(), Region::new(0x3FE000, 0x2000).unwrap());
        assert_eq!(l.otadata(), Region::new(0xE000, 0x2000).unwrap());
        assert_eq!(l.slot(0), Region::new(0x10000, 0x140000));
        assert_eq!(l.slot(1), Region::new(0x150000, 0x140000));
        assert_eq!(l.slot(2), None);
        assert_eq!(l.target(Running::Ota(0)), 1);
        assert_eq!(l.target(Running::Ota(1)), 0);
    }

    #[test]
    fn two_ota_journal_is_the_flash_tail() {
        let l = Layout::from_table(&layouts::two_ota(), 0x40_0000).unwrap();
        assert_eq!(l.journal_home(), JournalHome::FlashTail);
        assert_eq!(l.journal(), Region::new(0x3FE000, 0x2000).unwrap());
        assert_eq!(l.factory(), Region::new(0x10000, 0x100000));
        assert_eq!(l.target(Running::Factory), 0);
    }

    #[test]
    fn a_fota_partition_wins_and_no_room_is_an_error() {
        let mut t = layouts::two_ota();
        t.push(
            Partition::new(
                "fota",
                PartitionKind::Data(DataSubtype::Undefined),
                0x310000,
                0x2000,
            )
            .unwrap(),
        )
        .unwrap();
        let l = Layout::from_table(&t, 0x40_0000).unwrap();
        assert_eq!(l.journal_home(), JournalHome::FotaPartition);
        assert_eq!(l.journal(), Region::new(0x310000, 0x2000).unwrap());

        let mut full = layouts::two_ota();
        full.push(
            Partition::new(
                "data",
                PartitionKind::Data(DataSubtype::Spiffs),
                0x310000,
                0xF0000,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            Layout::from_table(&full, 0x40_0000),
            Err(AgentError::NoJournalRegion)
        );
    }
}
