//! Builds synthetic but complete ESP32 app images for tests, demos and the emulator.
//!
//! [`build_app_image`] makes the smallest valid image of at least the requested size, with
//! deterministic content: every filler byte derives from the SHA-256 of the parameters, so
//! the same parameters always give the same bytes. The header looks like an ESP-IDF build
//! for a 4 MB module: DIO, 40 MHz, 4 MB size nibble, WP pin disabled (0xEE), chip ESP32,
//! max chip revision 3.99, SHA-256 appended.
//!
//! # Segments
//!
//! | # | load address | region | content |
//! |---|---|---|---|
//! | 0 | 0x3F400020 | DROM | `esp_app_desc_t`, then filler ("rodata") |
//! | 1 | 0x400D0020 | IROM | filler ("code"); only when the image reaches past 64 KiB |
//! | last | 0x40080000 | IRAM | 0x800 bytes of filler holding the entry point 0x40080400 |
//!
//! With an IROM segment, segment 0 is exactly 0xFFF8 bytes so that IROM's data starts at
//! file offset 0x10020, congruent to its load address modulo the 64 KiB MMU page.
//! Images are multiples of 16 bytes (checksum block) plus the 32-byte hash, so the size
//! is `size` rounded up to 16.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use sha2::{Digest, Sha256};

use super::image::{
    AppDesc, CHECKSUM_SEED, CHIP_ID_ESP32, HASH_LEN, HEADER_LEN, IMAGE_MAGIC, ImageHeader,
    SEGMENT_HEADER_LEN,
};

/// Smallest image [`build_app_image`] makes (4 KiB).
pub const MIN_IMAGE_SIZE: u32 = 0x1000;
/// Largest image [`build_app_image`] makes: an EcoWatt app slot (0x140000).
pub const MAX_IMAGE_SIZE: u32 = 0x14_0000;
/// Project name written when none is given: the EcoWatt inverter firmware.
pub const DEFAULT_PROJECT: &str = "ecowatt";
/// Entry point (start of IRAM text, after the 1 KiB vector table).
pub const ENTRY_ADDR: u32 = 0x4008_0400;

const DROM_ADDR: u32 = 0x3F40_0020;
const IROM_ADDR: u32 = 0x400D_0020;
const IRAM_ADDR: u32 = 0x4008_0000;
const IRAM_LEN: usize = 0x800;
/// Segment 0's length when an IROM segment follows: its data ends at file offset 0x10018.
const DROM_LEN_WITH_IROM: usize = 0xFFF8;
/// Smallest IROM segment worth adding.
const MIN_IROM_LEN: usize = 0x100;

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppImageSpec {
    /// `esp_app_desc_t.version` (at most 31 bytes).
    pub version: String,
    /// `esp_app_desc_t.project_name` (at most 31 bytes); [`DEFAULT_PROJECT`] by default.
    pub project: String,
    /// `esp_app_desc_t.secure_version`.
    pub secure_version: u32,
    /// Minimum image size in bytes, [`MIN_IMAGE_SIZE`]..=[`MAX_IMAGE_SIZE`].
    pub size: u32,
    /// Set the emulator's boot-failure marker ([`super::image::BOOT_FAILS_MARKER`]).
    pub boot_fails: bool,
}

impl AppImageSpec {
    /// A spec with the given version and defaults for the rest (project
    /// [`DEFAULT_PROJECT`], secure version 0, size 64 KiB, boots normally).
    pub fn new(version: &str) -> Self {
        Self {
            version: version.into(),
            project: DEFAULT_PROJECT.into(),
            secure_version: 0,
            size: 0x1_0000,
            boot_fails: false,
        }
    }
}

/// Why an image could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The size is outside [`MIN_IMAGE_SIZE`]..=[`MAX_IMAGE_SIZE`].
    SizeOutOfRange {
        /// Size asked for.
        size: u32,
    },
    /// The version does not fit the 32-byte field (31 bytes + NUL) or contains NUL.
    Version(String),
    /// The project name does not fit the 32-byte field or contains NUL.
    Project(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SizeOutOfRange { size } => write!(
                f,
                "image size {size:#x} outside {MIN_IMAGE_SIZE:#x}..={MAX_IMAGE_SIZE:#x}"
            ),
            Self::Version(v) => write!(f, "version '{v}' longer than 31 bytes or holding NUL"),
            Self::Project(p) => write!(f, "project '{p}' longer than 31 bytes or holding NUL"),
        }
    }
}

impl core::error::Error for BuildError {}

/// Deterministic filler: SHA-256(seed ‖ tag ‖ counter) blocks.
fn filler(seed: &[u8; 32], tag: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len.saturating_add(32));
    let mut counter: u32 = 0;
    while out.len() < len {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(tag.as_bytes());
        h.update(counter.to_le_bytes());
        out.extend_from_slice(&h.finalize());
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

fn spec_seed(spec: &AppImageSpec) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fota-image-build/v1\0");
    h.update(spec.version.as_bytes());
    h.update([0]);
    h.update(spec.project.as_bytes());
    h.update([0]);
    h.update(spec.secure_version.to_le_bytes());
    h.update(spec.size.to_le_bytes());
    h.update([u8::from(spec.boot_fails)]);
    h.finalize().into()
}

