//! Background work: batched last-seen writes, retention, blob garbage collection, backups.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::state::AppState;
use crate::store::{Millis, PruneBefore, Pruned, Seen, SeenApplied, Store, StoreError, now_ms};

/// Contacts noted in memory and written in one transaction per flush, so a device poll costs
/// no write. Losing a batch in a crash loses only `last_seen_at` refinements and progress
/// samples, never an order's state: those are written at once by the handlers.
#[derive(Debug, Default)]
pub struct SeenBatcher {
    pending: Mutex<HashMap<(fota_api::Protocol, String), Seen>>,
}

impl SeenBatcher {
    /// Notes a contact. The latest contact time wins, and so does the latest progress sample,
    /// each with its own time: a newer contact without progress must not make an older sample
    /// look newer than it is (the store drops samples older than the device's last state).
    pub fn note(&self, seen: Seen) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get_mut(&(seen.protocol, seen.device_id.clone())) {
            Some(old) => {
                old.at = old.at.max(seen.at);
                if let Some(p) = seen.progress
                    && old.progress.is_none_or(|o| o.at <= p.at)
                {
                    old.progress = Some(p);
                }
                old.create |= seen.create;
            }
            None => {
                pending.insert((seen.protocol, seen.device_id.clone()), seen);
            }
        }
    }

    /// Writes everything noted so far. On failure the batch is kept for the next flush.
    /// Legacy devices are created under `max_legacy_devices`; the answer names those that
    /// were not.
    pub async fn flush(
        &self,
        store: &dyn Store,
        max_legacy_devices: u64,
    ) -> Result<SeenApplied, StoreError> {
        let batch: Vec<Seen> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().map(|(_, v)| v).collect()
        };
        if batch.is_empty() {
            return Ok(SeenApplied::default());
        }
        match store.apply_seen(&batch, max_legacy_devices).await {
            Ok(applied) => Ok(applied),
            Err(e) => {
                for seen in batch {
                    self.note(seen);
                }
                Err(e)
            }
        }
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
