//! The binary partition table ESP-IDF keeps at flash offset 0x8000.
//!
//! The table is a run of 32-byte rows in one 4 KiB sector, of which at most
//! [`TABLE_MAX_LEN`] (0xC00) bytes are table data: partition entries, an optional MD5 row and
//! an end marker. [`PartitionTable::parse`] accepts exactly what the bootloader's
//! `esp_partition_table_verify` accepts; [`PartitionTable::encode`] produces the bytes
//! `gen_esp32part.py` writes (entries, MD5 row, 0xFF fill to 0xC00).
//!
//! # Table layout
//!
//! | offset | size | row | meaning |
//! |---|---|---|---|
//! | 0 | 32·n | entries | [`Partition`] rows, magic `AA 50` |
//! | 32·n | 32 | MD5 row | `EB EB`, 14 × `FF`, MD5 of bytes `0..32·n` (optional) |
//! | 32·n + 32 | 32 | end marker | `FF FF FF FF …`: magic 0xFFFF, type 0xFF, subtype 0xFF |
//! | … | … | fill | 0xFF up to 0xC00; never read |
//!
//! The bootloader maps the whole 0xC00 bytes and reads rows until the end marker; bytes of
//! the end marker past its first four, and everything after it, are not covered by any
//! check. Bytes 2..16 of the MD5 row are not checked either.

use core::fmt;

use md5::{Digest, Md5};

use crate::codec::{Reader, c_string};

/// Flash offset of the partition table (`CONFIG_PARTITION_TABLE_OFFSET` default).
pub const TABLE_OFFSET: u32 = 0x8000;
/// The sector the table owns (`ESP_PARTITION_TABLE_SIZE`); partitions start after it.
pub const TABLE_SECTOR_SIZE: u32 = 0x1000;
/// Bytes of table data at most (`ESP_PARTITION_TABLE_MAX_LEN`); the rest of the sector is
/// reserved for a signature.
pub const TABLE_MAX_LEN: usize = 0xC00;
/// Size of one row.
pub const ENTRY_LEN: usize = 32;
/// Rows the bootloader looks at (`ESP_PARTITION_TABLE_MAX_ENTRIES`).
pub const MAX_ROWS: usize = TABLE_MAX_LEN / ENTRY_LEN;
/// Partitions a table can hold: every row but the end marker.
pub const MAX_PARTITIONS: usize = MAX_ROWS - 1;
/// Magic of a partition entry (`ESP_PARTITION_MAGIC`), stored little-endian as `AA 50`.
pub const ENTRY_MAGIC: u16 = 0x50AA;
/// Magic of the MD5 row (`ESP_PARTITION_MAGIC_MD5`).
pub const MD5_MAGIC: u16 = 0xEBEB;
/// Number of `ota_N` app subtypes (`ota_0` … `ota_15`).
pub const MAX_OTA_SLOTS: usize = 16;

/// Flag bit: the partition is flash-encrypted.
pub const FLAG_ENCRYPTED: u32 = 1 << 0;
/// Flag bit: the partition is read-only.
pub const FLAG_READONLY: u32 = 1 << 1;

/// Raw partition type bytes.
pub mod ty {
    /// Application.
    pub const APP: u8 = 0x00;
    /// Data.
    pub const DATA: u8 = 0x01;
    /// Bootloader (newer ESP-IDF tables may describe it).
    pub const BOOTLOADER: u8 = 0x02;
    /// The partition table itself.
    pub const PARTITION_TABLE: u8 = 0x03;
}

/// Which subtypes [`AppSubtype`] and [`DataSubtype`] know by name, with their CSV keyword.
const DATA_NAMES: [(u8, &str); 12] = [
    (0x00, "ota"),
    (0x01, "phy"),
    (0x02, "nvs"),
    (0x03, "coredump"),
    (0x04, "nvs_keys"),
    (0x05, "efuse"),
    (0x06, "undefined"),
    (0x80, "esphttpd"),
    (0x81, "fat"),
    (0x82, "spiffs"),
    (0x83, "littlefs"),
    (0x90, "tee_ota"),
];

const OTA_NAMES: [&str; MAX_OTA_SLOTS] = [
    "ota_0", "ota_1", "ota_2", "ota_3", "ota_4", "ota_5", "ota_6", "ota_7", "ota_8", "ota_9",
    "ota_10", "ota_11", "ota_12", "ota_13", "ota_14", "ota_15",
];

