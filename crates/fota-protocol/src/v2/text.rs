//! The 32-byte NUL-padded text fields of v2 records (versions, project names).

use core::fmt;

/// A 32-byte NUL-padded UTF-8 field, as ESP-IDF's `esp_app_desc_t.version` and
/// `project_name` are: 0..=31 bytes of text, then NUL bytes up to the end.
///
/// Only the canonical form is accepted: every byte after the text is NUL and the last byte is
/// always NUL. Two different byte strings therefore never decode to the same text, so a signed
/// field has exactly one encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FixedStr {
    bytes: [u8; FixedStr::LEN],
}

impl FixedStr {
    /// Size of the field on the wire.
    pub const LEN: usize = 32;
    /// Longest text the field holds (one byte is always left for the terminating NUL).
    pub const MAX_TEXT: usize = Self::LEN - 1;
    /// The empty field (all NUL).
    pub const EMPTY: Self = Self {
        bytes: [0; Self::LEN],
    };

    /// The field holding `s`; `None` when `s` is longer than 31 bytes or contains a NUL.
    pub fn new(s: &str) -> Option<Self> {
        crate::codec::put_c_string::<{ Self::LEN }>(s).map(|bytes| Self { bytes })
    }

    /// Reads a field from the wire; `None` unless it is canonical NUL-padded UTF-8.
    pub fn from_field(field: &[u8; Self::LEN]) -> Option<Self> {
        let end = field.iter().position(|&b| b == 0)?;
        let (text, padding) = field.split_at_checked(end)?;
        if padding.iter().any(|&b| b != 0) {
            return None;
        }
        core::str::from_utf8(text).ok()?;
        Some(Self { bytes: *field })
    }

    /// The text, without padding.
    pub fn as_str(&self) -> &str {
        // Every constructor checked the bytes, so the fallback is never taken.
        crate::codec::c_string(&self.bytes).unwrap_or("")
    }

    /// The field as it is on the wire.
    pub const fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.bytes
    }

    /// Whether the field holds no text.
    pub const fn is_empty(&self) -> bool {
        self.bytes[0] == 0
    }
}

impl fmt::Debug for FixedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for FixedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_only() {
        let v = FixedStr::new("1.2.3").unwrap();
        assert_eq!(v.as_str(), "1.2.3");
        assert_eq!(FixedStr::from_field(v.as_bytes()), Some(v));
        assert!(FixedStr::new(&"x".repeat(31)).is_some());
        assert!(FixedStr::new(&"x".repeat(32)).is_none());
        assert!(FixedStr::new("a\0b").is_none());

        let mut f = *v.as_bytes();
        f[20] = b'x'; // text after the terminator
        assert_eq!(FixedStr::from_field(&f), None);
        assert_eq!(FixedStr::from_field(&[b'x'; 32]), None); // no NUL at all
        let mut f = [0u8; 32];
        f[0] = 0xff; // not UTF-8
        assert_eq!(FixedStr::from_field(&f), None);
        assert!(FixedStr::from_field(&[0; 32]).unwrap().is_empty());
    }
}
