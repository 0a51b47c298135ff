//! What the journal holds, decoded: the lifecycle state with the data each state carries, and
//! the records around it.

use fota_protocol::v2::{EventKind, FixedStr, ReasonCode};

use super::entry::Entry;

/// Most rejected releases remembered.
pub const MAX_REJECTED: usize = 4;

/// The update lifecycle. Each state carries what it needs, so a download or a staged image
/// always names its release. Transitions are listed in [`UpdateState::may_become`];
/// everything else is a [`TransitionError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdateState {
    /// Nothing in flight.
    #[default]
    Idle,
    /// Chunks of the release are going into its target slot; progress is in the log.
    Downloading(Pending),
    /// The target slot holds the release, read back and verified; otadata is switched (or
    /// about to be) and the device must reboot.
    Staged(Pending),
    /// A release runs on trial (PENDING_VERIFY).
    Trial {
        /// The release on trial; `None` for a trial the journal did not expect (journal
        /// lost, or an image flashed by a tool), which still gets its health check.
        pending: Option<Pending>,
        /// Trial boots so far (1 on the first).
        attempts: u8,
        /// A health check of this release failed at least once.
        health_failed: bool,
    },
    /// The health check passed; otadata is being marked VALID.
    Confirming {
        /// The release being confirmed (`None` as for [`UpdateState::Trial`]).
        pending: Option<Pending>,
    },
    /// An operator ordered a rollback; the running entry is being marked INVALID. The slot
    /// it leaves is [`JournalState::rollback_from`].
    RollingBack {
        /// The order (0 for a legacy order, which has no id).
        order_id: u64,
    },
}

/// A state's name, for errors and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// [`UpdateState::Idle`].
    Idle,
    /// [`UpdateState::Downloading`].
    Downloading,
    /// [`UpdateState::Staged`].
    Staged,
    /// [`UpdateState::Trial`].
    Trial,
    /// [`UpdateState::Confirming`].
    Confirming,
    /// [`UpdateState::RollingBack`].
    RollingBack,
}

impl StateKind {
    /// snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Downloading => "downloading",
            Self::Staged => "staged",
            Self::Trial => "trial",
            Self::Confirming => "confirming",
            Self::RollingBack => "rolling_back",
        }
    }
}

/// A transition the lifecycle does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransitionError {
    /// The state the journal is in.
    pub from: StateKind,
    /// The state asked for.
    pub to: StateKind,
}

impl core::fmt::Display for TransitionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "no transition from {} to {}",
            self.from.as_str(),
            self.to.as_str()
        )
    }
}

impl UpdateState {
    /// The state's name.
    pub const fn kind(&self) -> StateKind {
        match self {
            Self::Idle => StateKind::Idle,
            Self::Downloading(_) => StateKind::Downloading,
            Self::Staged(_) => StateKind::Staged,
            Self::Trial { .. } => StateKind::Trial,
            Self::Confirming { .. } => StateKind::Confirming,
            Self::RollingBack { .. } => StateKind::RollingBack,
        }
    }

    /// The release this state names, if any.
    pub const fn pending(&self) -> Option<&Pending> {
        match self {
            Self::Downloading(p) | Self::Staged(p) => Some(p),
            Self::Trial { pending, .. } | Self::Confirming { pending } => pending.as_ref(),
            Self::Idle | Self::RollingBack { .. } => None,
        }
    }

    /// Whether a commit may go from `self` to `next`.
    ///
    /// | from | to |
    /// |---|---|
    /// | idle | idle (bookkeeping), downloading, staged (slot already holds the release), trial (a trial boot the journal did not expect), rolling_back |
    /// | downloading | downloading (restart, superseded), staged, idle (failed, cancelled) |
    /// | staged | trial, idle (rolled back or failed) |
    /// | trial | trial (next attempt), confirming, idle (rolled back) |
    /// | confirming | idle (confirmed, or rolled back by a cut inside the confirmation) |
    /// | rolling_back | idle (done, or refused after all) |
    pub fn may_become(&self, next: &UpdateState) -> Result<(), TransitionError> {
        use StateKind as K;
        let ok = matches!(
            (self.kind(), next.kind()),
            (
                K::Idle,
                K::Idle | K::Downloading | K::Staged | K::Trial | K::RollingBack
            ) | (K::Downloading, K::Downloading | K::Staged | K::Idle)
                | (K::Staged, K::Trial | K::Idle)
                | (K::Trial, K::Trial | K::Confirming | K::Idle)
                | (K::Confirming, K::Idle)
                | (K::RollingBack, K::Idle)
        );
        if ok {
            Ok(())
        } else {
            Err(TransitionError {
                from: self.kind(),
                to: next.kind(),
            })
        }
    }
}

