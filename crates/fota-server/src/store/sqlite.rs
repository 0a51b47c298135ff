//! [`Store`] on SQLite through sqlx's `Any` driver.
//!
//! The SQL is kept portable (`$n` placeholders, TEXT/BIGINT/BLOB, no SQLite-only functions in
//! queries) so that the PostgreSQL store can share it; only connection setup and the
//! transaction-begin statement are SQLite-specific.

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use super::rows::{
    AuditRow, DEVICE_COLUMNS, DEVICE_FROM, DeviceRow, EventRow, ORDER_COLUMNS, OpenOrderRow,
    OrderRow, RELEASE_COLUMNS, ReleaseRow, TokenRow,
};
use super::*;
use fota_api::Role;

/// Writers take the lock up front: a deferred transaction that reads and then writes can fail
/// with `SQLITE_BUSY` at once (no waiting) when another connection wrote in between.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// The SQLite store. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: AnyPool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, switches it to WAL and applies
    /// the migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", path.display());
        // journal_mode=WAL needs an exclusive lock that busy_timeout does not wait for, so it is
        // set once here, with retries for a second process starting at the same moment; the
        // mode is stored in the file and holds for every later connection.
        let mut attempt = 0;
        loop {
            let set_wal = async {
                let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await?;
                sqlx::query("PRAGMA journal_mode=WAL")
                    .execute(&mut conn)
                    .await?;
                sqlx::Connection::close(conn).await
            };
            match set_wal.await {
                Ok(()) => break,
                Err(e) if attempt < 50 => {
                    tracing::debug!(error = %e, "setting WAL mode, retrying");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // FULL: a committed nonce or release must survive power loss, or a replayed
                    // legacy nonce could be accepted again.
                    sqlx::query("PRAGMA synchronous=FULL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout=10000")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        // Two processes starting on a fresh folder may race to apply the same migration; the
        // loser's retry finds it applied.
        let migrator = migrator();
        let mut tries = 0;
        loop {
            match migrator.run(&pool).await {
                Ok(()) => break,
                Err(e) if tries < 5 => {
                    tracing::debug!(error = %e, "applying migrations, retrying");
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Self { pool })
    }

    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(self.pool.begin_with(BEGIN_WRITE).await?)
    }
}

/// The SQLite schema migrations, embedded in the binary.
///
/// Built by hand rather than with `sqlx::migrate!`: that macro needs sqlx's `macros` feature,
/// which compiles the whole SQLite driver (and libsqlite3) a second time for the host and
/// roughly doubled the workspace's build time. Descriptions and checksums are what the macro
/// derives from the file names and contents, so databases migrated either way agree.
fn migrator() -> sqlx::migrate::Migrator {
    use sqlx::SqlStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    let m = |version, description: &'static str, sql: &'static str| {
        Migration::new(
            version,
            description.into(),
            MigrationType::Simple,
            SqlStr::from_static(sql),
            false,
        )
    };
    Migrator::with_migrations(vec![
        m(
            1,
            "initial",
            include_str!("../../migrations/sqlite/0001_initial.sql"),
        ),
        m(
            2,
            "assignment generation",
            include_str!("../../migrations/sqlite/0002_assignment_generation.sql"),
        ),
        m(
            3,
            "state set at",
            include_str!("../../migrations/sqlite/0003_state_set_at.sql"),
        ),
    ])
}

async fn insert_audit(
    conn: &mut sqlx::AnyConnection,
    entry: &AuditEntry,
    at: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(at)
    .bind(entry.actor.clone())
    .bind(entry.action.clone())
    .bind(entry.target.clone())
    .bind(entry.detail.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

const LEGACY_COLUMNS: &str =
    "id, version, size, sha256, chunk_size, total_chunks, created_at, created_by";

fn legacy_from_row(row: &AnyRow) -> StoreResult<LegacyRelease> {
    Ok(LegacyRelease {
        id: row.try_get("id")?,
        version: row.try_get("version")?,
        size: row.try_get("size")?,
        sha256: row.try_get("sha256")?,
        chunk_size: row.try_get("chunk_size")?,
        total_chunks: row.try_get("total_chunks")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}

async fn insert_report(
    conn: &mut sqlx::AnyConnection,
    device_id: &str,
    protocol: Protocol,
    report: &Report,
    at: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE devices SET fw_version = $2, fw_sequence = $3, fw_sha256 = $4, slot = $5, \
         ota_state = $6, last_result = $7, \
         last_seen_at = CASE WHEN last_seen_at IS NULL OR last_seen_at < $8 THEN $8 \
                        ELSE last_seen_at END \
         WHERE id = $1",
    )
    .bind(device_id.to_owned())
    .bind(report.fw_version.clone())
    .bind(report.fw_sequence)
    .bind(report.fw_sha256.clone())
    .bind(report.slot)
    .bind(report.ota_state.clone())
    .bind(report.last_result.clone())
    .bind(at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO checkins (device_id, at, protocol, fw_version, fw_sequence, fw_sha256, \
         slot, ota_state, last_result) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(device_id.to_owned())
    .bind(at)
    .bind(protocol.as_str())
    .bind(report.fw_version.clone())
    .bind(report.fw_sequence)
    .bind(report.fw_sha256.clone())
    .bind(report.slot)
    .bind(report.ota_state.clone())
    .bind(report.last_result.clone())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Next value of a counter inside the caller's transaction.
async fn bump(conn: &mut sqlx::AnyConnection, name: &str) -> StoreResult<i64> {
    Ok(sqlx::query(
        "INSERT INTO counters (name, value) VALUES ($1, 1) ON CONFLICT (name) \
         DO UPDATE SET value = counters.value + 1 RETURNING value",
    )
    .bind(name.to_owned())
    .fetch_one(conn)
    .await?
    .try_get(0)?)
}

/// What a device id names, for the legacy paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegacyRow {
    /// A legacy device (it may have just been created).
    Legacy,
    /// A v2 device: the legacy paths must not touch it.
    V2,
    /// No device, and none was created.
    Missing,
}

/// Finds the device `device_id`; when it is missing and `create_under` is given, creates it as
/// a legacy device unless that many legacy devices exist already. The count and the insert are
/// one statement inside the caller's transaction, so concurrent writers cannot overshoot.
async fn ensure_legacy_device(
    conn: &mut sqlx::AnyConnection,
    device_id: &str,
    at: Millis,
    create_under: Option<u64>,
) -> StoreResult<LegacyRow> {
    let protocol: Option<String> = sqlx::query("SELECT protocol FROM devices WHERE id = $1")
        .bind(device_id.to_owned())
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    match (protocol.as_deref(), create_under) {
        (Some("legacy"), _) => Ok(LegacyRow::Legacy),
        (Some(_), _) => Ok(LegacyRow::V2),
        (None, None) => Ok(LegacyRow::Missing),
        (None, Some(cap)) => {
            let cap = i64::try_from(cap).unwrap_or(i64::MAX);
            let created = sqlx::query(
                "INSERT INTO devices (id, protocol, created_at, state) \
                 SELECT $1, 'legacy', $2, 'idle' \
                 WHERE (SELECT COUNT(*) FROM devices WHERE protocol = 'legacy') < $3 \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(device_id.to_owned())
            .bind(at)
            .bind(cap)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(if created == 1 {
                LegacyRow::Legacy
            } else {
                LegacyRow::Missing
            })
        }
    }
}

/// Sets `state` as of `at`: `state_changed_at` moves when the value changes, `state_set_at`
/// whenever it is written (never backwards).
const SET_STATE: &str = "state_changed_at = CASE WHEN state = $2 THEN state_changed_at \
     ELSE $3 END, state = $2, state_set_at = CASE WHEN state_set_at IS NULL OR \
     state_set_at < $3 THEN $3 ELSE state_set_at END";

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn create_api_token(
        &self,
        token: &ApiToken,
        digest: &[u8; 32],
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, token_hash, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token.id.clone())
        .bind(token.name.clone())
        .bind(token.role.as_str())
        .bind(digest.to_vec())
        .bind(token.created_at)
        .bind(token.created_by.clone())
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit, token.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ensure_bootstrap_token(&self, digest: &[u8; 32], replace: bool) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let existing: Option<Vec<u8>> =
            sqlx::query("SELECT token_hash FROM api_tokens WHERE id = 'bootstrap'")
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        let changed = match (existing, replace) {
            (Some(old), true) if old.as_slice() == digest.as_slice() => false,
            (Some(_), true) => {
                sqlx::query(
                    "UPDATE api_tokens SET token_hash = $1, revoked_at = NULL \
                     WHERE id = 'bootstrap'",
                )
                .bind(digest.to_vec())
                .execute(&mut *tx)
                .await?;
                true
            }
            (Some(_), false) => false,
            (None, _) => {
                let any: i64 = sqlx::query("SELECT COUNT(*) FROM api_tokens")
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
                if any > 0 && !replace {
                    false
                } else {
                    sqlx::query(
                        "INSERT INTO api_tokens (id, name, role, token_hash, created_at, \
                         created_by) VALUES ('bootstrap', 'bootstrap admin', 'admin', $1, $2, \
                         'server')",
                    )
                    .bind(digest.to_vec())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    true
                }
            }
        };
        if changed {
            let entry = AuditEntry {
                actor: "server".into(),
                action: "token.bootstrap".into(),
                target: "token:bootstrap".into(),
                detail: serde_json::json!({ "from_env": replace }),
            };
            insert_audit(&mut tx, &entry, now).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    async fn api_token_by_digest(&self, digest: &[u8; 32]) -> StoreResult<Option<ApiTokenAuth>> {
        let row = sqlx::query(
            "SELECT id, name, role, token_hash, created_at, created_by, revoked_at \
             FROM api_tokens WHERE token_hash = $1",
        )
        .bind(digest.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(ApiTokenAuth {
                token: TokenRow::from_row(&row)?.into_api()?,
                digest: row.try_get("token_hash")?,
            })
        })
        .transpose()
    }

    async fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        sqlx::query(
            "SELECT id, name, role, created_at, created_by, revoked_at FROM api_tokens \
             ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| TokenRow::from_row(row)?.into_api())
        .collect()
    }

    async fn revoke_api_token(&self, id: &str, at: Millis, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let role: Option<String> =
            sqlx::query("SELECT role FROM api_tokens WHERE id = $1 AND revoked_at IS NULL")
                .bind(id.to_owned())
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        let Some(role) = role else {
            return Err(StoreError::NotFound(format!(
                "no active token with id {id:?}"
            )));
        };
        if role == Role::Admin.as_str() {
            // Inside the write transaction, so two revocations racing cannot both pass.
            let others: i64 = sqlx::query(
                "SELECT COUNT(*) FROM api_tokens WHERE role = $1 AND revoked_at IS NULL \
                 AND id <> $2",
            )
            .bind(Role::Admin.as_str())
            .bind(id.to_owned())
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            if others == 0 {
                return Err(StoreError::Refused {
                    code: "last_admin_token",
                    message: format!(
                        "token {id:?} is the last active admin token; create another admin \
                         token first (or recover with `fota server admin-token` on the \
                         server's machine)"
                    ),
                });
            }
        }
        sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1")
            .bind(id.to_owned())
            .bind(at)
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, audit, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_device(&self, device: &NewDevice, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let exists = sqlx::query("SELECT protocol FROM devices WHERE id = $1")
            .bind(device.id.clone())
            .fetch_optional(&mut *tx)
            .await?;
        match exists {
            Some(row) => {
                let protocol: String = row.try_get(0)?;
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
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(|row| DeviceRow::from_row(row)?.into_api())
            .transpose()
    }

    async fn device_protocol(&self, id: &str) -> StoreResult<Option<Protocol>> {
        let protocol: Option<String> = sqlx::query("SELECT protocol FROM devices WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
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
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(class.map(str::to_owned))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| DeviceRow::from_row(row)?.into_api())
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
        let row = sqlx::query(
            "SELECT d.id, d.token_hash, d.revoked_at, d.class, d.fw_version, d.fw_sequence, \
             d.fw_sha256, d.slot, d.ota_state, d.last_result, d.suppressed_release_id, \
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
        let Some(row) = row else { return Ok(None) };
        let device_id: String = row.try_get("id")?;
        let release_id: Option<String> = row.try_get("r_id")?;
        let offer = match release_id {
            Some(release_id) => Some(Offer {
                release_id,
                sequence: row.try_get("r_sequence")?,
                manifest: row.try_get("r_manifest")?,
                image_sha256: row.try_get("r_image")?,
                image_size: row.try_get("r_size")?,
                hashlist_sha256: row.try_get("r_hashlist")?,
                generation: row.try_get::<Option<i64>, _>("r_generation")?.unwrap_or(0),
            }),
            None => None,
        };
        let rollback = OpenOrderRow::from_row(&row)?.map(|o| o.into_api(&device_id));
        Ok(Some(CheckinView {
            device_id,
            digest: row.try_get("token_hash")?,
            revoked_at: row.try_get("revoked_at")?,
            class: row.try_get("class")?,
            report: Report {
                fw_version: row.try_get("fw_version")?,
                fw_sequence: row.try_get("fw_sequence")?,
                fw_sha256: row.try_get("fw_sha256")?,
                slot: row.try_get("slot")?,
                ota_state: row.try_get("ota_state")?,
                last_result: row.try_get("last_result")?,
            },
            suppressed_release_id: row.try_get("suppressed_release_id")?,
            offer,
            rollback,
        }))
    }

    async fn device_by_digest(
        &self,
        digest: &[u8; 32],
    ) -> StoreResult<Option<(String, Vec<u8>, Option<Millis>)>> {
        let row =
            sqlx::query("SELECT id, token_hash, revoked_at FROM devices WHERE token_hash = $1")
                .bind(digest.to_vec())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .transpose()
    }

    async fn blob_access(
        &self,
        digest: &[u8; 32],
        sha256: &str,
    ) -> StoreResult<Option<(String, Vec<u8>, Option<Millis>, bool)>> {
        let row = sqlx::query(
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
        row.map(|r| {
            let offered: i64 = r.try_get(3)?;
            Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, offered == 1))
        })
        .transpose()
    }

    async fn record_report(
        &self,
        device_id: &str,
        protocol: Protocol,
        report: &Report,
        at: Millis,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        insert_report(&mut tx, device_id, protocol, report, at).await?;
        tx.commit().await?;
        Ok(())
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

    async fn add_event(&self, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO events (device_id, at, kind, reason, release_id, bytes_done, \
             bytes_total, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(event.device_id.clone())
        .bind(event.at)
        .bind(event.kind.clone())
        .bind(event.reason.clone())
        .bind(event.release_id.clone())
        .bind(event.bytes_done)
        .bind(event.bytes_total)
        .bind(event.detail.as_ref().map(|d| d.to_string()))
        .execute(&mut *tx)
        .await?;
        if let Some(state) = &event.new_state {
            let sql = format!("UPDATE devices SET {SET_STATE} WHERE id = $1");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(event.device_id.clone())
                .bind(state.as_str().to_owned())
                .bind(event.at)
                .execute(&mut *tx)
                .await?;
        }
        if let (Some(done), Some(total)) = (event.bytes_done, event.bytes_total) {
            sqlx::query(
                "UPDATE devices SET progress_bytes = $2, progress_total = $3, \
                 progress_release_id = COALESCE($4, progress_release_id) WHERE id = $1",
            )
            .bind(event.device_id.clone())
            .bind(done)
            .bind(total)
            .bind(event.release_id.clone())
            .execute(&mut *tx)
            .await?;
        }
        if let Some(release) = &event.suppress_release {
            sqlx::query("UPDATE devices SET suppressed_release_id = $2 WHERE id = $1")
                .bind(event.device_id.clone())
                .bind(release.clone())
                .execute(&mut *tx)
                .await?;
        }
        if let Some(outcome) = &event.close_rollback {
            sqlx::query(
                "UPDATE rollback_orders SET closed_at = $2, outcome = $3 \
                 WHERE device_id = $1 AND closed_at IS NULL AND delivered_at IS NOT NULL",
            )
            .bind(event.device_id.clone())
            .bind(event.at)
            .bind(outcome.clone())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_events(
        &self,
        device_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<DeviceEvent>> {
        sqlx::query(
            "SELECT id, device_id, at, kind, reason, release_id, bytes_done, bytes_total, detail \
             FROM events WHERE device_id = $1 AND ($2 IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(device_id.to_owned())
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| EventRow::from_row(row).map(EventRow::into_api))
        .collect()
    }

    async fn apply_seen(
        &self,
        batch: &[Seen],
        max_legacy_devices: u64,
    ) -> StoreResult<SeenApplied> {
        let mut applied = SeenApplied::default();
        if batch.is_empty() {
            return Ok(applied);
        }
        let mut tx = self.begin().await?;
        for seen in batch {
            if seen.create && seen.protocol == Protocol::Legacy {
                let row = ensure_legacy_device(
                    &mut tx,
                    &seen.device_id,
                    seen.at,
                    Some(max_legacy_devices),
                )
                .await?;
                if row == LegacyRow::Missing {
                    applied.not_created.push(seen.device_id.clone());
                    continue;
                }
            }
            sqlx::query(
                "UPDATE devices SET last_seen_at = CASE WHEN last_seen_at IS NULL OR \
                 last_seen_at < $2 THEN $2 ELSE last_seen_at END WHERE id = $1 AND protocol = $3",
            )
            .bind(seen.device_id.clone())
            .bind(seen.at)
            .bind(seen.protocol.as_str())
            .execute(&mut *tx)
            .await?;
            if let Some(p) = seen.progress {
                sqlx::query(
                    // A finished download keeps the state the device reported since; an
                    // unfinished one is "downloading". A sample not newer than the last state
                    // an event or report set is stale and dropped whole.
                    "UPDATE devices SET progress_bytes = $2, progress_total = $3, \
                     state_changed_at = CASE WHEN state = 'downloading' OR $2 >= $3 \
                     THEN state_changed_at ELSE $4 END, \
                     state = CASE WHEN $2 < $3 THEN 'downloading' ELSE state END, \
                     state_set_at = $4 \
                     WHERE id = $1 AND protocol = $5 \
                     AND (state_set_at IS NULL OR state_set_at < $4)",
                )
                .bind(seen.device_id.clone())
                .bind(p.done)
                .bind(p.total)
                .bind(p.at)
                .bind(seen.protocol.as_str())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(applied)
    }

    async fn create_release(
        &self,
        release: &Release,
        manifest: &[u8],
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let max: Option<i64> = sqlx::query("SELECT MAX(sequence) FROM releases WHERE class = $1")
            .bind(release.class.clone())
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
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
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(|row| ReleaseRow::from_row(row).map(ReleaseRow::into_api))
            .transpose()
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
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(class.to_owned())
            .bind(version.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(|row| ReleaseRow::from_row(row).map(ReleaseRow::into_api))
            .transpose()
    }

    async fn list_releases(&self, class: Option<&str>) -> StoreResult<Vec<Release>> {
        let sql = format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE ($1 IS NULL OR class = $1) \
             ORDER BY class, sequence DESC"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(class.map(str::to_owned))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| ReleaseRow::from_row(row).map(ReleaseRow::into_api))
            .collect()
    }

    async fn list_classes(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT class FROM devices WHERE class IS NOT NULL UNION SELECT class FROM releases \
             ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    async fn assign_devices(
        &self,
        release_id: &str,
        device_ids: &[String],
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let class: Option<String> = sqlx::query("SELECT class FROM releases WHERE id = $1")
            .bind(release_id.to_owned())
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        let class =
            class.ok_or_else(|| StoreError::NotFound(format!("no release {release_id:?}")))?;
        for id in device_ids {
            let row = sqlx::query("SELECT class FROM devices WHERE id = $1 AND protocol = 'v2'")
                .bind(id.clone())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Err(StoreError::NotFound(format!("no v2 device {id:?}")));
            };
            let device_class: Option<String> = row.try_get(0)?;
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
        let rclass: Option<String> = sqlx::query("SELECT class FROM releases WHERE id = $1")
            .bind(release_id.to_owned())
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
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
        let device = sqlx::query("SELECT fw_sha256, class FROM devices WHERE id = $1")
            .bind(order.device_id.clone())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(device) = device else {
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
        let running: Option<String> = device.try_get(0)?;
        let class: Option<String> = device.try_get(1)?;
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
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(device_id.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(|row| OrderRow::from_row(row).map(OrderRow::into_api))
            .transpose()
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
        let order = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(device_id.to_owned())
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(|row| OrderRow::from_row(row).map(OrderRow::into_api))
            .transpose()?;
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
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(device_id.to_owned())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| OrderRow::from_row(row).map(OrderRow::into_api))
            .collect()
    }

    async fn create_legacy_release(
        &self,
        release: &LegacyRelease,
        audit: &AuditEntry,
    ) -> StoreResult<i64> {
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query(
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
        .await?
        .try_get(0)?;
        insert_audit(&mut tx, audit, release.created_at).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn latest_legacy_release(&self) -> StoreResult<Option<LegacyRelease>> {
        let sql = format!("SELECT {LEGACY_COLUMNS} FROM legacy_releases ORDER BY id DESC LIMIT 1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(legacy_from_row)
            .transpose()
    }

    async fn next_counter(&self, name: &str) -> StoreResult<u64> {
        let value: i64 = sqlx::query(
            "INSERT INTO counters (name, value) VALUES ($1, 1) ON CONFLICT (name) \
             DO UPDATE SET value = counters.value + 1 RETURNING value",
        )
        .bind(name.to_owned())
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("counter {name} = {value}")))
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
        insert_report(&mut tx, device_id, Protocol::Legacy, &status.report, at).await?;
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
        let order = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(device_id.to_owned())
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(|row| OrderRow::from_row(row).map(OrderRow::into_api))
            .transpose()?;
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

    async fn list_audit(&self, before: Option<i64>, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        sqlx::query(
            "SELECT id, at, actor, action, target, detail FROM audit \
             WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| AuditRow::from_row(row).map(AuditRow::into_api))
        .collect()
    }

    async fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        insert_audit(&mut conn, entry, now_ms()).await
    }

    async fn prune(&self, before: PruneBefore) -> StoreResult<Pruned> {
        let mut tx = self.begin().await?;
        let checkins = sqlx::query("DELETE FROM checkins WHERE at < $1")
            .bind(before.checkins)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let events = sqlx::query("DELETE FROM events WHERE at < $1")
            .bind(before.events)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let audit = sqlx::query("DELETE FROM audit WHERE at < $1")
            .bind(before.audit)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(Pruned {
            checkins,
            events,
            audit,
        })
    }

    async fn referenced_blobs(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT image_sha256 FROM releases UNION SELECT hashlist_sha256 FROM releases \
             UNION SELECT sha256 FROM legacy_releases",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    async fn backup_into(&self, path: &Path) -> StoreResult<()> {
        let target = path
            .to_str()
            .ok_or_else(|| StoreError::Conflict("backup path is not UTF-8".into()))?;
        if path.exists() {
            return Err(StoreError::Conflict(format!(
                "{} exists; backups never overwrite",
                path.display()
            )));
        }
        // VACUUM INTO takes a literal, not a parameter; quote it as an SQL string.
        let sql = format!("VACUUM INTO '{}'", target.replace('\'', "''"));
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Every file in the migrations folder must be embedded, in order, with the version its
    /// name carries: a new file that is not listed in `migrator()` would silently never run.
    #[test]
    fn every_migration_file_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let migrator = super::migrator();
        assert_eq!(files.len(), migrator.migrations.len(), "{files:?}");
        for (file, m) in files.iter().zip(migrator.migrations.iter()) {
            let (version, rest) = file.split_once('_').unwrap();
            assert_eq!(version.parse::<i64>().unwrap(), m.version, "{file}");
            let description = rest.trim_end_matches(".sql").replace('_', " ");
            assert_eq!(description, m.description, "{file}");
            let sql = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
            assert_eq!(sql, m.sql.as_str(), "{file}");
        }
    }
}
