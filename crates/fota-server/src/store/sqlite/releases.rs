//! [`ReleaseStore`] on SQLite.

use fota_api::{AuditEntry, Millis, Release};

use super::{SqliteStore, insert_audit};
use crate::clock::now_ms;
use crate::store::error::{StoreError, StoreResult};
use crate::store::releases::ReleaseStore;
use crate::store::rows::{RELEASE_COLUMNS, ReleaseRow};

/// Next value of a counter inside the caller's transaction.
async fn bump(conn: &mut sqlx::AnyConnection, name: &str) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO counters (name, value) VALUES ($1, 1) ON CONFLICT (name) \
         DO UPDATE SET value = counters.value + 1 RETURNING value",
    )
    .bind(name.to_owned())
    .fetch_one(conn)
    .await?)
}

#[async_trait::async_trait]
impl ReleaseStore for SqliteStore {
    async fn create_release(
        &self,
        release: &Release,
        manifest: &[u8],
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let max: Option<i64> =
            sqlx::query_scalar("SELECT MAX(sequence) FROM releases WHERE class = $1")
                .bind(release.class.clone())
                .fetch_one(&mut *tx)
                .await?;
        if let Some(max) = max
            && release.sequence <= max
        {
            return Err(StoreError::Conflict(format!(
                "sequence {} is not above the highest of class {:?} ({max})",
                release.sequence, release.class
            )));
        }
        let dup = sqlx::query("SELECT id FROM releases WHERE class = $1 AND version = $2")
            .bind(release.class.clone())
            .bind(release.version.clone())
            .fetch_optional(&mut *tx)
            .await?;
        if dup.is_some() {
            return Err(StoreError::Conflict(format!(
                "class {:?} already has a release with version {:?}",
                release.class, release.version
            )));
        }
        sqlx::query(
            "INSERT INTO releases (id, class, class_id, sequence, security_counter, version, \
             project, image_sha256, image_size, chunk_size, chunk_count, hashlist_sha256, \
             hashlist_size, manifest, manifest_digest, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(release.id.clone())
        .bind(release.class.clone())
        .bind(release.class_id.clone())
        .bind(release.sequence)
        .bind(release.security_counter)
        .bind(release.version.clone())
        .bind(release.project.clone())
        .bind(release.image_sha256.clone())
        .bind(release.image_size)
        .bind(release.chunk_size)
        .bind(release.chunk_count)
        .bind(release.hashlist_sha256.clone())
        .bind(release.hashlist_size)
        .bind(manifest.to_vec())
        .bind(release.manifest_digest.clone())
        .bind(release.created_at)
        .bind(release.created_by.clone())
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit, release.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn release(&self, id: &str) -> StoreResult<Option<Release>> {
        let sql = format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE id = $1");
        Ok(sqlx::query_as::<_, ReleaseRow>(sqlx::AssertSqlSafe(sql))
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .map(ReleaseRow::into_api))
    }

    async fn release_manifest(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT manifest FROM releases WHERE id = $1")
                .bind(id.to_owned())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn release_by_version(&self, class: &str, version: &str) -> StoreResult<Option<Release>> {
        let sql =
            format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE class = $1 AND version = $2");
        Ok(sqlx::query_as::<_, ReleaseRow>(sqlx::AssertSqlSafe(sql))
            .bind(class.to_owned())
            .bind(version.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .map(ReleaseRow::into_api))
    }

    async fn list_releases(&self, class: Option<&str>) -> StoreResult<Vec<Release>> {
        let sql = format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE ($1 IS NULL OR class = $1) \
             ORDER BY class, sequence DESC"
        );
        Ok(sqlx::query_as::<_, ReleaseRow>(sqlx::AssertSqlSafe(sql))
            .bind(class.map(str::to_owned))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(ReleaseRow::into_api)
            .collect())
    }

    async fn list_classes(&self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT class FROM devices WHERE class IS NOT NULL UNION SELECT class FROM releases \
             ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn assign_devices(
        &self,
        release_id: &str,
        device_ids: &[String],
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let class: Option<String> = sqlx::query_scalar("SELECT class FROM releases WHERE id = $1")
            .bind(release_id.to_owned())
            .fetch_optional(&mut *tx)
            .await?;
        let class =
            class.ok_or_else(|| StoreError::NotFound(format!("no release {release_id:?}")))?;
        for id in device_ids {
            // Outer None: no such device; inner None: a device without a class.
            let row: Option<Option<String>> =
                sqlx::query_scalar("SELECT class FROM devices WHERE id = $1 AND protocol = 'v2'")
                    .bind(id.clone())
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(device_class) = row else {
                return Err(StoreError::NotFound(format!("no v2 device {id:?}")));
            };
            if device_class.as_deref() != Some(class.as_str()) {
                return Err(StoreError::Conflict(format!(
                    "device {id:?} is of class {:?}, the release of class {class:?}",
                    device_class.unwrap_or_default()
                )));
            }
            // An explicit assignment lifts a suppression: the operator asks for it again.
            let generation = bump(&mut tx, "assignment").await?;
            sqlx::query(
                "UPDATE devices SET assigned_release_id = $2, suppressed_release_id = NULL, \
                 assigned_generation = $3 WHERE id = $1",
            )
            .bind(id.clone())
            .bind(release_id.to_owned())
            .bind(generation)
            .execute(&mut *tx)
            .await?;
        }
        insert_audit(&mut tx, audit, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn assign_class(
        &self,
        class: &str,
        release_id: &str,
        at: Millis,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let rclass: Option<String> = sqlx::query_scalar("SELECT class FROM releases WHERE id = $1")
            .bind(release_id.to_owned())
            .fetch_optional(&mut *tx)
            .await?;
        match rclass {
            None => return Err(StoreError::NotFound(format!("no release {release_id:?}"))),
            Some(c) if c != class => {
                return Err(StoreError::Conflict(format!(
                    "release {release_id:?} is of class {c:?}, not {class:?}"
                )));
            }
            Some(_) => {}
        }
        let generation = bump(&mut tx, "assignment").await?;
        sqlx::query(
            "INSERT INTO class_assignments (class, release_id, assigned_at, assigned_by, \
             generation) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (class) DO UPDATE SET \
             release_id = excluded.release_id, assigned_at = excluded.assigned_at, \
             assigned_by = excluded.assigned_by, generation = excluded.generation",
        )
        .bind(class.to_owned())
        .bind(release_id.to_owned())
        .bind(at)
        .bind(audit.actor.clone())
        .bind(generation)
        .execute(&mut *tx)
        .await?;
        // Devices of the class follow the class again, and may take a release they were
        // suppressed from only if it is explicitly this new one.
        sqlx::query(
            "UPDATE devices SET assigned_release_id = NULL, suppressed_release_id = CASE WHEN \
             suppressed_release_id = $2 THEN NULL ELSE suppressed_release_id END WHERE class = $1",
        )
        .bind(class.to_owned())
        .bind(release_id.to_owned())
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit, at).await?;
        tx.commit().await?;
        Ok(())
    }
}