/// A release as installed (confirmed) on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Release {
    /// v2: manifest digest; legacy (or unknown): zero.
    pub id: [u8; 32],
    /// v2 sequence (0 = unknown or legacy).
    pub sequence: u64,
    /// v2 security counter.
    pub security_counter: u32,
    /// `esp_app_desc_t.secure_version` of the image.
    pub secure_version: u32,
    /// The image's version string.
    pub fw_version: FixedStr,
    /// SHA-256 of the image (zero = unknown).
    pub image_sha256: [u8; 32],
    /// Assignment generation it was installed under (v2): a rollback from it rejects it at
    /// this generation, so only a new assignment brings it back.
    pub generation: u32,
}

/// Which protocol a pending release came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Signed manifest, hash list, ranged GETs.
    V2,
    /// The seed's JSON protocol.
    Legacy,
}

/// The release being downloaded, staged, or on trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Where it came from.
    pub protocol: Protocol,
    /// v2: manifest digest; legacy: image SHA-256. Names the release in events and the
    /// rejected list.
    pub id: [u8; 32],
    /// The OTA slot it goes to (never the running one).
    pub target_slot: u8,
    /// The slot that ran when the download started (0xFF = factory).
    pub from_slot: u8,
    /// Image length in bytes.
    pub image_size: u64,
    /// Chunk length.
    pub chunk_size: u32,
    /// Number of chunks.
    pub chunk_count: u32,
    /// SHA-256 of the whole image.
    pub image_sha256: [u8; 32],
    /// v2: the hash list commitment; legacy: zero.
    pub chunk_list_sha256: [u8; 32],
    /// v2 sequence; legacy 0.
    pub sequence: u64,
    /// v2 security counter; legacy 0.
    pub security_counter: u32,
    /// Version string the image must carry.
    pub fw_version: FixedStr,
    /// Project name the image must carry (v2; legacy: empty = the running project).
    pub project: FixedStr,
    /// The assignment generation of the statement that assigned it (v2).
    pub generation: u32,
    /// Chunks durably written, contiguous from chunk 0.
    pub chunks_done: u32,
    /// First 8 bytes of the SHA-256 of chunk `chunks_done - 1`.
    pub last_digest8: [u8; 8],
}

impl Pending {
    /// Length of chunk `index`; `None` past the end.
    pub fn chunk_len(&self, index: u32) -> Option<usize> {
        let start = u64::from(index).checked_mul(u64::from(self.chunk_size))?;
        let left = self.image_size.checked_sub(start).filter(|&l| l > 0)?;
        usize::try_from(left.min(u64::from(self.chunk_size))).ok()
    }

    /// Where chunk `index` starts in the slot; `None` when that is past 4 GiB.
    pub fn chunk_offset(&self, index: u32) -> Option<u32> {
        u64::from(index)
            .checked_mul(u64::from(self.chunk_size))
            .and_then(|at| u32::try_from(at).ok())
    }

    /// Bytes durably written.
    pub fn done_bytes(&self) -> u64 {
        u64::from(self.chunks_done)
            .saturating_mul(u64::from(self.chunk_size))
            .min(self.image_size)
    }
}

/// An outcome the server has to hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// What happened.
    pub kind: EventKind,
    /// Why.
    pub reason: ReasonCode,
    /// The release concerned (see [`Pending::id`]).
    pub id: [u8; 32],
    /// Its version.
    pub fw_version: FixedStr,
    /// The rollback order concerned (0 = none).
    pub order_id: u64,
}

/// A release the device will not install again until it is re-assigned (a higher assignment
/// generation) or a newer one is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rejected {
    /// v2 manifest digest or legacy image SHA-256.
    pub id: [u8; 32],
    /// Assignment generation in force when it was rejected.
    pub generation: u32,
    /// Why (a [`ReasonCode`] code).
    pub reason: u8,
}

