//! The agent: boot, startup (finish what the journal says was in flight), poll.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::esp::otadata::{
    OtaState, Otadata, OtadataOp, OtadataPlan, PlanError, RollbackCandidate,
};
use fota_protocol::v2::{EventKind, FixedStr, ReasonCode, RootRecord};
use sha2::{Digest, Sha256};

use crate::config::{Buffers, DeviceConfig, Mode};
use crate::error::{AgentError, LayoutError};
use crate::flash::{Region, Storage};
use crate::image;
use crate::journal::{
    Blob, Entry, Journal, JournalState, Pending, Protocol, Rejected, Release, Report, StateKind,
    TransitionError, UpdateState,
};
use crate::layout::{BootInfo, Layout, Running};
use crate::otadata;
use crate::status::AgentStatus;
use crate::transport::{Platform, Transport, TransportError};
use crate::writer::{self, WriteError};

/// What `startup` found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartupOutcome {
    /// Nothing left in flight: call [`Agent::poll`].
    Ready,
    /// The device must reset now.
    ResetRequired(ResetReason),
    /// A flash operation failed (on the emulator, also a power cut). A reboot finishes what
    /// was started.
    Error(AgentError),
}

/// Why a reset is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetReason {
    /// otadata selects a verified new image: boot it.
    BootNewImage,
    /// The trial's health check failed; the bootloader will roll back (or retry, k > 1).
    HealthCheckFailed,
    /// A manual rollback marked the running image invalid.
    RollbackMarked,
}

/// What one poll did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PollOutcome {
    /// Nothing (more) to do; poll again after `next_poll_ms`.
    Idle {
        /// The server's hint, or the configured interval.
        next_poll_ms: u64,
    },
    /// otadata was switched or a rollback was marked: reset the device.
    RebootRequired,
    /// The network failed after the bounded retries; a download in progress resumes at the
    /// next poll.
    Retry {
        /// Suggested wait.
        after_ms: u64,
        /// The last transport error.
        error: TransportError,
    },
    /// The release or the server's answer was refused, or the flash failed.
    Failed {
        /// Why (the code the server hears).
        reason: ReasonCode,
        /// The flash or agent error behind a `flash_error`/`internal` reason.
        error: Option<AgentError>,
        /// When to poll again.
        next_poll_ms: u64,
    },
}

/// [`Agent::boot`] failed; the parts are handed back.
#[derive(Debug)]
pub struct BootFailure<F, T, P> {
    /// Why.
    pub error: AgentError,
    /// The flash.
    pub flash: F,
    /// The transport.
    pub transport: T,
    /// The platform.
    pub platform: P,
}

/// What the agent knows about the image it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RunningImage {
    pub(crate) version: FixedStr,
    pub(crate) project: FixedStr,
    pub(crate) secure_version: u32,
    pub(crate) sha256: [u8; 32],
}

/// A step of a poll that did not go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Network, after retries.
    Net(TransportError),
    /// Flash or agent error.
    Agent(AgentError),
    /// The release or answer is refused.
    Refused(ReasonCode),
}

impl From<AgentError> for Stop {
    fn from(e: AgentError) -> Self {
        Self::Agent(e)
    }
}

/// The URLs of the current v2 assignment (from the check-in answer).
#[derive(Debug, Clone, Default)]
pub(crate) struct Urls {
    pub(crate) image: heapless::String<255>,
    pub(crate) hashlist: heapless::String<255>,
}

/// Counters of this boot.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub(crate) bytes: u64,
    pub(crate) rechunks: u32,
    pub(crate) last_outcome: Option<EventKind>,
    pub(crate) last_reason: Option<ReasonCode>,
}

/// The device agent. See the crate documentation.
pub struct Agent<'a, F, T, P> {
    pub(crate) storage: Storage<F>,
    pub(crate) transport: T,
    pub(crate) platform: P,
    pub(crate) config: DeviceConfig<'a>,
    pub(crate) bufs: Buffers<'a>,
    pub(crate) layout: Layout,
    pub(crate) running: Running,
    pub(crate) me: RunningImage,
    pub(crate) journal: Journal,
    pub(crate) urls: Urls,
    pub(crate) counters: Counters,
    pub(crate) root_version: u32,
    pub(crate) started: bool,
    pub(crate) event_seq: u32,
    pub(crate) stale_statements: u8,
    /// The status floor as the journal holds it (the base and its entries).
    pub(crate) persisted_floor: u64,
    /// Highest server time a status statement vouched for this boot (persisted with the next
    /// commit, or by itself once a poll ends well); part of the status floor, so a rotation
    /// of the status key resets it too.
    pub(crate) seen_time: u64,
    pub(crate) last_refused: Option<[u8; 32]>,
}

