//! [`RollbackStore`] on SQLite.

use fota_api::{AuditEntry, Millis, RollbackOrder};

use super::{LegacyRow, SqliteStore, ensure_legacy_device, insert_audit};
use crate::store::error::{StoreError, StoreResult};
use crate::store::rollbacks::RollbackStore;
use crate::store::rows::{ORDER_COLUMNS, OrderRow};

#[async_trait::async_trait]
impl RollbackStore for SqliteStore {
    async fn create_rollback_order(
        &self,
        order: &RollbackOrder,
        create_legacy: bool,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        if create_legacy
            && ensure_legacy_device(&mut tx, &order.device_id, order.created_at, Some(u64::MAX))
                .await?
                != LegacyRow::Legacy
        {
            return Err(StoreError::NotFound(format!(
                "no legacy device {:?}",
                order.device_id
            )));
        }
        // What the device runs now, and its class.
        let device: Option<(Option<String>, Option<String>)> =
            sqlx::query_as("SELECT fw_sha256, class FROM devices WHERE id = $1")
                .bind(order.device_id.clone())
                .fetch_optional(&mut *tx)
                .await?;
        let Some((running, class)) = device else {
            return Err(StoreError::NotFound(format!(
                "no device {:?}",
                order.device_id
            )));
        };
        let open = sqlx::query(
            "SELECT id FROM rollback_orders WHERE device_id = $1 AND closed_at IS NULL",
        )
        .bind(order.device_id.clone())
        .fetch_optional(&mut *tx)
        .await?;
        if open.is_some() {
            return Err(StoreError::Conflict(format!(
                "device {:?} already has an open rollback order",
                order.device_id
            )));
        }
        sqlx::query(
            "INSERT INTO rollback_orders (id, device_id, reason, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(order.id.clone())
        .bind(order.device_id.clone())
        .bind(order.reason.clone())
        .bind(order.created_at)
        .bind(order.created_by.clone())
        .execute(&mut *tx)
        .await?;
        // The release the device runs now is not offered again after it rolls back from it.
        if let (Some(sha), Some(class)) = (running, class) {
            sqlx::query(
                "UPDATE devices SET suppressed_release_id = (SELECT id FROM releases \
                 WHERE class = $2 AND image_sha256 = $3 ORDER BY sequence DESC LIMIT 1) \
                 WHERE id = $1 AND EXISTS (SELECT 1 FROM releases WHERE class = $2 AND \
                 image_sha256 = $3)",
            )
            .bind(order.device_id.clone())
            .bind(class)
            .bind(sha)
            .execute(&mut *tx)
            .await?;
        }
        insert_audit(&mut tx, audit, order.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn open_rollback_order(&self, device_id: &str) -> StoreResult<Option<RollbackOrder>> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM rollback_orders WHERE device_id = $1 AND closed_at IS NULL"
        );
        Ok(sqlx::query_as::<_, OrderRow>(sqlx::AssertSqlSafe(sql))
            .bind(device_id.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .map(OrderRow::into_api))
    }

    async fn deliver_legacy_rollback_order(
        &self,
        device_id: &str,
        at: Millis,
    ) -> StoreResult<Option<RollbackOrder>> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM rollback_orders WHERE device_id = $1 \
             AND closed_at IS NULL AND EXISTS (SELECT 1 FROM devices \
             WHERE id = $1 AND protocol = 'legacy')"
        );
        let order = sqlx::query_as::<_, OrderRow>(sqlx::AssertSqlSafe(sql))
            .bind(device_id.to_owned())
            .fetch_optional(&mut *tx)
            .await?
            .map(OrderRow::into_api);
        let Some(mut order) = order else {
            return Ok(None);
        };
        if order.delivered_at.is_none() {
            sqlx::query("UPDATE rollback_orders SET delivered_at = $2 WHERE id = $1")
                .bind(order.id.clone())
                .bind(at)
                .execute(&mut *tx)
                .await?;
            order.delivered_at = Some(at);
            tx.commit().await?;
        }
        Ok(Some(order))
    }

    async fn list_rollback_orders(&self, device_id: &str) -> StoreResult<Vec<RollbackOrder>> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM rollback_orders WHERE device_id = $1 \
             ORDER BY created_at DESC, id DESC"
        );
        Ok(sqlx::query_as::<_, OrderRow>(sqlx::AssertSqlSafe(sql))
            .bind(device_id.to_owned())
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(OrderRow::into_api)
            .collect())
    }

    async fn mark_rollback_delivered(&self, order_id: &str, at: Millis) -> StoreResult<()> {
        sqlx::query(
            "UPDATE rollback_orders SET delivered_at = $2 WHERE id = $1 AND delivered_at IS NULL",
        )
        .bind(order_id.to_owned())
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