/// Subtype of an app partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AppSubtype {
    /// `factory` (0x00): booted when otadata is empty or absent.
    Factory,
    /// `ota_N` (0x10 + N, N = 0..=15).
    Ota(u8),
    /// `test` (0x20): booted by the test GPIO, and as the last fallback.
    Test,
    /// `tee_N` (0x30 + N, N = 0..=1).
    Tee(u8),
    /// Any other value, kept as is.
    Other(u8),
}

impl AppSubtype {
    /// The subtype a raw byte means.
    pub const fn from_raw(raw: u8) -> Self {
        match raw {
            0x00 => Self::Factory,
            0x10..=0x1F => Self::Ota(raw & 0x0F),
            0x20 => Self::Test,
            0x30 | 0x31 => Self::Tee(raw & 0x0F),
            _ => Self::Other(raw),
        }
    }

    /// The raw byte. Out-of-range slot numbers in [`Self::Ota`] and [`Self::Tee`] are masked.
    pub const fn raw(self) -> u8 {
        match self {
            Self::Factory => 0x00,
            Self::Ota(n) => 0x10 | (n & 0x0F),
            Self::Test => 0x20,
            Self::Tee(n) => 0x30 | (n & 0x01),
            Self::Other(raw) => raw,
        }
    }

    /// The gen_esp32part keyword (`factory`, `ota_3`, …), if the value has one.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Self::Factory => Some("factory"),
            Self::Ota(n) => OTA_NAMES.get(usize::from(n)).copied(),
            Self::Test => Some("test"),
            Self::Tee(0) => Some("tee_0"),
            Self::Tee(1) => Some("tee_1"),
            Self::Tee(_) | Self::Other(_) => None,
        }
    }

    /// Looks up a gen_esp32part keyword (case-insensitive, as gen_esp32part does).
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = |s: &str| name.eq_ignore_ascii_case(s);
        if lower("factory") {
            return Some(Self::Factory);
        }
        if lower("test") {
            return Some(Self::Test);
        }
        if lower("tee_0") {
            return Some(Self::Tee(0));
        }
        if lower("tee_1") {
            return Some(Self::Tee(1));
        }
        OTA_NAMES
            .iter()
            .position(|n| lower(n))
            .and_then(|i| u8::try_from(i).ok())
            .map(Self::Ota)
    }
}

/// Subtype of a data partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DataSubtype {
    /// `ota` (0x00): the otadata partition, two select entries.
    Ota,
    /// `phy` (0x01): RF calibration data.
    Phy,
    /// `nvs` (0x02): non-volatile storage.
    Nvs,
    /// `coredump` (0x03).
    Coredump,
    /// `nvs_keys` (0x04): NVS encryption keys.
    NvsKeys,
    /// `efuse` (0x05): virtual eFuses.
    Efuse,
    /// `undefined` (0x06).
    Undefined,
    /// `esphttpd` (0x80).
    Esphttpd,
    /// `fat` (0x81).
    Fat,
    /// `spiffs` (0x82).
    Spiffs,
    /// `littlefs` (0x83).
    Littlefs,
    /// `tee_ota` (0x90).
    TeeOta,
    /// Any other value, kept as is.
    Other(u8),
}

impl DataSubtype {
    const ALL: [Self; 12] = [
        Self::Ota,
        Self::Phy,
        Self::Nvs,
        Self::Coredump,
        Self::NvsKeys,
        Self::Efuse,
        Self::Undefined,
        Self::Esphttpd,
        Self::Fat,
        Self::Spiffs,
        Self::Littlefs,
        Self::TeeOta,
    ];

    /// The subtype a raw byte means.
    pub fn from_raw(raw: u8) -> Self {
        DATA_NAMES
            .iter()
            .position(|&(v, _)| v == raw)
            .and_then(|i| Self::ALL.get(i).copied())
            .unwrap_or(Self::Other(raw))
    }

    /// The raw byte.
    pub fn raw(self) -> u8 {
        match self {
            Self::Other(raw) => raw,
            known => Self::ALL
                .iter()
                .position(|&s| s == known)
                .and_then(|i| DATA_NAMES.get(i))
                .map_or(0xFF, |&(v, _)| v),
        }
    }

