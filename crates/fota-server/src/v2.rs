//! The v2 records, through `fota-protocol`: root record checks, release verification,
//! check-in answers and events.

use ed25519_dalek::SigningKey;
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::CheckinView;
use crate::trust::{Trust, TrustError};

/// Class UUID = UUIDv5(vendor id, class name).
pub fn class_id(vendor: Uuid, name: &str) -> Uuid {
    let _ = (vendor, name);
    Uuid::nil()
}

/// Device UUID = UUIDv5(vendor id, "device/" + id).
pub fn device_uuid(vendor: Uuid, id: &str) -> Uuid {
    let _ = (vendor, id);
    Uuid::nil()
}

/// Key id of a public key (first 8 bytes of its SHA-256).
pub fn key_id(public_key: &[u8; 32]) -> [u8; 8] {
    let _ = public_key;
    [0; 8]
}

pub(crate) fn make_root_record(keys: &crate::keys::KeySet) -> Result<Vec<u8>, String> {
    let _ = keys;
    Err("v2 root records are not supported by this build yet".into())
}

pub(crate) fn verify_root(root: &[u8], status_key: &SigningKey) -> Result<Uuid, TrustError> {
    let _ = (root, status_key);
    Err(TrustError::Root {
        path: Default::default(),
        message: "v2 root records are not supported by this build yet".into(),
    })
}

/// What a verified upload says about itself.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedRelease {
    pub(crate) class_id: Uuid,
    pub(crate) sequence: i64,
    pub(crate) security_counter: i64,
    pub(crate) version: String,
    pub(crate) project: String,
    pub(crate) image_sha256: String,
    pub(crate) chunk_size: i64,
    pub(crate) chunk_count: i64,
    pub(crate) manifest_digest: String,
}

pub(crate) fn verify_release(
    trust: &Trust,
    manifest: &[u8],
    hashlist: &[u8],
    image: &[u8],
) -> AppResult<VerifiedRelease> {
    let _ = (trust, manifest, hashlist, image);
    Err(AppError::Unavailable {
        code: "v2_unsupported",
        message: "not supported by this build yet".into(),
    })
}

pub(crate) async fn checkin(
    state: &AppState,
    trust: &Trust,
    view: &CheckinView,
    body: &[u8],
) -> AppResult<Vec<u8>> {
    let _ = (state, trust, view, body);
    Err(AppError::Unavailable {
        code: "v2_unsupported",
        message: "not supported by this build yet".into(),
    })
}

pub(crate) async fn event(state: &AppState, device_id: &str, body: &[u8]) -> AppResult<()> {
    let _ = (state, device_id, body);
    Err(AppError::Unavailable {
        code: "v2_unsupported",
        message: "not supported by this build yet".into(),
    })
}
