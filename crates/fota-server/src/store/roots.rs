//! The chain of root records: every version the server has held, for devices to walk.

use fota_api::{AuditEntry, Millis};

use super::error::StoreResult;

/// One stored root record version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoot {
    /// Its version.
    pub version: u32,
    /// The signed record (`FOTR` envelope), as published.
    pub record: Vec<u8>,
    /// When it was stored (unix ms).
    pub published_at: Millis,
    /// Who stored it: `token:<id>`, or `server` for the record the server was started with.
    pub published_by: String,
}

/// Root records.
#[async_trait::async_trait]
pub trait RootStore: Send + Sync {
    /// Every stored version, oldest first.
    async fn root_records(&self) -> StoreResult<Vec<StoredRoot>>;

    /// Stores `root` unless its version is stored already; `audit` is written with it. Returns
    /// whether it was stored (false: that version was there, whatever its bytes; the caller
    /// compares).
    async fn add_root_record(
        &self,
        root: &StoredRoot,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;
}
