//! Whole-flash dumps: what a device would boot, and a builder for blank flash images.
//!
//! [`inspect_flash`] reads a dump (as `esptool read-flash 0 ALL` or the emulator writes it):
//! the partition table at 0x8000 with the bootloader's rules, both otadata entries, the
//! bootloader's choice with `CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE` (what it would rewrite,
//! where it would start, and which slot actually boots after image verification and
//! fallback), and a verdict per app partition. [`FlashBuilder`] makes the other direction:
//! an erased flash with a table, images in slots and chosen otadata entries.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use super::image::{self, HashCheck, ImageReport, VerifyOptions};
use super::otadata::{self, BootIndex, ENTRY_LEN, OtaSelectEntry, Otadata, OtadataOp, SECTOR_SIZE};
use super::partition::{
    BootLayout, Partition, PartitionKind, PartitionTable, TABLE_MAX_LEN, TABLE_OFFSET, TableError,
    subtype_name, type_name,
};

fn hex(bytes: &[u8]) -> String {
    use core::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The whole report on a flash dump.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FlashReport {
    /// Size of the dump, used as the chip size for the table's bound checks.
    pub flash_size: u32,
    /// The partition table.
    pub table: TableReport,
    /// Both otadata entries, when the table has an otadata partition.
    pub otadata: Option<OtadataReport>,
    /// The bootloader's decision, when the table is valid.
    pub boot: Option<BootReport>,
    /// Every app partition with its image verdict.
    pub apps: Vec<AppSlotReport>,
}

impl FlashReport {
    /// Whether the partition table verified.
    pub fn table_ok(&self) -> bool {
        self.table.error.is_none()
    }
}

/// The partition table at 0x8000.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct TableReport {
    /// Flash offset of the table.
    pub offset: u32,
    /// Why it was rejected, if it was.
    pub error: Option<String>,
    /// MD5 row digest (hex), if present.
    pub md5: Option<String>,
    /// The entries.
    pub partitions: Vec<PartitionReport>,
}

/// One table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PartitionReport {
    /// Label.
    pub label: String,
    /// Type name (or number).
    #[cfg_attr(feature = "serde", serde(rename = "type"))]
    pub ty: String,
    /// Subtype name (or number).
    pub subtype: String,
    /// Flash offset.
    pub offset: u32,
    /// Size.
    pub size: u32,
    /// `encrypted`, `readonly`.
    pub flags: Vec<String>,
}

impl PartitionReport {
    /// Describes one entry.
    pub fn new(p: &Partition) -> Self {
        let mut flags = Vec::new();
        if p.encrypted() {
            flags.push("encrypted".into());
        }
        if p.readonly() {
            flags.push("readonly".into());
        }
        Self {
            label: p
                .label_str()
                .map_or_else(|| hex(&p.label), ToString::to_string),
            ty: type_name(p.ty).map_or_else(|| alloc::format!("{:#04x}", p.ty), Into::into),
            subtype: subtype_name(p.ty, p.subtype)
                .map_or_else(|| alloc::format!("{:#04x}", p.subtype), Into::into),
            offset: p.offset,
            size: p.size,
            flags,
        }
    }
}

/// The otadata partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct OtadataReport {
    /// Flash offset.
    pub offset: u32,
    /// Sector 0 and sector 1.
    pub entries: Vec<OtaEntryReport>,
    /// The active sector, if any.
    pub active: Option<usize>,
}

/// One otadata entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct OtaEntryReport {
    /// 0 or 1.
    pub sector: usize,
    /// Whether the 32 bytes are all 0xFF.
    pub erased: bool,
    /// `ota_seq`.
    pub seq: u32,
    /// State name.
    pub state: String,
    /// Raw state value.
    pub state_raw: u32,
    /// Whether the CRC matches.
    pub crc_ok: bool,
    /// `bootloader_common_ota_select_valid`.
    pub valid: bool,
    /// The slot it selects (with the table's `app_count`).
    pub slot: Option<u32>,
}

/// What the bootloader would do (rollback enabled).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BootReport {
    /// Whether the rollback rules were applied.
    pub rollback_enabled: bool,
    /// Where loading starts (`ota_0`, `factory`, …), before image checks.
    pub selected: Option<String>,
    /// What actually boots: the first partition in the try order whose image verifies.
    pub boots: Option<String>,
    /// Human-readable reason for the selection.
    pub reason: String,
    /// otadata rewrites the bootloader performs before loading.
    pub rewrites: Vec<String>,
    /// Partitions tried, in order.
    pub try_order: Vec<String>,
    /// Whether booting an OTA slot would also write its sequence into sector 0.
    pub initial_contents: bool,
}

