//! Reading the legacy pre-shared key from configuration.

use alloc::vec::Vec;

use crate::legacy::LegacyError;
use crate::legacy::mac::parse_hex;

/// The PSK given as a value (`FOTA_LEGACY_PSK`; never a command-line flag): its UTF-8 bytes
/// as they are, or, after a `hex:` prefix, the bytes the hex digits spell (for binary keys).
///
/// The seed's example key `your-32-byte-secret-key-here!!` is 30 bytes and is used as those 30
/// bytes: nothing is padded, trimmed or hashed.
pub fn psk_from_value(value: &str) -> Result<Vec<u8>, LegacyError> {
    let psk = match value.strip_prefix("hex:") {
        Some(hex) => {
            let mut out = alloc::vec![0u8; hex.len() / 2];
            parse_hex(hex, &mut out).ok_or(LegacyError::PskHex)?;
            out
        }
        None => value.as_bytes().to_vec(),
    };
    if psk.is_empty() {
        return Err(LegacyError::PskEmpty);
    }
    Ok(psk)
}

/// The PSK read from a file: the raw contents minus one trailing `\n` (editors add one). No
/// other byte is touched, so binary keys work; `hex:` has no meaning in a file.
pub fn psk_from_file(contents: &[u8]) -> Result<Vec<u8>, LegacyError> {
    let psk = contents.strip_suffix(b"\n").unwrap_or(contents);
    if psk.is_empty() {
        return Err(LegacyError::PskEmpty);
    }
    Ok(psk.to_vec())
}
