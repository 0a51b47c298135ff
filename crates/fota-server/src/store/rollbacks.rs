//! Rollback orders: opened by operators, delivered to devices once, closed by their reports.

use fota_api::{AuditEntry, Millis, RollbackOrder};

use super::error::StoreResult;

/// Rollback orders.
#[async_trait::async_trait]
pub trait RollbackStore: Send + Sync {
    /// Opens an order; creates the device as a legacy device when `create_legacy` and it is
    /// unknown (with `create_legacy`, a v2 device is not found: the legacy API never touches
    /// one). Conflict if an order is already open.
    async fn create_rollback_order(
        &self,
        order: &RollbackOrder,
        create_legacy: bool,
        audit: &AuditEntry,
    ) -> StoreResult<()>;

    /// A device's open order.
    async fn open_rollback_order(&self, device_id: &str) -> StoreResult<Option<RollbackOrder>>;

    /// The open order of legacy device `device_id`, marked delivered at `at` if it was not
    /// yet (one transaction). `None` for a v2 device, whatever it has: the legacy API never
    /// reads one.
    async fn deliver_legacy_rollback_order(
        &self,
        device_id: &str,
        at: Millis,
    ) -> StoreResult<Option<RollbackOrder>>;

    /// A device's orders, newest first.
    async fn list_rollback_orders(&self, device_id: &str) -> StoreResult<Vec<RollbackOrder>>;

    /// Marks a rollback order delivered (first time only).
    async fn mark_rollback_delivered(&self, order_id: &str, at: Millis) -> StoreResult<()>;
}
