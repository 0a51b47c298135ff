//! The whole storage port: every area's trait, and what spans them all (counters, retention,
//! the blobs releases reference, backups).

use fota_api::Millis;

use super::audit::AuditStore;
use super::devices::DeviceStore;
use super::error::StoreResult;
use super::legacy::LegacyStore;
use super::releases::ReleaseStore;
use super::reports::ReportStore;
use super::rollbacks::RollbackStore;
use super::roots::RootStore;
use super::tokens::TokenStore;

/// Retention cut-offs: records older than these are deleted.
#[derive(Debug, Clone, Copy)]
pub struct PruneBefore {
    /// Check-in history.
    pub checkins: Millis,
    /// Device events.
    pub events: Millis,
    /// Audit records.
    pub audit: Millis,
}

/// How many records a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Check-ins.
    pub checkins: u64,
    /// Events.
    pub events: u64,
    /// Audit records.
    pub audit: u64,
}

/// The storage port. See the module docs of [`crate::store`].
#[async_trait::async_trait]
pub trait Store:
    TokenStore
    + DeviceStore
    + ReportStore
    + ReleaseStore
    + RollbackStore
    + LegacyStore
    + AuditStore
    + RootStore
    + Send
    + Sync
    + 'static
{
    /// Next value of the persisted, strictly increasing counter `name` (starts at 1).
    async fn next_counter(&self, name: &str) -> StoreResult<u64>;

    /// Deletes history older than the cut-offs.
    async fn prune(&self, before: PruneBefore) -> StoreResult<Pruned>;

    /// SHA-256 names of all blobs any release references.
    async fn referenced_blobs(&self) -> StoreResult<Vec<String>>;

    /// Writes a consistent copy of the database to `path` while serving (`VACUUM INTO`).
    async fn backup_into(&self, path: &std::path::Path) -> StoreResult<()>;
}
