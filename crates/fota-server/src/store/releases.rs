//! Signed releases and their assignments to devices and classes.

use fota_api::{AuditEntry, Millis, Release};

use super::error::StoreResult;

/// Releases and assignments.
#[async_trait::async_trait]
pub trait ReleaseStore: Send + Sync {
    /// Stores a verified release and its signed manifest envelope. Conflict if its sequence is
    /// not above the class's highest, or its version exists in the class.
    async fn create_release(
        &self,
        release: &Release,
        manifest: &[u8],
        audit: &AuditEntry,
    ) -> StoreResult<()>;

    /// One release by id.
    async fn release(&self, id: &str) -> StoreResult<Option<Release>>;

    /// The signed manifest envelope of a release, as uploaded.
    async fn release_manifest(&self, id: &str) -> StoreResult<Option<Vec<u8>>>;

    /// One release by class and version.
    async fn release_by_version(&self, class: &str, version: &str) -> StoreResult<Option<Release>>;

    /// Releases, optionally of one class, newest first.
    async fn list_releases(&self, class: Option<&str>) -> StoreResult<Vec<Release>>;

    /// Class names in use (by provisioned devices or releases).
    async fn list_classes(&self) -> StoreResult<Vec<String>>;

    /// Assigns a release to devices (all must exist and be of the release's class).
    async fn assign_devices(
        &self,
        release_id: &str,
        device_ids: &[String],
        audit: &AuditEntry,
    ) -> StoreResult<()>;

    /// Assigns a release to its class.
    async fn assign_class(
        &self,
        class: &str,
        release_id: &str,
        at: Millis,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
}
