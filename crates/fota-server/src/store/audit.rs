//! The audit log. Every change operators can see writes its entry in the same transaction,
//! through the method that makes the change; this trait reads the log and writes the entries
//! of actions that change nothing else.

use fota_api::{AuditEntry, AuditRecord};

use super::error::StoreResult;

/// The audit log.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// Audit records, newest first.
    async fn list_audit(&self, before: Option<i64>, limit: i64) -> StoreResult<Vec<AuditRecord>>;

    /// Writes one audit record on its own (for actions without another store change).
    async fn audit(&self, entry: &AuditEntry) -> StoreResult<()>;
}
