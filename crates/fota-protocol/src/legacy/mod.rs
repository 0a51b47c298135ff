//! Legacy (seed) protocol records: the JSON the seed's Flask server and the devices already in
//! the field speak, with its per-chunk HMAC and our replay-protection MAC.
//!
//! Wire-compatible with the seed (DESIGN §4.1): same paths, same JSON fields. Where the seed
//! is silent we add `nonce` and `mac` to the manifest and rollback-status answers; old devices
//! ignore them. Legacy mode is insecure by design (one fleet-wide key): anyone holding the PSK
//! can make every legacy device install anything. A device leaves it for good once it accepts
//! a v2 manifest.
//!
//! Everything a device needs works without allocation: the records borrow `&str` from the
//! body (serde derives with feature `serde`, for `serde-json-core`), base64 decodes into a
//! caller's buffer, and MACs are computed incrementally. PSK parsing and upload validation are
//! server-side and need `alloc`.
//!
//! Per-device keys ([`DeviceKey`], HKDF of the master PSK and the device id) keep the wire
//! format and limit what one extracted key forges to its own device.

pub mod device_key;
pub mod json;
pub mod mac;
#[cfg(feature = "alloc")]
pub mod psk;
#[cfg(feature = "alloc")]
pub mod upload;

pub use device_key::{DEVICE_KEY_INFO, DEVICE_KEY_LEN, DeviceKey};
pub use json::{
    ChunkAnswer, ManifestAnswer, RollbackOrder, RollbackStatusAnswer, StatusReport, UploadAnswer,
    UploadRequest, paths,
};
pub use mac::{Hex64, REPLAY_DOMAIN, ReplayMac, chunk_mac, verify_chunk_mac};
#[cfg(feature = "alloc")]
pub use psk::{psk_from_file, psk_from_value};
#[cfg(feature = "alloc")]
pub use upload::ValidatedUpload;

/// Why a legacy record or MAC was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LegacyError {
    /// A `mac` field is not 64 hex digits.
    #[error("mac is not 64 hex digits")]
    MacFormat,
    /// The MAC does not verify under the PSK.
    #[error("mac does not verify")]
    MacMismatch,
    /// The answer carries no `mac` (a seed-era server, or a stripped field).
    #[error("answer has no mac")]
    MacMissing,
    /// The answer carries no `nonce`.
    #[error("answer has no nonce")]
    NonceMissing,
    /// The nonce is not above the last one accepted: a replay.
    #[error("nonce {nonce} is not above the last accepted nonce {last}")]
    NonceNotIncreasing {
        /// Nonce of the answer.
        nonce: u64,
        /// Last nonce the device persisted.
        last: u64,
    },
    /// A string is too long for the MAC's u32 length prefix.
    #[error("a field is too long to authenticate")]
    FieldTooLong,
    /// Data is not padded standard base64.
    #[error("data is not padded standard base64")]
    Base64,
    /// The decoded data does not fit the caller's buffer.
    #[error("decoded data does not fit the buffer")]
    BufferTooSmall,
    /// `firmware_data` does not decode to `size` bytes.
    #[error("firmware_data decodes to {decoded} bytes, size says {declared}")]
    SizeMismatch {
        /// The request's `size`.
        declared: u64,
        /// Bytes decoded.
        decoded: u64,
    },
    /// `size` is 0.
    #[error("size must be at least 1")]
    SizeZero,
    /// `chunk_size` is 0.
    #[error("chunk_size must be at least 1")]
    ChunkSizeZero,
    /// `hash` is not 64 lowercase hex digits.
    #[error("hash is not 64 lowercase hex digits")]
    HashFormat,
    /// The firmware does not hash to `hash`.
    #[error("firmware does not match hash")]
    HashMismatch,
    /// The PSK is empty.
    #[error("legacy PSK is empty")]
    PskEmpty,
    /// The PSK after `hex:` is not an even number of hex digits.
    #[error("legacy PSK after `hex:` is not valid hex")]
    PskHex,
}
