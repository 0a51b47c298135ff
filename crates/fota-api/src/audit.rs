//! The audit log.

use serde::{Deserialize, Serialize};

use crate::Millis;

/// Who did what to which thing, with details as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Acting principal: `token:<id>` (operator) or `device:<id>`, or `server`.
    pub actor: String,
    /// What happened, e.g. `release.create`.
    pub action: String,
    /// What it happened to, e.g. `release:<id>`.
    pub target: String,
    /// Details (never secrets).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A stored audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Increasing id (use as `before` cursor).
    pub id: i64,
    /// When, unix ms.
    pub at: Millis,
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
}
