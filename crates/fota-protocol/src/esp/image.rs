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

mod app_desc;
mod error;
mod header;
mod verify;

pub use app_desc::AppDesc;
pub use error::{ImageError, ImagePart};
pub use header::{ImageHeader, SegmentInfo};
pub use verify::{
    HashCheck, ImagePrefix, ImageReport, ImageVerifier, VerifyOptions, inspect, verify,
};

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
/// [`SEGMENT_HEADER_LEN`] and [`APP_DESC_OFFSET`] as the u32 file offsets the checks use.
const SEGMENT_HEADER_LEN_U32: u32 = 8;
const APP_DESC_OFFSET_U32: u32 = 0x20;
const _: () = assert!(SEGMENT_HEADER_LEN_U32 as usize == SEGMENT_HEADER_LEN);
const _: () = assert!(APP_DESC_OFFSET_U32 as usize == APP_DESC_OFFSET);
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