    /// The gen_esp32part keyword, if the value has one.
    pub fn name(self) -> Option<&'static str> {
        let raw = self.raw();
        match self {
            Self::Other(_) => None,
            _ => DATA_NAMES.iter().find(|&&(v, _)| v == raw).map(|&(_, n)| n),
        }
    }

    /// Looks up a gen_esp32part keyword (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        DATA_NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|&(v, _)| Self::from_raw(v))
    }
}

/// What a partition is: its type and subtype bytes, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PartitionKind {
    /// Type 0x00.
    App(AppSubtype),
    /// Type 0x01.
    Data(DataSubtype),
    /// Type 0x02, with its raw subtype (0 primary, 1 ota, 2 recovery).
    Bootloader(u8),
    /// Type 0x03, with its raw subtype (0 primary, 1 ota).
    PartitionTable(u8),
    /// Any other type (0x40–0xFE are user types).
    Other {
        /// Raw type byte.
        ty: u8,
        /// Raw subtype byte.
        subtype: u8,
    },
}

impl PartitionKind {
    /// Decodes the type and subtype bytes.
    pub fn from_raw(ty: u8, subtype: u8) -> Self {
        match ty {
            ty::APP => Self::App(AppSubtype::from_raw(subtype)),
            ty::DATA => Self::Data(DataSubtype::from_raw(subtype)),
            ty::BOOTLOADER => Self::Bootloader(subtype),
            ty::PARTITION_TABLE => Self::PartitionTable(subtype),
            _ => Self::Other { ty, subtype },
        }
    }

    /// The raw `(type, subtype)` bytes.
    pub fn raw(self) -> (u8, u8) {
        match self {
            Self::App(s) => (ty::APP, s.raw()),
            Self::Data(s) => (ty::DATA, s.raw()),
            Self::Bootloader(s) => (ty::BOOTLOADER, s),
            Self::PartitionTable(s) => (ty::PARTITION_TABLE, s),
            Self::Other { ty, subtype } => (ty, subtype),
        }
    }
}

/// Name of a raw type byte as gen_esp32part prints it.
pub fn type_name(ty: u8) -> Option<&'static str> {
    match ty {
        ty::APP => Some("app"),
        ty::DATA => Some("data"),
        ty::BOOTLOADER => Some("bootloader"),
        ty::PARTITION_TABLE => Some("partition_table"),
        _ => None,
    }
}

/// Name of a raw subtype byte of the given type as gen_esp32part prints it.
pub fn subtype_name(ty: u8, subtype: u8) -> Option<&'static str> {
    match PartitionKind::from_raw(ty, subtype) {
        PartitionKind::App(s) => s.name(),
        PartitionKind::Data(s) => s.name(),
        PartitionKind::Bootloader(0) | PartitionKind::PartitionTable(0) => Some("primary"),
        PartitionKind::Bootloader(1) | PartitionKind::PartitionTable(1) => Some("ota"),
        PartitionKind::Bootloader(2) => Some("recovery"),
        _ => None,
    }
}

/// One `esp_partition_info_t` row.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 2 | magic | 0x50AA (`AA 50`) |
/// | 2 | 1 | type | 0x00 app, 0x01 data, 0x02 bootloader, 0x03 partition table |
/// | 3 | 1 | subtype | see [`AppSubtype`], [`DataSubtype`] |
/// | 4 | 4 | offset | absolute flash offset, LE |
/// | 8 | 4 | size | bytes, LE |
/// | 12 | 16 | label | NUL-padded; 16 characters leave no NUL |
/// | 28 | 4 | flags | bit 0 encrypted, bit 1 readonly, LE |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partition {
    /// Raw type byte.
    pub ty: u8,
    /// Raw subtype byte.
    pub subtype: u8,
    /// Absolute flash offset.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
    /// Label bytes as stored (NUL-padded).
    pub label: [u8; 16],
    /// Flag word ([`FLAG_ENCRYPTED`], [`FLAG_READONLY`]; other bits kept as read).
    pub flags: u32,
}

