//! ESP32 app images: header, segments, `esp_app_desc_t`, checksum and appended SHA-256.
//!
//! # Image layout
//!
//! | offset | size | part | meaning |
//! |---|---|---|---|
//! | 0 | 24 | [`ImageHeader`] | magic 0xE9, segment count, flash params, chip id, `hash_appended` |
//! | 24 | 8 | segment 0 header | `load_addr`, `data_len` (u32 LE each) |
//! | 32 | 256 | [`AppDesc`] | first bytes of segment 0's data, magic 0xABCD5432 |
//! | … | … | more segment data, then segment headers + data | |
//! | L | p | padding | zero bytes up to one byte before a 16-byte boundary; not checked |
//! | P − 1 | 1 | checksum | 0xEF XOR every segment data byte (not headers, not padding) |
//! | P | 32 | SHA-256 | of bytes `0..P`, present iff `hash_appended == 1` |
//!
//! with `L = 24 + Σ(8 + data_len)` and `P = (L + 1 + 15) & !15`. The image length is `P` or
//! `P + 32`; bytes after it (the 0xFF rest of a slot) are ignored.
//!
//! # Verification
//!
//! [`ImageVerifier`] follows `esp_image_verify` for the non-secure-boot path, in file order:
//! magic; chip id (and chip revision when the caller gives one); segment count (1–16);
//! `hash_appended` 0 or 1 (esptool refuses other values, the bootloader treats any non-zero
//! value as 1); per segment: `data_len % 4 == 0` and `< 16 MiB`, segment 0 at least 256
//! bytes and starting with the app descriptor magic, flash-mapped segments (ESP32 DROM
//! 0x3F400000–0x3F7FFFFF, IROM 0x400D0000–0x403FFFFF) with `file offset % 64 KiB ==
//! load_addr % 64 KiB`; the checksum; the appended hash; the fit in a maximum length (the
//! partition size). An image without appended hash is valid on its checksum alone.
//!
//! It takes the image in pieces of any size, in order, and keeps a constant state of about
//! 700 bytes, so a device can re-read its slot from flash in small pieces. [`verify`] and
//! [`inspect`] are the whole-slice forms; [`ImagePrefix::parse`] checks just the first
//! [`PREFIX_LEN`] bytes (header, segment 0 header, app descriptor) so an agent can refuse
//! a wrong image from its first chunk.
//!
//! Not checked (as in `esp_image_verify` without loading): RAM segments overlapping the
//! bootloader's own memory, which only matters when the image is loaded.

use core::fmt;

use sha2::{Digest, Sha256};

use crate::codec::{Reader, c_string, put_c_string};

/// `ESP_IMAGE_HEADER_MAGIC`.
pub const IMAGE_MAGIC: u8 = 0xE9;
/// `ESP_APP_DESC_MAGIC_WORD`.
pub const APP_DESC_MAGIC: u32 = 0xABCD_5432;
/// `ESP_ROM_CHECKSUM_INITIAL`.
pub const CHECKSUM_SEED: u8 = 0xEF;
/// `ESP_IMAGE_MAX_SEGMENTS`.
pub const MAX_SEGMENTS: usize = 16;
/// Size of [`ImageHeader`].
pub const HEADER_LEN: usize = 24;
/// Size of a segment header.
pub const SEGMENT_HEADER_LEN: usize = 8;
/// Size of [`AppDesc`].
pub const APP_DESC_LEN: usize = 256;
/// File offset of the app descriptor (header + first segment header).
pub const APP_DESC_OFFSET: usize = HEADER_LEN + SEGMENT_HEADER_LEN;
/// Bytes [`ImagePrefix::parse`] needs: up to the end of the app descriptor (0x120).
pub const PREFIX_LEN: usize = APP_DESC_OFFSET + APP_DESC_LEN;
/// Segments must be shorter than this (`SIXTEEN_MB`).
pub const MAX_SEGMENT_LEN: u32 = 0x100_0000;
/// Flash MMU page size on ESP32.
pub const MMU_PAGE_SIZE: u32 = 0x1_0000;
/// Length of the appended SHA-256.
pub const HASH_LEN: usize = 32;
/// Chip id of the ESP32 in the image header.
pub const CHIP_ID_ESP32: u16 = 0x0000;

/// Marker in the first word of `esp_app_desc_t.reserv2` (app descriptor offset 184, file
/// offset 0xD8) that makes the emulator's boot of this image fail (the image never confirms
/// itself). Set by `fota image build --boot-fails`; a real ESP-IDF app leaves `reserv2` zero,
/// and version, project and secure_version are unaffected.
pub const BOOT_FAILS_MARKER: u32 = 0xB007_FA11;

