//! The seed's JSON records.
//!
//! Each record is generic over its string type `S`: `&str` on the device (borrowed from the
//! response body, parsed with `serde-json-core`, no heap) and `String` on the server
//! (`serde_json`; strings with JSON escapes only parse into owned strings). Integers are JSON
//! numbers, as the seed sends them. Unknown fields are ignored when parsing.

use crate::legacy::LegacyError;
use crate::legacy::mac::{ReplayMac, verify_chunk_mac};

/// The seed's endpoint paths; the replay MAC covers the path an answer was requested on.
pub mod paths {
    /// `POST`: an operator uploads firmware.
    pub const UPLOAD: &str = "/api/cloud/fota/upload";
    /// `GET`: a device asks what firmware is current.
    pub const MANIFEST: &str = "/api/inverter/fota/manifest";
    /// `GET ?chunk_number=N`: a device fetches one chunk.
    pub const CHUNK: &str = "/api/inverter/fota/chunk";
    /// `POST`: a device reports its status.
    pub const STATUS: &str = "/api/inverter/fota/status";
    /// `POST`: an operator orders a rollback.
    pub const ROLLBACK: &str = "/api/cloud/fota/rollback";
    /// `GET`: a device asks whether it must roll back.
    pub const ROLLBACK_STATUS: &str = "/api/inverter/fota/rollback-status";
}

/// `POST /api/cloud/fota/upload` body:
/// `{"version", "size", "hash", "chunk_size", "firmware_data"}`.
///
/// `hash` is the lowercase hex SHA-256 of the firmware, `firmware_data` the firmware in padded
/// standard base64. Use `UploadRequest<String>` on the server (the firmware is large);
/// [`validate`](Self::validate) (feature `alloc`) checks and decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct UploadRequest<S> {
    /// Firmware version string.
    pub version: S,
    /// Firmware length in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the firmware.
    pub hash: S,
    /// Chunk length the devices will fetch.
    pub chunk_size: u64,
    /// The firmware, padded standard base64.
    pub firmware_data: S,
}

/// Answer to an upload: `{"success", "total_chunks"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct UploadAnswer {
    /// Whether the upload was accepted.
    pub success: bool,
    /// ceil(size / chunk_size).
    pub total_chunks: u64,
}

/// `GET /api/inverter/fota/manifest` answer:
/// `{"version", "size", "hash", "chunk_size", "total_chunks", "nonce", "mac"}`.
///
/// `nonce` and `mac` are ours (replay protection); seed-era servers omit them, so they are
/// optional when parsing, and old devices ignore them.
///
/// Replay MAC input (see [`ReplayMac`] for the encoding): request path, device_id (from the
/// query, `""` when absent), version, size, hash, chunk_size, total_chunks, nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ManifestAnswer<S> {
    /// Firmware version string.
    pub version: S,
    /// Firmware length in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the firmware.
    pub hash: S,
    /// Chunk length.
    pub chunk_size: u64,
    /// Number of chunks.
    pub total_chunks: u64,
    /// Server-wide, strictly increasing counter.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub nonce: Option<u64>,
    /// Lowercase hex replay MAC.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub mac: Option<S>,
}

impl<S: AsRef<str>> ManifestAnswer<S> {
    fn replay_mac(&self, psk: &[u8], path: &str, device_id: &str, nonce: u64) -> ReplayMac {
        let mut mac = ReplayMac::new(psk);
        mac.str(path)
            .str(device_id)
            .str(self.version.as_ref())
            .u64(self.size)
            .str(self.hash.as_ref())
            .u64(self.chunk_size)
            .u64(self.total_chunks)
            .u64(nonce);
        mac
    }

    /// The replay MAC of this answer as served on `path` to `device_id` (`""` when the request
    /// named none). Needs `nonce` to be set.
    pub fn compute_mac(
        &self,
        psk: &[u8],
        path: &str,
        device_id: &str,
    ) -> Result<[u8; 32], LegacyError> {
        let nonce = self.nonce.ok_or(LegacyError::NonceMissing)?;
        self.replay_mac(psk, path, device_id, nonce).finish()
    }

