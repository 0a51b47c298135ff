//! Reader for the `gen_esp32part.py` CSV format.
//!
//! Each non-empty line that does not start with `#` is
//! `name, type, subtype, offset, size, flags`; fields are trimmed, missing trailing fields
//! are empty and fields past the sixth are ignored (as gen_esp32part does). Numbers are
//! Python `int(x, 0)` literals (`0x…`, `0o…`, `0b…`, decimal, optional sign) with any number
//! of `K`/`M` suffixes (×1024, ×1024², case-insensitive). Types and subtypes are keywords
//! or numbers. An empty subtype means `undefined` for data (and is an error for apps). An
//! empty offset is placed after the previous partition, aligned to 0x10000 for apps and
//! 0x1000 otherwise, starting at table offset + 0x1000 (0x9000). A negative size `-N`
//! means "up to flash offset N". Flags are `:`-separated `encrypted` / `readonly`.
//!
//! Then gen_esp32part's checks: offsets aligned (app 0x10000, others 0x1000), app sizes a
//! multiple of 0x1000, read/write NVS at least 0x3000, otadata and coredump not readonly,
//! unique names, no partition below the table sector's end, no overlaps, at most one
//! otadata (and it is 0x2000 bytes). Every error names its 1-based line.
//!
//! Deviations: environment variables (`$NAME`, which gen_esp32part expands) are refused;
//! names longer than 16 bytes are refused (gen_esp32part silently truncates them to the
//! label field); Python's `_` digit separators are not accepted; bootloader-type rows are
//! refused, as gen_esp32part does when no bootloader offset is passed (its default).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use super::partition::{
    AppSubtype, DataSubtype, FLAG_ENCRYPTED, FLAG_READONLY, Partition, PartitionTable,
    TABLE_OFFSET, TABLE_SECTOR_SIZE, TableError, ty,
};

/// Minimum size of a read/write NVS partition.
pub const NVS_RW_MIN_SIZE: u32 = 0x3000;

/// A CSV error, with the 1-based line it was found on (0 for whole-table problems).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvError {
    /// 1-based line number; 0 when the error concerns the whole table.
    pub line: usize,
    /// What is wrong.
    pub kind: CsvErrorKind,
}