/// One app partition and the image in it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AppSlotReport {
    /// Label.
    pub label: String,
    /// `ota_0`, `factory`, `test`, …
    pub subtype: String,
    /// Flash offset.
    pub offset: u32,
    /// Partition size.
    pub size: u32,
    /// `valid`, `invalid` or `empty` (first 32 bytes erased).
    pub status: String,
    /// Why the image is invalid.
    pub error: Option<String>,
    /// App version.
    pub version: Option<String>,
    /// Project name.
    pub project: Option<String>,
    /// Secure version.
    pub secure_version: Option<u32>,
    /// Image length.
    pub image_len: Option<u32>,
    /// Appended SHA-256 (hex), when valid.
    pub sha256: Option<String>,
    /// Whether the boot-failure marker is set.
    pub boot_fails: bool,
    /// The otadata state for this slot (`esp_ota_get_state_partition`), for OTA slots.
    pub ota_state: Option<String>,
}

fn op_text(op: &OtadataOp) -> String {
    match op {
        OtadataOp::Write { sector, entry } => {
            alloc::format!("otadata[{sector}]: seq {} -> {}", entry.seq, entry.state)
        }
        OtadataOp::Erase { sector } => alloc::format!("otadata[{sector}]: erase"),
    }
}

/// Bytes `offset..offset + len` of `flash`, cut short at its end.
fn slice(flash: &[u8], offset: u32, len: u64) -> &[u8] {
    let clamp = |at: u64| usize::try_from(at).unwrap_or(usize::MAX).min(flash.len());
    let start = u64::from(offset);
    flash
        .get(clamp(start)..clamp(start.saturating_add(len)))
        .unwrap_or(&[])
}

fn verify_slot(flash: &[u8], p: &Partition) -> Option<ImageReport> {
    let bytes = slice(flash, p.offset, u64::from(p.size));
    if bytes.len() >= ENTRY_LEN && bytes.iter().take(ENTRY_LEN).all(|&b| b == 0xFF) {
        return None;
    }
    Some(image::inspect(
        bytes,
        VerifyOptions {
            max_len: Some(p.size),
            ..VerifyOptions::default()
        },
    ))
}

fn app_report(flash: &[u8], p: &Partition, od: Option<&Otadata>, app_count: u32) -> AppSlotReport {
    let report = verify_slot(flash, p);
    let desc = report.as_ref().and_then(|r| r.app_desc);
    let status = match &report {
        None => "empty",
        Some(r) if r.is_valid() => "valid",
        Some(_) => "invalid",
    };
    let sha256 = report.as_ref().and_then(|r| match r.hash {
        HashCheck::Checked { stored, computed } if stored == computed && r.is_valid() => {
            Some(hex(&stored))
        }
        _ => None,
    });
    AppSlotReport {
        label: PartitionReport::new(p).label,
        subtype: PartitionReport::new(p).subtype,
        offset: p.offset,
        size: p.size,
        status: status.into(),
        error: report.as_ref().and_then(|r| r.error.map(|e| e.to_string())),
        version: desc.and_then(|d| d.version().map(Into::into)),
        project: desc.and_then(|d| d.project_name().map(Into::into)),
        secure_version: desc.map(|d| d.secure_version),
        image_len: report.as_ref().and_then(|r| r.image_len),
        sha256,
        boot_fails: desc.is_some_and(|d| d.boot_fails()),
        ota_state: p.ota_slot().and_then(|slot| {
            od.and_then(|od| od.state_of_slot(u32::from(slot), app_count))
                .map(|s| s.to_string())
        }),
    }
}

/// Whether the image in a boot candidate verifies.
fn index_boots(flash: &[u8], layout: &BootLayout, index: BootIndex) -> bool {
    let p = match index {
        BootIndex::Factory => layout.factory,
        BootIndex::Test => layout.test,
        BootIndex::Ota(k) => layout.slot(k).copied(),
    };
    p.and_then(|p| verify_slot(flash, &p))
        .is_some_and(|r| r.is_valid())
}

