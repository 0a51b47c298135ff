//! The legacy protocol's MACs: the seed's per-chunk HMAC and our replay-protection MAC, plus
//! the allocation-free hex helpers they need.

use core::fmt;

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::legacy::LegacyError;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Domain prefix of the replay-protection MAC input.
pub const REPLAY_DOMAIN: &[u8] = b"FOTA-LEGACY-v1\0";

fn hmac(psk: &[u8]) -> HmacSha256 {
    // RFC 2104 key preparation done here (hash keys longer than the 64-byte block, zero-pad
    // the rest) so that the constructor used takes a full block and cannot fail.
    let mut block = [0u8; 64];
    let digest;
    let key = if psk.len() > block.len() {
        digest = Sha256::digest(psk);
        digest.as_slice()
    } else {
        psk
    };
    for (dst, &src) in block.iter_mut().zip(key) {
        *dst = src;
    }
    HmacSha256::new(&block.into())
}

/// The seed's chunk MAC: HMAC-SHA256(PSK, chunk bytes).
pub fn chunk_mac(psk: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = hmac(psk);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Checks a chunk's `mac` field (64 hex digits) against HMAC-SHA256(PSK, data), in
/// constant time.
pub fn verify_chunk_mac(psk: &[u8], data: &[u8], mac_hex: &str) -> Result<(), LegacyError> {
    let tag = parse_hex32(mac_hex).ok_or(LegacyError::MacFormat)?;
    let mut mac = hmac(psk);
    mac.update(data);
    mac.verify_slice(&tag).map_err(|_| LegacyError::MacMismatch)
}

/// Builds the replay-protection MAC incrementally, without allocating:
/// `HMAC-SHA256(PSK, "FOTA-LEGACY-v1\0" ‖ fields)`.
///
/// Field encoding (fixed; both sides must feed the same fields in the same order):
///
/// | type | bytes |
/// |---|---|
/// | string | u32 LE byte length ‖ UTF-8 bytes |
/// | integer | u64 LE |
/// | bool | one byte, 0 or 1 |
///
/// The length prefix makes the encoding injective: no two field lists give the same input.
#[derive(Clone)]
pub struct ReplayMac {
    mac: HmacSha256,
    too_long: bool,
}

impl ReplayMac {
    /// Starts a MAC under `psk`, with the domain prefix already fed.
    pub fn new(psk: &[u8]) -> Self {
        let mut mac = hmac(psk);
        mac.update(REPLAY_DOMAIN);
        Self {
            mac,
            too_long: false,
        }
    }

    /// Feeds a string field.
    pub fn str(&mut self, s: &str) -> &mut Self {
        match u32::try_from(s.len()) {
            Ok(len) => {
                self.mac.update(&len.to_le_bytes());
                self.mac.update(s.as_bytes());
            }
            Err(_) => self.too_long = true,
        }
        self
    }

    /// Feeds an integer field.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.mac.update(&v.to_le_bytes());
        self
    }

    /// Feeds a bool field.
    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.mac.update(&[u8::from(b)]);
        self
    }

    /// The MAC; fails when a string was too long for its u32 length prefix.
    pub fn finish(self) -> Result<[u8; 32], LegacyError> {
        if self.too_long {
            return Err(LegacyError::FieldTooLong);
        }
        Ok(self.mac.finalize().into_bytes().into())
    }

    /// Checks a hex MAC against this one in constant time.
    pub fn verify(self, mac_hex: &str) -> Result<(), LegacyError> {
        let tag = parse_hex32(mac_hex).ok_or(LegacyError::MacFormat)?;
        let mac = self.finish()?;
        if bool::from(mac.ct_eq(&tag)) {
            Ok(())
        } else {
            Err(LegacyError::MacMismatch)
        }
    }
}

// By hand: the HMAC state is keyed with the fleet's PSK; a `{:?}` shows no part of it.
impl fmt::Debug for ReplayMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayMac")
            .field("mac", &format_args!("[redacted]"))
            .field("too_long", &self.too_long)
            .finish()
    }
}

fn nibble(c: u8) -> Option<u8> {
    let digit = char::from(c).to_digit(16)?;
    u8::try_from(digit).ok()
}

/// Decodes hex digits (either case) into `out`; `None` unless `hex` is exactly
/// `2 × out.len()` hex digits.
pub fn parse_hex(hex: &str, out: &mut [u8]) -> Option<()> {
    let hex = hex.as_bytes();
    if hex.len() != out.len().checked_mul(2)? {
        return None;
    }
    for (byte, &[hi, lo]) in out.iter_mut().zip(hex.as_chunks::<2>().0) {
        *byte = (nibble(hi)? << 4) | nibble(lo)?;
    }
    Some(())
}

/// Decodes 64 hex digits (either case) into 32 bytes.
pub fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    parse_hex(hex, &mut out)?;
    Some(out)
}

/// Whether `s` is exactly 64 lowercase hex digits, as the seed writes SHA-256 and HMAC
/// values.
pub fn is_lower_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// 32 bytes as 64 lowercase hex digits, without allocating.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hex64([u8; 64]);

impl Hex64 {
    /// Encodes `bytes`.
    pub fn new(bytes: &[u8; 32]) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        // A nibble is below 16, so the fallback digit is never used.
        let digit = |nibble: u8| DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0');
        let mut out = [0u8; 64];
        for (pair, &b) in out.as_chunks_mut::<2>().0.iter_mut().zip(bytes) {
            *pair = [digit(b >> 4), digit(b & 0xf)];
        }
        Self(out)
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits were written.
        core::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Display for Hex64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Hex64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