/// Target chip, for the chip id check and the flash-mapped address ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Chip {
    /// ESP32 (chip id 0).
    #[default]
    Esp32,
}

impl Chip {
    /// The id in the image header.
    pub const fn id(self) -> u16 {
        match self {
            Self::Esp32 => CHIP_ID_ESP32,
        }
    }

    /// Whether `addr` is mapped from flash through the MMU (DROM or IROM).
    pub const fn is_flash_mapped(self, addr: u32) -> bool {
        matches!(self.region(addr), MemoryRegion::Drom | MemoryRegion::Irom)
    }

    /// The memory region an address lies in (`soc/esp32/include/soc/soc.h`).
    pub const fn region(self, addr: u32) -> MemoryRegion {
        match self {
            Self::Esp32 => match addr {
                0x3F40_0000..=0x3F7F_FFFF => MemoryRegion::Drom,
                0x400D_0000..=0x403F_FFFF => MemoryRegion::Irom,
                0x3FFA_E000..=0x3FFF_FFFF => MemoryRegion::Dram,
                0x4007_0000..=0x4009_FFFF => MemoryRegion::Iram,
                0x400C_0000..=0x400C_1FFF => MemoryRegion::RtcFast,
                0x5000_0000..=0x5000_1FFF => MemoryRegion::RtcSlow,
                _ => MemoryRegion::Other,
            },
        }
    }
}

/// Where a segment loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemoryRegion {
    /// Flash-mapped data (rodata).
    Drom,
    /// Flash-mapped code.
    Irom,
    /// Internal data RAM.
    Dram,
    /// Internal instruction RAM.
    Iram,
    /// RTC fast memory.
    RtcFast,
    /// RTC slow memory.
    RtcSlow,
    /// Anything else.
    Other,
}

impl MemoryRegion {
    /// Short name as esptool prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Drom => "DROM",
            Self::Irom => "IROM",
            Self::Dram => "DRAM",
            Self::Iram => "IRAM",
            Self::RtcFast => "RTC_FAST",
            Self::RtcSlow => "RTC_SLOW",
            Self::Other => "OTHER",
        }
    }
}

/// `esp_image_header_t`.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 1 | magic | 0xE9 |
/// | 1 | 1 | segment_count | ≤ 16 |
/// | 2 | 1 | spi_mode | 0 QIO, 1 QOUT, 2 DIO, 3 DOUT, 4 FAST_READ, 5 SLOW_READ |
/// | 3 | 1 | spi_speed / spi_size | low nibble speed (ESP32: 0 = 40m, 1 = 26m, 2 = 20m, 0xF = 80m), high nibble size (0 = 1MB … 7 = 128MB) |
/// | 4 | 4 | entry_addr | LE |
/// | 8 | 1 | wp_pin | 0xEE = disabled |
/// | 9 | 3 | spi_pin_drv | drive strengths |
/// | 12 | 2 | chip_id | ESP32 = 0 |
/// | 14 | 1 | min_chip_rev | legacy |
/// | 15 | 2 | min_chip_rev_full | major·100 + minor |
/// | 17 | 2 | max_chip_rev_full | e.g. 399 |
/// | 19 | 4 | reserved | |
/// | 23 | 1 | hash_appended | 1: SHA-256 follows the checksum |
///
/// Only magic, segment count, chip id (and revisions when checked) and `hash_appended` are
/// checked; the flash parameters are covered by the appended hash alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageHeader {
    /// Magic byte.
    pub magic: u8,
    /// Number of segments.
    pub segment_count: u8,
    /// SPI flash mode.
    pub spi_mode: u8,
    /// Flash frequency (low nibble) and size (high nibble).
    pub spi_speed_size: u8,
    /// Entry point.
    pub entry_addr: u32,
    /// WP pin.
    pub wp_pin: u8,
    /// SPI pin drive settings.
    pub spi_pin_drv: [u8; 3],
    /// Chip id.
    pub chip_id: u16,
    /// Legacy minimum chip revision.
    pub min_chip_rev: u8,
    /// Minimum chip revision, major·100 + minor.
    pub min_chip_rev_full: u16,
    /// Maximum chip revision, major·100 + minor.
    pub max_chip_rev_full: u16,
    /// Reserved bytes.
    pub reserved: [u8; 4],
    /// 1 when a SHA-256 is appended.
    pub hash_appended: u8,
}