/// The header [`build_app_image`] writes (segment count set by [`assemble`]).
pub fn default_header() -> ImageHeader {
    ImageHeader {
        magic: IMAGE_MAGIC,
        segment_count: 0,
        spi_mode: 2,          // DIO
        spi_speed_size: 0x20, // 4MB, 40m
        entry_addr: ENTRY_ADDR,
        wp_pin: 0xEE,
        spi_pin_drv: [0; 3],
        chip_id: CHIP_ID_ESP32,
        min_chip_rev: 0,
        min_chip_rev_full: 0,
        max_chip_rev_full: 399,
        reserved: [0; 4],
        hash_appended: 1,
    }
}

/// Lays out an image: header (segment count filled in), segments, zero padding, checksum,
/// and the SHA-256 when `header.hash_appended == 1`. No check is made on the segments, so
/// tests can build invalid images on purpose.
pub fn assemble(mut header: ImageHeader, segments: &[(u32, &[u8])]) -> Vec<u8> {
    header.segment_count = u8::try_from(segments.len()).unwrap_or(u8::MAX);
    // Lengths of slices in memory: far below usize::MAX, so nothing saturates.
    let data_len = segments.iter().fold(0usize, |sum, (_, d)| {
        sum.saturating_add(SEGMENT_HEADER_LEN)
            .saturating_add(d.len())
    });
    let mut out = Vec::with_capacity(data_len.saturating_add(HEADER_LEN + 16 + HASH_LEN));
    out.extend_from_slice(&header.encode());
    let mut checksum = CHECKSUM_SEED;
    for (addr, data) in segments {
        out.extend_from_slice(&addr.to_le_bytes());
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(data);
        checksum = data.iter().fold(checksum, |c, b| c ^ b);
    }
    // The checksum is the last byte of the 16-byte block that follows the data.
    let padded = out.len().saturating_add(16) & !15;
    out.resize(padded.saturating_sub(1), 0);
    out.push(checksum);
    if header.hash_appended == 1 {
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
    }
    out
}

/// Builds the smallest valid app image of at least `spec.size` bytes.
pub fn build_app_image(spec: &AppImageSpec) -> Result<Vec<u8>, BuildError> {
    if !(MIN_IMAGE_SIZE..=MAX_IMAGE_SIZE).contains(&spec.size) {
        return Err(BuildError::SizeOutOfRange { size: spec.size });
    }
    let mut desc = AppDesc::EMPTY;
    desc.set_version(&spec.version)
        .ok_or_else(|| BuildError::Version(spec.version.clone()))?;
    desc.set_project_name(&spec.project)
        .ok_or_else(|| BuildError::Project(spec.project.clone()))?;
    let seed = spec_seed(spec);
    desc.secure_version = spec.secure_version;
    desc.time = *b"00:00:00\0\0\0\0\0\0\0\0";
    desc.date = *b"Jan  1 2025\0\0\0\0\0";
    desc.idf_ver = super::super::codec::put_c_string("v5.5-fota-synthetic").unwrap_or([0; 32]);
    desc.app_elf_sha256 = seed;
    desc.max_efuse_blk_rev_full = 99;
    desc.mmu_page_size = 16;
    desc.spi_flash_mode = 2;
    desc.set_boot_fails(spec.boot_fails);

    // Total = padded + 32 with padded a multiple of 16; the data ends 16 bytes before
    // `padded`, leaving 15 bytes of padding and the checksum.
    const FIXED: usize = HEADER_LEN + SEGMENT_HEADER_LEN;
    const IRAM_PART: usize = SEGMENT_HEADER_LEN + IRAM_LEN;
    const WITH_IROM: usize = FIXED + DROM_LEN_WITH_IROM + SEGMENT_HEADER_LEN + IRAM_PART;
    // MIN_IMAGE_SIZE leaves room for every fixed part, so the error is never returned.
    let too_small = BuildError::SizeOutOfRange { size: spec.size };
    let data_end = (spec.size as usize)
        .checked_next_multiple_of(16)
        .and_then(|total| total.checked_sub(HASH_LEN + 16))
        .ok_or(too_small.clone())?;
    let irom_len = data_end
        .checked_sub(WITH_IROM)
        .filter(|&n| n >= MIN_IROM_LEN);
    let drom_len = match irom_len {
        Some(_) => DROM_LEN_WITH_IROM,
        None => data_end.checked_sub(FIXED + IRAM_PART).ok_or(too_small)?,
    };
    let mut drom = Vec::with_capacity(drom_len);
    drom.extend_from_slice(&desc.encode());
    let rodata_len = drom_len.saturating_sub(drom.len());
    drom.extend_from_slice(&filler(&seed, "rodata", rodata_len));
    let iram = filler(&seed, "iram", IRAM_LEN);
    let irom = irom_len.map(|n| filler(&seed, "irom", n));
    let mut segments: Vec<(u32, &[u8])> = Vec::with_capacity(3);
    segments.push((DROM_ADDR, &drom));
    if let Some(irom) = &irom {
        segments.push((IROM_ADDR, irom));
    }
    segments.push((IRAM_ADDR, &iram));
    Ok(assemble(default_header(), &segments))
}