impl Partition {
    /// An all-zero placeholder, used to fill fixed-capacity arrays.
    pub const EMPTY: Self = Self {
        ty: 0,
        subtype: 0,
        offset: 0,
        size: 0,
        label: [0; 16],
        flags: 0,
    };

    /// A partition with the given label (at most 16 bytes, no NUL), kind, offset and size.
    pub fn new(label: &str, kind: PartitionKind, offset: u32, size: u32) -> Option<Self> {
        let (ty, subtype) = kind.raw();
        Some(Self {
            ty,
            subtype,
            offset,
            size,
            label: label_bytes(label)?,
            flags: 0,
        })
    }

    /// The same partition with the given flag word.
    #[must_use]
    pub const fn with_flags(mut self, flags: u32) -> Self {
        self.flags = flags;
        self
    }

    /// Decodes one 32-byte row, whatever its magic; see [`PartitionTable::parse`] for the
    /// checks.
    pub fn decode(row: &[u8; ENTRY_LEN]) -> Self {
        let [_, _, ty, subtype, rest @ ..] = *row;
        let [o0, o1, o2, o3, s0, s1, s2, s3, label @ .., f0, f1, f2, f3] = rest;
        Self {
            ty,
            subtype,
            offset: u32::from_le_bytes([o0, o1, o2, o3]),
            size: u32::from_le_bytes([s0, s1, s2, s3]),
            label,
            flags: u32::from_le_bytes([f0, f1, f2, f3]),
        }
    }

    /// Encodes the row, magic included.
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut row = [0u8; ENTRY_LEN];
        row[0..2].copy_from_slice(&ENTRY_MAGIC.to_le_bytes());
        row[2] = self.ty;
        row[3] = self.subtype;
        row[4..8].copy_from_slice(&self.offset.to_le_bytes());
        row[8..12].copy_from_slice(&self.size.to_le_bytes());
        row[12..28].copy_from_slice(&self.label);
        row[28..32].copy_from_slice(&self.flags.to_le_bytes());
        row
    }

    /// The decoded type and subtype.
    pub fn kind(&self) -> PartitionKind {
        PartitionKind::from_raw(self.ty, self.subtype)
    }

    /// The label up to its first NUL, if it is UTF-8.
    pub fn label_str(&self) -> Option<&str> {
        c_string(&self.label)
    }

    /// Whether the label equals `name` (compared as stored bytes up to the first NUL).
    pub fn has_label(&self, name: &str) -> bool {
        label_bytes(name).is_some_and(|l| l == self.label)
    }

    /// The `encrypted` flag.
    pub const fn encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
    }

    /// The `readonly` flag.
    pub const fn readonly(&self) -> bool {
        self.flags & FLAG_READONLY != 0
    }

    /// End offset (exclusive), computed without overflow.
    pub const fn end(&self) -> u64 {
        // Two u32 values: the sum fits a u64, so this never saturates.
        (self.offset as u64).saturating_add(self.size as u64)
    }

    /// The OTA slot index (`subtype & 0x0F`) of an `ota_N` app partition.
    pub const fn ota_slot(&self) -> Option<u8> {
        if self.ty == ty::APP && self.subtype & 0xF0 == 0x10 {
            Some(self.subtype & 0x0F)
        } else {
            None
        }
    }
}

/// A label as the 16 stored bytes; `None` if longer than 16 bytes or holding a NUL.
fn label_bytes(label: &str) -> Option<[u8; 16]> {
    let bytes = label.as_bytes();
    if bytes.len() > 16 || bytes.contains(&0) {
        return None;
    }
    let mut out = [0u8; 16];
    out.get_mut(..bytes.len())?.copy_from_slice(bytes);
    Some(out)
}

