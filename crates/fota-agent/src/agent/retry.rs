//! The one retry rule: every request is made at most `max_retries` times (at least once),
//! with a backoff between two attempts.

use embedded_storage::nor_flash::NorFlash;

use super::Agent;
use crate::transport::{Platform, Transport};

/// The attempts of one request.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retries {
    failed: u8,
    limit: u8,
}

impl Retries {
    /// A request that may be made `max_retries` times, and at least once.
    pub(super) fn new(max_retries: u8) -> Self {
        Self {
            failed: 0,
            limit: max_retries.max(1),
        }
    }
}

impl<F: NorFlash, T: Transport, P: Platform> Agent<'_, F, T, P> {
    /// After a failed attempt: `false` when it was the last one; otherwise waits the backoff
    /// and returns `true`, to try again.
    pub(super) async fn retry(&mut self, retries: &mut Retries) -> bool {
        if retries.failed.saturating_add(1) >= retries.limit {
            return false;
        }
        let wait = self.backoff_ms(retries.failed);
        retries.failed = retries.failed.saturating_add(1);
        self.platform.sleep_ms(wait).await;
        true
    }

    /// Backoff before retry `attempt` (0-based): 500 ms doubling, never longer than the poll
    /// interval, with up to 25 % random jitter subtracted.
    pub(super) fn backoff_ms(&mut self, attempt: u8) -> u64 {
        let base = 500u64
            .checked_shl(u32::from(attempt.min(16)))
            .unwrap_or(u64::MAX);
        let capped = base.min(self.poll_ms().max(1));
        let mut r = [0u8; 2];
        self.platform.fill_random(&mut r);
        let quarter = capped / 4;
        // At most a quarter: the product is below 2^64 since capped fits a u32 poll interval.
        let jitter = quarter.saturating_mul(u64::from(u16::from_le_bytes(r))) / 65535;
        capped.saturating_sub(jitter)
    }
}
