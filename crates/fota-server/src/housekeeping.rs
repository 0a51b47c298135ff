//! Background work: batched last-seen writes, retention, blob garbage collection, backups.
//! [`crate::serve`] runs it beside the HTTP application; it calls the same layers below.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use crate::clock::now_ms;
use crate::domain::admission::{self, NotRecorded};
use crate::state::AppState;
use crate::store::{Millis, PruneBefore, Pruned, StoreError};

pub use crate::state::SeenBatcher;

impl AppState {
    /// Writes batched last-seen times now (also done periodically and at shutdown). Legacy
    /// devices the batch could not create (`legacy.max_devices`) are counted and audited as
    /// unrecorded.
    pub async fn flush_seen(&self) -> Result<(), StoreError> {
        let applied = self
            .seen()
            .flush(self.store().as_ref(), self.config().legacy.max_devices)
            .await?;
        for id in &applied.not_created {
            admission::not_recorded(self, id, None, NotRecorded::MaxDevices).await;
        }
        Ok(())
    }
}

fn cutoff(now: Millis, keep: Duration) -> Millis {
    now.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX))
}

/// Deletes history past its retention and unreferenced blobs past the grace period.
pub async fn run_once(state: &AppState) -> Result<(Pruned, usize), StoreError> {
    let config = state.config();
    let now = now_ms();
    let pruned = state
        .store()
        .prune(PruneBefore {
            checkins: cutoff(now, config.retention.checkins),
            events: cutoff(now, config.retention.events),
            audit: cutoff(now, config.retention.audit),
        })
        .await?;
    let keep: HashSet<String> = state
        .store()
        .referenced_blobs()
        .await?
        .into_iter()
        .collect();
    let removed = state
        .blobs()
        .collect_garbage(&keep, config.blob_grace)
        .await
        .map_err(|e| StoreError::Corrupt(format!("blob gc: {e}")))?;
    if pruned != Pruned::default() || removed > 0 {
        tracing::info!(
            checkins = pruned.checkins,
            events = pruned.events,
            audit = pruned.audit,
            blobs = removed,
            "housekeeping removed old records"
        );
    }
    Ok((pruned, removed))
}

/// Runs the periodic tasks until `shutdown` resolves, then flushes once more.
pub(crate) async fn run(state: AppState, shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut shutdown = shutdown;
    let mut flush = tokio::time::interval(state.config().seen_flush);
    let mut house = tokio::time::interval(state.config().housekeeping_interval);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    house.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = flush.tick() => {
                crate::metrics::upkeep();
                if let Err(e) = state.flush_seen().await {
                    tracing::warn!(error = %e, "flushing last-seen times failed; will retry");
                }
            }
            _ = house.tick() => {
                if let Err(e) = run_once(&state).await {
                    tracing::warn!(error = %e, "housekeeping failed");
                }
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    if let Err(e) = state.flush_seen().await {
        tracing::warn!(error = %e, "final flush of last-seen times failed");
    }
}

/// Writes an online, consistent copy of the database to `out` (SQLite `VACUUM INTO`).
///
/// Blobs are not copied: they are immutable and content-addressed, so copying the `blobs/`
/// folder at any time after the backup (e.g. with `cp -r` or rsync) gives a matching set.
/// Restore = put the backup file at `DATA/fota.db` (server stopped) next to the blobs.
pub async fn backup(state: &AppState, out: &Path) -> Result<(), StoreError> {
    state.store().backup_into(out).await
}
