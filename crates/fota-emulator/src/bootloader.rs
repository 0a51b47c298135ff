//! The emulated ESP-IDF second-stage bootloader, with `CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`.
//!
//! [`boot`] is one reset: it reads everything from the flash (nothing survives a reset in
//! RAM), chooses a partition with `fota_protocol::esp::otadata::select_boot` (ESP-IDF's
//! `bootloader_utility_get_selected_boot_partition`), performs the otadata rewrites that choice
//! implies as real flash operations, then loads with fallback
//! (`bootloader_utility_load_boot_image`), verifying each candidate image in full with
//! `fota_protocol::esp::image`.
//!
//! Every rewrite is what ESP-IDF's `write_otadata` does: erase the 4 KiB sector, then program
//! the 32-byte entry. Both are counted, numbered [`SimFlash`] operations, so a fault plan can cut
//! or tear them like any other (research/device.md §1b, power-loss table).
//!
//! The optional anti-rollback model ([`Efuse`], `CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK`): entries
//! whose image has a `secure_version` below the eFuse value are treated as empty, fallback skips
//! such images, and booting a VALID entry raises the eFuse to the image's value. The eFuse is
//! hardware: it belongs to the harness, not to the flash, and survives every reset.

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use fota_flash_sim::SimFlash;
use fota_protocol::esp::image::{AppDesc, ImageReport, ImageVerifier, VerifyOptions};
use fota_protocol::esp::otadata::{
    self, BootIndex, BootSelection, ENTRY_LEN, OtaSelectEntry, OtaState, OtadataOp, SEQ_EMPTY,
};
use fota_protocol::esp::partition::{
    BootLayout, Partition, PartitionTable, TABLE_MAX_LEN, TABLE_OFFSET, TableError,
};
use sha2::{Digest, Sha256};

/// Bytes read per flash read while verifying an image.
const READ_PIECE: usize = 4096;

/// The anti-rollback eFuse field: a thermometer code, value = number of bits set. Bits are only
/// ever burned, never cleared; the ESP32 field has 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Efuse {
    bits: u32,
}

impl Efuse {
    /// The secure version the field encodes (`popcount`).
    pub const fn secure_version(self) -> u32 {
        self.bits.count_ones()
    }

    /// Burns bits until the field encodes at least `version` (capped at 32). Never lowers it.
    pub fn raise_to(&mut self, version: u32) {
        while self.secure_version() < version.min(32) {
            let next_zero = (!self.bits).trailing_zeros();
            self.bits |= 1 << next_zero;
        }
    }

    /// The raw field.
    pub const fn bits(self) -> u32 {
        self.bits
    }
}

/// Build options of the emulated bootloader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootloaderConfig {
    /// `CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE` (on for every device we ship).
    pub rollback: bool,
    /// `CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK`, with the eFuse the caller keeps.
    pub anti_rollback: bool,
}

impl Default for BootloaderConfig {
    fn default() -> Self {
        Self {
            rollback: true,
            anti_rollback: false,
        }
    }
}

/// Why a boot did not reach an application.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootError {
    /// A flash operation failed; with [`fota_flash_sim::Error::PowerLoss`] the power was cut
    /// during one of the bootloader's own otadata rewrites.
    #[error("flash: {0}")]
    Flash(#[from] fota_flash_sim::Error),
    /// The partition table at 0x8000 does not verify: the real chip would loop in the ROM.
    #[error("partition table at 0x8000: {0}")]
    Table(TableError),
    /// otadata is smaller than two sectors: ESP-IDF's bootloader halts.
    #[error("otadata partition smaller than two sectors")]
    OtadataTooSmall,
    /// No partition in the fallback order holds an image that verifies: a bricked device.
    #[error("no bootable image (tried {tried})")]
    NoBootableImage {
        /// How many candidates were verified and refused.
        tried: usize,
    },
}

impl BootError {
    /// Whether the power was cut during the boot (not a fault of the flash contents).
    pub fn is_power_loss(&self) -> bool {
        matches!(self, Self::Flash(e) if e.is_power_loss())
    }
}

