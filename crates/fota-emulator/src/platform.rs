//! The agent's [`Platform`] on the host: tokio time, a seeded or OS-seeded RNG, and the
//! application's self-test.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use fota_agent::Platform;

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
        }
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
}
