//! [`AuditStore`] on SQLite.

use fota_api::{AuditEntry, AuditRecord};

use super::{SqliteStore, insert_audit};
use crate::clock::now_ms;
use crate::store::audit::AuditStore;
use crate::store::error::StoreResult;
use crate::store::rows::AuditRow;

#[async_trait::async_trait]
impl AuditStore for SqliteStore {
    async fn list_audit(&self, before: Option<i64>, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        Ok(sqlx::query_as::<_, AuditRow>(
            "SELECT id, at, actor, action, target, detail FROM audit \
             WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(AuditRow::into_api)
        .collect())
    }

    async fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        insert_audit(&mut conn, entry, now_ms()).await
    }
}