/// What one boot found and did.
#[derive(Debug, Clone)]
pub struct Boot {
    /// The partition whose image runs.
    pub running: BootIndex,
    /// Its table entry.
    pub partition: Partition,
    /// The running image's app descriptor.
    pub app_desc: AppDesc,
    /// Length of the running image (up to and including its appended hash).
    pub image_len: u32,
    /// SHA-256 of the running image's bytes.
    pub image_sha256: [u8; 32],
    /// The bootloader's choice before loading.
    pub selection: BootSelection,
    /// The otadata entries after this boot's rewrites (sector 0, sector 1).
    pub otadata: [OtaSelectEntry; 2],
    /// Another partition than the selected one booted, because the selected one did not
    /// verify (no otadata rewrite follows a fallback).
    pub fell_back: bool,
    /// otadata operations (erases and programs) this boot performed.
    pub otadata_ops: u32,
    /// The table as read.
    pub table: PartitionTable,
}

impl Boot {
    /// The state of the running slot as `esp_ota_get_state_partition` reported it right
    /// after this boot's rewrites.
    pub fn running_state(&self) -> Option<OtaState> {
        self.state_in(self.otadata)
    }

    /// The state of the running slot in otadata as `flash` holds it now (the application may
    /// have confirmed or invalidated it since the boot).
    pub fn running_state_now(&self, flash: &SimFlash) -> Option<OtaState> {
        self.state_in(otadata_now(flash, &self.table.boot_layout()))
    }

    fn state_in(&self, entries: [OtaSelectEntry; 2]) -> Option<OtaState> {
        let BootIndex::Ota(slot) = self.running else {
            return None;
        };
        otadata::Otadata { entries }.state_of_slot(slot, self.table.boot_layout().app_count)
    }
}

/// Both otadata entries as the cells hold them, read without counting (the harness's view).
pub fn otadata_now(flash: &SimFlash, layout: &BootLayout) -> [OtaSelectEntry; 2] {
    let Some(p) = layout.otadata else {
        return [OtaSelectEntry::ERASED; 2];
    };
    let c = flash.contents();
    let entry = |at: usize| {
        let mut e = [0xFFu8; ENTRY_LEN];
        if let Some(src) = c.get(at..at + ENTRY_LEN) {
            e.copy_from_slice(src);
        }
        OtaSelectEntry::decode(&e)
    };
    let at = p.offset as usize;
    [entry(at), entry(at + otadata::SECTOR_SIZE as usize)]
}

/// Reads and verifies the partition table the way the bootloader does.
pub fn read_table(flash: &mut SimFlash) -> Result<PartitionTable, BootError> {
    let mut bytes = [0u8; TABLE_MAX_LEN];
    flash.read(TABLE_OFFSET, &mut bytes)?;
    let capacity = u32::try_from(flash.capacity()).unwrap_or(u32::MAX);
    PartitionTable::parse(&bytes, capacity).map_err(BootError::Table)
}

/// Reads the two otadata entries (erased entries when the table has no otadata).
pub fn read_otadata(
    flash: &mut SimFlash,
    layout: &BootLayout,
) -> Result<[OtaSelectEntry; 2], BootError> {
    let Some(p) = layout.otadata else {
        return Ok([OtaSelectEntry::ERASED; 2]);
    };
    let mut a = [0u8; ENTRY_LEN];
    let mut b = [0u8; ENTRY_LEN];
    flash.read(p.offset, &mut a)?;
    flash.read(p.offset + otadata::SECTOR_SIZE, &mut b)?;
    Ok([OtaSelectEntry::decode(&a), OtaSelectEntry::decode(&b)])
}

/// Performs one otadata operation as ESP-IDF's `write_otadata` does: erase, then program.
fn apply_op(flash: &mut SimFlash, otadata: Partition, op: &OtadataOp) -> Result<u32, BootError> {
    let sector = u32::try_from(op.sector()).unwrap_or(0);
    let at = otadata.offset + sector * otadata::SECTOR_SIZE;
    flash.erase(at, at + otadata::SECTOR_SIZE)?;
    match op {
        OtadataOp::Write { entry, .. } => {
            flash.write(at, &entry.encode())?;
            Ok(2)
        }
        _ => Ok(1),
    }
}

/// The verdict on one candidate partition.
struct Candidate {
    report: ImageReport,
    sha256: [u8; 32],
}

/// Verifies the image at the start of `p` in full, reading it piece by piece.
pub fn verify_partition(flash: &mut SimFlash, p: &Partition) -> Result<ImageReport, BootError> {
    verify_candidate(flash, p).map(|c| c.report)
}

