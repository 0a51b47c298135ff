//! `esp_image_header_t` and the segment headers after it.

use super::{Chip, HEADER_LEN, MemoryRegion, SEGMENT_HEADER_LEN_U32};

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
        Self {
            magic: b[0],
            segment_count: b[1],
            spi_mode: b[2],
            spi_speed_size: b[3],
            entry_addr: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            wp_pin: b[8],
            spi_pin_drv: [b[9], b[10], b[11]],
            chip_id: u16::from_le_bytes([b[12], b[13]]),
            min_chip_rev: b[14],
            min_chip_rev_full: u16::from_le_bytes([b[15], b[16]]),
            max_chip_rev_full: u16::from_le_bytes([b[17], b[18]]),
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
        self.data_offset.saturating_sub(SEGMENT_HEADER_LEN_U32)
    }
}
