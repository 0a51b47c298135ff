//! The agent's [`Platform`] on the host: tokio time, a seeded or OS-seeded RNG, and the
//! application's self-test.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use fota_agent::Platform;
use fota_protocol::v2::checkin::{Attributes, Telemetry};

/// Why the emulated chip last reset, as `esp_reset_reason_t` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetCause {
    /// Power was applied (`ESP_RST_POWERON`).
    PowerOn = 1,
    /// The software asked for it (`ESP_RST_SW`): the agent's reset after a switch.
    Software = 3,
}

/// Clock since this boot, sleep, randomness, and the self-test of the running image.
///
/// The self-test passes unless the running image was built with `fota image build
/// --boot-fails` (the `BOOT_FAILS_MARKER` in its app descriptor): that is how an image that
/// never confirms itself is made.
#[derive(Debug)]
pub struct EmuPlatform {
    booted_at: Instant,
    rng: StdRng,
    healthy: bool,
    reset: ResetCause,
    attributes: Attributes,
}

impl EmuPlatform {
    /// A platform for one boot. `seed` makes nonces and jitter reproducible (tests); `None`
    /// draws them from the OS.
    pub fn new(seed: Option<u64>, image_boot_fails: bool) -> Self {
        let rng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => rand::make_rng(),
        };
        Self {
            booted_at: Instant::now(),
            rng,
            healthy: !image_boot_fails,
            reset: ResetCause::PowerOn,
            attributes: Attributes::EMPTY,
        }
    }

    /// The cause of the reset this boot follows.
    #[must_use]
    pub fn with_reset(mut self, cause: ResetCause) -> Self {
        self.reset = cause;
        self
    }

    /// The application attributes check-ins report. Entries the section cannot hold (bad
    /// key, too long, over 256 bytes) were refused where the options were read; any left
    /// are skipped here with a warning rather than sent malformed.
    #[must_use]
    pub fn with_attributes(mut self, attributes: &[(String, String)]) -> Self {
        for (key, value) in attributes {
            if let Err(e) = self.attributes.push(key, value) {
                tracing::warn!(%key, error = %e, "attribute not reported");
            }
        }
        self
    }
}

impl Platform for EmuPlatform {
    fn now_ms(&mut self) -> u64 {
        u64::try_from(self.booted_at.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn sleep_ms(&mut self, ms: u64) {
        tokio::time::sleep(core::time::Duration::from_millis(ms)).await;
    }

    fn fill_random(&mut self, buf: &mut [u8]) {
        self.rng.fill_bytes(buf);
    }

    fn self_test(&mut self) -> bool {
        self.healthy
    }

    // The emulator models no heap, so free_heap stays "not known".
    fn telemetry(&mut self, telemetry: &mut Telemetry) {
        telemetry.reset_reason = self.reset as u8;
        telemetry.attributes = self.attributes.clone();
    }
}