/// Everything the journal holds, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JournalState {
    /// Where the lifecycle stands, with the release in flight.
    pub state: UpdateState,
    /// Legacy mode is off for good (a v2 manifest was accepted).
    pub legacy_disabled: bool,
    /// The confirmed release.
    pub installed: Release,
    /// The release confirmed before it.
    pub previous: Release,
    /// The slot the latest manual rollback leaves or left (0xFF = factory): while
    /// [`UpdateState::RollingBack`], the slot it leaves; afterwards kept, as the body keeps it.
    pub rollback_from: u8,
    /// The last rollback order carried out or refused (never acted on twice).
    pub last_order_id: u64,
    /// An outcome not yet delivered.
    pub report: Option<Report>,
    /// Highest v2 sequence accepted.
    pub highest_seq_seen: u64,
    /// Committed v2 security counter.
    pub committed_security_counter: u32,
    /// Highest `secure_version` confirmed (the eFuse analogue).
    pub committed_secure_version: u32,
    /// Highest server time (unix seconds) a status statement vouched for; reset when a root
    /// rotation replaces the status key. See [Time floors](crate::journal#time-floors).
    pub status_floor: u64,
    /// Newest `issued_at` (unix seconds) of the root records and releases the device
    /// accepted: signed by offline keys, never reset. Kept in an entry, not in the body.
    pub offline_floor: u64,
    /// Last authenticated legacy nonce.
    pub legacy_nonce: u64,
    /// Releases not to install again.
    pub rejected: heapless::Vec<Rejected, MAX_REJECTED>,
    /// Downloads resumed after a reset.
    pub resumes: u32,
    /// Chunks fetched more than once (tampered, or written but not journaled).
    pub rechunks: u32,
    /// Check-ins in a row whose status statement failed its checks or had expired, kept
    /// across resets so a freeze attack cannot hide behind a reboot (the agent reports
    /// `freshness_unavailable` from the third on). Kept in an entry, not in the body.
    pub bad_statements: u32,
}

impl JournalState {
    /// The release in flight: downloading, staged, or on trial.
    pub const fn pending(&self) -> Option<&Pending> {
        self.state.pending()
    }

    /// Adds `entry` to the rejected list, dropping the oldest when full and any older entry
    /// for the same release.
    pub fn reject(&mut self, entry: Rejected) {
        self.rejected.retain(|r| r.id != entry.id);
        if self.rejected.is_full() {
            self.rejected.remove(0);
        }
        // Room was made above.
        let _ = self.rejected.push(entry);
    }

    /// The security counter of the confirmed release whose image has SHA-256 `image_sha256`
    /// (the installed or the previous release), or 0 for an image the journal knows no
    /// release of: one that predates the journal, or that only a rollback or a trial the
    /// journal did not expect ever confirmed. Legacy releases carry no counter, so theirs is 0
    /// as well.
    pub fn security_counter_of(&self, image_sha256: &[u8; 32]) -> u32 {
        [&self.installed, &self.previous]
            .into_iter()
            .find(|r| r.image_sha256 != [0; 32] && r.image_sha256 == *image_sha256)
            .map_or(0, |r| r.security_counter)
    }

    /// Whether `id` is rejected at assignment generation `generation` (a higher generation
    /// is an explicit re-assignment and lifts the rejection).
    pub fn is_rejected(&self, id: &[u8; 32], generation: u32) -> Option<&Rejected> {
        self.rejected
            .iter()
            .find(|r| r.id == *id && generation <= r.generation)
    }

    /// Folds a log entry into the state; `false` when the entry does not fit it (progress
    /// outside a download, or going backwards), which ends a log scan like a torn entry.
    pub(super) fn apply(&mut self, entry: &Entry) -> bool {
        match *entry {
            Entry::Progress {
                chunks_done,
                digest8,
            } => match &mut self.state {
                UpdateState::Downloading(p)
                    if chunks_done <= p.chunk_count && chunks_done >= p.chunks_done =>
                {
                    p.chunks_done = chunks_done;
                    p.last_digest8 = digest8;
                    true
                }
                _ => false,
            },
            Entry::LegacyNonce(n) => {
                self.legacy_nonce = self.legacy_nonce.max(n);
                true
            }
            Entry::StatusFloor(t) => {
                self.status_floor = self.status_floor.max(t);
                true
            }
            Entry::OfflineFloor(t) => {
                self.offline_floor = self.offline_floor.max(t);
                true
            }
            Entry::BadStatements(n) => {
                self.bad_statements = n;
                true
            }
            Entry::ReportDelivered => {
                self.report = None;
                true
            }
        }
    }
}