/// What is wrong with a CSV table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CsvErrorKind {
    /// A field that must not be empty is.
    EmptyField(&'static str),
    /// A number or keyword could not be read.
    InvalidValue {
        /// Field name.
        field: &'static str,
        /// The text found.
        value: String,
    },
    /// A value does not fit its field (type/subtype bytes, 32-bit offset and size).
    OutOfRange {
        /// Field name.
        field: &'static str,
        /// The value.
        value: i128,
    },
    /// An unknown flag.
    UnknownFlag(String),
    /// A `$NAME` environment variable reference.
    Variable(String),
    /// A name longer than 16 bytes or containing NUL.
    BadName(String),
    /// A bootloader-type row (needs the bootloader offset, which is not known here).
    BootloaderRow,
    /// An offset below the end of the previous partition or the table sector.
    Overlap {
        /// The partition's offset.
        offset: u32,
        /// Where the previous partition (or the table sector) ends.
        previous_end: u64,
    },
    /// Misaligned offset.
    OffsetAlignment {
        /// Offset.
        offset: u32,
        /// Required alignment.
        align: u32,
    },
    /// App size not a multiple of 0x1000.
    SizeAlignment {
        /// Size.
        size: u32,
        /// Required alignment.
        align: u32,
    },
    /// A read/write NVS partition below 0x3000 bytes.
    NvsTooSmall {
        /// Size.
        size: u32,
    },
    /// otadata or coredump flagged readonly.
    MustBeWritable,
    /// A name used twice.
    DuplicateName(String),
    /// More than one otadata partition.
    MultipleOtadata,
    /// otadata not 0x2000 bytes.
    OtadataSize {
        /// Size.
        size: u32,
    },
    /// The table would not fit in 0xC00 bytes.
    Table(TableError),
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        match &self.kind {
            CsvErrorKind::EmptyField(field) => write!(f, "field '{field}' can't be empty"),
            CsvErrorKind::InvalidValue { field, value } => {
                write!(f, "invalid {field} value '{value}'")
            }
            CsvErrorKind::OutOfRange { field, value } => {
                write!(f, "{field} value {value} out of range")
            }
            CsvErrorKind::UnknownFlag(flag) => write!(f, "unknown flag '{flag}'"),
            CsvErrorKind::Variable(v) => {
                write!(f, "environment variable '${v}' is not supported")
            }
            CsvErrorKind::BadName(n) => {
                write!(f, "partition name '{n}' is longer than 16 bytes")
            }
            CsvErrorKind::BootloaderRow => {
                f.write_str("bootloader partitions need a bootloader offset; not supported")
            }
            CsvErrorKind::Overlap {
                offset,
                previous_end,
            } => write!(
                f,
                "partitions overlap: offset {offset:#x} is below {previous_end:#x}"
            ),
            CsvErrorKind::OffsetAlignment { offset, align } => {
                write!(f, "offset {offset:#x} is not aligned to {align:#x}")
            }
            CsvErrorKind::SizeAlignment { size, align } => {
                write!(f, "size {size:#x} is not aligned to {align:#x}")
            }
            CsvErrorKind::NvsTooSmall { size } => write!(
                f,
                "read/write nvs partition of size {size:#x} must be at least {NVS_RW_MIN_SIZE:#x} (or flagged readonly)"
            ),
            CsvErrorKind::MustBeWritable => {
                f.write_str("otadata and coredump partitions cannot be readonly")
            }
            CsvErrorKind::DuplicateName(n) => write!(f, "partition name '{n}' is not unique"),
            CsvErrorKind::MultipleOtadata => f.write_str("more than one otadata partition"),
            CsvErrorKind::OtadataSize { size } => {
                write!(f, "otadata partition must be 0x2000 bytes, not {size:#x}")
            }
            CsvErrorKind::Table(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for CsvError {}

/// One parsed CSV row before validation, with its line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRow {
    /// 1-based line number.
    pub line: usize,
    /// The partition (offset filled in by placement).
    pub partition: Partition,
    /// The name as written.
    pub name: String,
}

fn err(line: usize, kind: CsvErrorKind) -> CsvError {
    CsvError { line, kind }
}

/// Python `int(v, 0)` with gen_esp32part's recursive `k`/`m` suffixes.
fn parse_number(v: &str) -> Option<i128> {
    let lower = v.to_ascii_lowercase();
    if let Some(rest) = lower.strip_suffix('k') {
        return parse_number(rest)?.checked_mul(1024);
    }
    if let Some(rest) = lower.strip_suffix('m') {
        return parse_number(rest)?.checked_mul(1024 * 1024);
    }
    let s = lower.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (radix, digits) = if let Some(d) = s.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = s.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = s.strip_prefix("0b") {
        (2, d)
    } else {
        // Python refuses decimal literals with leading zeros, other than zero itself.
        if s.len() > 1 && s.starts_with('0') && s.bytes().any(|b| b != b'0') {
            return None;
        }
        (10, s)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let value = i128::from_str_radix(digits, radix).ok()?;
    // The digits carry no sign, so the value is not negative and its negation fits.
    Some(if neg { value.checked_neg()? } else { value })
}

fn parse_type(line: usize, v: &str) -> Result<u8, CsvError> {
    if v.is_empty() {
        return Err(err(line, CsvErrorKind::EmptyField("type")));
    }
    let keyword = match v.to_ascii_lowercase().as_str() {
        "app" => Some(ty::APP),
        "data" => Some(ty::DATA),
        "bootloader" => Some(ty::BOOTLOADER),
        "partition_table" => Some(ty::PARTITION_TABLE),
        _ => None,
    };
    if let Some(t) = parse_number(v).or(keyword.map(i128::from)) {
        return u8::try_from(t).map_err(|_| {
            err(
                line,
                CsvErrorKind::OutOfRange {
                    field: "type",
                    value: t,
                },
            )
        });
    }
    Err(err(
        line,
        CsvErrorKind::InvalidValue {
            field: "type",
            value: v.to_string(),
        },
    ))
}

fn subtype_keyword(t: u8, v: &str) -> Option<u8> {
    match t {
        ty::APP => AppSubtype::from_name(v).map(AppSubtype::raw),
        ty::DATA => DataSubtype::from_name(v).map(DataSubtype::raw),
        ty::BOOTLOADER => match v.to_ascii_lowercase().as_str() {
            "primary" => Some(0),
            "ota" => Some(1),
            "recovery" => Some(2),
            _ => None,
        },
        ty::PARTITION_TABLE => match v.to_ascii_lowercase().as_str() {
            "primary" => Some(0),
            "ota" => Some(1),
            _ => None,
        },
        _ => None,
    }
}

fn parse_subtype(line: usize, t: u8, v: &str) -> Result<u8, CsvError> {
    if v.is_empty() {
        if t == ty::APP {
            return Err(err(line, CsvErrorKind::EmptyField("subtype")));
        }
        return Ok(DataSubtype::Undefined.raw());
    }
    if let Some(n) = parse_number(v) {
        return u8::try_from(n).map_err(|_| {
            err(
                line,
                CsvErrorKind::OutOfRange {
                    field: "subtype",
                    value: n,
                },
            )
        });
    }
    subtype_keyword(t, v).ok_or_else(|| {
        err(
            line,
            CsvErrorKind::InvalidValue {
                field: "subtype",
                value: v.to_string(),
            },
        )
    })
}

fn parse_int_field(line: usize, field: &'static str, v: &str) -> Result<i128, CsvError> {
    parse_number(v).ok_or_else(|| {
        err(
            line,
            CsvErrorKind::InvalidValue {
                field,
                value: v.to_string(),
            },
        )
    })
}

fn to_u32(line: usize, field: &'static str, v: i128) -> Result<u32, CsvError> {
    u32::try_from(v).map_err(|_| err(line, CsvErrorKind::OutOfRange { field, value: v }))
}

fn find_variable(line: &str) -> Option<String> {
    let bytes = line.as_bytes();
    bytes.iter().enumerate().find_map(|(i, &b)| {
        let escaped = i.checked_sub(1).and_then(|j| bytes.get(j)) == Some(&b'\\');
        if b != b'$' || escaped {
            return None;
        }
        // `$` is one byte: the name starts right after it.
        let rest = line.get(i.saturating_add(1)..)?;
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let starts_ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        starts_ok.then_some(name)
    })
}

struct Pending {
    line: usize,
    name: String,
    ty: u8,
    subtype: u8,
    offset: Option<i128>,
    size: Option<i128>,
    flags: u32,
}

/// Reads the rows of a CSV table (with placement, before validation).
pub fn parse_rows(text: &str, table_offset: u32) -> Result<Vec<CsvRow>, CsvError> {
    let mut pending = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i.saturating_add(1);
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(var) = find_variable(trimmed) {
            return Err(err(line, CsvErrorKind::Variable(var)));
        }
        let fields: Vec<&str> = trimmed.split(',').map(str::trim).collect();
        let field = |k: usize| fields.get(k).copied().unwrap_or("");
        let name = field(0).to_string();
        if name.len() > 16 || name.contains('\0') {
            return Err(err(line, CsvErrorKind::BadName(name)));
        }
        let t = parse_type(line, field(1))?;
        if t == ty::BOOTLOADER {
            return Err(err(line, CsvErrorKind::BootloaderRow));
        }
        let subtype = parse_subtype(line, t, field(2))?;
        let table_primary = t == ty::PARTITION_TABLE && subtype == 0;
        let offset = if table_primary {
            Some(i128::from(table_offset))
        } else if field(3).is_empty() {
            None
        } else {
            Some(parse_int_field(line, "offset", field(3))?)
        };
        let size = if t == ty::PARTITION_TABLE {
            Some(i128::from(TABLE_SECTOR_SIZE))
        } else if field(4).is_empty() {
            return Err(err(line, CsvErrorKind::EmptyField("size")));
        } else {
            Some(parse_int_field(line, "size", field(4))?)
        };
        let mut flags = 0;
        for flag in field(5).split(':') {
            match flag {
                "encrypted" => flags |= FLAG_ENCRYPTED,
                "readonly" => flags |= FLAG_READONLY,
                "" => {}
                other => return Err(err(line, CsvErrorKind::UnknownFlag(other.to_string()))),
            }
        }
        pending.push(Pending {
            line,
            name,
            ty: t,
            subtype,
            offset,
            size,
            flags,
        });
    }

    // Placement, in file order, as gen_esp32part's `from_csv` does it.
    let mut rows = Vec::with_capacity(pending.len());
    // Offsets and ends are sums of two u32 values, far inside i128: nothing here saturates.
    let mut last_end = i128::from(table_offset).saturating_add(i128::from(TABLE_SECTOR_SIZE));
    for p in pending {
        let table_primary = p.ty == ty::PARTITION_TABLE && p.subtype == 0;
        let mut offset = p.offset;
        let mut size = p.size.unwrap_or(0);
        if !table_primary {
            if let Some(o) = offset
                && o < last_end
            {
                return Err(err(
                    p.line,
                    CsvErrorKind::Overlap {
                        offset: to_u32(p.line, "offset", o)?,
                        previous_end: u64::try_from(last_end).unwrap_or(0),
                    },
                ));
            }
            let o = match offset {
                Some(o) => o,
                None => {
                    let align = i128::from(alignment(p.ty));
                    let rem = last_end.rem_euclid(align);
                    if rem == 0 {
                        last_end
                    } else {
                        last_end.saturating_add(align.saturating_sub(rem))
                    }
                }
            };
            // Both are bounded to 32 bits before any further arithmetic.
            let o32 = to_u32(p.line, "offset", o)?;
            offset = Some(o);
            if size < 0 {
                size = size
                    .checked_neg()
                    .and_then(|end| end.checked_sub(o))
                    .ok_or_else(|| {
                        err(
                            p.line,
                            CsvErrorKind::OutOfRange {
                                field: "size",
                                value: size,
                            },
                        )
                    })?;
            }
            let size32 = to_u32(p.line, "size", size)?;
            last_end = i128::from(o32).saturating_add(i128::from(size32));
        }
        let offset = to_u32(p.line, "offset", offset.unwrap_or(0))?;
        let size = to_u32(p.line, "size", size)?;
        let mut label = [0u8; 16];
        if let Some(dst) = label.get_mut(..p.name.len()) {
            dst.copy_from_slice(p.name.as_bytes());
        }
        rows.push(CsvRow {
            line: p.line,
            partition: Partition {
                ty: p.ty,
                subtype: p.subtype,
                offset,
                size,
                label,
                flags: p.flags,
            },
            name: p.name,
        });
    }
    Ok(rows)
}

/// Offset alignment gen_esp32part requires for a partition type.
pub const fn alignment(t: u8) -> u32 {
    if t == ty::APP { 0x1_0000 } else { 0x1000 }
}

/// gen_esp32part's `verify`: per-partition rules, unique names, the table sector, overlaps
/// (in offset order), one otadata of 0x2000 bytes.
pub fn validate(rows: &[CsvRow], table_offset: u32) -> Result<(), CsvError> {
    for r in rows {
        let p = &r.partition;
        let align = alignment(p.ty);
        if !p.offset.is_multiple_of(align) {
            return Err(err(
                r.line,
                CsvErrorKind::OffsetAlignment {
                    offset: p.offset,
                    align,
                },
            ));
        }
        if p.ty == ty::APP && p.size % 0x1000 != 0 {
            return Err(err(
                r.line,
                CsvErrorKind::SizeAlignment {
                    size: p.size,
                    align: 0x1000,
                },
            ));
        }
        let data = |s: DataSubtype| p.ty == ty::DATA && p.subtype == s.raw();
        if (data(DataSubtype::Ota) || data(DataSubtype::Coredump)) && p.readonly() {
            return Err(err(r.line, CsvErrorKind::MustBeWritable));
        }
        if data(DataSubtype::Nvs) && p.size < NVS_RW_MIN_SIZE && !p.readonly() {
            return Err(err(r.line, CsvErrorKind::NvsTooSmall { size: p.size }));
        }
    }
    for (i, r) in rows.iter().enumerate() {
        if rows.iter().take(i).any(|o| o.name == r.name) {
            return Err(err(r.line, CsvErrorKind::DuplicateName(r.name.clone())));
        }
    }
    let mut sorted: Vec<&CsvRow> = rows.iter().collect();
    sorted.sort_by_key(|r| r.partition.offset);
    let table_end = u64::from(table_offset).saturating_add(u64::from(TABLE_SECTOR_SIZE));
    let mut last: Option<&CsvRow> = None;
    for r in sorted {
        let p = &r.partition;
        let table_primary = p.ty == ty::PARTITION_TABLE && p.subtype == 0;
        if u64::from(p.offset) < table_end && !table_primary {
            return Err(err(
                r.line,
                CsvErrorKind::Overlap {
                    offset: p.offset,
                    previous_end: table_end,
                },
            ));
        }
        if let Some(prev) = last
            && u64::from(p.offset) < prev.partition.end()
        {
            return Err(err(
                r.line,
                CsvErrorKind::Overlap {
                    offset: p.offset,
                    previous_end: prev.partition.end(),
                },
            ));
        }
        last = Some(r);
    }
    let otadata: Vec<&CsvRow> = rows
        .iter()
        .filter(|r| r.partition.ty == ty::DATA && r.partition.subtype == DataSubtype::Ota.raw())
        .collect();
    if let [_, second, ..] = otadata.as_slice() {
        return Err(err(second.line, CsvErrorKind::MultipleOtadata));
    }
    if let [only] = otadata.as_slice()
        && only.partition.size != 0x2000
    {
        return Err(err(
            only.line,
            CsvErrorKind::OtadataSize {
                size: only.partition.size,
            },
        ));
    }
    Ok(())
}

/// Reads and validates a CSV table for the table at `table_offset`.
pub fn parse_with_offset(text: &str, table_offset: u32) -> Result<PartitionTable, CsvError> {
    let rows = parse_rows(text, table_offset)?;
    validate(&rows, table_offset)?;
    let mut table = PartitionTable::new();
    for r in &rows {
        table
            .push(r.partition)
            .map_err(|e| err(r.line, CsvErrorKind::Table(e)))?;
    }
    // gen_esp32part's `to_binary` refuses a table that leaves no room for the end marker.
    table
        .encode(true)
        .map_err(|e| err(0, CsvErrorKind::Table(e)))?;
    Ok(table)
}

/// Reads and validates a CSV table for the default table offset 0x8000.
pub fn parse(text: &str) -> Result<PartitionTable, CsvError> {
    parse_with_offset(text, TABLE_OFFSET)
}

/// Writes a table as gen_esp32part's `to_csv` does (keywords, sizes with K/M suffixes).
pub fn to_csv(table: &PartitionTable) -> String {
    use core::fmt::Write;
    let mut out =
        String::from("# ESP-IDF Partition Table\n# Name, Type, SubType, Offset, Size, Flags\n");
    for p in table {
        let size = if p.size != 0 && p.size % 0x10_0000 == 0 {
            alloc::format!("{}M", p.size / 0x10_0000)
        } else if p.size != 0 && p.size % 0x400 == 0 {
            alloc::format!("{}K", p.size / 0x400)
        } else {
            alloc::format!("{:#x}", p.size)
        };
        let t =
            super::partition::type_name(p.ty).map_or_else(|| p.ty.to_string(), ToString::to_string);
        let s = super::partition::subtype_name(p.ty, p.subtype)
            .map_or_else(|| p.subtype.to_string(), ToString::to_string);
        let mut flags = Vec::new();
        if p.encrypted() {
            flags.push("encrypted");
        }
        if p.readonly() {
            flags.push("readonly");
        }
        let _ = writeln!(
            out,
            "{},{},{},{:#x},{},{}",
            p.label_str().unwrap_or(""),
            t,
            s,
            p.offset,
            size,
            flags.join(":")
        );
    }
    out
}