    /// The device's check: the MAC verifies (constant time), then the nonce is above
    /// `last_nonce` (0 when none was ever persisted). Returns the nonce.
    ///
    /// Persist the returned nonce only after this succeeded, and before acting on the answer:
    /// persisting an unauthenticated nonce would let anyone lock the device out with a huge
    /// one.
    pub fn verify_replay(
        &self,
        psk: &[u8],
        path: &str,
        device_id: &str,
        last_nonce: u64,
    ) -> Result<u64, LegacyError> {
        let mac = self.mac.as_ref().ok_or(LegacyError::MacMissing)?;
        let nonce = self.nonce.ok_or(LegacyError::NonceMissing)?;
        self.replay_mac(psk, path, device_id, nonce)
            .verify(mac.as_ref())?;
        check_nonce(nonce, last_nonce)
    }
}

fn check_nonce(nonce: u64, last: u64) -> Result<u64, LegacyError> {
    if nonce > last {
        Ok(nonce)
    } else {
        Err(LegacyError::NonceNotIncreasing { nonce, last })
    }
}

/// `GET /api/inverter/fota/chunk?chunk_number=N` answer: `{"chunk_number", "data", "mac"}`.
///
/// `data` is the chunk in padded standard base64; `mac` is the lowercase hex
/// HMAC-SHA256(PSK, chunk bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ChunkAnswer<S> {
    /// Index of the chunk.
    pub chunk_number: u64,
    /// Chunk bytes, padded standard base64.
    pub data: S,
    /// Lowercase hex HMAC-SHA256(PSK, chunk bytes).
    pub mac: S,
}

impl<S: AsRef<str>> ChunkAnswer<S> {
    /// Decodes `data` into `out` (no allocation); returns the decoded bytes. Not yet
    /// authenticated: use [`decode_verified`](Self::decode_verified) before writing them
    /// anywhere.
    pub fn decode_data<'b>(&self, out: &'b mut [u8]) -> Result<&'b [u8], LegacyError> {
        use base64::Engine as _;
        let n = base64::engine::general_purpose::STANDARD
            .decode_slice(self.data.as_ref(), out)
            .map_err(|e| match e {
                base64::DecodeSliceError::OutputSliceTooSmall => LegacyError::BufferTooSmall,
                base64::DecodeSliceError::DecodeError(_) => LegacyError::Base64,
            })?;
        out.get(..n).ok_or(LegacyError::BufferTooSmall)
    }

    /// Decodes `data` into `out` and checks its MAC under `psk` (constant time); returns the
    /// authenticated chunk bytes.
    pub fn decode_verified<'b>(
        &self,
        psk: &[u8],
        out: &'b mut [u8],
    ) -> Result<&'b [u8], LegacyError> {
        let data = self.decode_data(out)?;
        verify_chunk_mac(psk, data, self.mac.as_ref())?;
        Ok(data)
    }
}

/// `POST /api/inverter/fota/status` body: any JSON object with `device_id`.
///
/// The server records `status`, `version`, `reason` and `error` when present and ignores
/// every other field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StatusReport<S> {
    /// The reporting device.
    pub device_id: S,
    /// Free-form status word (e.g. `"success"`, `"failed"`).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub status: Option<S>,
    /// Firmware version the device runs.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub version: Option<S>,
    /// Why (for failures and rollbacks).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub reason: Option<S>,
    /// Error text.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub error: Option<S>,
}

/// `POST /api/cloud/fota/rollback` body: `{"device_id", "reason"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RollbackOrder<S> {
    /// Device to roll back.
    pub device_id: S,
    /// Why.
    pub reason: S,
}