/// Why a binary partition table was rejected. Offsets are byte offsets within the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TableError {
    /// An entry reaches past the end of the flash chip (`offset > chip_size` or
    /// `size > chip_size - offset`).
    EntryOutOfBounds {
        /// Offset of the row.
        offset: usize,
        /// Partition offset.
        part_offset: u32,
        /// Partition size.
        part_size: u32,
        /// Flash chip size checked against.
        flash_size: u32,
    },
    /// A second MD5 row.
    DuplicateMd5 {
        /// Offset of the second MD5 row.
        offset: usize,
    },
    /// The MD5 row's digest does not match the rows before it.
    Md5Mismatch {
        /// Offset of the MD5 row.
        offset: usize,
        /// Digest stored in the row.
        stored: [u8; 16],
        /// Digest of the preceding rows.
        computed: [u8; 16],
    },
    /// The first row is the end marker: the table holds no partition.
    Empty,
    /// A row is neither an entry, an MD5 row nor the end marker.
    BadMagic {
        /// Offset of the row.
        offset: usize,
        /// Its first two bytes, little-endian.
        magic: u16,
    },
    /// No end marker within the 96 rows.
    NoEndMarker,
    /// The input ended before the end marker.
    Truncated {
        /// Offset of the row that did not fit.
        offset: usize,
    },
    /// More partitions than fit in 0xC00 bytes with their MD5 row and end marker.
    TooManyPartitions {
        /// Partitions given.
        count: usize,
    },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EntryOutOfBounds {
                offset,
                part_offset,
                part_size,
                flash_size,
            } => write!(
                f,
                "entry at table offset {offset:#x}: partition {part_offset:#x}+{part_size:#x} \
                 exceeds the flash size {flash_size:#x}"
            ),
            Self::DuplicateMd5 { offset } => {
                write!(f, "second MD5 row at table offset {offset:#x}")
            }
            Self::Md5Mismatch { offset, .. } => write!(
                f,
                "MD5 row at table offset {offset:#x} does not match the entries before it"
            ),
            Self::Empty => write!(f, "partition table is empty (end marker at offset 0x0)"),
            Self::BadMagic { offset, magic } => {
                write!(f, "bad row magic {magic:#06x} at table offset {offset:#x}")
            }
            Self::NoEndMarker => write!(
                f,
                "no end marker within {MAX_ROWS} rows ({TABLE_MAX_LEN:#x} bytes)"
            ),
            Self::Truncated { offset } => {
                write!(f, "table data truncated at offset {offset:#x}")
            }
            Self::TooManyPartitions { count } => write!(
                f,
                "{count} partitions do not fit in {TABLE_MAX_LEN:#x} bytes"
            ),
        }
    }
}

impl core::error::Error for TableError {}

/// What kind of row a 32-byte row is, by the bootloader's reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    Entry,
    Md5,
    End,
    Bad(u16),
}

fn classify(row: &[u8; ENTRY_LEN]) -> Row {
    let magic = u16::from_le_bytes([row[0], row[1]]);
    match magic {
        ENTRY_MAGIC => Row::Entry,
        MD5_MAGIC => Row::Md5,
        0xFFFF if row[2] == 0xFF && row[3] == 0xFF => Row::End,
        other => Row::Bad(other),
    }
}

/// A verified partition table: up to [`MAX_PARTITIONS`] entries in table order.
///
/// Fixed capacity and no allocation; the value is about 3 KiB, so a device that only needs
/// the slots can keep a [`BootLayout`] (about 400 bytes) and drop the table.
#[derive(Clone, PartialEq, Eq)]
pub struct PartitionTable {
    entries: [Partition; MAX_PARTITIONS],
    len: usize,
    md5: Option<[u8; 16]>,
}

impl fmt::Debug for PartitionTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionTable")
            .field("entries", &self.as_slice())
            .field("md5", &self.md5)
            .finish()
    }
}

impl Default for PartitionTable {
    fn default() -> Self {
        Self::new()
    }
}

impl PartitionTable {
    /// An empty table (which [`Self::encode`] still writes, but the bootloader would reject).
    pub const fn new() -> Self {
        Self {
            entries: [Partition::EMPTY; MAX_PARTITIONS],
            len: 0,
            md5: None,
        }
    }

    /// A table of the given entries, in order.
    pub fn from_entries(entries: &[Partition]) -> Result<Self, TableError> {
        let mut table = Self::new();
        for p in entries {
            table.push(*p)?;
        }
        Ok(table)
    }

    /// Appends an entry.
    pub fn push(&mut self, partition: Partition) -> Result<(), TableError> {
        let slot = self
            .entries
            .get_mut(self.len)
            .ok_or(TableError::TooManyPartitions {
                count: self.len.saturating_add(1),
            })?;
        *slot = partition;
        // There was a free slot, so len < MAX_PARTITIONS.
        self.len = self.len.saturating_add(1);
        Ok(())
    }

