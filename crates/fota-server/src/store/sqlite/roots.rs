//! [`RootStore`] on SQLite.

use fota_api::AuditEntry;

use super::{SqliteStore, insert_audit};
use crate::store::error::StoreResult;
use crate::store::roots::{RootStore, StoredRoot};

#[async_trait::async_trait]
impl RootStore for SqliteStore {
    async fn root_records(&self) -> StoreResult<Vec<StoredRoot>> {
        let rows: Vec<(i64, Vec<u8>, i64, String)> = sqlx::query_as(
            "SELECT version, record, published_at, published_by FROM root_records \
             ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(version, record, published_at, published_by)| {
                Some(StoredRoot {
                    version: u32::try_from(version).ok()?,
                    record,
                    published_at,
                    published_by,
                })
            })
            .collect())
    }

    async fn add_root_record(
        &self,
        root: &StoredRoot,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO root_records (version, record, published_at, published_by) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (version) DO NOTHING",
        )
        .bind(i64::from(root.version))
        .bind(root.record.clone())
        .bind(root.published_at)
        .bind(root.published_by.clone())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if inserted && let Some(audit) = audit {
            insert_audit(&mut tx, audit, root.published_at).await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }
}