/// `GET /api/inverter/fota/rollback-status` answer:
/// `{"rollback_required", "reason", "nonce", "mac"}`.
///
/// `reason` is `null` when no rollback is pending. `nonce` and `mac` are ours and optional when
/// parsing, as for [`ManifestAnswer`].
///
/// Replay MAC input (see [`ReplayMac`] for the encoding): request path, device_id,
/// rollback_required, reason (`""` when null), nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RollbackStatusAnswer<S> {
    /// Whether the device must roll back.
    pub rollback_required: bool,
    /// Why, or `null`.
    #[cfg_attr(feature = "serde", serde(default))]
    pub reason: Option<S>,
    /// Server-wide, strictly increasing counter.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub nonce: Option<u64>,
    /// Lowercase hex replay MAC.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub mac: Option<S>,
}

impl<S: AsRef<str>> RollbackStatusAnswer<S> {
    fn replay_mac(&self, psk: &[u8], path: &str, device_id: &str, nonce: u64) -> ReplayMac {
        let mut mac = ReplayMac::new(psk);
        mac.str(path)
            .str(device_id)
            .bool(self.rollback_required)
            .str(self.reason.as_ref().map_or("", AsRef::as_ref))
            .u64(nonce);
        mac
    }

    /// The replay MAC of this answer as served on `path` to `device_id`. Needs `nonce`.
    pub fn compute_mac(
        &self,
        psk: &[u8],
        path: &str,
        device_id: &str,
    ) -> Result<[u8; 32], LegacyError> {
        let nonce = self.nonce.ok_or(LegacyError::NonceMissing)?;
        self.replay_mac(psk, path, device_id, nonce).finish()
    }

    /// The device's check, as [`ManifestAnswer::verify_replay`]: MAC first, then
    /// nonce > `last_nonce`. Persist the returned nonce only after success.
    pub fn verify_replay(
        &self,
        psk: &[u8],
        path: &str,
        device_id: &str,
        last_nonce: u64,
    ) -> Result<u64, LegacyError> {
        let mac = self.mac.as_ref().ok_or(LegacyError::MacMissing)?;
        let nonce = self.nonce.ok_or(LegacyError::NonceMissing)?;
        self.replay_mac(psk, path, device_id, nonce)
            .verify(mac.as_ref())?;
        check_nonce(nonce, last_nonce)
    }
}

#[cfg(feature = "alloc")]
mod owned {
    use alloc::borrow::ToOwned;
    use alloc::string::String;

    use super::{ChunkAnswer, ManifestAnswer, RollbackStatusAnswer};
    use crate::legacy::LegacyError;
    use crate::legacy::mac::{Hex64, chunk_mac};

    impl ManifestAnswer<String> {
        /// Sets `nonce` and the replay `mac` for serving on `path` to `device_id`.
        pub fn seal(
            &mut self,
            psk: &[u8],
            path: &str,
            device_id: &str,
            nonce: u64,
        ) -> Result<(), LegacyError> {
            self.nonce = Some(nonce);
            let mac = self.compute_mac(psk, path, device_id)?;
            self.mac = Some(Hex64::new(&mac).as_str().to_owned());
            Ok(())
        }
    }

    impl RollbackStatusAnswer<String> {
        /// Sets `nonce` and the replay `mac` for serving on `path` to `device_id`.
        pub fn seal(
            &mut self,
            psk: &[u8],
            path: &str,
            device_id: &str,
            nonce: u64,
        ) -> Result<(), LegacyError> {
            self.nonce = Some(nonce);
            let mac = self.compute_mac(psk, path, device_id)?;
            self.mac = Some(Hex64::new(&mac).as_str().to_owned());
            Ok(())
        }
    }

    impl ChunkAnswer<String> {
        /// The answer for chunk `chunk_number` with bytes `data`: base64 data and its MAC.
        pub fn new_signed(psk: &[u8], chunk_number: u64, data: &[u8]) -> Self {
            use base64::Engine as _;
            Self {
                chunk_number,
                data: base64::engine::general_purpose::STANDARD.encode(data),
                mac: Hex64::new(&chunk_mac(psk, data)).as_str().to_owned(),
            }
        }
    }
}