impl ImageHeader {
    /// Decodes the 24 header bytes.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Self {
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Self {
            magic: b[0],
            segment_count: b[1],
            spi_mode: b[2],
            spi_speed_size: b[3],
            entry_addr: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            wp_pin: b[8],
            spi_pin_drv: [b[9], b[10], b[11]],
            chip_id: u16_at(12),
            min_chip_rev: b[14],
            min_chip_rev_full: u16_at(15),
            max_chip_rev_full: u16_at(17),
            reserved: [b[19], b[20], b[21], b[22]],
            hash_appended: b[23],
        }
    }

    /// Encodes the 24 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = self.magic;
        b[1] = self.segment_count;
        b[2] = self.spi_mode;
        b[3] = self.spi_speed_size;
        b[4..8].copy_from_slice(&self.entry_addr.to_le_bytes());
        b[8] = self.wp_pin;
        b[9..12].copy_from_slice(&self.spi_pin_drv);
        b[12..14].copy_from_slice(&self.chip_id.to_le_bytes());
        b[14] = self.min_chip_rev;
        b[15..17].copy_from_slice(&self.min_chip_rev_full.to_le_bytes());
        b[17..19].copy_from_slice(&self.max_chip_rev_full.to_le_bytes());
        b[19..23].copy_from_slice(&self.reserved);
        b[23] = self.hash_appended;
        b
    }

    /// The SPI mode's name.
    pub const fn spi_mode_name(&self) -> Option<&'static str> {
        match self.spi_mode {
            0 => Some("QIO"),
            1 => Some("QOUT"),
            2 => Some("DIO"),
            3 => Some("DOUT"),
            4 => Some("FAST_READ"),
            5 => Some("SLOW_READ"),
            _ => None,
        }
    }

    /// The flash frequency as esptool names it for ESP32.
    pub const fn flash_freq_name(&self) -> Option<&'static str> {
        match self.spi_speed_size & 0x0F {
            0x0 => Some("40m"),
            0x1 => Some("26m"),
            0x2 => Some("20m"),
            0xF => Some("80m"),
            _ => None,
        }
    }

    /// The flash size in bytes the header announces.
    pub const fn flash_size(&self) -> Option<u32> {
        match self.spi_speed_size >> 4 {
            n @ 0..=7 => Some(0x10_0000 << n),
            _ => None,
        }
    }
}

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

/// One segment as found in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SegmentInfo {
    /// Load address.
    pub load_addr: u32,
    /// Data length.
    pub data_len: u32,
    /// File offset of the data (its header is 8 bytes before).
    pub data_offset: u32,
}

impl SegmentInfo {
    /// The memory region the segment loads into (ESP32 map).
    pub const fn region(&self) -> MemoryRegion {
        Chip::Esp32.region(self.load_addr)
    }

    /// File offset of the segment header.
    pub const fn header_offset(&self) -> u32 {
        self.data_offset.saturating_sub(SEGMENT_HEADER_LEN as u32)
    }
}

/// Which part of the image a truncation cut into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImagePart {
    /// The 24-byte header.
    Header,
    /// A segment header.
    SegmentHeader(u8),
    /// A segment's data.
    SegmentData(u8),
    /// The padding before the checksum.
    Padding,
    /// The checksum byte.
    Checksum,
    /// The appended SHA-256.
    Hash,
}

impl fmt::Display for ImagePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header => f.write_str("image header"),
            Self::SegmentHeader(i) => write!(f, "segment {i} header"),
            Self::SegmentData(i) => write!(f, "segment {i} data"),
            Self::Padding => f.write_str("checksum padding"),
            Self::Checksum => f.write_str("checksum byte"),
            Self::Hash => f.write_str("appended SHA-256"),
        }
    }
}

/// Why an image was rejected. `offset` is always the file offset of the failing field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageError {
    /// The data ended inside `part`, at `offset`.
    Truncated {
        /// Offset where the data ended.
        offset: u32,
        /// What was being read.
        part: ImagePart,
    },
    /// First byte is not 0xE9.
    BadMagic {
        /// Always 0.
        offset: u32,
        /// The byte found.
        found: u8,
    },
    /// The header's chip id is not the expected chip's.
    ChipMismatch {
        /// Always 12.
        offset: u32,
        /// Expected id.
        expected: u16,
        /// Id found.
        found: u16,
    },
    /// The chip revision given by the caller is outside the image's min/max range.
    ChipRevision {
        /// 15 (min) or 17 (max).
        offset: u32,
        /// The chip's revision.
        revision: u16,
        /// The image's minimum.
        min: u16,
        /// The image's maximum (0 or 0xFFFF: none).
        max: u16,
    },
    /// Segment count is 0 or above 16.
    SegmentCount {
        /// Always 1.
        offset: u32,
        /// Count found.
        count: u8,
    },
    /// `hash_appended` is neither 0 nor 1.
    HashAppendedFlag {
        /// Always 23.
        offset: u32,
        /// Value found.
        value: u8,
    },
    /// A segment length is not a multiple of 4 or not below 16 MiB.
    SegmentLength {
        /// Offset of the length field.
        offset: u32,
        /// Segment index.
        index: u8,
        /// Length found.
        len: u32,
    },
    /// Segment 0 is shorter than the 256-byte app descriptor.
    FirstSegmentTooShort {
        /// Offset of the length field.
        offset: u32,
        /// Length found.
        len: u32,
    },
    /// The app descriptor magic is missing.
    AppDescMagic {
        /// Always 0x20.
        offset: u32,
        /// Word found.
        found: u32,
    },
    /// A flash-mapped segment's data does not sit at a file offset congruent to its load
    /// address modulo the 64 KiB MMU page.
    MmuAlignment {
        /// Offset of the segment header.
        offset: u32,
        /// Segment index.
        index: u8,
        /// Load address.
        load_addr: u32,
        /// File offset of the data.
        data_offset: u32,
    },
    /// The stored checksum differs from the computed one.
    Checksum {
        /// Offset of the checksum byte.
        offset: u32,
        /// Stored byte.
        stored: u8,
        /// Computed byte.
        computed: u8,
    },
    /// The appended SHA-256 differs from the digest of the image.
    Hash {
        /// Offset of the stored hash.
        offset: u32,
        /// Stored digest.
        stored: [u8; 32],
        /// Computed digest.
        computed: [u8; 32],
    },
    /// The image does not fit in the allowed length (the partition).
    TooLarge {
        /// Offset where the image passes the limit.
        offset: u32,
        /// The limit.
        max_len: u32,
    },
}