impl<F, T, P> core::fmt::Debug for Agent<'_, F, T, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Agent")
            .field("running", &self.running)
            .field("state", &self.journal.state().state)
            .finish_non_exhaustive()
    }
}

/// One trial boot's verdict.
enum Health {
    Pass,
    Fail,
}

impl<'a, F: NorFlash, T: Transport, P: Platform> Agent<'a, F, T, P> {
    /// Reads the partition table, otadata, the journal and the running image (its app
    /// descriptor and SHA-256). Writes nothing.
    pub fn boot(
        flash: F,
        transport: T,
        platform: P,
        config: DeviceConfig<'a>,
        boot: BootInfo,
        mut bufs: Buffers<'a>,
    ) -> Result<Self, BootFailure<F, T, P>> {
        let mut storage = match Storage::new(flash) {
            Ok(s) => s,
            Err((error, flash)) => {
                return Err(BootFailure {
                    error,
                    flash,
                    transport,
                    platform,
                });
            }
        };
        match Self::load(&mut storage, &config, boot, &mut bufs) {
            Ok((layout, journal, me, root_version)) => {
                let persisted_floor = journal.state().status_floor;
                Ok(Self {
                    storage,
                    transport,
                    platform,
                    config,
                    bufs,
                    layout,
                    running: boot.running,
                    me,
                    journal,
                    urls: Urls::default(),
                    counters: Counters::default(),
                    root_version,
                    started: false,
                    event_seq: 0,
                    stale_statements: 0,
                    persisted_floor,
                    seen_time: 0,
                    last_refused: None,
                })
            }
            Err(error) => Err(BootFailure {
                error,
                flash: storage.into_inner(),
                transport,
                platform,
            }),
        }
    }

    fn load(
        storage: &mut Storage<F>,
        config: &DeviceConfig<'a>,
        boot: BootInfo,
        bufs: &mut Buffers<'a>,
    ) -> Result<(Layout, Journal, RunningImage, u32), AgentError> {
        let scratch = largest(bufs);
        let layout = Layout::discover(storage, scratch)?;
        let app = layout
            .app(boot.running)
            .ok_or(AgentError::Layout(LayoutError::Running))?;
        storage.protect(app);
        storage.protect(layout.boot_area());
        let journal = Journal::open(storage, layout.journal())?;
        let scan = image::scan(storage, app, None, largest(bufs))?;
        let mut me = RunningImage {
            sha256: scan.sha256,
            ..RunningImage::default()
        };
        if let Some(desc) = scan.app_desc() {
            me.version = desc.version().and_then(FixedStr::new).unwrap_or_default();
            me.project = desc
                .project_name()
                .and_then(FixedStr::new)
                .unwrap_or_default();
            me.secure_version = desc.secure_version;
        }
        let root_version = match config.mode {
            Mode::V2 => Self::trusted_root(storage, &journal, config, bufs.page)?.version(),
            Mode::Legacy { .. } => 0,
        };
        if config.boot_attempt_limit == 0 {
            return Err(AgentError::Config("boot_attempt_limit must be at least 1"));
        }
        Ok((layout, journal, me, root_version))
    }

    /// The trusted root: the rotated one in the journal, else the provisioned one. Verified
    /// from bytes every time (the verified value is large; it lives on the stack briefly).
    pub(crate) fn trusted_root(
        storage: &mut Storage<F>,
        journal: &Journal,
        config: &DeviceConfig<'a>,
        page: &mut [u8],
    ) -> Result<RootRecord, AgentError> {
        if journal.has_root()
            && let Some(bytes) = journal.read_root(storage, page)?
            && let Ok(root) = RootRecord::verify_initial(bytes)
        {
            return Ok(root);
        }
        RootRecord::verify_initial(config.root)
            .map_err(|_| AgentError::Config("provisioned root record does not verify"))
    }

    /// Hands back the flash, the transport and the platform.
    pub fn into_parts(self) -> (F, T, P) {
        (self.storage.into_inner(), self.transport, self.platform)
    }

    /// The flash, read-only (for reports).
    pub fn flash(&self) -> &F {
        self.storage.inner()
    }

    /// The journal's decoded state.
    pub fn journal(&self) -> &JournalState {
        self.journal.state()
    }