    /// Parses and verifies a table the way `esp_partition_table_verify` does.
    ///
    /// `bytes` is the table region read from flash (normally 0xC00 bytes from 0x8000; only
    /// the first 0xC00 bytes are looked at). `flash_size` is the chip size entries must fit
    /// in. Rejected: an entry with `offset > flash_size` or `size > flash_size - offset`; a
    /// second MD5 row; an MD5 row whose digest does not cover the rows before it; an end
    /// marker as first row; any other magic; no end marker within 96 rows. The MD5 row is
    /// optional.
    ///
    /// Deviation: the bootloader computes `offset + size` in 32 bits, so a size that wraps
    /// past 4 GiB passes its bound check; this parser rejects it.
    pub fn parse(bytes: &[u8], flash_size: u32) -> Result<Self, TableError> {
        let mut table = Self::new();
        let mut reader = Reader::new(bytes.get(..TABLE_MAX_LEN).unwrap_or(bytes));
        let mut md5 = Md5::new();
        for index in 0..MAX_ROWS {
            let offset = reader.position();
            let row: [u8; ENTRY_LEN] = reader
                .array()
                .map_err(|_| TableError::Truncated { offset })?;
            match classify(&row) {
                Row::Entry => {
                    let p = Partition::decode(&row);
                    let room = flash_size.checked_sub(p.offset);
                    if room.is_none_or(|room| p.size > room) {
                        return Err(TableError::EntryOutOfBounds {
                            offset,
                            part_offset: p.offset,
                            part_size: p.size,
                            flash_size,
                        });
                    }
                    // Only a 96th entry row can overflow, and then no row is left for
                    // the end marker.
                    table.push(p).map_err(|_| TableError::NoEndMarker)?;
                    md5.update(row);
                }
                Row::Md5 => {
                    if table.md5.is_some() {
                        return Err(TableError::DuplicateMd5 { offset });
                    }
                    let computed: [u8; 16] = md5.clone().finalize().into();
                    let mut stored = [0u8; 16];
                    stored.copy_from_slice(&row[16..32]);
                    if stored != computed {
                        return Err(TableError::Md5Mismatch {
                            offset,
                            stored,
                            computed,
                        });
                    }
                    table.md5 = Some(stored);
                }
                Row::End if index == 0 => return Err(TableError::Empty),
                Row::End => return Ok(table),
                Row::Bad(magic) => return Err(TableError::BadMagic { offset, magic }),
            }
        }
        Err(TableError::NoEndMarker)
    }

    /// Encodes the table as gen_esp32part does: entries, the MD5 row when `with_md5`, then
    /// 0xFF up to 0xC00 bytes (the end marker is part of that fill).
    pub fn encode(&self, with_md5: bool) -> Result<[u8; TABLE_MAX_LEN], TableError> {
        let rows = self.len.saturating_add(usize::from(with_md5));
        // gen_esp32part refuses `len >= 0xC00`: one row must stay free for the end marker.
        if rows >= MAX_ROWS {
            return Err(TableError::TooManyPartitions { count: self.len });
        }
        let mut out = [0xFFu8; TABLE_MAX_LEN];
        let mut md5 = Md5::new();
        let (rows, _) = out.as_chunks_mut::<ENTRY_LEN>();
        for (row, p) in rows.iter_mut().zip(self.as_slice()) {
            *row = p.encode();
            md5.update(*row);
        }
        if with_md5 {
            // rows < MAX_ROWS was checked above, so the MD5 row exists.
            if let Some(row) = rows.get_mut(self.len) {
                row[0..2].copy_from_slice(&MD5_MAGIC.to_le_bytes());
                let digest: [u8; 16] = md5.finalize().into();
                row[16..32].copy_from_slice(&digest);
            }
        }
        Ok(out)
    }

    /// The MD5 row's digest, if the parsed table had one.
    pub const fn md5(&self) -> Option<[u8; 16]> {
        self.md5
    }

    /// The MD5 digest [`Self::encode`] writes: over the encoded entries.
    pub fn computed_md5(&self) -> [u8; 16] {
        let mut md5 = Md5::new();
        for p in self.as_slice() {
            md5.update(p.encode());
        }
        md5.finalize().into()
    }

