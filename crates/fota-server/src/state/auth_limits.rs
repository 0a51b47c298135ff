//! The in-memory side of the brute-force limit on credentials: failed authentications per
//! client address and per presented credential in one-minute windows, and the throttle of
//! their audit entries. Losing it (a restart) only resets the windows. Successful requests
//! never touch it, so they are never slowed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window of the limit and of the audit throttle.
const MINUTE: Duration = Duration::from_secs(60);
/// Past this many entries a map drops what is older than [`MINUTE`]; past ten times as many,
/// everything (memory stays bounded whatever addresses and credentials come in).
const TIDY_AT: usize = 10_000;

/// Failures in one window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

/// The limit's counters.
#[derive(Debug, Default)]
pub(crate) struct AuthFailures {
    per_ip: Mutex<HashMap<Option<IpAddr>, Window>>,
    /// Keyed by the first 8 bytes of the presented credential's SHA-256: one credential tried
    /// from many addresses is limited too.
    per_credential: Mutex<HashMap<[u8; 8], Window>>,
    /// Per address: when its last audit entry was written, and failures since then.
    audited: Mutex<HashMap<Option<IpAddr>, (Instant, u64)>>,
}

fn tidy<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, at: impl Fn(&V) -> Instant) {
    if map.len() >= TIDY_AT {
        map.retain(|_, v| at(v).elapsed() < MINUTE);
        if map.len() >= TIDY_AT * 10 {
            map.clear();
        }
    }
}

/// Counts one failure in `key`'s window; how long until it ends when the count is now over
/// `limit`.
fn count<K: std::hash::Hash + Eq>(
    map: &Mutex<HashMap<K, Window>>,
    key: K,
    limit: u32,
    now: Instant,
) -> Option<Duration> {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    tidy(&mut map, |w| w.start);
    let w = map.entry(key).or_insert(Window {
        start: now,
        failures: 0,
    });
    if now.duration_since(w.start) >= MINUTE {
        *w = Window {
            start: now,
            failures: 0,
        };
    }
    w.failures = w.failures.saturating_add(1);
    (w.failures > limit).then(|| MINUTE.saturating_sub(now.duration_since(w.start)))
}

/// Refused requests per client address in one-minute windows, for the legacy device API's
/// limit: legacy devices present no credential, so the address is all there is to count by.
#[derive(Debug, Default)]
pub(crate) struct RequestFailures {
    per_ip: Mutex<HashMap<Option<IpAddr>, Window>>,
}

impl RequestFailures {
    /// Counts one refused request from `ip`; how long until its window ends when the count
    /// is now over `limit`.
    pub(crate) fn fail(&self, ip: Option<IpAddr>, limit: u32) -> Option<Duration> {
        count(&self.per_ip, ip, limit, Instant::now())
    }

    /// How long `ip` stays over `limit`, if it is now (nothing is counted).
    pub(crate) fn blocked(&self, ip: Option<IpAddr>, limit: u32) -> Option<Duration> {
        let map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let w = map.get(&ip)?;
        let age = w.start.elapsed();
        (age < MINUTE && w.failures > limit).then(|| MINUTE.saturating_sub(age))
    }
}

/// What one failed authentication leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Over the limit: refuse with 429 and this `Retry-After`.
    pub(crate) retry_after: Option<Duration>,
    /// An audit entry is due, covering this many failures from the address (this one
    /// included).
    pub(crate) audit: Option<u64>,
}

impl AuthFailures {
    /// Counts a failed authentication from `ip` presenting `credential` (its digest's first
    /// bytes, when one was presented), against `limit` failures a minute each.
    pub(crate) fn fail(
        &self,
        ip: Option<IpAddr>,
        credential: Option<[u8; 8]>,
        limit: u32,
    ) -> Verdict {
        let now = Instant::now();
        let by_ip = count(&self.per_ip, ip, limit, now);
        let by_credential = credential.and_then(|c| count(&self.per_credential, c, limit, now));
        let retry_after = match (by_ip, by_credential) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let mut audited = self.audited.lock().unwrap_or_else(|e| e.into_inner());
        tidy(&mut audited, |v| v.0);
        let audit = match audited.get_mut(&ip) {
            Some((at, since)) if now.duration_since(*at) < MINUTE => {
                *since = since.saturating_add(1);
                None
            }
            Some((at, since)) => {
                let n = since.saturating_add(1);
                *at = now;
                *since = 0;
                Some(n)
            }
            None => {
                audited.insert(ip, (now, 0));
                Some(1)
            }
        };
        Verdict { retry_after, audit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_past_the_limit_and_audited_once_a_minute() {
        let f = AuthFailures::default();
        let ip = Some(IpAddr::from([192, 0, 2, 7]));
        let first = f.fail(ip, None, 3);
        assert_eq!(first.retry_after, None);
        assert_eq!(first.audit, Some(1));
        for _ in 0..2 {
            assert_eq!(
                f.fail(ip, None, 3),
                Verdict {
                    retry_after: None,
                    audit: None
                }
            );
        }
        let over = f.fail(ip, None, 3);
        let wait = over
            .retry_after
            .expect("the fourth failure is over the limit");
        assert!(wait <= MINUTE && wait > Duration::from_secs(50), "{wait:?}");
        // Another address is not affected.
        assert_eq!(
            f.fail(Some(IpAddr::from([192, 0, 2, 8])), None, 3)
                .retry_after,
            None
        );
    }

    #[test]
    fn an_address_over_the_request_limit_stays_blocked_and_others_do_not() {
        let f = RequestFailures::default();
        let ip = Some(IpAddr::from([192, 0, 2, 7]));
        for _ in 0..3 {
            assert_eq!(f.fail(ip, 3), None);
            assert_eq!(f.blocked(ip, 3), None, "at the limit, not over it");
        }
        assert!(f.fail(ip, 3).is_some());
        let wait = f.blocked(ip, 3).expect("blocked");
        assert!(wait <= MINUTE && wait > Duration::from_secs(50), "{wait:?}");
        assert_eq!(f.blocked(Some(IpAddr::from([192, 0, 2, 8])), 3), None);
    }

    #[test]
    fn one_credential_tried_from_many_addresses_is_limited_too() {
        let f = AuthFailures::default();
        let cred = Some([7u8; 8]);
        for i in 0..3u8 {
            assert_eq!(
                f.fail(Some(IpAddr::from([198, 51, 100, i])), cred, 3)
                    .retry_after,
                None
            );
        }
        assert!(
            f.fail(Some(IpAddr::from([198, 51, 100, 9])), cred, 3)
                .retry_after
                .is_some()
        );
    }
}
