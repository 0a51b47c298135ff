//! Startup and trial: finish what the journal says was in flight, run a trial boot's health
//! check, confirm it or let the bootloader roll it back.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::esp::otadata::{OtaState, Otadata};
use fota_protocol::v2::{EventKind, FixedStr, ReasonCode};

use super::{Agent, ResetReason, StartupOutcome};
use crate::config::Mode;
use crate::error::AgentError;
use crate::journal::{
    Blob, JournalState, Pending, Protocol, Rejected, Release, Report, UpdateState,
};
use crate::layout::Running;
use crate::otadata;
use crate::transport::{Platform, Transport};

/// Most health-check attempts in one trial boot, whatever the clock says.
const HEALTH_CHECK_MAX_TRIES: u8 = 64;

/// What reconcile decided.
enum Next {
    Ready,
    Reset(ResetReason),
    Trial { attempt: u8 },
}

/// One trial boot's verdict.
enum Health {
    Pass,
    Fail,
}

/// What otadata says about the running app, as reconcile sees it.
struct Found {
    ota: Otadata,
    /// The running app's entry state.
    running: Option<OtaState>,
    /// The running app's entry is in a trial state (NEW, PENDING_VERIFY, or torn).
    trial: bool,
}

impl<F: NorFlash, T: Transport, P: Platform> Agent<'_, F, T, P> {
    /// First thing after boot: finish what the journal says was in flight, run a trial's
    /// health check, and deliver the outcome of a rollback before any poll.
    pub async fn startup(&mut self) -> StartupOutcome {
        self.started = true;
        let outcome = match self.reconcile() {
            Ok(Next::Ready) => StartupOutcome::Ready,
            Ok(Next::Reset(r)) => StartupOutcome::ResetRequired(r),
            Ok(Next::Trial { attempt }) => match self.trial(attempt).await {
                Ok(o) => o,
                Err(e) => StartupOutcome::Error(e),
            },
            Err(e) => StartupOutcome::Error(e),
        };
        if outcome == StartupOutcome::Ready {
            // Best effort here; poll() insists before it checks in.
            let _ = self.deliver_report().await;
        }
        outcome
    }

    fn reconcile(&mut self) -> Result<Next, AgentError> {
        let ota = self.otadata()?;
        let running = otadata::running_state(&ota, &self.layout, self.running);
        let found = Found {
            ota,
            running,
            trial: matches!(
                running,
                Some(OtaState::PendingVerify | OtaState::New | OtaState::Other(_))
            ),
        };
        let js = self.journal.state().clone();
        match js.state {
            UpdateState::Idle => self.reconcile_idle(&js, &found),
            UpdateState::Downloading(p) => {
                if self.runs(&p) {
                    // The journal says we write the slot we run from: it cannot be trusted.
                    self.fail_pending(ReasonCode::Internal, false)?;
                }
                Ok(Next::Ready)
            }
            UpdateState::Staged(p) => self.reconcile_staged(&js, &p, &found),
            UpdateState::Trial {
                pending,
                attempts,
                health_failed,
            } => self.reconcile_trial(&js, pending, attempts, health_failed, &found),
            UpdateState::Confirming { pending } => {
                let confirming_running = pending.as_ref().is_none_or(|p| self.runs(p));
                if confirming_running
                    && found.running.is_some()
                    && matches!(self.running, Running::Ota(_))
                {
                    if found.running != Some(OtaState::Valid) {
                        self.mark_valid()?;
                    }
                    self.finish_confirm()?;
                } else {
                    // Cut inside mark_valid: the entry was erased and the bootloader went back.
                    // The release passed its health check, so it is not rejected.
                    self.rolled_back(ReasonCode::ConfirmInterrupted, false)?;
                }
                Ok(Next::Ready)
            }
            UpdateState::RollingBack { order_id } => {
                self.reconcile_rolling_back(&js, order_id, &found)
            }
        }
    }

    /// Whether the device runs the target slot of `p`.
    fn runs(&self, p: &Pending) -> bool {
        self.running == Running::Ota(p.target_slot)
    }

    fn reconcile_idle(&mut self, js: &JournalState, found: &Found) -> Result<Next, AgentError> {
        if found.trial && matches!(self.running, Running::Ota(_)) {
            // A trial the journal did not expect (journal lost, or flashed by a tool): it
            // still gets a real health check before anything confirms it.
            let mut next = js.clone();
            next.state = UpdateState::Trial {
                pending: None,
                attempts: 1,
                health_failed: false,
            };
            self.commit(&next, Blob::Drop)?;
            return Ok(Next::Trial { attempt: 1 });
        }
        Ok(Next::Ready)
    }

    fn reconcile_staged(
        &mut self,
        js: &JournalState,
        p: &Pending,
        found: &Found,
    ) -> Result<Next, AgentError> {
        if self.runs(p) {
            if found.running == Some(OtaState::Valid) {
                self.finish_confirm()?;
                return Ok(Next::Ready);
            }
            let mut next = js.clone();
            next.state = UpdateState::Trial {
                pending: Some(*p),
                attempts: 1,
                health_failed: false,
            };
            self.commit(&next, Blob::Keep)?;
            return Ok(Next::Trial { attempt: 1 });
        }
        let app_count = u32::from(self.layout.app_count());
        match found.ota.state_of_slot(u32::from(p.target_slot), app_count) {
            Some(OtaState::New) => Ok(Next::Reset(ResetReason::BootNewImage)),
            None => {
                if self.complete_switch(p)? {
                    Ok(Next::Reset(ResetReason::BootNewImage))
                } else {
                    Ok(Next::Ready)
                }
            }
            // The bootloader tried it and went back (aborted, or it did not load).
            Some(_) => {
                self.rolled_back(ReasonCode::NotConfirmed, true)?;
                Ok(Next::Ready)
            }
        }
    }

    fn reconcile_trial(
        &mut self,
        js: &JournalState,
        pending: Option<Pending>,
        attempts: u8,
        health_failed: bool,
        found: &Found,
    ) -> Result<Next, AgentError> {
        let trial_on_running = match &pending {
            Some(p) => self.runs(p),
            None => found.trial,
        };
        if !(trial_on_running && matches!(self.running, Running::Ota(_))) {
            let reason = if health_failed {
                ReasonCode::HealthCheckFailed
            } else {
                ReasonCode::NotConfirmed
            };
            self.rolled_back(reason, true)?;
            return Ok(Next::Ready);
        }
        match found.running {
            Some(OtaState::Valid) => {
                self.finish_confirm()?;
                Ok(Next::Ready)
            }
            _ if found.trial => {
                let attempt = attempts.saturating_add(1);
                let mut next = js.clone();
                next.state = UpdateState::Trial {
                    pending,
                    attempts: attempt,
                    health_failed,
                };
                self.commit(&next, Blob::Keep)?;
                Ok(Next::Trial { attempt })
            }
            _ => {
                // Running the release, yet no entry selects it any more (both entries lost):
                // nothing can confirm it. Drop the trial and say so; the next reset boots
                // whatever otadata selects.
                self.fail_pending(ReasonCode::Internal, false)?;
                if self.journal.state().state != UpdateState::Idle {
                    let mut next = self.journal.state().clone();
                    next.state = UpdateState::Idle;
                    self.commit(&next, Blob::Drop)?;
                }
                Ok(Next::Ready)
            }
        }
    }

    fn reconcile_rolling_back(
        &mut self,
        js: &JournalState,
        order_id: u64,
        found: &Found,
    ) -> Result<Next, AgentError> {
        if self.running.slot_code() != js.rollback_from {
            self.rollback_done(order_id)?;
            return Ok(Next::Ready);
        }
        // Still on the slot we leave: the INVALID mark never landed. Do it again.
        let refusal = if found.running.is_some_and(OtaState::is_selectable) {
            self.rollback_refusal()?
        } else {
            Some(ReasonCode::RollbackImpossible)
        };
        match refusal {
            None => {
                self.mark_invalid()?;
                Ok(Next::Reset(ResetReason::RollbackMarked))
            }
            Some(reason) => {
                self.refuse_rollback(order_id, reason)?;
                Ok(Next::Ready)
            }
        }
    }

    async fn trial(&mut self, attempt: u8) -> Result<StartupOutcome, AgentError> {
        let limit = self.config.boot_attempt_limit.max(1);
        let ota = self.otadata()?;
        let rstate = otadata::running_state(&ota, &self.layout, self.running);
        let active_is_running = otadata::active_slot(&ota, &self.layout)
            .is_some_and(|(_, slot)| Running::Ota(slot) == self.running);
        let rearmed = attempt < limit && active_is_running;
        if rearmed {
            // Re-arm before the health check, so a crash or a cut during the trial also counts
            // as one failed attempt instead of ending the trial at once.
            if let Some(op) = otadata::rewrite_active(&ota, OtaState::New) {
                otadata::apply_op(&mut self.storage, &self.layout, &op)?;
            }
        }
        let (id, version) = self.pending_identity();
        self.event(EventKind::BootedOnTrial, ReasonCode::None, id, version, 0)
            .await;
        match self.health_check().await {
            Health::Pass => {
                let mut next = self.journal.state().clone();
                next.state = UpdateState::Confirming {
                    pending: next.pending().copied(),
                };
                self.commit(&next, Blob::Keep)?;
                self.mark_valid()?;
                self.finish_confirm()?;
                Ok(StartupOutcome::Ready)
            }
            Health::Fail => {
                let mut next = self.journal.state().clone();
                if let UpdateState::Trial {
                    pending, attempts, ..
                } = next.state
                {
                    next.state = UpdateState::Trial {
                        pending,
                        attempts,
                        health_failed: true,
                    };
                    self.commit(&next, Blob::Keep)?;
                }
                self.note(None, ReasonCode::HealthCheckFailed);
                if rearmed || rstate == Some(OtaState::PendingVerify) {
                    return Ok(StartupOutcome::ResetRequired(
                        ResetReason::HealthCheckFailed,
                    ));
                }
                // NEW seen at startup (a bootloader without rollback) or a torn state: nothing
                // will abort this image for us, so mark it invalid if there is somewhere to go.
                if active_is_running && self.rollback_possible()? {
                    self.mark_invalid()?;
                    return Ok(StartupOutcome::ResetRequired(
                        ResetReason::HealthCheckFailed,
                    ));
                }
                Ok(StartupOutcome::Ready)
            }
        }
    }

    async fn health_check(&mut self) -> Health {
        // now_ms counts from this boot, so the deadline is absolute.
        let deadline = u64::from(self.config.health_check_deadline_ms);
        let mut attempt = 0u8;
        loop {
            let reached = match self.config.mode {
                Mode::V2 => self.v2_checkin().await.is_ok(),
                Mode::Legacy { .. } => {
                    let (_, version) = self.pending_identity();
                    self.legacy_status("booted_on_trial", version.as_str(), "none")
                        .await
                        .is_ok()
                }
            };
            if reached {
                return if self.platform.self_test() {
                    Health::Pass
                } else {
                    Health::Fail
                };
            }
            let now = self.platform.now_ms();
            let Some(left) = deadline.checked_sub(now).filter(|&l| l > 0) else {
                return Health::Fail;
            };
            let wait = self.backoff_ms(attempt).min(left);
            attempt = attempt.saturating_add(1);
            // Also bounded by count, in case the platform's clock does not move.
            if attempt >= HEALTH_CHECK_MAX_TRIES {
                return Health::Fail;
            }
            self.platform.sleep_ms(wait).await;
            if self.platform.now_ms() >= deadline {
                return Health::Fail;
            }
        }
    }

    fn pending_identity(&self) -> ([u8; 32], FixedStr) {
        match self.journal.state().pending() {
            Some(p) => (p.id, p.fw_version),
            None => ([0; 32], self.me.version),
        }
    }

    /// The running release is confirmed: it becomes the installed one, its counters are
    /// committed, and `confirmed` waits to be reported.
    pub(super) fn finish_confirm(&mut self) -> Result<(), AgentError> {
        let js = self.journal.state().clone();
        let mut next = js.clone();
        let release = match js.pending() {
            Some(p) => Release {
                id: if p.protocol == Protocol::V2 {
                    p.id
                } else {
                    [0; 32]
                },
                sequence: p.sequence,
                security_counter: p.security_counter,
                secure_version: self.me.secure_version,
                fw_version: self.me.version,
                image_sha256: self.me.sha256,
                generation: p.generation,
            },
            None => Release {
                secure_version: self.me.secure_version,
                fw_version: self.me.version,
                image_sha256: self.me.sha256,
                ..Release::default()
            },
        };
        next.state = UpdateState::Idle;
        next.previous = js.installed;
        next.installed = release;
        next.highest_seq_seen = next.highest_seq_seen.max(release.sequence);
        next.committed_security_counter = next
            .committed_security_counter
            .max(release.security_counter);
        next.committed_secure_version = next.committed_secure_version.max(release.secure_version);
        next.report = Some(Report {
            kind: EventKind::Confirmed,
            reason: ReasonCode::None,
            id: js.pending().map_or([0; 32], |p| p.id),
            fw_version: self.me.version,
            order_id: 0,
        });
        self.commit(&next, Blob::Drop)?;
        self.note(Some(EventKind::Confirmed), ReasonCode::None);
        Ok(())
    }

    /// Back on the old slot after a trial: the release goes to the rejected list (unless it
    /// passed its health check) and `rolled_back` waits to be reported.
    fn rolled_back(&mut self, reason: ReasonCode, reject: bool) -> Result<(), AgentError> {
        let js = self.journal.state().clone();
        let mut next = js.clone();
        let (id, version) = match js.pending() {
            Some(p) => (p.id, p.fw_version),
            None => ([0; 32], FixedStr::default()),
        };
        if reject && id != [0; 32] {
            next.reject(Rejected {
                id,
                generation: js.pending().map_or(0, |p| p.generation),
                reason: reason.code(),
            });
        }
        next.state = UpdateState::Idle;
        next.report = Some(Report {
            kind: EventKind::RolledBack,
            reason,
            id,
            fw_version: version,
            order_id: 0,
        });
        self.commit(&next, Blob::Drop)?;
        self.note(Some(EventKind::RolledBack), reason);
        Ok(())
    }
}