    /// The entries in table order.
    pub fn as_slice(&self) -> &[Partition] {
        self.entries.get(..self.len).unwrap_or(&[])
    }

    /// Iterates over the entries in table order.
    pub fn iter(&self) -> core::slice::Iter<'_, Partition> {
        self.as_slice().iter()
    }

    /// Number of entries.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the table has no entries.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first entry with this label.
    pub fn find_by_label(&self, label: &str) -> Option<&Partition> {
        self.iter().find(|p| p.has_label(label))
    }

    /// The first entry with these raw type and subtype bytes.
    pub fn find(&self, ty: u8, subtype: u8) -> Option<&Partition> {
        self.iter().find(|p| p.ty == ty && p.subtype == subtype)
    }

    /// The first entry of this kind.
    pub fn find_kind(&self, kind: PartitionKind) -> Option<&Partition> {
        let (ty, subtype) = kind.raw();
        self.find(ty, subtype)
    }

    /// The partition containing flash offset `addr`.
    pub fn containing(&self, addr: u32) -> Option<&Partition> {
        self.iter()
            .find(|p| p.offset <= addr && u64::from(addr) < p.end())
    }

    /// The table as the bootloader sees it: factory, test, otadata and the OTA slots.
    pub fn boot_layout(&self) -> BootLayout {
        BootLayout::from_partitions(self.as_slice())
    }
}

impl<'a> IntoIterator for &'a PartitionTable {
    type Item = &'a Partition;
    type IntoIter = core::slice::Iter<'a, Partition>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The bootloader's view of a table (`bootloader_state_t`), built the way
/// `bootloader_utility_load_partition_table` builds it.
///
/// Every `ota_N` entry counts towards `app_count` and lands in `ota[subtype & 0x0F]`; a later
/// entry of the same kind overwrites an earlier one (so with two otadata partitions the last
/// one wins). The bootloader only reaches slots `0..app_count`, so the `ota_N` entries must be
/// contiguous from `ota_0` ([`Self::ota_contiguous`]); otherwise a slot index maps to an empty
/// entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootLayout {
    /// The `factory` app partition.
    pub factory: Option<Partition>,
    /// The `test` app partition.
    pub test: Option<Partition>,
    /// The `data/ota` partition.
    pub otadata: Option<Partition>,
    /// `ota_N` partitions by slot index.
    pub ota: [Option<Partition>; MAX_OTA_SLOTS],
    /// Number of `ota_N` entries in the table.
    pub app_count: u32,
}

impl BootLayout {
    /// Collects the boot-relevant partitions.
    pub fn from_partitions(partitions: &[Partition]) -> Self {
        let mut layout = Self {
            factory: None,
            test: None,
            otadata: None,
            ota: [None; MAX_OTA_SLOTS],
            app_count: 0,
        };
        for p in partitions {
            match p.kind() {
                PartitionKind::App(AppSubtype::Factory) => layout.factory = Some(*p),
                PartitionKind::App(AppSubtype::Test) => layout.test = Some(*p),
                PartitionKind::App(AppSubtype::Ota(n)) => {
                    if let Some(slot) = layout.ota.get_mut(usize::from(n)) {
                        *slot = Some(*p);
                    }
                    layout.app_count = layout.app_count.saturating_add(1);
                }
                PartitionKind::Data(DataSubtype::Ota) => layout.otadata = Some(*p),
                _ => {}
            }
        }
        layout
    }

    /// The OTA partition the bootloader reaches for slot `index` (`index_to_partition`):
    /// only for `index < app_count` and `index < 16`, and only when that entry exists and is
    /// not empty.
    pub fn slot(&self, index: u32) -> Option<&Partition> {
        if index >= self.app_count {
            return None;
        }
        let i = usize::try_from(index).ok()?;
        self.ota
            .get(i)
            .and_then(Option::as_ref)
            .filter(|p| p.size != 0)
    }

    /// Whether the `ota_N` entries are exactly `ota_0 … ota_{app_count-1}`, each once.
    pub fn ota_contiguous(&self) -> bool {
        let present = self.ota.iter().filter(|p| p.is_some()).count();
        usize::try_from(self.app_count).is_ok_and(|n| n == present)
            && (0..self.app_count).all(|i| self.slot(i).is_some())
    }
}
