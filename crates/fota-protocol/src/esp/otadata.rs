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

mod entry;
mod plan;
mod select;

pub use entry::{OtaSelectEntry, OtaState, Otadata, UnknownState};
pub use plan::{OtadataOp, OtadataPlan, PlanError, RollbackCandidate};
pub use select::{BootReason, BootSelection, TryOrder, select_boot};

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
