//! DESIGN §3's device invariants, checked over the boots a harness observed after injected
//! faults. Both power-cut suites feed their boot histories through [`History`]: the agent's
//! (in-memory servers, every flash operation) and the emulator's (the real server in-process).
//!
//! | invariant | checked by |
//! |---|---|
//! | the device always boots a complete, verified image | [`History::push`]: every boot runs one of the known images (the emulated bootloader verified it in full) |
//! | an unconfirmed image never survives the (k+1)-th boot | [`History::push`]: at most k trial boots of one slot in a row |
//! | a confirmed image is never rolled back except on an explicit order | [`History::push`]: after a boot of a confirmed image, the next boot runs it again or tries a new image |
//! | the running image's bytes are never touched | the harness, around each boot ([`crate::agent::Device::boot`]) |
//! | a resumed download ends with the identical SHA-256 and re-downloads at most one chunk per interruption | [`redownload_within`], and the harness's final image check |
//!
//! A history with an explicit rollback order in it is not one this checker judges: start a
//! new [`History`] after the order.

use fota_protocol::esp::otadata::{BootIndex, OtaState};

/// One boot that reached an application, as the harness saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// The partition that ran.
    pub running: BootIndex,
    /// Its otadata state right after the bootloader's rewrites (`PendingVerify`: a trial boot).
    pub state: Option<OtaState>,
    /// The running slot was VALID when the boot ended, as far as the harness knows (a harness
    /// that sees only boot starts passes `state == Some(Valid)`).
    pub confirmed: bool,
    /// SHA-256 of the image that ran.
    pub image_sha256: [u8; 32],
}

impl Observed {
    /// A trial boot: the image has not been confirmed.
    pub fn is_trial(&self) -> bool {
        self.state == Some(OtaState::PendingVerify)
    }

    fn is_confirmed(&self) -> bool {
        self.confirmed || !matches!(self.state, Some(OtaState::PendingVerify | OtaState::New))
    }
}

/// The boots of one device, checked as they are pushed.
#[derive(Debug, Clone)]
pub struct History {
    boot_attempt_limit: u8,
    known_images: Vec<[u8; 32]>,
    boots: Vec<Observed>,
    /// The slot of the last boot whose image was confirmed.
    confirmed: Option<BootIndex>,
    /// Consecutive trial boots of the last booted slot.
    trial_streak: u32,
}

impl History {
    /// A device whose agent allows `boot_attempt_limit` trial boots (k; ESP-IDF's rule is 1),
    /// and whose flash may hold only `known_images` (by SHA-256).
    pub fn new(boot_attempt_limit: u8, known_images: &[[u8; 32]]) -> Self {
        Self {
            boot_attempt_limit,
            known_images: known_images.to_vec(),
            boots: Vec::new(),
            confirmed: None,
            trial_streak: 0,
        }
    }

    /// The boots so far.
    pub fn boots(&self) -> &[Observed] {
        &self.boots
    }

    /// Records one boot and checks the invariants it can break. The error says which, and at
    /// which boot (1-based).
    pub fn push(&mut self, b: Observed) -> Result<(), String> {
        let n = self.boots.len() + 1;
        if !self.known_images.contains(&b.image_sha256) {
            return Err(format!(
                "boot {n}: {:?} runs an image that is none of the known ones ({})",
                b.running,
                hex::encode(b.image_sha256)
            ));
        }
        let same_slot = self.boots.last().is_some_and(|p| p.running == b.running);
        if b.is_trial() {
            self.trial_streak = if same_slot { self.trial_streak + 1 } else { 1 };
            if self.trial_streak > u32::from(self.boot_attempt_limit) {
                return Err(format!(
                    "boot {n}: the unconfirmed image in {:?} booted {} times (limit {})",
                    b.running, self.trial_streak, self.boot_attempt_limit
                ));
            }
        } else {
            self.trial_streak = 0;
        }
        // A slot found VALID right after a boot of it: that boot confirmed it (a harness that
        // sees boot starts only learns of the confirmation here).
        if same_slot && b.state == Some(OtaState::Valid) {
            self.confirmed = Some(b.running);
        }
        if let Some(c) = self.confirmed
            && c != b.running
            && !b.is_trial()
        {
            return Err(format!(
                "boot {n}: left the confirmed image in {c:?} for {:?} without an order",
                b.running
            ));
        }
        if b.is_confirmed() {
            self.confirmed = Some(b.running);
        }
        self.boots.push(b);
        Ok(())
    }

