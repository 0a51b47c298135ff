//! [`ReportStore`] on SQLite.

use fota_api::{DeviceEvent, Millis, Protocol};

use super::{LegacyRow, SET_STATE, SqliteStore, ensure_legacy_device, insert_report};
use crate::store::error::StoreResult;
use crate::store::reports::{NewEvent, Report, ReportStore, Seen, SeenApplied};
use crate::store::rows::EventRow;

#[async_trait::async_trait]
impl ReportStore for SqliteStore {
    async fn record_report(
        &self,
        device_id: &str,
        protocol: Protocol,
        report: &Report,
        counter: i64,
        at: Millis,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        insert_report(&mut tx, device_id, protocol, report, counter, at).await?;
        tx.commit().await?;
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
        Ok(sqlx::query_as::<_, EventRow>(
            "SELECT id, device_id, at, kind, reason, release_id, bytes_done, bytes_total, detail \
             FROM events WHERE device_id = $1 AND ($2 IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(device_id.to_owned())
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(EventRow::into_api)
        .collect())
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
            if let Some(t) = &seen.telemetry {
                sqlx::query(
                    // A sample whose counter is below the one applied is older than what the
                    // row holds (a delayed or replayed check-in): dropped.
                    "UPDATE devices SET uptime_s = $2, free_heap = $3, attributes = $4, \
                     checkin_counter = CASE WHEN checkin_counter < $5 THEN $5 \
                     ELSE checkin_counter END \
                     WHERE id = $1 AND protocol = $6 AND ($5 = 0 OR checkin_counter <= $5)",
                )
                .bind(seen.device_id.clone())
                .bind(t.uptime_s)
                .bind(t.free_heap)
                .bind(t.attributes.clone())
                .bind(t.counter)
                .bind(seen.protocol.as_str())
                .execute(&mut *tx)
                .await?;
            }
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
}
