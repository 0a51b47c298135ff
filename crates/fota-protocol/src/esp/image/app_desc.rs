//! `esp_app_desc_t`: version, project and secure version at the start of segment 0.

use super::{APP_DESC_LEN, APP_DESC_MAGIC, BOOT_FAILS_MARKER};
use crate::codec::{Reader, c_string, put_c_string};

/// `esp_app_desc_t`, at file offset 0x20 (the start of segment 0's data).
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 4 | magic_word | 0xABCD5432 |
/// | 4 | 4 | secure_version | anti-rollback version |
/// | 8 | 8 | reserv1 | |
/// | 16 | 32 | version | NUL-terminated, ≤ 31 chars |
/// | 48 | 32 | project_name | NUL-terminated, ≤ 31 chars |
/// | 80 | 16 | time | build time |
/// | 96 | 16 | date | build date |
/// | 112 | 32 | idf_ver | ESP-IDF version |
/// | 144 | 32 | app_elf_sha256 | SHA-256 of the ELF |
/// | 176 | 2 | min_efuse_blk_rev_full | |
/// | 178 | 2 | max_efuse_blk_rev_full | |
/// | 180 | 1 | mmu_page_size | log2 (16 = 64 KiB) |
/// | 181 | 1 | spi_flash_mode | `CONFIG_ESPTOOLPY_FLASHMODE_VAL` |
/// | 182 | 2 | reserv3 | |
/// | 184 | 72 | reserv2 | first u32 = [`BOOT_FAILS_MARKER`] in our test images |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AppDesc {
    /// Magic word.
    pub magic: u32,
    /// Anti-rollback secure version.
    pub secure_version: u32,
    /// Reserved.
    pub reserv1: [u8; 8],
    /// Version string field.
    pub version: [u8; 32],
    /// Project name field.
    pub project_name: [u8; 32],
    /// Build time field.
    pub time: [u8; 16],
    /// Build date field.
    pub date: [u8; 16],
    /// ESP-IDF version field.
    pub idf_ver: [u8; 32],
    /// SHA-256 of the ELF file.
    pub app_elf_sha256: [u8; 32],
    /// Minimum eFuse block revision.
    pub min_efuse_blk_rev_full: u16,
    /// Maximum eFuse block revision.
    pub max_efuse_blk_rev_full: u16,
    /// log2 of the MMU page size.
    pub mmu_page_size: u8,
    /// SPI flash mode the app was built for.
    pub spi_flash_mode: u8,
    /// Reserved.
    pub reserv3: [u8; 2],
    /// Reserved.
    pub reserv2: [u8; 72],
}

impl AppDesc {
    /// An all-zero descriptor with the magic set.
    pub const EMPTY: Self = Self {
        magic: APP_DESC_MAGIC,
        secure_version: 0,
        reserv1: [0; 8],
        version: [0; 32],
        project_name: [0; 32],
        time: [0; 16],
        date: [0; 16],
        idf_ver: [0; 32],
        app_elf_sha256: [0; 32],
        min_efuse_blk_rev_full: 0,
        max_efuse_blk_rev_full: 0,
        mmu_page_size: 0,
        spi_flash_mode: 0,
        reserv3: [0; 2],
        reserv2: [0; 72],
    };

    /// Decodes the first 256 bytes of `bytes` (magic not checked).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, crate::CodecError> {
        let mut r = Reader::new(bytes);
        Ok(Self {
            magic: r.u32()?,
            secure_version: r.u32()?,
            reserv1: r.array()?,
            version: r.array()?,
            project_name: r.array()?,
            time: r.array()?,
            date: r.array()?,
            idf_ver: r.array()?,
            app_elf_sha256: r.array()?,
            min_efuse_blk_rev_full: r.u16()?,
            max_efuse_blk_rev_full: r.u16()?,
            mmu_page_size: r.u8()?,
            spi_flash_mode: r.u8()?,
            reserv3: r.array()?,
            reserv2: r.array()?,
        })
    }

    /// Encodes the 256 bytes.
    pub fn encode(&self) -> [u8; APP_DESC_LEN] {
        let mut out = [0u8; APP_DESC_LEN];
        let mut w = crate::codec::Writer::new(&mut out);
        // 256 bytes of fields into a 256-byte buffer: the writes cannot run out of room.
        let _ = (|| -> Result<(), crate::CodecError> {
            w.u32(self.magic)?;
            w.u32(self.secure_version)?;
            w.bytes(&self.reserv1)?;
            w.bytes(&self.version)?;
            w.bytes(&self.project_name)?;
            w.bytes(&self.time)?;
            w.bytes(&self.date)?;
            w.bytes(&self.idf_ver)?;
            w.bytes(&self.app_elf_sha256)?;
            w.u16(self.min_efuse_blk_rev_full)?;
            w.u16(self.max_efuse_blk_rev_full)?;
            w.u8(self.mmu_page_size)?;
            w.u8(self.spi_flash_mode)?;
            w.bytes(&self.reserv3)?;
            w.bytes(&self.reserv2)
        })();
        out
    }

    /// Whether the magic word is right.
    pub const fn magic_ok(&self) -> bool {
        self.magic == APP_DESC_MAGIC
    }

    /// The version string (up to the first NUL), if UTF-8.
    pub fn version(&self) -> Option<&str> {
        c_string(&self.version)
    }

    /// The project name (up to the first NUL), if UTF-8.
    pub fn project_name(&self) -> Option<&str> {
        c_string(&self.project_name)
    }

    /// The build time string.
    pub fn time(&self) -> Option<&str> {
        c_string(&self.time)
    }

    /// The build date string.
    pub fn date(&self) -> Option<&str> {
        c_string(&self.date)
    }

    /// The ESP-IDF version string.
    pub fn idf_ver(&self) -> Option<&str> {
        c_string(&self.idf_ver)
    }

    /// Sets the version field; fails if longer than 31 bytes or holding a NUL.
    pub fn set_version(&mut self, version: &str) -> Option<()> {
        self.version = put_c_string(version)?;
        Some(())
    }

    /// Sets the project name; fails if longer than 31 bytes or holding a NUL.
    pub fn set_project_name(&mut self, name: &str) -> Option<()> {
        self.project_name = put_c_string(name)?;
        Some(())
    }

    /// Whether the emulator's boot-failure marker ([`BOOT_FAILS_MARKER`]) is set.
    pub fn boot_fails(&self) -> bool {
        let mut w = [0u8; 4];
        w.copy_from_slice(&self.reserv2[..4]);
        u32::from_le_bytes(w) == BOOT_FAILS_MARKER
    }

    /// Sets or clears the boot-failure marker.
    pub fn set_boot_fails(&mut self, fails: bool) {
        let word = if fails { BOOT_FAILS_MARKER } else { 0 };
        self.reserv2[..4].copy_from_slice(&word.to_le_bytes());
    }
}
