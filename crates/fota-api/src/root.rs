//! The chain of root records a server holds (`/api/v2/roots`).

use serde::{Deserialize, Serialize};

use crate::Millis;

/// One root record version the server holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RootVersion {
    /// Record version (1, 2, …).
    pub version: u32,
    /// When it was signed (unix seconds).
    pub issued_at: u64,
    /// When it stops being valid (unix seconds; 0 = never).
    pub expires_at: u64,
    /// When this server stored it (unix ms).
    pub published_at: Millis,
    /// Who stored it: `token:<id>`, or `server` (the record it was started with).
    pub published_by: String,
    /// Root key ids (16 hex digits each).
    pub root_keys: Vec<String>,
    /// Release key ids.
    pub release_keys: Vec<String>,
    /// Status key ids.
    pub status_keys: Vec<String>,
}

/// The answer of `GET /api/v2/roots`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RootChainInfo {
    /// The newest version: what uploads and devices are checked against.
    pub newest: u32,
    /// The id of the status key the server signs statements with.
    pub status_key: String,
    /// Every version held, oldest first.
    pub versions: Vec<RootVersion>,
}
