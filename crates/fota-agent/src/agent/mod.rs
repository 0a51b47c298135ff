//! The agent, by phase: boot and load (`boot`), startup and trial (`startup`, with the
//! otadata steps in `switch` and operator rollbacks in `rollback`), download (`download`: one
//! loop over a chunk source, `ranged` for v2's hash-listed ranges, `legacy` for its JSON
//! chunks), and what goes back to the server (`report`). `v2` and `legacy` hold each
//! protocol's check-in and install decisions; `retry` the one retry rule every request
//! follows.

mod boot;
mod download;
mod legacy;
mod ranged;
mod report;
mod retry;
mod rollback;
mod startup;
mod switch;
mod v2;

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::esp::otadata::{OtaState, Otadata};
use fota_protocol::v2::{EventKind, FixedStr, ReasonCode};

use crate::config::{Buffers, DeviceConfig, Mode};
use crate::error::{AgentError, LayoutError};
use crate::flash::{Region, Storage};
use crate::journal::{
    Blob, Journal, JournalState, Pending, Rejected, Report, StateKind, TransitionError, UpdateState,
};
use crate::layout::{Layout, Running};
use crate::otadata;
use crate::status::AgentStatus;
use crate::transport::{Platform, Transport, TransportError};

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
struct RunningImage {
    version: FixedStr,
    project: FixedStr,
    secure_version: u32,
    sha256: [u8; 32],
}

/// A step of a poll that did not go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
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
struct Urls {
    image: heapless::String<255>,
    hashlist: heapless::String<255>,
}

/// Counters of this boot.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    bytes: u64,
    rechunks: u32,
    last_outcome: Option<EventKind>,
    last_reason: Option<ReasonCode>,
}

/// The device agent. See the crate documentation.
pub struct Agent<'a, F, T, P> {
    storage: Storage<F>,
    transport: T,
    platform: P,
    config: DeviceConfig<'a>,
    bufs: Buffers<'a>,
    layout: Layout,
    running: Running,
    me: RunningImage,
    journal: Journal,
    /// Where the assigned release's image and hash list are (v2).
    urls: Urls,
    counters: Counters,
    /// Version of the root record the agent trusts.
    root_version: u32,
    /// `startup` ran this boot.
    started: bool,
    /// Sequence number of the next v2 event.
    event_seq: u32,
    /// The status floor as the journal holds it (the base and its entries).
    persisted_floor: u64,
    /// Highest server time a status statement vouched for this boot (persisted with the next
    /// commit, or by itself once a poll ends well); part of the status floor, so a rotation
    /// of the status key resets it too.
    seen_time: u64,
    /// Check-ins sent this boot: the low bits of the check-in counter.
    checkins: u32,
    /// Newest server time of a statement that verified this boot: the high bits of the
    /// check-in counter (reset with the status floor when a rotation replaces the status key).
    counter_time: u64,
    /// The release whose refusal was reported last (reported once, not at every poll).
    last_refused: Option<[u8; 32]>,
}

impl<F, T, P> core::fmt::Debug for Agent<'_, F, T, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Agent")
            .field("running", &self.running)
            .field("state", &self.journal.state().state)
            .finish_non_exhaustive()
    }
}

impl<F: NorFlash, T: Transport, P: Platform> Agent<'_, F, T, P> {
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

    // ---------------------------------------------------------------- shared by the phases

    /// Commits `next` with the time floors carried along.
    fn commit(&mut self, next: &JournalState, manifest: Blob<'_>) -> Result<(), AgentError> {
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

    /// Drops the pending release with `reason`, reporting `failed`; `reject` keeps it from
    /// being installed again.
    fn fail_pending(&mut self, reason: ReasonCode, reject: bool) -> Result<(), AgentError> {
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

    /// The release of the download in progress; a transition error towards `to` when the
    /// journal is not downloading.
    fn downloading(&self, to: StateKind) -> Result<Pending, AgentError> {
        match self.journal.state().state {
            UpdateState::Downloading(p) => Ok(p),
            other => Err(AgentError::Transition(TransitionError {
                from: other.kind(),
                to,
            })),
        }
    }

    fn note(&mut self, kind: Option<EventKind>, reason: ReasonCode) {
        if kind.is_some() {
            self.counters.last_outcome = kind;
        }
        self.counters.last_reason = Some(reason);
    }

    fn poll_ms(&self) -> u64 {
        u64::from(self.config.poll_interval_ms)
    }

    fn otadata(&mut self) -> Result<Otadata, AgentError> {
        otadata::read(&mut self.storage, &self.layout)
    }

    fn running_state(&mut self) -> Result<Option<OtaState>, AgentError> {
        let ota = self.otadata()?;
        Ok(otadata::running_state(&ota, &self.layout, self.running))
    }

    /// The writable target slot of `p`.
    fn target_region(&self, p: &Pending) -> Result<Region, AgentError> {
        self.layout
            .slot(p.target_slot)
            .ok_or(AgentError::Layout(LayoutError::Slots))
    }

    fn flash_failure(&mut self, e: AgentError) -> PollOutcome {
        self.note(None, ReasonCode::FlashError);
        PollOutcome::Failed {
            reason: ReasonCode::FlashError,
            error: Some(e),
            next_poll_ms: self.poll_ms(),
        }
    }

    /// What a poll that stopped at `stop` returns.
    fn outcome(&mut self, stop: Stop) -> PollOutcome {
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
}

/// The largest caller buffer, as scratch for reads.
fn largest<'s>(bufs: &'s mut Buffers<'_>) -> &'s mut [u8] {
    let (c, i, p) = (bufs.chunk.len(), bufs.io.len(), bufs.page.len());
    if c >= i && c >= p {
        bufs.chunk
    } else if i >= p {
        bufs.io
    } else {
        bufs.page
    }
}
