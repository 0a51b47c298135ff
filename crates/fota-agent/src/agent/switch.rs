//! otadata: keeping the target slot unselectable while it is written, switching to a staged
//! release (renormalising an exhausted sequence first), and marking the running entry VALID.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::esp::otadata::{OtaState, OtadataOp, OtadataPlan, PlanError};
use fota_protocol::v2::ReasonCode;

use super::{Agent, Stop};
use crate::error::AgentError;
use crate::journal::Pending;
use crate::layout::Running;
use crate::otadata;
use crate::transport::{Platform, Transport};

impl<F: NorFlash, T: Transport, P: Platform> Agent<'_, F, T, P> {
    /// `esp_ota_mark_app_valid_cancel_rollback` for the running slot, which otadata must
    /// select.
    pub(super) fn mark_valid(&mut self) -> Result<(), AgentError> {
        let ota = self.otadata()?;
        let active_is_running = otadata::active_slot(&ota, &self.layout)
            .is_some_and(|(_, slot)| Running::Ota(slot) == self.running);
        if !active_is_running {
            return Err(AgentError::Config(
                "otadata does not select the running slot",
            ));
        }
        let plan = ota
            .mark_valid(u32::from(self.layout.app_count()))
            .map_err(|_| AgentError::Config("otadata has no active entry"))?;
        otadata::apply(&mut self.storage, &self.layout, &plan)
    }

    /// Makes sure no otadata entry can select the target slot while it is written (ESP-IDF
    /// ≥ 5.5 `esp_ota_invalidate_inactive_ota_data_slot`, plus the fallback case where the
    /// *active* entry names the target although another slot runs).
    pub(super) fn protect_target(&mut self, target: u8) -> Result<(), AgentError> {
        let app_count = u32::from(self.layout.app_count());
        for _ in 0..2 {
            let ota = self.otadata()?;
            if otadata::active_slot(&ota, &self.layout).is_some_and(|(_, slot)| slot == target) {
                // The bootloader fell back from the target: select the running slot again
                // (VALID, it runs confirmed) so the stale entry becomes the inactive one.
                match self.running {
                    Running::Ota(run) => {
                        let plan = match ota.set_boot_partition(u32::from(run), app_count, true) {
                            Ok(plan) => plan,
                            // No higher sequence left for the running slot: select it from the
                            // bottom instead, which also drops the stale entry.
                            Err(PlanError::SequenceExhausted { .. }) => {
                                ota.renormalise(u32::from(run), app_count).map_err(|_| {
                                    AgentError::Config("otadata cannot select the running slot")
                                })?
                            }
                            Err(_) => {
                                return Err(AgentError::Config(
                                    "otadata cannot select the running slot",
                                ));
                            }
                        };
                        for op in plan.iter() {
                            let op = match *op {
                                OtadataOp::Write { sector: s, entry } => OtadataOp::Write {
                                    sector: s,
                                    entry: entry.rewritten(entry.seq, OtaState::Valid),
                                },
                                other => other,
                            };
                            otadata::apply_op(&mut self.storage, &self.layout, &op)?;
                        }
                    }
                    Running::Factory => {
                        otadata::apply(&mut self.storage, &self.layout, &ota.set_boot_factory())?;
                    }
                }
                continue;
            }
            let plan = ota.invalidate_inactive(app_count, self.running.boot_index());
            otadata::apply(&mut self.storage, &self.layout, &plan)?;
            return Ok(());
        }
        Ok(())
    }

    /// What `esp_ota_set_boot_partition(target)` writes (the other sector, next sequence,
    /// state NEW), after renormalising otadata when the sequence cannot advance. `None` when
    /// no switch is possible; then nothing was written.
    ///
    /// Renormalisation needs no journal entry: it is planned from otadata alone, and a reset
    /// in the middle of it leaves otadata from which the same plan (or none, when it got
    /// through) follows, with the running slot selected at every instant.
    pub(super) fn switch_plan(&mut self, target: u8) -> Result<Option<OtadataPlan>, AgentError> {
        let app_count = u32::from(self.layout.app_count());
        // Once renormalised, the sequence is at most app_count: the second round switches.
        for _ in 0..2 {
            let ota = self.otadata()?;
            match ota.set_boot_partition(u32::from(target), app_count, true) {
                Ok(plan) => return Ok(Some(plan)),
                Err(PlanError::SequenceExhausted { .. }) => {}
                Err(_) => return Ok(None),
            }
            // Only an OTA slot can be kept selected by a sequence; the factory app is
            // selected by erased otadata, which this agent does not write blind.
            let Running::Ota(run) = self.running else {
                return Ok(None);
            };
            let Ok(plan) = ota.renormalise(u32::from(run), app_count) else {
                return Ok(None);
            };
            otadata::apply(&mut self.storage, &self.layout, &plan)?;
        }
        Ok(None)
    }

    /// Switches otadata to the staged release. `false` when that is impossible.
    pub(super) fn switch(&mut self, p: &Pending) -> Result<bool, AgentError> {
        match self.switch_plan(p.target_slot)? {
            Some(plan) => {
                otadata::apply(&mut self.storage, &self.layout, &plan)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// A staged release whose switch has not happened, or was cut: verify the slot again and
    /// switch. `false` when the release was dropped instead (slot no longer verifies, or no
    /// switch possible, e.g. a journal staged by an agent without renormalisation): the
    /// device then settles with a failed outcome rather than asking for resets that cannot
    /// lead anywhere.
    pub(super) fn complete_switch(&mut self, p: &Pending) -> Result<bool, AgentError> {
        if !self.verify_staged(p)? {
            self.fail_pending(ReasonCode::ImageHashMismatch, true)?;
            return Ok(false);
        }
        if self.switch(p)? {
            return Ok(true);
        }
        self.fail_pending(ReasonCode::BootSwitchImpossible, true)?;
        Ok(false)
    }

    /// `Staged` seen by a poll (the switch at the end of this boot's download failed): `true`
    /// when a reset now boots the release (or sorts out what otadata holds), `false` when it
    /// was abandoned.
    pub(super) fn resume_staged(&mut self, p: &Pending) -> Result<bool, AgentError> {
        let ota = self.otadata()?;
        let app_count = u32::from(self.layout.app_count());
        match ota.state_of_slot(u32::from(p.target_slot), app_count) {
            None => self.complete_switch(p),
            Some(_) => Ok(true),
        }
    }

    /// Before the first byte of the slot is written: the switch at the end must be possible
    /// (renormalising otadata now if its sequence is exhausted), or the release is refused
    /// and dropped with a failed outcome.
    pub(super) fn ensure_switchable(&mut self, p: &Pending) -> Result<(), Stop> {
        if self.switch_plan(p.target_slot)?.is_some() {
            return Ok(());
        }
        self.fail_pending(ReasonCode::BootSwitchImpossible, true)?;
        Err(Stop::Refused(ReasonCode::BootSwitchImpossible))
    }
}
