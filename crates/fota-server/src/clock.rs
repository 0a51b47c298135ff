//! The wall clock, in the two units the server stores and signs: unix milliseconds (every
//! stored time) and unix seconds (status statements, expiry checks of signed records).

use fota_api::Millis;

/// The current time as [`Millis`].
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The current time in unix seconds.
pub(crate) fn unix_s() -> u64 {
    u64::try_from(now_ms() / 1000).unwrap_or(0)
}
