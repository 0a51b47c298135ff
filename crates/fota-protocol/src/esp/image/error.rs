//! Why an image was rejected, naming the check and the file offset.

use core::fmt;

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
