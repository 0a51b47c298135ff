//! Per-device legacy keys: `K_dev = HKDF-SHA256(ikm = master PSK, salt = none, info =
//! "fota-legacy" ‖ device_id)`, 32 bytes (security research W1, §B.8).
//!
//! The wire format stays the seed's: a device built with its own key sends its `device_id` on
//! every request (chunk requests included), and the server, which holds the master, derives
//! the same key per request and MACs each answer with it. A key read out of one device then
//! forges answers for that device alone, not for the fleet. The server still holds the
//! master, so a server breach remains a fleet breach.

use core::fmt;

use sha2::Sha256;

/// The HKDF `info` prefix; the device id's bytes follow it.
pub const DEVICE_KEY_INFO: &[u8] = b"fota-legacy";

/// Length of a derived key.
pub const DEVICE_KEY_LEN: usize = 32;

/// One device's legacy key. `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceKey([u8; DEVICE_KEY_LEN]);

impl DeviceKey {
    /// Derives the key of `device_id` (its UTF-8 bytes exactly as the device sends them in
    /// the query, before percent-encoding) from the fleet's `master` PSK.
    pub fn derive(master: &[u8], device_id: &str) -> Self {
        let hkdf = hkdf::Hkdf::<Sha256>::new(None, master);
        let mut okm = [0u8; DEVICE_KEY_LEN];
        // 32 bytes is one HMAC block of output, far below HKDF's 255-block limit, so expand
        // cannot fail; the all-zero fallback is never reached.
        if hkdf
            .expand_multi_info(&[DEVICE_KEY_INFO, device_id.as_bytes()], &mut okm)
            .is_err()
        {
            okm = [0u8; DEVICE_KEY_LEN];
        }
        Self(okm)
    }

    /// The key's bytes: the PSK the device MACs with.
    pub fn as_bytes(&self) -> &[u8; DEVICE_KEY_LEN] {
        &self.0
    }
}

// By hand: a derived key authenticates its device's answers; it is never logged.
impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &[u8] = b"your-32-byte-secret-key-here!!";

    fn hex(bytes: &[u8]) -> std::string::String {
        use core::fmt::Write as _;
        let mut s = std::string::String::new();
        for b in bytes {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    #[test]
    fn derivation_matches_rfc5869_computed_independently() {
        // Python: RFC 5869 with hmac/hashlib, salt = 32 zero bytes (HashLen zeros, what "no
        // salt" means), info = b"fota-legacy" + device id.
        assert_eq!(
            hex(DeviceKey::derive(MASTER, "EcoWatt001").as_bytes()),
            "32f639ae827f7754080b5d10104b94af885121da5a67fb7f2fef29ae70624a33"
        );
        assert_eq!(
            hex(DeviceKey::derive(MASTER, "EcoWatt002").as_bytes()),
            "325e2a62f95d72bc8bf1cd43b6c7e747b273e048916547d043f4d1ddb586a329"
        );
    }

    #[test]
    fn each_device_and_each_master_gives_another_key() {
        let a = DeviceKey::derive(MASTER, "EcoWatt001");
        assert_ne!(a, DeviceKey::derive(MASTER, "EcoWatt0010"));
        assert_ne!(a, DeviceKey::derive(b"another master", "EcoWatt001"));
        assert_ne!(a.as_bytes().as_slice(), MASTER);
    }

    #[test]
    fn debug_hides_the_key() {
        let key = DeviceKey::derive(MASTER, "EcoWatt001");
        let debug = std::format!("{key:?}");
        assert_eq!(debug, "DeviceKey([redacted])");
        assert!(!debug.contains(&hex(&key.as_bytes()[..4])));
    }
}