impl ImageError {
    /// File offset of the failing field.
    pub const fn offset(&self) -> u32 {
        match *self {
            Self::Truncated { offset, .. }
            | Self::BadMagic { offset, .. }
            | Self::ChipMismatch { offset, .. }
            | Self::ChipRevision { offset, .. }
            | Self::SegmentCount { offset, .. }
            | Self::HashAppendedFlag { offset, .. }
            | Self::SegmentLength { offset, .. }
            | Self::FirstSegmentTooShort { offset, .. }
            | Self::AppDescMagic { offset, .. }
            | Self::MmuAlignment { offset, .. }
            | Self::Checksum { offset, .. }
            | Self::Hash { offset, .. }
            | Self::TooLarge { offset, .. } => offset,
        }
    }

    /// Short name of the failed check.
    pub const fn check(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::BadMagic { .. } => "magic",
            Self::ChipMismatch { .. } => "chip_id",
            Self::ChipRevision { .. } => "chip_revision",
            Self::SegmentCount { .. } => "segment_count",
            Self::HashAppendedFlag { .. } => "hash_appended",
            Self::SegmentLength { .. } => "segment_length",
            Self::FirstSegmentTooShort { .. } => "app_desc_segment",
            Self::AppDescMagic { .. } => "app_desc_magic",
            Self::MmuAlignment { .. } => "mmu_alignment",
            Self::Checksum { .. } => "checksum",
            Self::Hash { .. } => "sha256",
            Self::TooLarge { .. } => "too_large",
        }
    }
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { offset, part } => {
                write!(f, "image truncated at offset {offset:#x} in the {part}")
            }
            Self::BadMagic { offset, found } => write!(
                f,
                "bad image magic {found:#04x} at offset {offset:#x} (expected 0xe9)"
            ),
            Self::ChipMismatch {
                offset,
                expected,
                found,
            } => write!(
                f,
                "chip id {found} at offset {offset:#x}, expected {expected}"
            ),
            Self::ChipRevision {
                offset,
                revision,
                min,
                max,
            } => write!(
                f,
                "chip revision {revision} outside the image's range {min}..={max} (offset {offset:#x})"
            ),
            Self::SegmentCount { offset, count } => write!(
                f,
                "segment count {count} at offset {offset:#x} (must be 1..=16)"
            ),
            Self::HashAppendedFlag { offset, value } => write!(
                f,
                "hash_appended flag {value:#04x} at offset {offset:#x} (must be 0 or 1)"
            ),
            Self::SegmentLength { offset, index, len } => write!(
                f,
                "segment {index} length {len:#x} at offset {offset:#x} is not a multiple of 4 below 16 MiB"
            ),
            Self::FirstSegmentTooShort { offset, len } => write!(
                f,
                "segment 0 length {len:#x} at offset {offset:#x} cannot hold the 256-byte app descriptor"
            ),
            Self::AppDescMagic { offset, found } => write!(
                f,
                "app descriptor magic {found:#010x} at offset {offset:#x} (expected 0xabcd5432)"
            ),
            Self::MmuAlignment {
                offset,
                index,
                load_addr,
                data_offset,
            } => write!(
                f,
                "segment {index} (header at {offset:#x}) loads at {load_addr:#010x} but its data sits at file offset {data_offset:#x}, not congruent modulo 64 KiB"
            ),
            Self::Checksum {
                offset,
                stored,
                computed,
            } => write!(
                f,
                "checksum {stored:#04x} at offset {offset:#x} does not match the computed {computed:#04x}"
            ),
            Self::Hash { offset, .. } => write!(
                f,
                "appended SHA-256 at offset {offset:#x} does not match the image"
            ),
            Self::TooLarge { offset, max_len } => write!(
                f,
                "image passes the allowed length {max_len:#x} at offset {offset:#x}"
            ),
        }
    }
}

