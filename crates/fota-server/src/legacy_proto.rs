//! The legacy (seed) records, through `fota-protocol`'s legacy module: PSK parsing, upload
//! validation, and the answers with their MACs.

use fota_protocol::legacy::json::{
    ChunkAnswer, ManifestAnswer, RollbackStatusAnswer, UploadRequest,
};
use fota_protocol::legacy::{self, LegacyError, paths};
use zeroize::Zeroizing;

use crate::error::{AppError, AppResult, parse_json};
use crate::store::LegacyRelease;
use crate::trust::LegacyKey;

pub(crate) fn psk_from_value(value: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    legacy::psk_from_value(value)
        .map(Zeroizing::new)
        .map_err(|e| e.to_string())
}

pub(crate) fn psk_from_file(raw: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    legacy::psk_from_file(raw)
        .map(Zeroizing::new)
        .map_err(|e| e.to_string())
}

/// A checked seed upload.
pub(crate) struct ValidUpload {
    pub(crate) version: String,
    pub(crate) sha256: String,
    pub(crate) chunk_size: i64,
    pub(crate) total_chunks: i64,
    pub(crate) image: Vec<u8>,
}

/// Parses and checks a seed upload body: JSON shape and types, then base64, size, hash and
/// chunk size (fota-protocol's rules). Every failure is a 400 naming the check.
pub(crate) fn validate_upload(body: &[u8]) -> AppResult<ValidUpload> {
    let req: UploadRequest<String> = parse_json(body)?;
    if req.version.is_empty() || req.version.len() > 64 {
        return Err(AppError::bad_request(
            "invalid_field",
            "version must be 1-64 characters",
        ));
    }
    let valid = req.validate().map_err(|e| {
        let code = match e {
            LegacyError::Base64 => "invalid_base64",
            LegacyError::SizeMismatch { .. } => "size_mismatch",
            LegacyError::HashMismatch => "hash_mismatch",
            LegacyError::HashFormat => "invalid_hash",
            _ => "invalid_field",
        };
        AppError::bad_request(code, e.to_string())
    })?;
    let too_big = |_| AppError::bad_request("invalid_field", "chunk_size too large");
    Ok(ValidUpload {
        version: req.version,
        sha256: hex::encode(valid.sha256),
        chunk_size: i64::try_from(valid.chunk_size).map_err(too_big)?,
        total_chunks: i64::try_from(valid.total_chunks).map_err(too_big)?,
        image: valid.firmware,
    })
}

fn internal(e: LegacyError) -> AppError {
    AppError::internal(e)
}

fn to_json<T: serde::Serialize>(v: &T) -> AppResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(AppError::internal)
}

pub(crate) fn manifest_answer(
    key: &LegacyKey,
    release: &LegacyRelease,
    nonce: u64,
    device_id: &str,
) -> AppResult<Vec<u8>> {
    let mut answer = ManifestAnswer {
        version: release.version.clone(),
        size: u64::try_from(release.size).unwrap_or(0),
        hash: release.sha256.clone(),
        chunk_size: u64::try_from(release.chunk_size).unwrap_or(0),
        total_chunks: u64::try_from(release.total_chunks).unwrap_or(0),
        nonce: None,
        mac: None,
    };
    answer
        .seal(&key.psk, paths::MANIFEST, device_id, nonce)
        .map_err(internal)?;
    to_json(&answer)
}

pub(crate) fn chunk_answer(key: &LegacyKey, n: u64, data: &[u8]) -> AppResult<Vec<u8>> {
    to_json(&ChunkAnswer::new_signed(&key.psk, n, data))
}

pub(crate) fn rollback_status_answer(
    key: &LegacyKey,
    reason: Option<&str>,
    nonce: u64,
    device_id: &str,
) -> AppResult<Vec<u8>> {
    let mut answer = RollbackStatusAnswer {
        rollback_required: reason.is_some(),
        reason: reason.map(str::to_owned),
        nonce: None,
        mac: None,
    };
    answer
        .seal(&key.psk, paths::ROLLBACK_STATUS, device_id, nonce)
        .map_err(internal)?;
    to_json(&answer)
}
