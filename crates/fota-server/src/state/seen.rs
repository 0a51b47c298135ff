//! Contacts noted in memory and written in batches.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::{Seen, SeenApplied, Store, StoreError};

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
                // Counters order samples of agents that keep one; otherwise (or when the
                // agent changed in between) the arrival time does.
                if let Some(t) = seen.telemetry
                    && old.telemetry.as_ref().is_none_or(|o| {
                        if o.counter != 0 && t.counter != 0 {
                            o.counter <= t.counter
                        } else {
                            o.at <= t.at
                        }
                    })
                {
                    old.telemetry = Some(t);
                }
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
