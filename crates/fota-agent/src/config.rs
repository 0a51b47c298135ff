//! Provisioning and caller-owned RAM.

/// Which protocol the device speaks, chosen at provisioning. `Debug` shows the PSK as
/// `[redacted]`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode<'a> {
    /// Signed manifests and nonce-bound status statements (the default).
    V2,
    /// The seed's JSON protocol, authenticated with one fleet-wide key. Insecure by design:
    /// anyone holding the key can make the device install anything. Turned off for good by the
    /// journal once the device accepts a v2 manifest.
    Legacy {
        /// The pre-shared key, as bytes.
        psk: &'a [u8],
    },
}

// By hand: a configuration printed to a log or a panic message must not carry the fleet key.
impl core::fmt::Debug for Mode<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::V2 => f.write_str("V2"),
            Self::Legacy { psk: _ } => f
                .debug_struct("Legacy")
                .field("psk", &format_args!("[redacted]"))
                .finish(),
        }
    }
}

/// What the device is and how it behaves; fixed for a boot.
#[derive(Debug, Clone, Copy)]
pub struct DeviceConfig<'a> {
    /// The device's UUID (v2 records).
    pub device_uuid: [u8; 16],
    /// The device's string id (`EcoWatt001`): the legacy `device_id`.
    pub device_name: &'a str,
    /// Vendor UUID the manifests must name.
    pub vendor_id: [u8; 16],
    /// Hardware class UUID the manifests must name.
    pub class_id: [u8; 16],
    /// The provisioned root record (raw signed envelope).
    pub root: &'a [u8],
    /// Protocol.
    pub mode: Mode<'a>,
    /// Trial boots an unconfirmed image gets (k ≥ 1; ESP-IDF's rule is 1).
    pub boot_attempt_limit: u8,
    /// Pause between two chunks, so the device keeps doing its main job.
    pub chunk_interval_ms: u32,
    /// Poll interval when the server gives no hint; also the longest retry backoff.
    pub poll_interval_ms: u32,
    /// A trial boot must pass its health check within this time from boot.
    pub health_check_deadline_ms: u32,
    /// Attempts per request before a poll gives up (at least one is always made).
    pub max_retries: u8,
    /// The chip's `esp_chip_id_t` (`fota_protocol::v2::chip_ids`): manifests for another
    /// chip are refused before any flash write, and check-ins report it.
    pub chip_id: u16,
}

impl<'a> DeviceConfig<'a> {
    /// A v2 configuration with the defaults: k = 1, no pacing, 60 s polls, 60 s health
    /// check, 3 retries, an ESP32.
    pub const fn new(
        device_uuid: [u8; 16],
        device_name: &'a str,
        vendor_id: [u8; 16],
        class_id: [u8; 16],
        root: &'a [u8],
    ) -> Self {
        Self {
            device_uuid,
            device_name,
            vendor_id,
            class_id,
            root,
            mode: Mode::V2,
            boot_attempt_limit: 1,
            chunk_interval_ms: 0,
            poll_interval_ms: 60_000,
            health_check_deadline_ms: 60_000,
            max_retries: 3,
            chip_id: fota_protocol::v2::chip_ids::ESP32,
        }
    }
}

/// Caller-owned RAM: the agent never allocates.
///
/// | buffer | v2 | legacy |
/// |---|---|---|
/// | `chunk` | ≥ the manifest's chunk size (1–64 KiB); also receives check-in answers (≥ 2.2 KiB, + 1.4 KiB per root record carried) | ≥ the legacy chunk size |
/// | `page` | one hash-list page: 4096 bytes; also holds a rotated root record while it is verified | unused (may be empty) |
/// | `io` | request bodies: ≥ 512 bytes (a check-in with its attribute section is at most 462) | one JSON answer: ≥ ⌈chunk/3⌉·4 + 256 bytes (≈ 1.37 × chunk) |
///
/// DESIGN §3 budget: v2 ≤ chunk + one page + 8 KiB; legacy ≤ one JSON body + chunk + 8 KiB.
/// See [`crate::ram`] for what the agent itself takes.
#[derive(Debug)]
pub struct Buffers<'b> {
    /// Chunk data.
    pub chunk: &'b mut [u8],
    /// Request bodies and legacy answers.
    pub io: &'b mut [u8],
    /// One hash-list page.
    pub page: &'b mut [u8],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_legacy_configuration_hides_the_psk() {
        let psk = b"fleet-psk-do-not-print";
        let mut config = DeviceConfig::new([1; 16], "EcoWatt001", [2; 16], [3; 16], &[]);
        config.mode = Mode::Legacy { psk };
        let debug = format!("{config:?}");
        assert!(debug.contains("Legacy { psk: [redacted] }"), "{debug}");
        assert!(!debug.contains("fleet-psk"), "{debug}");
        // Nor as the numbers a byte slice prints as.
        let as_numbers = format!("{:?}", &psk[..]);
        assert!(
            !debug.contains(as_numbers.trim_matches(['[', ']'])),
            "{debug}"
        );
        assert!(
            debug.contains("EcoWatt001"),
            "the rest still shows: {debug}"
        );
        assert_eq!(format!("{:?}", Mode::V2), "V2");
    }
}
