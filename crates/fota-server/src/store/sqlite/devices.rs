//! [`DeviceStore`] on SQLite.

use fota_api::{AuditEntry, Device, Millis, Protocol};

use super::{SqliteStore, insert_audit};
use crate::clock::now_ms;
use crate::store::devices::{CheckinView, DeviceStore, NewDevice};
use crate::store::error::{StoreError, StoreResult};
use crate::store::rows::{CheckinRow, DEVICE_COLUMNS, DEVICE_FROM, DeviceRow};

#[async_trait::async_trait]
impl DeviceStore for SqliteStore {
    async fn create_device(&self, device: &NewDevice, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT protocol FROM devices WHERE id = $1")
                .bind(device.id.clone())
                .fetch_optional(&mut *tx)
                .await?;
        match exists {
            Some(protocol) => {
                if protocol != "legacy" {
                    return Err(StoreError::Conflict(format!(
                        "device {:?} already exists",
                        device.id
                    )));
                }
                // A legacy device moving to v2 keeps its history.
                sqlx::query(
                    "UPDATE devices SET uuid = $2, class = $3, protocol = 'v2', token_hash = $4, \
                     revoked_at = NULL WHERE id = $1",
                )
                .bind(device.id.clone())
                .bind(device.uuid.clone())
                .bind(device.class.clone())
                .bind(device.digest.to_vec())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO devices (id, uuid, class, protocol, token_hash, created_at, \
                     state) VALUES ($1, $2, $3, 'v2', $4, $5, 'idle')",
                )
                .bind(device.id.clone())
                .bind(device.uuid.clone())
                .bind(device.class.clone())
                .bind(device.digest.to_vec())
                .bind(device.created_at)
                .execute(&mut *tx)
                .await?;
            }
        }
        insert_audit(&mut tx, audit, device.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn device(&self, id: &str) -> StoreResult<Option<Device>> {
        let sql = format!("SELECT {DEVICE_COLUMNS} {DEVICE_FROM} WHERE d.id = $1");
        sqlx::query_as::<_, DeviceRow>(sqlx::AssertSqlSafe(sql))
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .map(DeviceRow::into_api)
            .transpose()
    }

    async fn device_protocol(&self, id: &str) -> StoreResult<Option<Protocol>> {
        let protocol: Option<String> =
            sqlx::query_scalar("SELECT protocol FROM devices WHERE id = $1")
                .bind(id.to_owned())
                .fetch_optional(&self.pool)
                .await?;
        protocol
            .map(|p| {
                Protocol::parse(&p).map_err(|e| StoreError::Corrupt(format!("device {id:?}: {e}")))
            })
            .transpose()
    }

    async fn delete_device(&self, id: &str, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM devices WHERE id = $1")
            .bind(id.to_owned())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no device {id:?}")));
        }
        // The history goes with it: a device provisioned later under the same name must not
        // inherit another device's events or orders.
        for table in ["events", "checkins", "rollback_orders"] {
            let sql = format!("DELETE FROM {table} WHERE device_id = $1");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id.to_owned())
                .execute(&mut *tx)
                .await?;
        }
        insert_audit(&mut tx, audit, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_devices(&self, class: Option<&str>) -> StoreResult<Vec<Device>> {
        let sql = format!(
            "SELECT {DEVICE_COLUMNS} {DEVICE_FROM} WHERE ($1 IS NULL OR d.class = $1) ORDER BY d.id"
        );
        sqlx::query_as::<_, DeviceRow>(sqlx::AssertSqlSafe(sql))
            .bind(class.map(str::to_owned))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(DeviceRow::into_api)
            .collect()
    }

    async fn set_device_token(
        &self,
        id: &str,
        digest: &[u8; 32],
        reactivate: bool,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE devices SET token_hash = $2, revoked_at = NULL \
             WHERE id = $1 AND protocol = 'v2' AND (revoked_at IS NULL OR $3)",
        )
        .bind(id.to_owned())
        .bind(digest.to_vec())
        .bind(reactivate)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            let revoked: Option<Option<Millis>> = sqlx::query_scalar(
                "SELECT revoked_at FROM devices WHERE id = $1 AND protocol = 'v2'",
            )
            .bind(id.to_owned())
            .fetch_optional(&mut *tx)
            .await?;
            return Err(match revoked {
                Some(Some(_)) => StoreError::Refused {
                    code: "device_revoked",
                    message: format!(
                        "device {id:?} is revoked; a rotation with reactivate=true gives it a \
                         new credential and re-enables it"
                    ),
                },
                _ => StoreError::NotFound(format!("no v2 device {id:?}")),
            });
        }
        insert_audit(&mut tx, audit, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_device(&self, id: &str, at: Millis, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE devices SET revoked_at = $2 WHERE id = $1 AND protocol = 'v2' \
             AND revoked_at IS NULL",
        )
        .bind(id.to_owned())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "no v2 device {id:?} with an active credential"
            )));
        }
        insert_audit(&mut tx, audit, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn checkin_view(&self, digest: &[u8; 32]) -> StoreResult<Option<CheckinView>> {
        let row = sqlx::query_as::<_, CheckinRow>(
            "SELECT d.id, d.token_hash, d.revoked_at, d.class, d.fw_version, d.fw_sequence, \
             d.fw_sha256, d.slot, d.ota_state, d.last_result, d.suppressed_release_id, \
             d.agent_format, d.chip_id, d.reset_reason, d.checkin_counter, \
             r.id AS r_id, r.sequence AS r_sequence, r.manifest AS r_manifest, \
             r.image_sha256 AS r_image, r.image_size AS r_size, r.hashlist_sha256 AS r_hashlist, \
             CASE WHEN d.assigned_release_id IS NOT NULL THEN d.assigned_generation \
             ELSE ca.generation END AS r_generation, \
             o.id AS o_id, o.reason AS o_reason, o.created_at AS o_created_at, \
             o.created_by AS o_created_by, o.delivered_at AS o_delivered_at \
             FROM devices d \
             LEFT JOIN class_assignments ca ON ca.class = d.class \
             LEFT JOIN releases r ON r.id = COALESCE(d.assigned_release_id, ca.release_id) \
             LEFT JOIN rollback_orders o ON o.device_id = d.id AND o.closed_at IS NULL \
             WHERE d.token_hash = $1",
        )
        .bind(digest.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        row.map(CheckinRow::into_view).transpose()
    }

    async fn device_by_digest(
        &self,
        digest: &[u8; 32],
    ) -> StoreResult<Option<(String, Vec<u8>, Option<Millis>)>> {
        Ok(
            sqlx::query_as("SELECT id, token_hash, revoked_at FROM devices WHERE token_hash = $1")
                .bind(digest.to_vec())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn blob_access(
        &self,
        digest: &[u8; 32],
        sha256: &str,
    ) -> StoreResult<Option<(String, Vec<u8>, Option<Millis>, bool)>> {
        let row: Option<(String, Vec<u8>, Option<Millis>, i64)> = sqlx::query_as(
            "SELECT d.id, d.token_hash, d.revoked_at, \
             CASE WHEN r.image_sha256 = $2 OR r.hashlist_sha256 = $2 THEN 1 ELSE 0 END \
             FROM devices d \
             LEFT JOIN class_assignments ca ON ca.class = d.class \
             LEFT JOIN releases r ON r.id = COALESCE(d.assigned_release_id, ca.release_id) \
             WHERE d.token_hash = $1",
        )
        .bind(digest.to_vec())
        .bind(sha256.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id, digest, revoked_at, offered)| (id, digest, revoked_at, offered == 1)))
    }
}