    /// Counters and state for reports.
    pub fn status(&self) -> AgentStatus {
        let js = self.journal.state();
        let (commits, appends) = self.journal.counts();
        AgentStatus {
            running: self.running,
            running_version: self.me.version,
            running_sha256: self.me.sha256,
            state: js.state.kind(),
            installed_sequence: js.installed.sequence,
            bytes_downloaded: self.counters.bytes,
            chunks_redownloaded: self.counters.rechunks,
            resumes: js.resumes,
            rechunks_total: js.rechunks,
            last_outcome: self.counters.last_outcome,
            last_reason: self.counters.last_reason.unwrap_or(ReasonCode::None),
            pending_report: js.report.map(|r| r.kind),
            pending_bytes_done: js.pending().map_or(0, Pending::done_bytes),
            pending_bytes_total: js.pending().map_or(0, |p| p.image_size),
            legacy_disabled: js.legacy_disabled,
            journal_home: self.layout.journal_home(),
            journal_commits: commits,
            journal_appends: appends,
        }
    }

    // ---------------------------------------------------------------- journal helpers

    pub(crate) fn commit(
        &mut self,
        next: &JournalState,
        manifest: Blob<'_>,
    ) -> Result<(), AgentError> {
        let mut next = next.clone();
        // Counters and the floors ride along with every commit; only a root rotation lowers
        // the status floor, and it commits by itself.
        let js = self.journal.state();
        next.status_floor = next.status_floor.max(js.status_floor).max(self.seen_time);
        next.offline_floor = next.offline_floor.max(js.offline_floor);
        self.journal
            .commit(&mut self.storage, &next, manifest, Blob::Keep)?;
        self.persisted_floor = self.journal.state().status_floor;
        Ok(())
    }

    pub(crate) fn note(&mut self, kind: Option<EventKind>, reason: ReasonCode) {
        if kind.is_some() {
            self.counters.last_outcome = kind;
        }
        self.counters.last_reason = Some(reason);
    }

    pub(crate) fn poll_ms(&self) -> u64 {
        u64::from(self.config.poll_interval_ms)
    }

    pub(crate) fn otadata(&mut self) -> Result<Otadata, AgentError> {
        otadata::read(&mut self.storage, &self.layout)
    }

    pub(crate) fn running_state(&mut self) -> Result<Option<OtaState>, AgentError> {
        let ota = self.otadata()?;
        Ok(otadata::running_state(&ota, &self.layout, self.running))
    }

