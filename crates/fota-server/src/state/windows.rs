//! The in-memory side of the legacy rules (see `domain::admission`): per-address rate windows
//! for new legacy devices and the throttles of their audit entries. Losing it (a restart) only
//! resets the windows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window of both rate limits.
const MINUTE: Duration = Duration::from_secs(60);
/// Past this many entries, a map of the windows drops what is older than [`MINUTE`]; past ten
/// times as many, everything (memory stays bounded whatever addresses and ids come in).
const TIDY_AT: usize = 10_000;

/// Rate windows and audit throttles of the legacy rules.
#[derive(Debug, Default)]
pub(crate) struct LegacyWindows {
    /// Per client address: start of its window and new devices admitted in it.
    per_ip: Mutex<HashMap<Option<IpAddr>, (Instant, u32)>>,
    /// Unknown ids admitted lately: a new device polling again before the batch that creates
    /// it is written does not count twice.
    admitted: Mutex<HashMap<String, Instant>>,
    /// Per v2 device: when its last `legacy_request_for_v2_device` entry was written.
    v2_audited: Mutex<HashMap<String, Instant>>,
    /// When the last `legacy.device_not_recorded` entry was written, and how many devices went
    /// unrecorded since.
    not_recorded: Mutex<(Option<Instant>, u64)>,
}

fn tidy<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, at: impl Fn(&V) -> Instant) {
    if map.len() >= TIDY_AT {
        map.retain(|_, v| at(v).elapsed() < MINUTE);
        if map.len() >= TIDY_AT * 10 {
            map.clear();
        }
    }
}

impl LegacyWindows {
    /// Whether `id`, which no device has, may become a new legacy device for a request from
    /// `ip` (counting it against that address's rate if so).
    pub(crate) fn admit_new(&self, id: &str, ip: Option<IpAddr>, per_minute: u32) -> bool {
        let now = Instant::now();
        let mut admitted = self.admitted.lock().unwrap_or_else(|e| e.into_inner());
        if admitted.get(id).is_some_and(|t| t.elapsed() < MINUTE) {
            return true;
        }
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        tidy(&mut per_ip, |v| v.0);
        let window = per_ip.entry(ip).or_insert((now, 0));
        if window.0.elapsed() >= MINUTE {
            *window = (now, 0);
        }
        if window.1 >= per_minute {
            return false;
        }
        window.1 += 1;
        tidy(&mut admitted, |t| *t);
        admitted.insert(id.to_owned(), now);
        true
    }

    /// Whether a `legacy_request_for_v2_device` entry for `id` is due (one a minute).
    pub(crate) fn v2_audit_due(&self, id: &str) -> bool {
        let mut audited = self.v2_audited.lock().unwrap_or_else(|e| e.into_inner());
        if audited.get(id).is_some_and(|t| t.elapsed() < MINUTE) {
            return false;
        }
        tidy(&mut audited, |t| *t);
        audited.insert(id.to_owned(), Instant::now());
        true
    }

    /// Counts one unrecorded device; `Some(n)` when an entry is due, `n` devices since the last.
    pub(crate) fn not_recorded_due(&self) -> Option<u64> {
        let mut g = self.not_recorded.lock().unwrap_or_else(|e| e.into_inner());
        g.1 += 1;
        if g.0.is_some_and(|t| t.elapsed() < MINUTE) {
            return None;
        }
        let n = g.1;
        *g = (Some(Instant::now()), 0);
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_devices_are_limited_per_address_and_counted_once_per_id() {
        let g = LegacyWindows::default();
        let a: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let b: Option<IpAddr> = Some("192.0.2.2".parse().unwrap());
        assert!(g.admit_new("d1", a, 2));
        assert!(g.admit_new("d1", a, 2), "the same id again does not count");
        assert!(g.admit_new("d2", a, 2));
        assert!(
            !g.admit_new("d3", a, 2),
            "a third new id from a is over the rate"
        );
        assert!(g.admit_new("d3", b, 2), "b has its own window");
        assert!(g.admit_new("d1", b, 2), "an admitted id stays admitted");
    }

    #[test]
    fn audits_are_throttled_to_one_a_minute() {
        let g = LegacyWindows::default();
        assert!(g.v2_audit_due("v"));
        assert!(!g.v2_audit_due("v"));
        assert!(g.v2_audit_due("w"));
        assert_eq!(g.not_recorded_due(), Some(1));
        assert_eq!(g.not_recorded_due(), None);
        assert_eq!(g.not_recorded_due(), None);
    }
}
