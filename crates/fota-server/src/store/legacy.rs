//! The seed API's uploads and status reports.

use fota_api::{AuditEntry, Millis, RollbackOrder};
use serde::{Deserialize, Serialize};

use super::error::StoreResult;
use super::reports::Report;

/// A legacy (seed) upload.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LegacyRelease {
    /// Increasing id; the newest is served.
    pub id: i64,
    /// Version string as uploaded.
    pub version: String,
    /// Image size.
    pub size: i64,
    /// SHA-256, lowercase hex: also the blob name.
    pub sha256: String,
    /// Chunk size.
    pub chunk_size: i64,
    /// ceil(size / chunk_size).
    pub total_chunks: i64,
    /// Upload time.
    pub created_at: Millis,
    /// Uploader.
    pub created_by: String,
}

/// A legacy (seed) status report.
#[derive(Debug, Clone)]
pub struct LegacyStatus {
    /// The device naming itself.
    pub device_id: String,
    /// What it reports running.
    pub report: Report,
    /// The status word (`reported` when the device sent none).
    pub status: String,
    /// The whole body, kept as the event's detail.
    pub detail: serde_json::Value,
    /// Now.
    pub at: Millis,
}

/// What became of a [`LegacyStatus`].
#[derive(Debug, Clone)]
pub enum LegacyStatusOutcome {
    /// Recorded; the device's delivered rollback order, if it had one, is now closed.
    Recorded {
        /// The order the report closed.
        closed: Option<RollbackOrder>,
    },
    /// The id belongs to a v2 device: nothing was read or written.
    V2Device,
    /// The device is unknown and was not created (the caller did not allow it, or
    /// `legacy.max_devices` was reached): nothing was written.
    NotRecorded,
}

/// Legacy uploads and status reports.
#[async_trait::async_trait]
pub trait LegacyStore: Send + Sync {
    /// Stores a legacy upload; returns its id.
    async fn create_legacy_release(
        &self,
        release: &LegacyRelease,
        audit: &AuditEntry,
    ) -> StoreResult<i64>;

    /// The newest legacy upload.
    async fn latest_legacy_release(&self) -> StoreResult<Option<LegacyRelease>>;

    /// Records a legacy status report: the report, an event, and closes the delivered order.
    /// A missing device is created first when `create_under` is given and fewer legacy devices
    /// than that exist; a v2 device is never touched.
    async fn legacy_status(
        &self,
        status: &LegacyStatus,
        create_under: Option<u64>,
    ) -> StoreResult<LegacyStatusOutcome>;
}