    /// Pushes every boot of `boots`.
    pub fn extend(&mut self, boots: impl IntoIterator<Item = Observed>) -> Result<(), String> {
        boots.into_iter().try_for_each(|b| self.push(b))
    }

    /// The last boot's image is confirmed and one of `allowed`.
    pub fn ends_confirmed_on(&self, allowed: &[[u8; 32]]) -> Result<(), String> {
        let last = self.boots.last().ok_or("no boot reached an application")?;
        if !allowed.contains(&last.image_sha256) {
            return Err(format!(
                "the last boot runs {}, not an image it may end on",
                hex::encode(last.image_sha256)
            ));
        }
        if !last.is_confirmed() {
            return Err(format!(
                "the last boot's image in {:?} is unconfirmed",
                last.running
            ));
        }
        Ok(())
    }
}

/// A resumed download fetched `extra` bytes beyond a clean one: at most one chunk of
/// `chunk_size` per interruption.
pub fn redownload_within(extra: u64, chunk_size: u64, interruptions: u64) -> Result<(), String> {
    let limit = chunk_size.saturating_mul(interruptions);
    if extra > limit {
        return Err(format!(
            "{extra} bytes fetched again over {interruptions} interruption(s): more than one \
             {chunk_size}-byte chunk each"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: [u8; 32] = [1; 32];
    const NEW: [u8; 32] = [2; 32];

    fn boot(slot: u32, state: OtaState, confirmed: bool, sha: [u8; 32]) -> Observed {
        Observed {
            running: BootIndex::Ota(slot),
            state: Some(state),
            confirmed,
            image_sha256: sha,
        }
    }

    #[test]
    fn an_update_that_is_tried_confirmed_and_kept_passes() {
        let mut h = History::new(1, &[OLD, NEW]);
        h.push(boot(0, OtaState::Valid, true, OLD)).unwrap();
        h.push(boot(1, OtaState::PendingVerify, true, NEW)).unwrap();
        h.push(boot(1, OtaState::Valid, true, NEW)).unwrap();
        h.ends_confirmed_on(&[NEW]).unwrap();
    }

    #[test]
    fn a_failed_trial_returns_to_the_old_image() {
        let mut h = History::new(1, &[OLD, NEW]);
        h.push(boot(0, OtaState::Valid, true, OLD)).unwrap();
        h.push(boot(1, OtaState::PendingVerify, false, NEW))
            .unwrap();
        h.push(boot(0, OtaState::Valid, true, OLD)).unwrap();
        h.ends_confirmed_on(&[OLD, NEW]).unwrap();
    }

    #[test]
    fn a_confirmation_seen_only_at_the_next_boot_counts() {
        let mut h = History::new(1, &[OLD, NEW]);
        h.push(boot(0, OtaState::Valid, true, OLD)).unwrap();
        h.push(boot(1, OtaState::PendingVerify, false, NEW))
            .unwrap();
        h.push(boot(1, OtaState::Valid, true, NEW)).unwrap();
        let e = h.push(boot(0, OtaState::Valid, true, OLD)).unwrap_err();
        assert!(e.contains("left the confirmed image in Ota(1)"), "{e}");
    }

    #[test]
    fn a_second_unconfirmed_boot_is_refused_at_k_1_and_allowed_at_k_2() {
        let boots = [
            boot(1, OtaState::PendingVerify, false, NEW),
            boot(1, OtaState::PendingVerify, false, NEW),
        ];
        let e = History::new(1, &[NEW]).extend(boots).unwrap_err();
        assert!(e.contains("booted 2 times"), "{e}");
        History::new(2, &[NEW]).extend(boots).unwrap();
    }

    #[test]
    fn leaving_a_confirmed_image_for_an_old_one_is_refused() {
        let mut h = History::new(1, &[OLD, NEW]);
        h.push(boot(1, OtaState::PendingVerify, true, NEW)).unwrap();
        let e = h.push(boot(0, OtaState::Valid, true, OLD)).unwrap_err();
        assert!(e.contains("left the confirmed image"), "{e}");
    }

    #[test]
    fn an_unknown_image_is_refused() {
        let e = History::new(1, &[OLD])
            .push(boot(0, OtaState::Valid, true, NEW))
            .unwrap_err();
        assert!(e.contains("none of the known"), "{e}");
    }

    #[test]
    fn redownload_is_bounded_by_a_chunk_per_interruption() {
        redownload_within(4096, 4096, 1).unwrap();
        assert!(redownload_within(4097, 4096, 1).is_err());
        assert!(redownload_within(1, 4096, 0).is_err());
    }
}
