//! Server-side validation of a legacy upload.

use alloc::vec::Vec;
use core::num::NonZeroU64;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::legacy::LegacyError;
use crate::legacy::json::UploadRequest;
use crate::legacy::mac::{is_lower_hex64, parse_hex32};

/// A legacy upload that passed [`UploadRequest::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedUpload {
    /// The decoded firmware.
    pub firmware: Vec<u8>,
    /// Its SHA-256 (equal to the request's `hash`).
    pub sha256: [u8; 32],
    /// Chunk length.
    pub chunk_size: u64,
    /// ceil(size / chunk_size).
    pub total_chunks: u64,
}

impl ValidatedUpload {
    /// Bytes of chunk `n`, or `None` past the last chunk.
    pub fn chunk(&self, n: u64) -> Option<&[u8]> {
        let start = usize::try_from(n.checked_mul(self.chunk_size)?).ok()?;
        if start >= self.firmware.len() {
            return None;
        }
        let len = usize::try_from(self.chunk_size).unwrap_or(usize::MAX);
        let end = start.saturating_add(len).min(self.firmware.len());
        self.firmware.get(start..end)
    }
}

impl<S: AsRef<str>> UploadRequest<S> {
    /// Checks the upload as the legacy server must: `hash` is 64 lowercase hex digits,
    /// `size` ≥ 1, `chunk_size` ≥ 1, `firmware_data` is padded standard base64 that decodes
    /// to exactly `size` bytes hashing to `hash`.
    ///
    /// The ESP image format is deliberately not checked: the seed's own tests upload non-ESP
    /// bytes, and devices reject such images themselves.
    pub fn validate(&self) -> Result<ValidatedUpload, LegacyError> {
        let hash = self.hash.as_ref();
        if !is_lower_hex64(hash) {
            return Err(LegacyError::HashFormat);
        }
        let expected = parse_hex32(hash).ok_or(LegacyError::HashFormat)?;
        let size = NonZeroU64::new(self.size).ok_or(LegacyError::SizeZero)?;
        let chunk_size = NonZeroU64::new(self.chunk_size).ok_or(LegacyError::ChunkSizeZero)?;
        let firmware = base64::engine::general_purpose::STANDARD
            .decode(self.firmware_data.as_ref())
            .map_err(|_| LegacyError::Base64)?;
        if firmware.len() as u64 != self.size {
            return Err(LegacyError::SizeMismatch {
                declared: self.size,
                decoded: firmware.len() as u64,
            });
        }
        let sha256: [u8; 32] = Sha256::digest(&firmware).into();
        if sha256 != expected {
            return Err(LegacyError::HashMismatch);
        }
        Ok(ValidatedUpload {
            firmware,
            sha256,
            chunk_size: self.chunk_size,
            total_chunks: size.div_ceil(chunk_size).get(),
        })
    }
}