/// Inspects a whole-flash dump (the bootloader's view, rollback enabled).
pub fn inspect_flash(flash: &[u8]) -> FlashReport {
    inspect_flash_with(flash, true)
}

/// Inspects a whole-flash dump with or without the rollback rules.
pub fn inspect_flash_with(flash: &[u8], rollback_enabled: bool) -> FlashReport {
    let flash_size = u32::try_from(flash.len()).unwrap_or(u32::MAX);
    let table_bytes = slice(flash, TABLE_OFFSET, TABLE_MAX_LEN as u64);
    let parsed = PartitionTable::parse(table_bytes, flash_size);
    let mut report = FlashReport {
        flash_size,
        table: TableReport {
            offset: TABLE_OFFSET,
            error: None,
            md5: None,
            partitions: Vec::new(),
        },
        otadata: None,
        boot: None,
        apps: Vec::new(),
    };
    let table = match parsed {
        Ok(t) => t,
        Err(e) => {
            report.table.error = Some(e.to_string());
            return report;
        }
    };
    report.table.md5 = table.md5().map(|d| hex(&d));
    report.table.partitions = table.iter().map(PartitionReport::new).collect();
    let layout = table.boot_layout();

    let mut sectors = [[0xFFu8; ENTRY_LEN]; 2];
    let mut od = None;
    if let Some(p) = layout.otadata {
        for (sector, in_partition) in sectors.iter_mut().zip([0, SECTOR_SIZE]) {
            let at = p.offset.saturating_add(in_partition);
            let src = slice(flash, at, ENTRY_LEN as u64);
            if let Some(dst) = sector.get_mut(..src.len()) {
                dst.copy_from_slice(src);
            }
        }
        let data = Otadata::decode(&sectors[0], &sectors[1]);
        report.otadata = Some(OtadataReport {
            offset: p.offset,
            entries: data
                .entries
                .iter()
                .enumerate()
                .map(|(sector, e)| OtaEntryReport {
                    sector,
                    erased: sectors
                        .get(sector)
                        .is_some_and(|s| s.iter().all(|&b| b == 0xFF)),
                    seq: e.seq,
                    state: e.state.to_string(),
                    state_raw: e.state.raw(),
                    crc_ok: e.crc_ok(),
                    valid: e.is_valid(),
                    slot: if e.seq == otadata::SEQ_EMPTY {
                        None
                    } else {
                        e.slot(layout.app_count)
                    },
                })
                .collect(),
            active: data.active(),
        });
        od = Some(data);
    }

    let sel = otadata::select_boot([&sectors[0], &sectors[1]], &layout, rollback_enabled);
    let order: Vec<BootIndex> = sel.try_order(&layout).iter().collect();
    let boots = order
        .iter()
        .copied()
        .find(|&i| index_boots(flash, &layout, i));
    report.boot = Some(BootReport {
        rollback_enabled,
        selected: sel.start.map(|s| s.to_string()),
        boots: boots.map(|s| s.to_string()),
        reason: sel.to_string(),
        rewrites: sel
            .rewrites
            .iter()
            .chain(boots.and_then(|b| sel.after_boot(b)).as_ref())
            .map(op_text)
            .collect(),
        try_order: order.iter().map(ToString::to_string).collect(),
        initial_contents: sel.initial_contents,
    });
    report.apps = table
        .iter()
        .filter(|p| matches!(p.kind(), PartitionKind::App(_)))
        .map(|p| app_report(flash, p, od.as_ref(), layout.app_count))
        .collect();
    report
}

/// Why a flash image could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlashBuildError {
    /// The table is invalid for this flash size (an entry out of bounds, too many rows).
    Table(TableError),
    /// No partition with that label or slot.
    NoSuchPartition(String),
    /// The data is larger than the partition.
    TooLarge {
        /// Partition label.
        partition: String,
        /// Data length.
        len: usize,
        /// Partition size.
        size: u32,
    },
    /// The table has no otadata partition.
    NoOtadata,
    /// Sector must be 0 or 1.
    BadSector(usize),
}