fn verify_candidate(flash: &mut SimFlash, p: &Partition) -> Result<Candidate, BootError> {
    let mut verifier = ImageVerifier::new(VerifyOptions {
        max_len: Some(p.size),
        ..VerifyOptions::default()
    });
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; READ_PIECE];
    let mut at: u32 = 0;
    while verifier.wants_more() && at < p.size {
        let n = READ_PIECE.min((p.size - at) as usize);
        let piece = &mut buf[..n];
        flash.read(p.offset + at, piece)?;
        let before = verifier.position();
        let result = verifier.update(piece);
        let used = verifier.position().saturating_sub(before) as usize;
        hasher.update(&piece[..used.min(n)]);
        if result.is_err() {
            break;
        }
        at += n as u32;
    }
    Ok(Candidate {
        report: verifier.into_report(),
        sha256: hasher.finalize().into(),
    })
}

fn partition_of(layout: &BootLayout, index: BootIndex) -> Option<Partition> {
    match index {
        BootIndex::Factory => layout.factory,
        BootIndex::Test => layout.test,
        BootIndex::Ota(k) => layout.slot(k).copied(),
        _ => None,
    }
}

/// Reads the secure version of the image in `slot` (0 when unreadable: such an image fails
/// verification anyway).
fn secure_version_of(flash: &mut SimFlash, p: &Partition) -> Result<u32, BootError> {
    let mut prefix = [0u8; fota_protocol::esp::image::PREFIX_LEN];
    flash.read(p.offset, &mut prefix)?;
    Ok(
        AppDesc::from_bytes(&prefix[fota_protocol::esp::image::APP_DESC_OFFSET..])
            .map_or(0, |d| d.secure_version),
    )
}

/// One reset: select, rewrite otadata, load with fallback. See the module documentation.
pub fn boot(
    flash: &mut SimFlash,
    config: BootloaderConfig,
    efuse: &mut Efuse,
) -> Result<Boot, BootError> {
    let table = read_table(flash)?;
    let layout = table.boot_layout();
    let read = read_otadata(flash, &layout)?;
    let mut seen = read;
    if config.anti_rollback {
        // ESP-IDF ignores an entry whose image is older than the eFuse allows, as if empty.
        for entry in &mut seen {
            if entry.is_valid()
                && let Some(p) = entry
                    .slot(layout.app_count)
                    .and_then(|s| layout.slot(s).copied())
                && secure_version_of(flash, &p)? < efuse.secure_version()
            {
                entry.seq = SEQ_EMPTY;
            }
        }
    }
    let selection = otadata::select_boot(
        [&seen[0].encode(), &seen[1].encode()],
        &layout,
        config.rollback,
    );
    let mut entries = read;
    let mut otadata_ops = 0;
    if selection.start.is_none() {
        return Err(BootError::OtadataTooSmall);
    }
    if let Some(od) = layout.otadata {
        for op in selection.rewrites.iter() {
            // Rewrites keep what was read apart from the state; apply them to the real entry.
            let op = match *op {
                OtadataOp::Write { sector, entry } => OtadataOp::Write {
                    sector,
                    entry: OtaSelectEntry {
                        state: entry.state,
                        ..entries[sector]
                    },
                },
                other => other,
            };
            otadata_ops += apply_op(flash, od, &op)?;
            op.apply(&mut entries);
        }
    }
    let mut tried = 0;
    let mut booted = None;
    for index in selection.try_order(&layout).iter() {
        let Some(p) = partition_of(&layout, index) else {
            continue;
        };
        let candidate = verify_candidate(flash, &p)?;
        tried += 1;
        if !candidate.report.is_valid() {
            tracing::debug!(partition = %index, error = ?candidate.report.error, "image does not verify");
            continue;
        }
        let Some(desc) = candidate.report.app_desc else {
            continue;
        };
        if config.anti_rollback && desc.secure_version < efuse.secure_version() {
            tracing::debug!(partition = %index, "image older than the eFuse secure version");
            continue;
        }
        booted = Some((index, p, desc, candidate));
        break;
    }
    let Some((running, partition, app_desc, candidate)) = booted else {
        return Err(BootError::NoBootableImage { tried });
    };
    if let (Some(op), Some(od)) = (selection.after_boot(running), layout.otadata) {
        otadata_ops += apply_op(flash, od, &op)?;
        op.apply(&mut entries);
    }
    if config.anti_rollback {
        let active = otadata::Otadata { entries }.active();
        let valid = active.is_some_and(|s| entries[s].state == OtaState::Valid);
        if valid || selection.initial_contents {
            efuse.raise_to(app_desc.secure_version);
        }
    }
    Ok(Boot {
        running,
        partition,
        app_desc,
        image_len: candidate.report.image_len.unwrap_or(0),
        image_sha256: candidate.sha256,
        fell_back: Some(running) != selection.start,
        selection,
        otadata: entries,
        otadata_ops,
        table,
    })
}
