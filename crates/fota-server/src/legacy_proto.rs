//! The legacy (seed) records, through `fota-protocol`'s legacy module.

use zeroize::Zeroizing;

use crate::error::{AppError, AppResult};
use crate::store::LegacyRelease;
use crate::trust::LegacyKey;

fn unsupported() -> AppError {
    AppError::Unavailable {
        code: "legacy_unsupported",
        message: "not supported by this build yet".into(),
    }
}

pub(crate) fn psk_from_value(value: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let _ = value;
    Err("not supported by this build yet".into())
}

pub(crate) fn psk_from_file(raw: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let _ = raw;
    Err("not supported by this build yet".into())
}

/// A checked seed upload.
pub(crate) struct ValidUpload {
    pub(crate) version: String,
    pub(crate) sha256: String,
    pub(crate) chunk_size: i64,
    pub(crate) total_chunks: i64,
    pub(crate) image: Vec<u8>,
}

pub(crate) fn validate_upload(body: &[u8]) -> AppResult<ValidUpload> {
    let _ = body;
    Err(unsupported())
}

pub(crate) fn manifest_answer(
    key: &LegacyKey,
    release: &LegacyRelease,
    nonce: u64,
) -> AppResult<Vec<u8>> {
    let _ = (key, release, nonce);
    Err(unsupported())
}

pub(crate) fn chunk_answer(key: &LegacyKey, n: u64, data: &[u8]) -> AppResult<Vec<u8>> {
    let _ = (key, n, data);
    Err(unsupported())
}

pub(crate) fn rollback_status_answer(
    key: &LegacyKey,
    required: bool,
    reason: &str,
    nonce: u64,
) -> AppResult<Vec<u8>> {
    let _ = (key, required, reason, nonce);
    Err(unsupported())
}
