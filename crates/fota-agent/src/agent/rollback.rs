//! Rollbacks: what the agent may go back to, and an operator's rollback order from the order
//! to its outcome on the slot it went back to.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::esp::otadata::RollbackCandidate;
use fota_protocol::v2::{EventKind, ReasonCode};

use super::{Agent, PollOutcome, Stop, largest};
use crate::error::AgentError;
use crate::image;
use crate::journal::{Blob, Rejected, Release, Report, UpdateState};
use crate::layout::Running;
use crate::otadata;
use crate::transport::{Platform, Transport};

impl<F: NorFlash, T: Transport, P: Platform> Agent<'_, F, T, P> {
    /// `esp_ota_mark_app_invalid_rollback`, once a rollback is known to be possible.
    pub(super) fn mark_invalid(&mut self) -> Result<(), AgentError> {
        let ota = self.otadata()?;
        let plan = ota
            .mark_invalid(u32::from(self.layout.app_count()), true)
            .map_err(|_| AgentError::Config("otadata has no active entry"))?;
        otadata::apply(&mut self.storage, &self.layout, &plan)
    }

    /// `esp_ota_check_rollback_is_possible`, with the image check done on the flash and the
    /// committed secure version honoured. What the agent asks before it leaves a trial that
    /// failed: that release's counter was never committed, so the counter does not bind here.
    pub(super) fn rollback_possible(&mut self) -> Result<bool, AgentError> {
        Ok(self.rollback_image()?.is_some())
    }

    /// Why an operator's rollback order cannot be carried out, `None` when it can: there
    /// must be an image to go back to ([`Self::rollback_possible`]), and its release's
    /// security counter must not be below the committed one. The journal knows the counter
    /// of the installed and the previous release by their image hashes; any other image
    /// counts as 0, so with a counter committed only a known release is ever activated.
    pub(super) fn rollback_refusal(&mut self) -> Result<Option<ReasonCode>, AgentError> {
        let Some(sha256) = self.rollback_image()? else {
            return Ok(Some(ReasonCode::RollbackImpossible));
        };
        let js = self.journal.state();
        if js.security_counter_of(&sha256) < js.committed_security_counter {
            return Ok(Some(ReasonCode::RollbackBelowCounter));
        }
        Ok(None)
    }

    /// The SHA-256 of the image a rollback would boot, when there is one that is valid and
    /// whose `secure_version` is not below the committed one.
    fn rollback_image(&mut self) -> Result<Option<[u8; 32]>, AgentError> {
        let ota = self.otadata()?;
        let candidate = ota.rollback_candidate(
            u32::from(self.layout.app_count()),
            self.layout.factory().is_some(),
        );
        let region = match candidate {
            Some(RollbackCandidate::Ota(slot)) => {
                let slot = u8::try_from(slot).ok();
                if slot.map(Running::Ota) == Some(self.running) {
                    return Ok(None);
                }
                slot.and_then(|s| self.layout.slot(s))
            }
            Some(RollbackCandidate::Factory) => self.layout.factory(),
            _ => None,
        };
        let Some(region) = region else {
            return Ok(None);
        };
        let scan = image::scan(&mut self.storage, region, None, largest(&mut self.bufs))?;
        let secure_ok = scan
            .app_desc()
            .is_some_and(|d| d.secure_version >= self.journal.state().committed_secure_version);
        Ok((scan.report.is_valid() && secure_ok).then_some(scan.sha256))
    }

    /// A manual rollback order (v2 statement, or legacy rollback-status).
    pub(super) async fn manual_rollback(&mut self, order_id: u64) -> PollOutcome {
        match self.try_manual_rollback(order_id).await {
            Ok(o) => o,
            Err(s) => self.outcome(s),
        }
    }

    async fn try_manual_rollback(&mut self, order_id: u64) -> Result<PollOutcome, Stop> {
        if order_id != 0 && order_id == self.journal.state().last_order_id {
            return Ok(PollOutcome::Idle {
                next_poll_ms: self.poll_ms(),
            });
        }
        if matches!(self.journal.state().state, UpdateState::Downloading(_)) {
            self.fail_pending(ReasonCode::OperatorOrder, false)?;
        }
        let js = self.journal.state().clone();
        if let Some(reason) = self.rollback_refusal()? {
            self.refuse_rollback(order_id, reason)?;
            let _ = self.deliver_report().await;
            return Err(Stop::Refused(reason));
        }
        let mut next = js.clone();
        next.state = UpdateState::RollingBack { order_id };
        next.rollback_from = self.running.slot_code();
        self.commit(&next, Blob::Keep)?;
        self.mark_invalid()?;
        Ok(PollOutcome::RebootRequired)
    }

    /// On the slot a rollback order went back to: the release left is rejected at its
    /// generation, the running image becomes the installed one, and `rollback_done` waits to
    /// be reported.
    pub(super) fn rollback_done(&mut self, order_id: u64) -> Result<(), AgentError> {
        let js = self.journal.state().clone();
        let mut next = js.clone();
        let left = js.installed;
        let left_id = if left.id != [0; 32] {
            left.id
        } else {
            left.image_sha256
        };
        if left_id != [0; 32] && left.image_sha256 != self.me.sha256 {
            next.reject(Rejected {
                id: left_id,
                generation: left.generation,
                reason: ReasonCode::OperatorOrder.code(),
            });
        }
        next.installed = if js.previous.image_sha256 == self.me.sha256 {
            js.previous
        } else {
            Release {
                secure_version: self.me.secure_version,
                fw_version: self.me.version,
                image_sha256: self.me.sha256,
                ..Release::default()
            }
        };
        next.previous = left;
        next.state = UpdateState::Idle;
        next.last_order_id = order_id;
        next.report = Some(Report {
            kind: EventKind::RollbackDone,
            reason: ReasonCode::OperatorOrder,
            id: left_id,
            fw_version: self.me.version,
            order_id,
        });
        self.commit(&next, Blob::Drop)?;
        self.note(Some(EventKind::RollbackDone), ReasonCode::OperatorOrder);
        Ok(())
    }

    /// Refuses rollback order `order_id` for `reason` (see [`Self::rollback_refusal`]): back
    /// to idle, with `rollback_refused` as the report to deliver.
    pub(super) fn refuse_rollback(
        &mut self,
        order_id: u64,
        reason: ReasonCode,
    ) -> Result<(), AgentError> {
        let js = self.journal.state();
        let mut next = js.clone();
        next.state = UpdateState::Idle;
        next.last_order_id = order_id;
        next.report = Some(Report {
            kind: EventKind::RollbackRefused,
            reason,
            id: js.installed.id,
            fw_version: self.me.version,
            order_id,
        });
        self.commit(&next, Blob::Keep)?;
        self.note(Some(EventKind::RollbackRefused), reason);
        Ok(())
    }
}