impl core::error::Error for ImageError {}

/// What the caller expects of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyOptions {
    /// The target chip (default ESP32).
    pub chip: Chip,
    /// The chip's revision (major·100 + minor); `None` skips the revision check.
    pub chip_revision: Option<u16>,
    /// The most bytes the image may take (the partition size); `None`: no limit.
    pub max_len: Option<u32>,
}

/// Outcome of the appended-hash check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashCheck {
    /// The header says no hash is appended.
    NotAppended,
    /// Verification did not get that far.
    Unchecked,
    /// Compared.
    Checked {
        /// Digest stored in the image.
        stored: [u8; 32],
        /// Digest of the image.
        computed: [u8; 32],
    },
}

impl HashCheck {
    /// Whether the hash was checked and matches.
    pub fn is_valid(&self) -> bool {
        matches!(self, Self::Checked { stored, computed } if stored == computed)
    }
}

/// Everything learned about an image, valid or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageReport {
    /// The header, once 24 bytes were read.
    pub header: Option<ImageHeader>,
    segments: [SegmentInfo; MAX_SEGMENTS],
    segment_count: u8,
    /// The app descriptor, once segment 0's first 256 bytes were read.
    pub app_desc: Option<AppDesc>,
    /// Stored and computed checksum, once the checksum byte was read.
    pub checksum: Option<(u8, u8)>,
    /// The hash check.
    pub hash: HashCheck,
    /// Image length (up to and including the hash), once complete.
    pub image_len: Option<u32>,
    /// The first failed check; `None` for a valid image.
    pub error: Option<ImageError>,
}

impl ImageReport {
    /// The segments whose headers were read.
    pub fn segments(&self) -> &[SegmentInfo] {
        self.segments
            .get(..usize::from(self.segment_count))
            .unwrap_or(&[])
    }

    /// Whether the image passed every check.
    pub const fn is_valid(&self) -> bool {
        self.error.is_none()
    }

    /// Whether the stored checksum matches.
    pub fn checksum_valid(&self) -> bool {
        matches!(self.checksum, Some((s, c)) if s == c)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Header,
    SegmentHeader,
    SegmentData,
    Padding,
    Checksum,
    Hash,
    Done,
}

/// Incremental image verifier: feed the image in order, in pieces of any size.
///
/// ```
/// # use fota_protocol::esp::image::{ImageVerifier, VerifyOptions};
/// # fn read(_: u32, _: &mut [u8]) {}
/// let mut v = ImageVerifier::new(VerifyOptions::default());
/// let mut buf = [0u8; 512];
/// let mut at = 0;
/// while v.wants_more() && at < 0x14_0000 {
///     read(at, &mut buf);
///     if v.update(&buf).is_err() { break; }
///     at += 512;
/// }
/// let verdict = v.finish();
/// # assert!(verdict.is_err());
/// ```
#[derive(Clone)]
pub struct ImageVerifier {
    opts: VerifyOptions,
    phase: Phase,
    pos: u32,
    buf: [u8; HEADER_LEN],
    buf_len: usize,
    report: ImageReport,
    seg_index: u8,
    seg_remaining: u32,
    desc: [u8; APP_DESC_LEN],
    desc_len: usize,
    checksum: u8,
    padded_len: u32,
    sha: Sha256,
    digest: [u8; 32],
    stored_hash: [u8; 32],
    hash_len: usize,
    fatal: bool,
}

impl fmt::Debug for ImageVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageVerifier")
            .field("phase", &self.phase)
            .field("pos", &self.pos)
            .field("error", &self.report.error)
            .finish_non_exhaustive()
    }
}

impl ImageVerifier {
    /// A verifier expecting an image at offset 0.
    pub fn new(opts: VerifyOptions) -> Self {
        Self {
            opts,
            phase: Phase::Header,
            pos: 0,
            buf: [0; HEADER_LEN],
            buf_len: 0,
            report: ImageReport {
                header: None,
                segments: [SegmentInfo::default(); MAX_SEGMENTS],
                segment_count: 0,
                app_desc: None,
                checksum: None,
                hash: HashCheck::Unchecked,
                image_len: None,
                error: None,
            },
            seg_index: 0,
            seg_remaining: 0,
            desc: [0; APP_DESC_LEN],
            desc_len: 0,
            checksum: CHECKSUM_SEED,
            padded_len: 0,
            sha: Sha256::new(),
            digest: [0; 32],
            stored_hash: [0; 32],
            hash_len: 0,
            fatal: false,
        }
    }