    // ---------------------------------------------------------------- startup

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
        let rstate = otadata::running_state(&ota, &self.layout, self.running);
        let js = self.journal.state().clone();
        let on_target = js
            .pending()
            .is_some_and(|p| self.running == Running::Ota(p.target_slot));
        let trial_state = matches!(
            rstate,
            Some(OtaState::PendingVerify | OtaState::New | OtaState::Other(_))
        );
        match js.state {
            UpdateState::Idle => {
                if trial_state && matches!(self.running, Running::Ota(_)) {
                    // A trial the journal did not expect (journal lost, or flashed by a
                    // tool): it still gets a real health check before anything confirms it.
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
            UpdateState::Downloading(_) => {
                if on_target {
                    // The journal says we write the slot we run from: it cannot be trusted.
                    self.fail_pending(ReasonCode::Internal, false)?;
                }
                Ok(Next::Ready)
            }
            UpdateState::Staged(p) => {
                if on_target {
                    if rstate == Some(OtaState::Valid) {
                        self.finish_confirm()?;
                        return Ok(Next::Ready);
                    }
                    let mut next = js.clone();
                    next.state = UpdateState::Trial {
                        pending: Some(p),
                        attempts: 1,
                        health_failed: false,
                    };
                    self.commit(&next, Blob::Keep)?;
                    return Ok(Next::Trial { attempt: 1 });
                }
                let app_count = u32::from(self.layout.app_count());
                match ota.state_of_slot(u32::from(p.target_slot), app_count) {
                    Some(OtaState::New) => Ok(Next::Reset(ResetReason::BootNewImage)),
                    None => {
                        if self.complete_switch(&p)? {
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
            UpdateState::Trial {
                pending,
                attempts,
                health_failed,
            } => {
                let trial_on_running = on_target || (pending.is_none() && trial_state);
                if trial_on_running && matches!(self.running, Running::Ota(_)) {
                    match rstate {
                        Some(OtaState::Valid) => {
                            self.finish_confirm()?;
                            Ok(Next::Ready)
                        }
                        _ if trial_state => {
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
                            // Running the release, yet no entry selects it any more (both
                            // entries lost): nothing can confirm it. Drop the trial and say so;
                            // the next reset boots whatever otadata selects.
                            self.fail_pending(ReasonCode::Internal, false)?;
                            if self.journal.state().state != UpdateState::Idle {
                                let mut next = self.journal.state().clone();
                                next.state = UpdateState::Idle;
                                self.commit(&next, Blob::Drop)?;
                            }
                            Ok(Next::Ready)
                        }
                    }
                } else {
                    let reason = if health_failed {
                        ReasonCode::HealthCheckFailed
                    } else {
                        ReasonCode::NotConfirmed
                    };
                    self.rolled_back(reason, true)?;
                    Ok(Next::Ready)
                }
            }
            UpdateState::Confirming { pending } => {
                let confirming_running = on_target || pending.is_none();
                if confirming_running && rstate.is_some() && matches!(self.running, Running::Ota(_))
                {
                    if rstate != Some(OtaState::Valid) {
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
                if self.running.slot_code() != js.rollback_from {
                    self.rollback_done(order_id)?;
                    return Ok(Next::Ready);
                }
                // Still on the slot we leave: the INVALID mark never landed. Do it again.
                let refusal = if rstate.is_some_and(OtaState::is_selectable) {
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
            if now >= deadline {
                return Health::Fail;
            }
            let wait = self.backoff_ms(attempt).min(deadline - now);
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

    fn mark_valid(&mut self) -> Result<(), AgentError> {
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

    fn mark_invalid(&mut self) -> Result<(), AgentError> {
        let ota = self.otadata()?;
        let plan = ota
            .mark_invalid(u32::from(self.layout.app_count()), true)
            .map_err(|_| AgentError::Config("otadata has no active entry"))?;
        otadata::apply(&mut self.storage, &self.layout, &plan)
    }

    /// `esp_ota_check_rollback_is_possible`, with the image check done on the flash and the
    /// committed secure version honoured. What the agent asks before it leaves a trial that
    /// failed: that release's counter was never committed, so the counter does not bind here.
    pub(crate) fn rollback_possible(&mut self) -> Result<bool, AgentError> {
        Ok(self.rollback_image()?.is_some())
    }

    /// Why an operator's rollback order cannot be carried out, `None` when it can: there
    /// must be an image to go back to ([`Self::rollback_possible`]), and its release's
    /// security counter must not be below the committed one. The journal knows the counter
    /// of the installed and the previous release by their image hashes; any other image
    /// counts as 0, so with a counter committed only a known release is ever activated.
    fn rollback_refusal(&mut self) -> Result<Option<ReasonCode>, AgentError> {
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

    fn finish_confirm(&mut self) -> Result<(), AgentError> {
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

    fn rollback_done(&mut self, order_id: u64) -> Result<(), AgentError> {
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

    /// Drops the pending release with `reason`, reporting `failed`; `reject` keeps it from
    /// being installed again.
    pub(crate) fn fail_pending(
        &mut self,
        reason: ReasonCode,
        reject: bool,
    ) -> Result<(), AgentError> {
        let js = self.journal.state().clone();
        let Some(&p) = js.pending() else {
            return Ok(());
        };
        let mut next = js.clone();
        if reject {
            next.reject(Rejected {
                id: p.id,
                generation: p.generation,
                reason: reason.code(),
            });
        }
        next.state = UpdateState::Idle;
        next.report = Some(Report {
            kind: EventKind::Failed,
            reason,
            id: p.id,
            fw_version: p.fw_version,
            order_id: 0,
        });
        self.commit(&next, Blob::Drop)?;
        self.note(Some(EventKind::Failed), reason);
        Ok(())
    }

    // ---------------------------------------------------------------- poll

    /// One check-in cycle (v2: a check-in; legacy: manifest and rollback-status polls). May
    /// run a whole (paced) download. Returns `RebootRequired` after otadata was switched or a
    /// rollback was marked.
    pub async fn poll(&mut self) -> PollOutcome {
        if !self.started {
            match self.startup().await {
                StartupOutcome::Ready => {}
                StartupOutcome::ResetRequired(_) => return PollOutcome::RebootRequired,
                StartupOutcome::Error(e) => return self.flash_failure(e),
            }
        }
        match self.journal.state().state {
            UpdateState::Staged(p) => match self.resume_staged(&p) {
                Ok(true) => return PollOutcome::RebootRequired,
                // Abandoned: the failed outcome goes out below, then a normal check-in.
                Ok(false) => {}
                Err(e) => return self.flash_failure(e),
            },
            // otadata already says what to boot next; only a reset moves things on.
            UpdateState::RollingBack { .. } => return PollOutcome::RebootRequired,
            _ => {}
        }
        if let Err(error) = self.deliver_report().await {
            return match error {
                Stop::Net(error) => PollOutcome::Retry {
                    after_ms: self.poll_ms(),
                    error,
                },
                other => self.outcome(other),
            };
        }
        match self.config.mode {
            Mode::V2 => self.v2_poll().await,
            Mode::Legacy { psk } => self.legacy_poll(psk).await,
        }
    }

    pub(crate) fn flash_failure(&mut self, e: AgentError) -> PollOutcome {
        self.note(None, ReasonCode::FlashError);
        PollOutcome::Failed {
            reason: ReasonCode::FlashError,
            error: Some(e),
            next_poll_ms: self.poll_ms(),
        }
    }

    pub(crate) fn outcome(&mut self, stop: Stop) -> PollOutcome {
        match stop {
            Stop::Net(error) => {
                self.note(None, ReasonCode::Network);
                PollOutcome::Retry {
                    after_ms: self.poll_ms(),
                    error,
                }
            }
            Stop::Agent(e) => match e {
                AgentError::Flash(_) => self.flash_failure(e),
                other => {
                    self.note(None, ReasonCode::Internal);
                    PollOutcome::Failed {
                        reason: ReasonCode::Internal,
                        error: Some(other),
                        next_poll_ms: self.poll_ms(),
                    }
                }
            },
            Stop::Refused(reason) => {
                self.note(None, reason);
                PollOutcome::Failed {
                    reason,
                    error: None,
                    next_poll_ms: self.poll_ms(),
                }
            }
        }
    }

    /// Sends the journal's pending outcome, then marks it delivered.
    async fn deliver_report(&mut self) -> Result<(), Stop> {
        let Some(report) = self.journal.state().report else {
            return Ok(());
        };
        let mut attempt = 0u8;
        loop {
            let sent = match self.config.mode {
                Mode::V2 => {
                    self.send_event(
                        report.kind,
                        report.reason,
                        report.id,
                        report.fw_version,
                        0,
                        0,
                        report.order_id,
                    )
                    .await
                }
                Mode::Legacy { .. } => {
                    self.legacy_status(
                        report.kind.as_str(),
                        report.fw_version.as_str(),
                        report.reason.as_str(),
                    )
                    .await
                }
            };
            match sent {
                Ok(()) => break,
                Err(e)
                    if e.is_transient() && attempt < self.config.max_retries.saturating_sub(1) =>
                {
                    let wait = self.backoff_ms(attempt);
                    attempt += 1;
                    self.platform.sleep_ms(wait).await;
                }
                Err(e) => return Err(Stop::Net(e)),
            }
        }
        self.journal
            .append(&mut self.storage, Entry::ReportDelivered)?;
        Ok(())
    }

    /// Best-effort event (progress, verified, installing, booted_on_trial): never retried,
    /// never fatal.
    pub(crate) async fn event(
        &mut self,
        kind: EventKind,
        reason: ReasonCode,
        id: [u8; 32],
        version: FixedStr,
        done: u64,
    ) {
        let total = self.journal.state().pending().map_or(0, |p| p.image_size);
        if let Mode::V2 = self.config.mode {
            let _ = self
                .send_event(kind, reason, id, version, done.min(total), total, 0)
                .await;
        } else if matches!(kind, EventKind::BootedOnTrial | EventKind::Installing) {
            let _ = self
                .legacy_status(kind.as_str(), version.as_str(), reason.as_str())
                .await;
        }
    }

    #[allow(clippy::too_many_arguments)] // Mirrors the event record's fields.
    async fn send_event(
        &mut self,
        kind: EventKind,
        reason: ReasonCode,
        id: [u8; 32],
        version: FixedStr,
        done: u64,
        total: u64,
        order_id: u64,
    ) -> Result<(), TransportError> {
        let event = fota_protocol::v2::Event {
            kind,
            reason,
            device_id: self.config.device_uuid,
            seq: self.event_seq,
            manifest_digest: id,
            bytes_done: done,
            bytes_total: total,
            fw_version: version,
            rollback_order_id: order_id,
            detail: "",
        };
        self.event_seq = self.event_seq.wrapping_add(1);
        let n = event
            .encode(self.bufs.io)
            .map_err(|_| TransportError::TooLarge)?;
        let body = self.bufs.io.get(..n).ok_or(TransportError::TooLarge)?;
        self.transport.event(body).await
    }

    /// Backoff before retry `attempt` (0-based): 500 ms doubling, never longer than the poll
    /// interval, with up to 25 % random jitter subtracted.
    pub(crate) fn backoff_ms(&mut self, attempt: u8) -> u64 {
        let base = 500u64
            .checked_shl(u32::from(attempt.min(16)))
            .unwrap_or(u64::MAX);
        let capped = base.min(self.poll_ms().max(1));
        let mut r = [0u8; 2];
        self.platform.fill_random(&mut r);
        let jitter = capped / 4 * u64::from(u16::from_le_bytes(r)) / 65535;
        capped - jitter
    }

    // ---------------------------------------------------------------- shared download steps

    /// Makes sure no otadata entry can select the target slot while it is written (ESP-IDF
    /// ≥ 5.5 `esp_ota_invalidate_inactive_ota_data_slot`, plus the fallback case where the
    /// *active* entry names the target although another slot runs).
    pub(crate) fn protect_target(&mut self, target: u8) -> Result<(), AgentError> {
        let app_count = u32::from(self.layout.app_count());
        for _ in 0..2 {
            let ota = self.otadata()?;
            if let Some((sector, slot)) = otadata::active_slot(&ota, &self.layout)
                && slot == target
            {
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
                let _ = sector;
                continue;
            }
            let plan = ota.invalidate_inactive(app_count, self.running.boot_index());
            otadata::apply(&mut self.storage, &self.layout, &plan)?;
            return Ok(());
        }
        Ok(())
    }

    /// The release of the download in progress; a transition error towards `to` when the
    /// journal is not downloading.
    pub(crate) fn downloading(&self, to: StateKind) -> Result<Pending, AgentError> {
        match self.journal.state().state {
            UpdateState::Downloading(p) => Ok(p),
            other => Err(AgentError::Transition(TransitionError {
                from: other.kind(),
                to,
            })),
        }
    }

    /// The writable target slot of `p`.
    pub(crate) fn target_region(&self, p: &Pending) -> Result<Region, AgentError> {
        self.layout
            .slot(p.target_slot)
            .ok_or(AgentError::Layout(LayoutError::Slots))
    }

    /// Writes chunk `index` (already authenticated) and journals it.
    pub(crate) fn store_chunk(&mut self, p: &Pending, index: u32, len: usize) -> Result<(), Stop> {
        let region = self.target_region(p)?;
        let permit = self.storage.writable(region)?;
        let at = u32::try_from(u64::from(index) * u64::from(p.chunk_size))
            .map_err(|_| Stop::Refused(ReasonCode::TooLarge))?;
        let data = self
            .bufs
            .chunk
            .get(..len)
            .ok_or(AgentError::BufferTooSmall("chunk"))?;
        match writer::write_chunk(&mut self.storage, &permit, at, data) {
            Ok(()) => {}
            Err(WriteError::Flash(e)) => return Err(Stop::Agent(e)),
            Err(WriteError::Mismatch { .. }) => return Err(Stop::Refused(ReasonCode::FlashError)),
        }
        let digest: [u8; 32] = Sha256::digest(data).into();
        let mut digest8 = [0u8; 8];
        digest8.copy_from_slice(&digest[..8]);
        self.journal.append(
            &mut self.storage,
            Entry::Progress {
                chunks_done: index + 1,
                digest8,
            },
        )?;
        Ok(())
    }

    /// The first-chunk checks, on the image's first bytes (from flash for what is already
    /// written, from the chunk buffer for the rest): magic, chip, app descriptor, project,
    /// version, secure version, size.
    pub(crate) fn check_prefix(&mut self, p: &Pending, index: u32, len: usize) -> Result<(), Stop> {
        use fota_protocol::esp::image::{ImagePrefix, PREFIX_LEN, VerifyOptions};
        let start = u64::from(index) * u64::from(p.chunk_size);
        if start >= PREFIX_LEN as u64 {
            return Ok(());
        }
        let end = start + len as u64;
        if end < PREFIX_LEN as u64 && end < p.image_size {
            // Not enough bytes yet; the next chunk completes the prefix.
            return Ok(());
        }
        let region = self.target_region(p)?;
        let mut prefix = [0u8; PREFIX_LEN];
        let have = (start as usize).min(PREFIX_LEN);
        self.storage
            .read(region, 0, prefix.get_mut(..have).unwrap_or(&mut []))?;
        let take = (PREFIX_LEN - have).min(len);
        if let (Some(dst), Some(src)) = (
            prefix.get_mut(have..have + take),
            self.bufs.chunk.get(..take),
        ) {
            dst.copy_from_slice(src);
        }
        let filled = have + take;
        let parsed = ImagePrefix::parse(
            prefix.get(..filled).unwrap_or(&[]),
            VerifyOptions {
                max_len: Some(region.size()),
                ..VerifyOptions::default()
            },
        )
        .map_err(|_| Stop::Refused(ReasonCode::ImageInvalid))?;
        let desc = parsed.app_desc;
        let project = desc.project_name().unwrap_or("");
        if project != self.me.project.as_str()
            || (!p.project.is_empty() && project != p.project.as_str())
        {
            return Err(Stop::Refused(ReasonCode::ProjectMismatch));
        }
        if desc.version() != Some(p.fw_version.as_str()) {
            return Err(Stop::Refused(ReasonCode::VersionMismatch));
        }
        if desc.secure_version < self.journal.state().committed_secure_version {
            return Err(Stop::Refused(ReasonCode::Downgrade));
        }
        if p.image_size > u64::from(region.size()) {
            return Err(Stop::Refused(ReasonCode::TooLarge));
        }
        Ok(())
    }

    /// Re-reads the slot: SHA-256 of exactly `image_size` bytes == the expected hash, and a
    /// valid ESP image of exactly that length that fits the slot.
    pub(crate) fn verify_staged(&mut self, p: &Pending) -> Result<bool, AgentError> {
        let region = self.target_region(p)?;
        let scan = image::scan(
            &mut self.storage,
            region,
            Some(p.image_size),
            largest(&mut self.bufs),
        )?;
        Ok(scan.sha256 == p.image_sha256 && scan.is_valid_exact())
    }

    /// The slot may already hold this release (a confirmation cut short sent the device back,
    /// and the server assigns the release again): then nothing needs downloading.
    pub(crate) fn slot_already_holds(&mut self, p: &Pending) -> Result<bool, AgentError> {
        let region = self.target_region(p)?;
        match crate::image::prefix(&mut self.storage, region)? {
            Some(prefix) if prefix.app_desc.version() == Some(p.fw_version.as_str()) => {
                self.verify_staged(p)
            }
            _ => Ok(false),
        }
    }

    /// End of a download: read back and verify, commit Staged, switch otadata.
    pub(crate) async fn finish_download(&mut self) -> Result<PollOutcome, Stop> {
        let p = self.downloading(StateKind::Staged)?;
        let region = self.target_region(&p)?;
        let scan = image::scan(
            &mut self.storage,
            region,
            Some(p.image_size),
            largest(&mut self.bufs),
        )?;
        if scan.sha256 != p.image_sha256 || !scan.is_valid_exact() {
            let reason = if scan.sha256 != p.image_sha256 {
                ReasonCode::ImageHashMismatch
            } else {
                ReasonCode::ImageInvalid
            };
            self.fail_pending(reason, true)?;
            let _ = self.deliver_report().await;
            return Err(Stop::Refused(reason));
        }
        self.event(
            EventKind::Verified,
            ReasonCode::None,
            p.id,
            p.fw_version,
            p.image_size,
        )
        .await;
        // Planned (and otadata renormalised if need be) before Staged is committed, so a
        // release that cannot be switched to is never staged. The plan is made again after
        // the event below rather than kept across it: that keeps it out of the future's state.
        if self.switch_plan(p.target_slot)?.is_none() {
            self.fail_pending(ReasonCode::BootSwitchImpossible, true)?;
            let _ = self.deliver_report().await;
            return Err(Stop::Refused(ReasonCode::BootSwitchImpossible));
        }
        let mut next = self.journal.state().clone();
        next.state = UpdateState::Staged(Pending {
            chunks_done: p.chunk_count,
            ..p
        });
        self.commit(&next, Blob::Keep)?;
        self.event(
            EventKind::Installing,
            ReasonCode::None,
            p.id,
            p.fw_version,
            p.image_size,
        )
        .await;
        if !self.switch(&p)? {
            // Only if otadata changed under the agent since it was planned above.
            self.fail_pending(ReasonCode::BootSwitchImpossible, true)?;
            return Err(Stop::Refused(ReasonCode::BootSwitchImpossible));
        }
        self.note(Some(EventKind::Installing), ReasonCode::None);
        Ok(PollOutcome::RebootRequired)
    }

    /// What `esp_ota_set_boot_partition(target)` writes (the other sector, next sequence,
    /// state NEW), after renormalising otadata when the sequence cannot advance. `None` when
    /// no switch is possible; then nothing was written.
    ///
    /// Renormalisation needs no journal entry: it is planned from otadata alone, and a reset
    /// in the middle of it leaves otadata from which the same plan (or none, when it got
    /// through) follows, with the running slot selected at every instant.
    fn switch_plan(&mut self, target: u8) -> Result<Option<OtadataPlan>, AgentError> {
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
    fn switch(&mut self, p: &Pending) -> Result<bool, AgentError> {
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
    fn complete_switch(&mut self, p: &Pending) -> Result<bool, AgentError> {
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
    fn resume_staged(&mut self, p: &Pending) -> Result<bool, AgentError> {
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
    pub(crate) fn ensure_switchable(&mut self, p: &Pending) -> Result<(), Stop> {
        if self.switch_plan(p.target_slot)?.is_some() {
            return Ok(());
        }
        self.fail_pending(ReasonCode::BootSwitchImpossible, true)?;
        Err(Stop::Refused(ReasonCode::BootSwitchImpossible))
    }

    /// Resume check: the last journaled chunk, read back from flash, must hash to `expect`.
    pub(crate) fn last_chunk_digest(
        &mut self,
        p: &Pending,
    ) -> Result<Option<[u8; 32]>, AgentError> {
        if p.chunks_done == 0 {
            return Ok(None);
        }
        let index = p.chunks_done - 1;
        let Some(len) = p.chunk_len(index) else {
            return Ok(None);
        };
        let region = self.target_region(p)?;
        let at = u32::try_from(u64::from(index) * u64::from(p.chunk_size))
            .map_err(|_| AgentError::Geometry)?;
        let buf = self
            .bufs
            .chunk
            .get_mut(..len)
            .ok_or(AgentError::BufferTooSmall("chunk"))?;
        self.storage.read(region, at, buf)?;
        Ok(Some(Sha256::digest(&*buf).into()))
    }

    /// Starts the pending download over from chunk 0 (the journal lost track of the slot).
    pub(crate) fn restart_download(&mut self) -> Result<(), AgentError> {
        let mut next = self.journal.state().clone();
        if let UpdateState::Downloading(p) = &mut next.state {
            p.chunks_done = 0;
            p.last_digest8 = [0; 8];
        }
        next.rechunks = next.rechunks.saturating_add(1);
        self.commit(&next, Blob::Keep)
    }

    /// Refuses rollback order `order_id` for `reason` (see [`Self::rollback_refusal`]): back
    /// to idle, with `rollback_refused` as the report to deliver.
    fn refuse_rollback(&mut self, order_id: u64, reason: ReasonCode) -> Result<(), AgentError> {
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

    /// A manual rollback order (v2 statement, or legacy rollback-status).
    pub(crate) async fn manual_rollback(&mut self, order_id: u64) -> PollOutcome {
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

    /// Persists the status floor when this boot's statements moved it on by an hour or more
    /// (a log entry, not a commit, so polling does not wear the journal).
    pub(crate) fn persist_status_floor(&mut self) -> Result<(), AgentError> {
        let t = self.seen_time;
        if t >= self.persisted_floor.saturating_add(3600) {
            self.journal
                .append(&mut self.storage, Entry::StatusFloor(t))?;
            self.persisted_floor = t;
        }
        Ok(())
    }
}

/// Most health-check attempts in one trial boot, whatever the clock says.
const HEALTH_CHECK_MAX_TRIES: u8 = 64;

/// What reconcile decided.
enum Next {
    Ready,
    Reset(ResetReason),
    Trial { attempt: u8 },
}

/// The largest caller buffer, as scratch for reads.
pub(crate) fn largest<'s>(bufs: &'s mut Buffers<'_>) -> &'s mut [u8] {
    let (c, i, p) = (bufs.chunk.len(), bufs.io.len(), bufs.page.len());
    if c >= i && c >= p {
        bufs.chunk
    } else if i >= p {
        bufs.io
    } else {
        bufs.page
    }
}