impl fmt::Display for FlashBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Table(e) => write!(f, "partition table: {e}"),
            Self::NoSuchPartition(p) => write!(f, "no partition '{p}'"),
            Self::TooLarge {
                partition,
                len,
                size,
            } => write!(
                f,
                "{len} bytes do not fit in partition '{partition}' ({size:#x} bytes)"
            ),
            Self::NoOtadata => f.write_str("the table has no otadata partition"),
            Self::BadSector(s) => write!(f, "otadata sector {s} (must be 0 or 1)"),
        }
    }
}

impl core::error::Error for FlashBuildError {}

/// Builds a flash image: erased (0xFF), the table at 0x8000 (with MD5 row), otadata erased,
/// then whatever is written into partitions.
#[derive(Debug, Clone)]
pub struct FlashBuilder {
    bytes: Vec<u8>,
    table: PartitionTable,
}

impl FlashBuilder {
    /// An erased flash of `flash_size` bytes holding `table`. The table must verify for
    /// this flash size.
    pub fn new(flash_size: u32, table: &PartitionTable) -> Result<Self, FlashBuildError> {
        let encoded = table.encode(true).map_err(FlashBuildError::Table)?;
        PartitionTable::parse(&encoded, flash_size).map_err(FlashBuildError::Table)?;
        let end = (TABLE_OFFSET as usize).saturating_add(TABLE_MAX_LEN);
        let size = usize::try_from(flash_size).unwrap_or(usize::MAX);
        if size < end {
            return Err(FlashBuildError::Table(TableError::Truncated {
                offset: size.saturating_sub(TABLE_OFFSET as usize),
            }));
        }
        let mut bytes = alloc::vec![0xFFu8; size];
        if let Some(dst) = bytes.get_mut(TABLE_OFFSET as usize..end) {
            dst.copy_from_slice(&encoded);
        }
        Ok(Self {
            bytes,
            table: table.clone(),
        })
    }

    /// The table written at 0x8000.
    pub const fn table(&self) -> &PartitionTable {
        &self.table
    }

    fn write_into(&mut self, p: Partition, data: &[u8]) -> Result<&mut Self, FlashBuildError> {
        if data.len() > p.size as usize {
            return Err(FlashBuildError::TooLarge {
                partition: p.label_str().unwrap_or("").into(),
                len: data.len(),
                size: p.size,
            });
        }
        let start = p.offset as usize;
        let dst = start
            .checked_add(data.len())
            .and_then(|end| self.bytes.get_mut(start..end))
            .ok_or_else(|| FlashBuildError::NoSuchPartition(p.label_str().unwrap_or("").into()))?;
        dst.copy_from_slice(data);
        Ok(self)
    }

    /// Writes `data` at the start of the partition labelled `label`.
    pub fn write_partition(
        &mut self,
        label: &str,
        data: &[u8],
    ) -> Result<&mut Self, FlashBuildError> {
        let p = *self
            .table
            .find_by_label(label)
            .ok_or_else(|| FlashBuildError::NoSuchPartition(label.into()))?;
        self.write_into(p, data)
    }

    /// Writes an app image into the factory, test or `ota_N` partition.
    pub fn write_app(
        &mut self,
        slot: BootIndex,
        image: &[u8],
    ) -> Result<&mut Self, FlashBuildError> {
        let layout = self.table.boot_layout();
        let p = match slot {
            BootIndex::Factory => layout.factory,
            BootIndex::Test => layout.test,
            BootIndex::Ota(k) => usize::try_from(k)
                .ok()
                .and_then(|k| layout.ota.get(k).copied().flatten()),
        }
        .ok_or_else(|| FlashBuildError::NoSuchPartition(slot.to_string()))?;
        self.write_into(p, image)
    }

    /// Writes an otadata entry into sector 0 or 1 (the rest of the sector stays 0xFF).
    pub fn set_otadata(
        &mut self,
        sector: usize,
        entry: &OtaSelectEntry,
    ) -> Result<&mut Self, FlashBuildError> {
        let in_partition = [0, SECTOR_SIZE]
            .get(sector)
            .copied()
            .ok_or(FlashBuildError::BadSector(sector))?;
        let p = self
            .table
            .boot_layout()
            .otadata
            .ok_or(FlashBuildError::NoOtadata)?;
        let start = p.offset.saturating_add(in_partition) as usize;
        let end = start.saturating_add(ENTRY_LEN);
        if let Some(dst) = self.bytes.get_mut(start..end) {
            dst.copy_from_slice(&entry.encode());
        }
        Ok(self)
    }

    /// The flash bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The flash bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}