    /// Whether more bytes can change the verdict: the image is not complete and no
    /// structural check failed. Bytes fed after that are ignored.
    pub fn wants_more(&self) -> bool {
        !self.fatal && self.phase != Phase::Done
    }

    /// Bytes consumed so far (never more than the image length).
    pub const fn position(&self) -> u32 {
        self.pos
    }

    /// What is known so far.
    pub const fn report(&self) -> &ImageReport {
        &self.report
    }

    /// Feeds the next bytes. Returns the first failed check as soon as it is known;
    /// checksum and hash mismatches are also returned here, once those fields are read.
    /// After a structural failure further calls return the same error.
    pub fn update(&mut self, mut data: &[u8]) -> Result<(), ImageError> {
        while !data.is_empty() && self.wants_more() {
            let used = match self.step(data) {
                Ok(n) => n,
                Err(e) => {
                    self.fail(e);
                    break;
                }
            };
            data = data.get(used..).unwrap_or(&[]);
        }
        match self.report.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Ends the input: the report of a valid image, or the first failed check (a truncation
    /// if the image is incomplete).
    pub fn finish(mut self) -> Result<ImageReport, ImageError> {
        if self.report.error.is_none() && self.phase != Phase::Done {
            let part = self.part();
            self.fail(ImageError::Truncated {
                offset: self.pos,
                part,
            });
        }
        match self.report.error {
            Some(e) => Err(e),
            None => Ok(self.report),
        }
    }

    /// Ends the input and returns the report in both cases (`error` set when invalid,
    /// a truncation if the image is incomplete).
    pub fn into_report(self) -> ImageReport {
        let mut report = self.report;
        if report.error.is_none() && self.phase != Phase::Done {
            report.error = Some(ImageError::Truncated {
                offset: self.pos,
                part: self.part(),
            });
        }
        report
    }

    fn part(&self) -> ImagePart {
        match self.phase {
            Phase::Header => ImagePart::Header,
            Phase::SegmentHeader => ImagePart::SegmentHeader(self.seg_index),
            Phase::SegmentData => ImagePart::SegmentData(self.seg_index),
            Phase::Padding => ImagePart::Padding,
            Phase::Checksum => ImagePart::Checksum,
            Phase::Hash | Phase::Done => ImagePart::Hash,
        }
    }

    fn fail(&mut self, e: ImageError) {
        if self.report.error.is_none() {
            self.report.error = Some(e);
        }
        // Checksum and hash mismatches let the rest be read, so both verdicts are known.
        if !matches!(e, ImageError::Checksum { .. } | ImageError::Hash { .. }) {
            self.fatal = true;
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), ImageError> {
        let n32 = u32::try_from(n).ok();
        self.pos = n32
            .and_then(|n| self.pos.checked_add(n))
            .ok_or(ImageError::TooLarge {
                offset: self.pos,
                max_len: u32::MAX,
            })?;
        Ok(())
    }

    /// Collects bytes into `buf` until `want` are there; returns bytes used and completion.
    fn collect(&mut self, data: &[u8], want: usize) -> (usize, bool) {
        let need = want.saturating_sub(self.buf_len);
        let n = need.min(data.len());
        if let (Some(dst), Some(src)) = (
            self.buf.get_mut(self.buf_len..self.buf_len + n),
            data.get(..n),
        ) {
            dst.copy_from_slice(src);
        }
        self.buf_len += n;
        (n, self.buf_len == want)
    }

    fn step(&mut self, data: &[u8]) -> Result<usize, ImageError> {
        match self.phase {
            Phase::Header => {
                let (n, done) = self.collect(data, HEADER_LEN);
                self.hash_bytes(data.get(..n).unwrap_or(&[]));
                self.advance(n)?;
                if done {
                    self.buf_len = 0;
                    self.on_header()?;
                }
                Ok(n)
            }
            Phase::SegmentHeader => {
                let (n, done) = self.collect(data, SEGMENT_HEADER_LEN);
                self.hash_bytes(data.get(..n).unwrap_or(&[]));
                self.advance(n)?;
                if done {
                    self.buf_len = 0;
                    self.on_segment_header()?;
                }
                Ok(n)
            }
            Phase::SegmentData => {
                let take = usize::try_from(self.seg_remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let chunk = data.get(..take).unwrap_or(&[]);
                self.checksum = chunk.iter().fold(self.checksum, |c, b| c ^ b);
                self.hash_bytes(chunk);
                if self.seg_index == 0 && self.desc_len < APP_DESC_LEN {
                    let k = (APP_DESC_LEN - self.desc_len).min(chunk.len());
                    if let (Some(dst), Some(src)) = (
                        self.desc.get_mut(self.desc_len..self.desc_len + k),
                        chunk.get(..k),
                    ) {
                        dst.copy_from_slice(src);
                    }
                    self.desc_len += k;
                    if self.desc_len == APP_DESC_LEN {
                        self.on_app_desc()?;
                    }
                }
                self.advance(take)?;
                self.seg_remaining -= u32::try_from(take).unwrap_or(0);
                if self.seg_remaining == 0 {
                    self.next_segment()?;
                }
                Ok(take)
            }
            Phase::Padding => {
                let left = self.padded_len.saturating_sub(1).saturating_sub(self.pos);
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                self.hash_bytes(data.get(..take).unwrap_or(&[]));
                self.advance(take)?;
                if self.pos.saturating_add(1) == self.padded_len {
                    self.phase = Phase::Checksum;
                }
                Ok(take)
            }
            Phase::Checksum => {
                let Some(&stored) = data.first() else {
                    return Ok(0);
                };
                self.hash_bytes(&[stored]);
                let offset = self.pos;
                self.advance(1)?;
                self.report.checksum = Some((stored, self.checksum));
                let appended = self.report.header.is_some_and(|h| h.hash_appended == 1);
                if appended {
                    self.digest = self.sha.clone().finalize().into();
                    self.phase = Phase::Hash;
                } else {
                    self.complete()?;
                }
                if stored != self.checksum {
                    // Recorded, not returned: the hash is still read so both verdicts
                    // are known, as esptool prints them.
                    self.fail(ImageError::Checksum {
                        offset,
                        stored,
                        computed: self.checksum,
                    });
                }
                Ok(1)
            }
            Phase::Hash => {
                let take = (HASH_LEN - self.hash_len).min(data.len());
                if let (Some(dst), Some(src)) = (
                    self.stored_hash
                        .get_mut(self.hash_len..self.hash_len + take),
                    data.get(..take),
                ) {
                    dst.copy_from_slice(src);
                }
                self.hash_len += take;
                self.advance(take)?;
                if self.hash_len == HASH_LEN {
                    self.report.hash = HashCheck::Checked {
                        stored: self.stored_hash,
                        computed: self.digest,
                    };
                    self.complete()?;
                    if self.stored_hash != self.digest {
                        self.fail(ImageError::Hash {
                            offset: self.padded_len,
                            stored: self.stored_hash,
                            computed: self.digest,
                        });
                    }
                }
                Ok(take)
            }
            Phase::Done => Ok(data.len()),
        }
    }

    fn hash_bytes(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
    }

    fn complete(&mut self) -> Result<(), ImageError> {
        self.phase = Phase::Done;
        self.report.image_len = Some(self.pos);
        if let Some(max_len) = self.opts.max_len
            && self.pos > max_len
        {
            return Err(ImageError::TooLarge {
                offset: max_len,
                max_len,
            });
        }
        Ok(())
    }

    fn on_header(&mut self) -> Result<(), ImageError> {
        let h = ImageHeader::decode(&self.buf);
        self.report.header = Some(h);
        if h.magic != IMAGE_MAGIC {
            return Err(ImageError::BadMagic {
                offset: 0,
                found: h.magic,
            });
        }
        let expected = self.opts.chip.id();
        if h.chip_id != expected {
            return Err(ImageError::ChipMismatch {
                offset: 12,
                expected,
                found: h.chip_id,
            });
        }
        if let Some(revision) = self.opts.chip_revision {
            let (min, max) = (h.min_chip_rev_full, h.max_chip_rev_full);
            if revision < min {
                return Err(ImageError::ChipRevision {
                    offset: 15,
                    revision,
                    min,
                    max,
                });
            }
            let max_set = max != 0 && max != u16::MAX;
            if max_set && revision > max {
                return Err(ImageError::ChipRevision {
                    offset: 17,
                    revision,
                    min,
                    max,
                });
            }
        }
        if h.segment_count == 0 || usize::from(h.segment_count) > MAX_SEGMENTS {
            return Err(ImageError::SegmentCount {
                offset: 1,
                count: h.segment_count,
            });
        }
        if h.hash_appended > 1 {
            return Err(ImageError::HashAppendedFlag {
                offset: 23,
                value: h.hash_appended,
            });
        }
        if h.hash_appended == 0 {
            self.report.hash = HashCheck::NotAppended;
        }
        self.phase = Phase::SegmentHeader;
        Ok(())
    }

    fn on_segment_header(&mut self) -> Result<(), ImageError> {
        let word = |b: &[u8], i: usize| {
            let mut w = [0u8; 4];
            if let Some(src) = b.get(i..i + 4) {
                w.copy_from_slice(src);
            }
            u32::from_le_bytes(w)
        };
        let load_addr = word(&self.buf, 0);
        let data_len = word(&self.buf, 4);
        let header_offset = self.pos.saturating_sub(SEGMENT_HEADER_LEN as u32);
        let index = self.seg_index;
        let info = SegmentInfo {
            load_addr,
            data_len,
            data_offset: self.pos,
        };
        if let Some(slot) = self.report.segments.get_mut(usize::from(index)) {
            *slot = info;
            self.report.segment_count = index + 1;
        }
        if data_len % 4 != 0 || data_len >= MAX_SEGMENT_LEN {
            return Err(ImageError::SegmentLength {
                offset: header_offset + 4,
                index,
                len: data_len,
            });
        }
        if index == 0 && (data_len as usize) < APP_DESC_LEN {
            return Err(ImageError::FirstSegmentTooShort {
                offset: header_offset + 4,
                len: data_len,
            });
        }
        if self.opts.chip.is_flash_mapped(load_addr)
            && self.pos % MMU_PAGE_SIZE != load_addr % MMU_PAGE_SIZE
        {
            return Err(ImageError::MmuAlignment {
                offset: header_offset,
                index,
                load_addr,
                data_offset: self.pos,
            });
        }
        if let Some(max_len) = self.opts.max_len
            && u64::from(self.pos) + u64::from(data_len) > u64::from(max_len)
        {
            return Err(ImageError::TooLarge {
                offset: max_len,
                max_len,
            });
        }
        self.seg_remaining = data_len;
        self.phase = Phase::SegmentData;
        if data_len == 0 {
            self.next_segment()?;
        }
        Ok(())
    }

    fn on_app_desc(&mut self) -> Result<(), ImageError> {
        let desc = AppDesc::from_bytes(&self.desc).unwrap_or(AppDesc::EMPTY);
        self.report.app_desc = Some(desc);
        if !desc.magic_ok() {
            return Err(ImageError::AppDescMagic {
                offset: APP_DESC_OFFSET as u32,
                found: desc.magic,
            });
        }
        Ok(())
    }

    fn next_segment(&mut self) -> Result<(), ImageError> {
        let count = self.report.header.map_or(0, |h| h.segment_count);
        self.seg_index = self.seg_index.saturating_add(1);
        if self.seg_index < count {
            self.phase = Phase::SegmentHeader;
            return Ok(());
        }
        // The checksum is the last byte of the 16-byte block that follows the data.
        self.padded_len =
            self.pos
                .checked_add(16)
                .map(|v| v & !15)
                .ok_or(ImageError::TooLarge {
                    offset: self.pos,
                    max_len: u32::MAX,
                })?;
        self.phase = if self.pos.saturating_add(1) == self.padded_len {
            Phase::Checksum
        } else {
            Phase::Padding
        };
        Ok(())
    }
}

/// Verifies a whole image held in memory; trailing bytes after the image are ignored.
pub fn verify(bytes: &[u8], opts: VerifyOptions) -> Result<ImageReport, ImageError> {
    let mut v = ImageVerifier::new(opts);
    // The first failure is also recorded in the verifier; `finish` reports it.
    let _ = v.update(bytes);
    v.finish()
}

/// Inspects a whole image held in memory: the report, with `error` set when invalid.
pub fn inspect(bytes: &[u8], opts: VerifyOptions) -> ImageReport {
    let mut v = ImageVerifier::new(opts);
    let _ = v.update(bytes);
    v.into_report()
}

/// The first [`PREFIX_LEN`] bytes of an image, checked: what an agent can decide from the
/// first chunk (magic, chip, segment count, hash flag, segment 0, app descriptor, version,
/// project, secure version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImagePrefix {
    /// The image header.
    pub header: ImageHeader,
    /// Segment 0.
    pub first_segment: SegmentInfo,
    /// The app descriptor.
    pub app_desc: AppDesc,
}

impl ImagePrefix {
    /// Runs every check that the first [`PREFIX_LEN`] bytes allow (`max_len` included for
    /// segment 0). Bytes past [`PREFIX_LEN`] are not looked at.
    pub fn parse(bytes: &[u8], opts: VerifyOptions) -> Result<Self, ImageError> {
        let mut v = ImageVerifier::new(opts);
        v.update(bytes.get(..PREFIX_LEN).unwrap_or(bytes))?;
        let r = v.report;
        match (r.header, r.segments().first(), r.app_desc) {
            (Some(header), Some(&first_segment), Some(app_desc)) => Ok(Self {
                header,
                first_segment,
                app_desc,
            }),
            _ => Err(ImageError::Truncated {
                offset: v.pos,
                part: v.part(),
            }),
        }
    }
}
