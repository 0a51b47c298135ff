//! [`LegacyStore`] on SQLite.

use fota_api::{AuditEntry, Protocol};

use super::{LegacyRow, SET_STATE, SqliteStore, ensure_legacy_device, insert_audit, insert_report};
use crate::store::error::StoreResult;
use crate::store::legacy::{LegacyRelease, LegacyStatus, LegacyStatusOutcome, LegacyStore};
use crate::store::rows::{LEGACY_COLUMNS, LegacyReleaseRow, ORDER_COLUMNS, OrderRow};

#[async_trait::async_trait]
impl LegacyStore for SqliteStore {
    async fn create_legacy_release(
        &self,
        release: &LegacyRelease,
        audit: &AuditEntry,
    ) -> StoreResult<i64> {
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO legacy_releases (version, size, sha256, chunk_size, total_chunks, \
             created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(release.version.clone())
        .bind(release.size)
        .bind(release.sha256.clone())
        .bind(release.chunk_size)
        .bind(release.total_chunks)
        .bind(release.created_at)
        .bind(release.created_by.clone())
        .fetch_one(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit, release.created_at).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn latest_legacy_release(&self) -> StoreResult<Option<LegacyRelease>> {
        let sql = format!("SELECT {LEGACY_COLUMNS} FROM legacy_releases ORDER BY id DESC LIMIT 1");
        Ok(
            sqlx::query_as::<_, LegacyReleaseRow>(sqlx::AssertSqlSafe(sql))
                .fetch_optional(&self.pool)
                .await?
                .map(LegacyReleaseRow::into_release),
        )
    }

    async fn legacy_status(
        &self,
        status: &LegacyStatus,
        create_under: Option<u64>,
    ) -> StoreResult<LegacyStatusOutcome> {
        let mut tx = self.begin().await?;
        let (device_id, at) = (status.device_id.as_str(), status.at);
        match ensure_legacy_device(&mut tx, device_id, at, create_under).await? {
            LegacyRow::Legacy => {}
            LegacyRow::V2 => return Ok(LegacyStatusOutcome::V2Device),
            LegacyRow::Missing => return Ok(LegacyStatusOutcome::NotRecorded),
        }
        insert_report(&mut tx, device_id, Protocol::Legacy, &status.report, 0, at).await?;
        sqlx::query(
            "INSERT INTO events (device_id, at, kind, reason, detail) \
             VALUES ($1, $2, 'legacy_status', $3, $4)",
        )
        .bind(device_id.to_owned())
        .bind(at)
        .bind(status.status.clone())
        .bind(status.detail.to_string())
        .execute(&mut *tx)
        .await?;
        let sql = format!("UPDATE devices SET {SET_STATE} WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(device_id.to_owned())
            .bind(status.status.clone())
            .bind(at)
            .execute(&mut *tx)
            .await?;
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM rollback_orders WHERE device_id = $1 \
             AND closed_at IS NULL AND delivered_at IS NOT NULL"
        );
        let order = sqlx::query_as::<_, OrderRow>(sqlx::AssertSqlSafe(sql))
            .bind(device_id.to_owned())
            .fetch_optional(&mut *tx)
            .await?
            .map(OrderRow::into_api);
        let closed = match order {
            Some(mut order) => {
                sqlx::query(
                    "UPDATE rollback_orders SET closed_at = $2, outcome = $3 WHERE id = $1",
                )
                .bind(order.id.clone())
                .bind(at)
                .bind(status.status.clone())
                .execute(&mut *tx)
                .await?;
                order.closed_at = Some(at);
                order.outcome = Some(status.status.clone());
                Some(order)
            }
            None => None,
        };
        tx.commit().await?;
        Ok(LegacyStatusOutcome::Recorded { closed })
    }
}
