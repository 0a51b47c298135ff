//! What a server says about itself, and the shape of every error answer.

use serde::{Deserialize, Serialize};

/// What this server is configured for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServerInfo {
    /// Crate version.
    pub version: String,
    /// Whether the v2 API is configured (root record + status key).
    pub v2: bool,
    /// Whether the legacy API is on.
    pub legacy: bool,
    /// Vendor UUID from the root record.
    pub vendor_id: Option<String>,
    /// The root record, base64.
    pub root: Option<String>,
    /// Largest release upload in bytes.
    pub max_release_bytes: u64,
    /// Known class names.
    pub classes: Vec<String>,
}

/// The JSON body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable reason, e.g. `invalid_json`, `unauthorized`.
    pub code: String,
    /// Human-readable detail.
    pub message: String,
}
