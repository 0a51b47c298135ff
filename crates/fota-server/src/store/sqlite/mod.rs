//! The store on SQLite through sqlx's `Any` driver: [`SqliteStore`], its connection setup and
//! migrations, and the statements several areas share. Each area's trait is implemented in
//! the file of its name.
//!
//! The SQL is kept portable (`$n` placeholders, TEXT/BIGINT/BLOB, no SQLite-only functions in
//! queries) so that the PostgreSQL store can share it; only connection setup and the
//! transaction-begin statement are SQLite-specific.

use std::path::Path;
use std::time::Duration;

use fota_api::{AuditEntry, Millis, Protocol};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use super::error::{StoreError, StoreResult};
use super::port::{PruneBefore, Pruned, Store};
use super::reports::Report;

mod audit;
mod devices;
mod legacy;
mod releases;
mod reports;
mod rollbacks;
mod roots;
mod tokens;

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
/// which also brings the compile-time-checked query macros this crate keeps out (see the
/// `sqlx` line of the workspace manifest). Descriptions and checksums are what the macro
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
            include_str!("../../../migrations/sqlite/0001_initial.sql"),
        ),
        m(
            2,
            "assignment generation",
            include_str!("../../../migrations/sqlite/0002_assignment_generation.sql"),
        ),
        m(
            3,
            "state set at",
            include_str!("../../../migrations/sqlite/0003_state_set_at.sql"),
        ),
        m(
            4,
            "token expiry",
            include_str!("../../../migrations/sqlite/0004_token_expiry.sql"),
        ),
        m(
            5,
            "device telemetry",
            include_str!("../../../migrations/sqlite/0005_device_telemetry.sql"),
        ),
        m(
            6,
            "root records",
            include_str!("../../../migrations/sqlite/0006_root_records.sql"),
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

async fn insert_report(
    conn: &mut sqlx::AnyConnection,
    device_id: &str,
    protocol: Protocol,
    report: &Report,
    counter: i64,
    at: Millis,
) -> StoreResult<()> {
    let updated = sqlx::query(
        "UPDATE devices SET fw_version = $2, fw_sequence = $3, fw_sha256 = $4, slot = $5, \
         ota_state = $6, last_result = $7, \
         last_seen_at = CASE WHEN last_seen_at IS NULL OR last_seen_at < $8 THEN $8 \
                        ELSE last_seen_at END, \
         agent_format = $9, chip_id = $10, reset_reason = $11, \
         checkin_counter = CASE WHEN $12 = 0 THEN 0 WHEN checkin_counter < $12 THEN $12 \
                           ELSE checkin_counter END \
         WHERE id = $1 AND ($12 = 0 OR checkin_counter <= $12)",
    )
    .bind(device_id.to_owned())
    .bind(report.fw_version.clone())
    .bind(report.fw_sequence)
    .bind(report.fw_sha256.clone())
    .bind(report.slot)
    .bind(report.ota_state.clone())
    .bind(report.last_result.clone())
    .bind(at)
    .bind(report.agent_format)
    .bind(report.chip_id)
    .bind(report.reset_reason)
    .bind(counter)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        // An older check-in than the one applied (or no such device): nothing to record.
        return Ok(());
    }
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
    let protocol: Option<String> = sqlx::query_scalar("SELECT protocol FROM devices WHERE id = $1")
        .bind(device_id.to_owned())
        .fetch_optional(&mut *conn)
        .await?;
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
    async fn next_counter(&self, name: &str) -> StoreResult<u64> {
        let value: i64 = sqlx::query_scalar(
            "INSERT INTO counters (name, value) VALUES ($1, 1) ON CONFLICT (name) \
             DO UPDATE SET value = counters.value + 1 RETURNING value",
        )
        .bind(name.to_owned())
        .fetch_one(&self.pool)
        .await?;
        u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("counter {name} = {value}")))
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
        Ok(sqlx::query_scalar(
            "SELECT image_sha256 FROM releases UNION SELECT hashlist_sha256 FROM releases \
             UNION SELECT sha256 FROM legacy_releases",
        )
        .fetch_all(&self.pool)
        .await?)
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
mod tests;
