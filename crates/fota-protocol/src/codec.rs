//! Little-endian readers and writers for the fixed-layout records of this crate.
//!
//! Every decoder in the crate reads through [`Reader`], so truncation and trailing bytes are
//! reported the same way everywhere, with the offset at which they happened. Nothing here
//! allocates or panics: all index arithmetic is checked.

use core::fmt;

/// Why bytes could not be decoded at the framing level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended before a field: `needed` bytes were wanted at `offset`.
    Truncated {
        /// Offset of the field that did not fit.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
    },
    /// The record is complete but more bytes follow it, starting at `offset`.
    TrailingBytes {
        /// Offset of the first unexpected byte.
        offset: usize,
    },
    /// The output buffer is too small: `needed` bytes in total.
    BufferTooSmall {
        /// Total size the encoding needs.
        needed: usize,
    },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { offset, needed } => {
                write!(
                    f,
                    "input truncated: {needed} more bytes needed at offset {offset:#x}"
                )
            }
            Self::TrailingBytes { offset } => {
                write!(f, "unexpected trailing bytes at offset {offset:#x}")
            }
            Self::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
        }
    }
}

impl core::error::Error for CodecError {}

/// A cursor over borrowed bytes that reads little-endian integers and byte strings.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub const fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Offset of the next byte to be read.
    pub const fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    pub const fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The unread rest of the input, without consuming it.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let (out, end) = self
            .pos
            .checked_add(n)
            .and_then(|end| Some((self.buf.get(self.pos..end)?, end)))
            .ok_or(CodecError::Truncated {
                offset: self.pos,
                needed: n,
            })?;
        self.pos = end;
        Ok(out)
    }

    /// Takes the next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        let [b] = self.array()?;
        Ok(b)
    }

    /// Reads a little-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// Reads a little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Reads a little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Ends decoding: fails if any input is left over.
    pub fn finish(self) -> Result<(), CodecError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(CodecError::TrailingBytes { offset: self.pos })
        }
    }
}

/// A cursor that writes little-endian integers and byte strings into a caller's buffer.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// Starts writing at the beginning of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub const fn written(&self) -> usize {
        self.pos
    }

    /// Appends `bytes`.
    pub fn bytes(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        let needed = self.pos.saturating_add(bytes.len());
        let dst = self
            .buf
            .get_mut(self.pos..needed)
            .ok_or(CodecError::BufferTooSmall { needed })?;
        dst.copy_from_slice(bytes);
        self.pos = needed;
        Ok(())
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> Result<(), CodecError> {
        self.bytes(&[v])
    }

    /// Appends a little-endian `u16`.
    pub fn u16(&mut self, v: u16) -> Result<(), CodecError> {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a little-endian `u32`.
    pub fn u32(&mut self, v: u32) -> Result<(), CodecError> {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a little-endian `u64`.
    pub fn u64(&mut self, v: u64) -> Result<(), CodecError> {
        self.bytes(&v.to_le_bytes())
    }

    /// The bytes written so far.
    pub fn into_written(self) -> &'a mut [u8] {
        self.buf.get_mut(..self.pos).unwrap_or_default()
    }
}

/// The first `len` bytes of `buf`, for the length an encoder returned after writing into it
/// (so never an error in practice).
#[cfg(feature = "alloc")]
pub(crate) fn written(buf: &[u8], len: usize) -> Result<&[u8], CodecError> {
    buf.get(..len)
        .ok_or(CodecError::BufferTooSmall { needed: len })
}

/// Copies a string into a fixed NUL-padded field, as C `char[N]` fields hold them.
///
/// Fails when the string does not fit with at least one NUL left, or contains a NUL itself.
pub fn put_c_string<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = s.as_bytes();
    if bytes.len() >= N || bytes.contains(&0) {
        return None;
    }
    let mut out = [0u8; N];
    out.get_mut(..bytes.len())?.copy_from_slice(bytes);
    Some(out)
}

/// Reads a NUL-terminated (or NUL-padded) C string field: the bytes before the first NUL, if
/// they are UTF-8. A field without any NUL yields all its bytes.
pub fn c_string(field: &[u8]) -> Option<&str> {
    let text = field.split(|&b| b == 0).next().unwrap_or_default();
    core::str::from_utf8(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_truncation_and_trailing_bytes() {
        let mut r = Reader::new(&[1, 0, 0, 0, 9]);
        assert_eq!(r.u32(), Ok(1));
        assert_eq!(
            r.u16(),
            Err(CodecError::Truncated {
                offset: 4,
                needed: 2
            })
        );
        assert_eq!(
            r.clone().finish(),
            Err(CodecError::TrailingBytes { offset: 4 })
        );
        assert_eq!(r.u8(), Ok(9));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn reader_take_never_overflows() {
        let mut r = Reader::new(&[0; 4]);
        r.take(2).unwrap();
        assert!(r.take(usize::MAX).is_err());
        assert_eq!(r.position(), 2);
    }

    #[test]
    fn writer_round_trip() {
        let mut buf = [0u8; 15];
        let mut w = Writer::new(&mut buf);
        w.u8(7).unwrap();
        w.u16(0x1234).unwrap();
        w.u32(0xdead_beef).unwrap();
        w.u64(u64::MAX).unwrap();
        assert_eq!(w.u8(0), Err(CodecError::BufferTooSmall { needed: 16 }));
        let mut r = Reader::new(&buf);
        assert_eq!(
            (r.u8(), r.u16(), r.u32(), r.u64()),
            (Ok(7), Ok(0x1234), Ok(0xdead_beef), Ok(u64::MAX))
        );
    }

    #[test]
    fn c_strings() {
        assert_eq!(put_c_string::<4>("abc"), Some(*b"abc\0"));
        assert_eq!(put_c_string::<4>("abcd"), None);
        assert_eq!(put_c_string::<4>("a\0"), None);
        assert_eq!(c_string(b"ab\0cd"), Some("ab"));
        assert_eq!(c_string(b"abcd"), Some("abcd"));
        assert_eq!(c_string(&[0xff, 0]), None);
    }
}
