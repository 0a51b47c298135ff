//! The journal: what the agent must remember across resets, in two alternating 4 KiB sectors.
//!
//! # Why this shape
//!
//! A reset can come at any instant, including in the middle of a page program or a sector
//! erase. Each sector holds one *base record* (the whole state, sealed with a sequence number
//! and a CRC) followed by an append-only log of 16-byte *entries* (download progress and
//! counters that change often). A state change (a *commit*) writes a new base with the next
//! sequence number into the **other** sector, so until it is complete the old base is intact
//! and wins; once complete, its higher sequence wins. An entry is one program of 16 erased
//! bytes: a cut leaves it complete, absent (all 0xFF) or torn (its CRC fails). A torn entry
//! ends the log and forces the next write to be a commit (a *compaction*: a commit that folds
//! the log into the base), because torn bytes cannot be programmed again.
//!
//! Progress is appended only after the chunk it describes is on flash, so the journal never
//! claims more than the slot holds.
//!
//! # Sector layout
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 4 | magic | `FAJ1` |
//! | 4 | 4 | seq | u32 LE, ≥ 1; the valid base with the higher seq wins |
//! | 8 | 2 | body_len | u16 LE, length of the fixed body ([`BODY_LEN`]) |
//! | 10 | 2 | manifest_len | u16 LE, 0 = none; raw signed v2 manifest of the pending release |
//! | 12 | 2 | root_len | u16 LE, 0 = use the provisioned root; else a rotated root record |
//! | 14 | 2 | reserved | 0 |
//! | 16 | body_len | body | [`JournalState`], see [`JournalState::encode`] |
//! | … | manifest_len | manifest | the envelope as received (re-verified when read back) |
//! | … | root_len | root | the newest verified root record envelope |
//! | … | 4 | crc | CRC-32 (ISO-HDLC) of every byte from offset 0 up to here |
//! | … | 0–15 | padding | 0xFF up to a multiple of 16: the entries start there |
//! | E | 16 × n | entries | until the end of the sector; all 0xFF = free |
//!
//! # Entry layout
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 4 | word | u32 LE: kind in bits 28–31, value in bits 0–27 |
//! | 4 | 8 | payload | depends on the kind |
//! | 12 | 4 | crc | CRC-32 of the base's seq (u32 LE) followed by bytes 0..12 |
//!
//! | kind | value | payload | meaning |
//! |---|---|---|---|
//! | 0 progress | chunks done (contiguous from chunk 0) | first 8 bytes of the last chunk's SHA-256 | the pending download advanced |
//! | 1 legacy nonce | 0 | u64 LE | the last authenticated legacy nonce |
//! | 2 status floor | 0 | u64 LE unix seconds | the highest server time a status statement vouched for |
//! | 3 report delivered | 0 | 0 | the outcome in the base reached the server |
//! | 4 offline floor | 0 | u64 LE unix seconds | the newest time an offline key signed (see below) |
//!
//! Binding the entry CRC to the base's seq means an entry can only ever be read together with
//! the base it was appended to.
//!
//! # Time floors
//!
//! The device has no clock it can trust, so it keeps two lower bounds on the time
//! ([`JournalState::status_floor`], [`JournalState::offline_floor`]): what the online status
//! key vouched for, which a root rotation that replaces that key resets (TUF §5.3.11), and
//! what offline keys signed (the `issued_at` of root records and of releases the device
//! accepted), which nothing resets.
//!
//! The status floor keeps the place of the body's single time floor of the first layout, and
//! that floor is read as the status floor: only status statements ever raised it, so a floor a
//! leaked status key pushed into the future is reset by the rotation that replaces the key.
//! Reading it as offline would keep such a device frozen after the rotation too.
//!
//! The offline floor is not in the body: a base whose offline floor is not zero has an
//! offline-floor entry first, and a commit programs that entry **before** the base record, so
//! the base never becomes valid without it. The body, and so every base, stays byte for byte
//! what an agent of the first layout writes and reads: after the bootloader falls back from
//! a trial of this agent to an older one, the older agent reads the same state (its floor is
//! the status floor), stops its log at the entry as at a torn one, and compacts on its next
//! write. It loses what was appended since the last commit (progress is fetched again, a
//! report is sent again; the legacy nonce and the status floor fall back to their base
//! values) and the offline floor, which this agent then rebuilds from the root record it
//! trusts and the releases it accepts.
//!
//! # Reading
//!
//! Both bases are checked (magic, lengths, CRC, body decode); the valid one with the higher seq
//! wins. Its entries are applied in order until the first free slot; an invalid entry ends the
//! scan. Neither base valid (new device, or both destroyed) reads as [`JournalState::default`].

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::codec::{Reader, Writer};
use fota_protocol::v2::{EventKind, FixedStr, ReasonCode};

use crate::error::AgentError;
use crate::flash::{PAGE, Region, SECTOR, Storage, Writable};

/// Magic of a base record.
pub const MAGIC: [u8; 4] = *b"FAJ1";
/// Bytes before the body.
pub const HEADER_LEN: usize = 16;
/// Bytes of one log entry.
pub const ENTRY_LEN: usize = 16;
/// Most rejected releases remembered.
pub const MAX_REJECTED: usize = 4;
/// Largest manifest blob accepted.
pub const MAX_MANIFEST_LEN: usize = fota_protocol::v2::manifest::MAX_LEN;
/// Largest root blob accepted.
pub const MAX_ROOT_LEN: usize = fota_protocol::v2::root::MAX_LEN;

const BODY_VERSION: u8 = 1;
const RELEASE_LEN: usize = 32 + 8 + 4 + 4 + 32 + 32 + 4;
const PENDING_LEN: usize = 1 + 32 + 1 + 1 + 8 + 4 + 4 + 32 + 32 + 8 + 4 + 32 + 32 + 4 + 4 + 8;
const REPORT_LEN: usize = 1 + 1 + 32 + 32 + 8;
const REJECTED_LEN: usize = 32 + 4 + 1;
/// Length of the fixed body.
pub const BODY_LEN: usize = 1
    + 1
    + 1
    + 1
    + 8
    + 1
    + 2 * RELEASE_LEN
    + 1
    + PENDING_LEN
    + 1
    + 8
    + 1
    + REPORT_LEN
    + 8
    + 4
    + 4
    + 8
    + 8
    + 1
    + MAX_REJECTED * REJECTED_LEN
    + 4
    + 4;

static CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

// The largest base (both blobs at their limits) still leaves room for its offline-floor entry.
const _: () = assert!(
    HEADER_LEN + BODY_LEN + MAX_MANIFEST_LEN + MAX_ROOT_LEN + 4 + 15 + ENTRY_LEN <= SECTOR as usize
);

/// The update lifecycle. Transitions are listed in [`UpdateState::may_become`]; everything
/// else is a [`TransitionError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdateState {
    /// Nothing in flight.
    #[default]
    Idle,
    /// Chunks of the pending release are going into the target slot; progress is in the log.
    Downloading,
    /// The target slot holds the pending release, read back and verified; otadata is switched
    /// (or about to be) and the device must reboot.
    Staged,
    /// The pending release runs on trial (PENDING_VERIFY).
    Trial {
        /// Trial boots so far (1 on the first).
        attempts: u8,
        /// A health check of this release failed at least once.
        health_failed: bool,
    },
    /// The health check passed; otadata is being marked VALID.
    Confirming,
    /// An operator ordered a rollback; the running entry is being marked INVALID.
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
            Self::Downloading => StateKind::Downloading,
            Self::Staged => StateKind::Staged,
            Self::Trial { .. } => StateKind::Trial,
            Self::Confirming => StateKind::Confirming,
            Self::RollingBack { .. } => StateKind::RollingBack,
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
    /// Where the lifecycle stands.
    pub state: UpdateState,
    /// Legacy mode is off for good (a v2 manifest was accepted).
    pub legacy_disabled: bool,
    /// The confirmed release.
    pub installed: Release,
    /// The release confirmed before it.
    pub previous: Release,
    /// The release in flight.
    pub pending: Option<Pending>,
    /// The slot a manual rollback left (0xFF = factory).
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
}

fn put_release(w: &mut Writer<'_>, r: &Release) -> Result<(), fota_protocol::CodecError> {
    w.bytes(&r.id)?;
    w.u64(r.sequence)?;
    w.u32(r.security_counter)?;
    w.u32(r.secure_version)?;
    w.bytes(r.fw_version.as_bytes())?;
    w.bytes(&r.image_sha256)?;
    w.u32(r.generation)
}

fn get_release(r: &mut Reader<'_>) -> Option<Release> {
    Some(Release {
        id: r.array().ok()?,
        sequence: r.u64().ok()?,
        security_counter: r.u32().ok()?,
        secure_version: r.u32().ok()?,
        fw_version: FixedStr::from_field(&r.array().ok()?)?,
        image_sha256: r.array().ok()?,
        generation: r.u32().ok()?,
    })
}

fn get_bool(r: &mut Reader<'_>) -> Option<bool> {
    match r.u8().ok()? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

impl JournalState {
    /// Encodes the fixed body ([`BODY_LEN`] bytes, integers LE, in field order: version,
    /// state tag, trial attempts, health_failed, order id, legacy_disabled, installed,
    /// previous, pending flag + pending, rollback_from, last_order_id, report flag + report,
    /// highest_seq_seen, committed security counter, committed secure version, status floor,
    /// legacy nonce, rejected count + 4 slots, resumes, re-downloaded chunks). Unused parts are
    /// zero. The offline floor is not part of the body (see [Time floors](crate::journal#time-floors)).
    pub fn encode(&self) -> [u8; BODY_LEN] {
        let mut out = [0u8; BODY_LEN];
        // Every field has a fixed width summing to BODY_LEN, so the writer cannot run out; a
        // failure would leave zeros, which decode rejects through the version byte.
        let _ = self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut [u8; BODY_LEN]) -> Result<(), fota_protocol::CodecError> {
        let mut w = Writer::new(out);
        w.u8(BODY_VERSION)?;
        let (tag, attempts, failed, order) = match self.state {
            UpdateState::Idle => (0, 0, false, 0),
            UpdateState::Downloading => (1, 0, false, 0),
            UpdateState::Staged => (2, 0, false, 0),
            UpdateState::Trial {
                attempts,
                health_failed,
            } => (3, attempts, health_failed, 0),
            UpdateState::Confirming => (4, 0, false, 0),
            UpdateState::RollingBack { order_id } => (5, 0, false, order_id),
        };
        w.u8(tag)?;
        w.u8(attempts)?;
        w.u8(u8::from(failed))?;
        w.u64(order)?;
        w.u8(u8::from(self.legacy_disabled))?;
        put_release(&mut w, &self.installed)?;
        put_release(&mut w, &self.previous)?;
        match &self.pending {
            Some(p) => {
                w.u8(1)?;
                w.u8(match p.protocol {
                    Protocol::V2 => 0,
                    Protocol::Legacy => 1,
                })?;
                w.bytes(&p.id)?;
                w.u8(p.target_slot)?;
                w.u8(p.from_slot)?;
                w.u64(p.image_size)?;
                w.u32(p.chunk_size)?;
                w.u32(p.chunk_count)?;
                w.bytes(&p.image_sha256)?;
                w.bytes(&p.chunk_list_sha256)?;
                w.u64(p.sequence)?;
                w.u32(p.security_counter)?;
                w.bytes(p.fw_version.as_bytes())?;
                w.bytes(p.project.as_bytes())?;
                w.u32(p.generation)?;
                w.u32(p.chunks_done)?;
                w.bytes(&p.last_digest8)?;
            }
            None => {
                w.u8(0)?;
                w.bytes(&[0; PENDING_LEN])?;
            }
        }
        w.u8(self.rollback_from)?;
        w.u64(self.last_order_id)?;
        match &self.report {
            Some(r) => {
                w.u8(1)?;
                w.u8(r.kind.code())?;
                w.u8(r.reason.code())?;
                w.bytes(&r.id)?;
                w.bytes(r.fw_version.as_bytes())?;
                w.u64(r.order_id)?;
            }
            None => {
                w.u8(0)?;
                w.bytes(&[0; REPORT_LEN])?;
            }
        }
        w.u64(self.highest_seq_seen)?;
        w.u32(self.committed_security_counter)?;
        w.u32(self.committed_secure_version)?;
        w.u64(self.status_floor)?;
        w.u64(self.legacy_nonce)?;
        // At most MAX_REJECTED (4) entries.
        w.u8(self.rejected.len() as u8)?;
        for i in 0..MAX_REJECTED {
            let r = self.rejected.get(i).copied().unwrap_or_default();
            w.bytes(&r.id)?;
            w.u32(r.generation)?;
            w.u8(r.reason)?;
        }
        w.u32(self.resumes)?;
        w.u32(self.rechunks)?;
        Ok(())
    }

    /// Decodes a body; `None` for anything [`Self::encode`] would not have written.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != BODY_LEN {
            return None;
        }
        let mut r = Reader::new(bytes);
        if r.u8().ok()? != BODY_VERSION {
            return None;
        }
        let tag = r.u8().ok()?;
        let attempts = r.u8().ok()?;
        let health_failed = get_bool(&mut r)?;
        let order_id = r.u64().ok()?;
        let state = match tag {
            0 => UpdateState::Idle,
            1 => UpdateState::Downloading,
            2 => UpdateState::Staged,
            3 => UpdateState::Trial {
                attempts,
                health_failed,
            },
            4 => UpdateState::Confirming,
            5 => UpdateState::RollingBack { order_id },
            _ => return None,
        };
        let legacy_disabled = get_bool(&mut r)?;
        let installed = get_release(&mut r)?;
        let previous = get_release(&mut r)?;
        let has_pending = get_bool(&mut r)?;
        let pending = if has_pending {
            let protocol = match r.u8().ok()? {
                0 => Protocol::V2,
                1 => Protocol::Legacy,
                _ => return None,
            };
            Some(Pending {
                protocol,
                id: r.array().ok()?,
                target_slot: r.u8().ok()?,
                from_slot: r.u8().ok()?,
                image_size: r.u64().ok()?,
                chunk_size: r.u32().ok()?,
                chunk_count: r.u32().ok()?,
                image_sha256: r.array().ok()?,
                chunk_list_sha256: r.array().ok()?,
                sequence: r.u64().ok()?,
                security_counter: r.u32().ok()?,
                fw_version: FixedStr::from_field(&r.array().ok()?)?,
                project: FixedStr::from_field(&r.array().ok()?)?,
                generation: r.u32().ok()?,
                chunks_done: r.u32().ok()?,
                last_digest8: r.array().ok()?,
            })
        } else {
            r.take(PENDING_LEN).ok()?;
            None
        };
        let rollback_from = r.u8().ok()?;
        let last_order_id = r.u64().ok()?;
        let report = if get_bool(&mut r)? {
            Some(Report {
                kind: EventKind::from_code(r.u8().ok()?)?,
                reason: ReasonCode::from_code(r.u8().ok()?)?,
                id: r.array().ok()?,
                fw_version: FixedStr::from_field(&r.array().ok()?)?,
                order_id: r.u64().ok()?,
            })
        } else {
            r.take(REPORT_LEN).ok()?;
            None
        };
        let highest_seq_seen = r.u64().ok()?;
        let committed_security_counter = r.u32().ok()?;
        let committed_secure_version = r.u32().ok()?;
        let status_floor = r.u64().ok()?;
        let legacy_nonce = r.u64().ok()?;
        let count = usize::from(r.u8().ok()?);
        if count > MAX_REJECTED {
            return None;
        }
        let mut rejected = heapless::Vec::new();
        for i in 0..MAX_REJECTED {
            let entry = Rejected {
                id: r.array().ok()?,
                generation: r.u32().ok()?,
                reason: r.u8().ok()?,
            };
            if i < count {
                rejected.push(entry).ok()?;
            }
        }
        let resumes = r.u32().ok()?;
        let rechunks = r.u32().ok()?;
        r.finish().ok()?;
        let needs_pending = !matches!(state, UpdateState::Idle | UpdateState::RollingBack { .. });
        if needs_pending
            && pending.is_none()
            && !matches!(state, UpdateState::Trial { .. } | UpdateState::Confirming)
        {
            return None;
        }
        Some(Self {
            state,
            legacy_disabled,
            installed,
            previous,
            pending,
            rollback_from,
            last_order_id,
            report,
            highest_seq_seen,
            committed_security_counter,
            committed_secure_version,
            status_floor,
            offline_floor: 0,
            legacy_nonce,
            rejected,
            resumes,
            rechunks,
        })
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

    fn apply(&mut self, entry: &Entry) -> bool {
        match *entry {
            Entry::Progress {
                chunks_done,
                digest8,
            } => match (&mut self.pending, self.state) {
                (Some(p), UpdateState::Downloading)
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
            Entry::ReportDelivered => {
                self.report = None;
                true
            }
        }
    }
}

/// One log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// `chunks_done` chunks are on flash; `digest8` starts the last one's SHA-256.
    Progress {
        /// Chunks durably written.
        chunks_done: u32,
        /// First 8 bytes of the last chunk's SHA-256.
        digest8: [u8; 8],
    },
    /// The last authenticated legacy nonce.
    LegacyNonce(u64),
    /// The highest server time a status statement vouched for.
    StatusFloor(u64),
    /// The report in the base was delivered.
    ReportDelivered,
    /// The offline floor of the base (written with it, see [Time floors](crate::journal#time-floors)).
    OfflineFloor(u64),
}

const VALUE_MASK: u32 = 0x0FFF_FFFF;

impl Entry {
    fn encode(&self, seq: u32) -> Option<[u8; ENTRY_LEN]> {
        let (kind, value, payload): (u32, u32, [u8; 8]) = match *self {
            Entry::Progress {
                chunks_done,
                digest8,
            } => {
                if chunks_done > VALUE_MASK {
                    return None;
                }
                (0, chunks_done, digest8)
            }
            Entry::LegacyNonce(n) => (1, 0, n.to_le_bytes()),
            Entry::StatusFloor(t) => (2, 0, t.to_le_bytes()),
            Entry::ReportDelivered => (3, 0, [0; 8]),
            Entry::OfflineFloor(t) => (4, 0, t.to_le_bytes()),
        };
        let mut out = [0u8; ENTRY_LEN];
        out[..4].copy_from_slice(&((kind << 28) | value).to_le_bytes());
        out[4..12].copy_from_slice(&payload);
        let crc = entry_crc(seq, &out[..12]);
        out[12..].copy_from_slice(&crc.to_le_bytes());
        Some(out)
    }

    fn decode(seq: u32, bytes: &[u8; ENTRY_LEN]) -> Option<Self> {
        let stored = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        if entry_crc(seq, &bytes[..12]) != stored {
            return None;
        }
        let word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let mut payload = [0u8; 8];
        payload.copy_from_slice(&bytes[4..12]);
        let value = word & VALUE_MASK;
        match word >> 28 {
            0 => Some(Entry::Progress {
                chunks_done: value,
                digest8: payload,
            }),
            1 if value == 0 => Some(Entry::LegacyNonce(u64::from_le_bytes(payload))),
            2 if value == 0 => Some(Entry::StatusFloor(u64::from_le_bytes(payload))),
            3 if value == 0 && payload == [0; 8] => Some(Entry::ReportDelivered),
            4 if value == 0 => Some(Entry::OfflineFloor(u64::from_le_bytes(payload))),
            _ => None,
        }
    }
}

fn entry_crc(seq: u32, bytes: &[u8]) -> u32 {
    let mut d = CRC.digest();
    d.update(&seq.to_le_bytes());
    d.update(bytes);
    d.finalize()
}

/// Where the blobs of a commit come from.
#[derive(Debug, Clone, Copy)]
pub enum Blob<'a> {
    /// Copy it from the current base (or none if there is none).
    Keep,
    /// These bytes.
    New(&'a [u8]),
    /// No blob.
    Drop,
}

/// The valid base the journal reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Located {
    sector: u8,
    seq: u32,
    manifest: (u32, u16),
    root: (u32, u16),
    next_entry: u32,
    needs_compaction: bool,
}

/// The journal: its region, the decoded state, and where the winning base is.
#[derive(Debug, Clone)]
pub struct Journal {
    region: Region,
    state: JournalState,
    current: Option<Located>,
    commits: u32,
    appends: u32,
}

/// Header of a base, decoded.
struct Header {
    seq: u32,
    body_len: u16,
    manifest_len: u16,
    root_len: u16,
}

fn align16(n: u32) -> Option<u32> {
    n.checked_add(15).map(|v| v & !15)
}

impl Journal {
    /// Reads the journal in `region` (two sectors).
    pub fn open<F: NorFlash>(storage: &mut Storage<F>, region: Region) -> Result<Self, AgentError> {
        if region.size() != 2 * SECTOR {
            return Err(AgentError::NoJournalRegion);
        }
        let mut best: Option<(Located, JournalState)> = None;
        for sector in 0..2u8 {
            if let Some(found) = Self::read_base(storage, region, sector)?
                && best.as_ref().is_none_or(|(b, _)| found.0.seq > b.seq)
            {
                best = Some(found);
            }
        }
        let (current, state) = match best {
            Some((mut loc, mut state)) => {
                Self::scan(storage, region, &mut loc, &mut state)?;
                (Some(loc), state)
            }
            None => (None, JournalState::default()),
        };
        Ok(Self {
            region,
            state,
            current,
            commits: 0,
            appends: 0,
        })
    }

    fn read_header<F: NorFlash>(
        storage: &mut Storage<F>,
        region: Region,
        base: u32,
    ) -> Result<Option<Header>, AgentError> {
        let mut h = [0u8; HEADER_LEN];
        storage.read(region, base, &mut h)?;
        let mut r = Reader::new(&h);
        let (Ok(magic), Ok(seq), Ok(body_len), Ok(manifest_len), Ok(root_len), Ok(reserved)) =
            (r.array::<4>(), r.u32(), r.u16(), r.u16(), r.u16(), r.u16())
        else {
            return Ok(None);
        };
        let ok = magic == MAGIC
            && seq != 0
            && seq != u32::MAX
            && usize::from(body_len) == BODY_LEN
            && usize::from(manifest_len) <= MAX_MANIFEST_LEN
            && usize::from(root_len) <= MAX_ROOT_LEN
            && reserved == 0;
        Ok(ok.then_some(Header {
            seq,
            body_len,
            manifest_len,
            root_len,
        }))
    }

    fn read_base<F: NorFlash>(
        storage: &mut Storage<F>,
        region: Region,
        sector: u8,
    ) -> Result<Option<(Located, JournalState)>, AgentError> {
        let base = u32::from(sector) * SECTOR;
        let Some(h) = Self::read_header(storage, region, base)? else {
            return Ok(None);
        };
        let crc_at = HEADER_LEN as u32
            + u32::from(h.body_len)
            + u32::from(h.manifest_len)
            + u32::from(h.root_len);
        let Some(entries) = align16(crc_at + 4).filter(|&e| e <= SECTOR) else {
            return Ok(None);
        };
        // CRC over header, body and blobs, read back in small pieces.
        let mut digest = CRC.digest();
        let mut buf = [0u8; 64];
        let mut at = 0u32;
        while at < crc_at {
            let n = (crc_at - at).min(buf.len() as u32);
            let piece = buf
                .get_mut(..n as usize)
                .ok_or(AgentError::BufferTooSmall("journal read"))?;
            storage.read(region, base + at, piece)?;
            digest.update(piece);
            at += n;
        }
        let mut stored = [0u8; 4];
        storage.read(region, base + crc_at, &mut stored)?;
        if digest.finalize() != u32::from_le_bytes(stored) {
            return Ok(None);
        }
        let mut body = [0u8; BODY_LEN];
        storage.read(region, base + HEADER_LEN as u32, &mut body)?;
        let Some(state) = JournalState::decode(&body) else {
            return Ok(None);
        };
        let manifest_at = HEADER_LEN as u32 + u32::from(h.body_len);
        let root_at = manifest_at + u32::from(h.manifest_len);
        Ok(Some((
            Located {
                sector,
                seq: h.seq,
                manifest: (manifest_at, h.manifest_len),
                root: (root_at, h.root_len),
                next_entry: entries,
                needs_compaction: false,
            },
            state,
        )))
    }

    fn scan<F: NorFlash>(
        storage: &mut Storage<F>,
        region: Region,
        loc: &mut Located,
        state: &mut JournalState,
    ) -> Result<(), AgentError> {
        let base = u32::from(loc.sector) * SECTOR;
        let mut raw = [0u8; ENTRY_LEN];
        while loc.next_entry + ENTRY_LEN as u32 <= SECTOR {
            storage.read(region, base + loc.next_entry, &mut raw)?;
            if raw.iter().all(|&b| b == 0xFF) {
                return Ok(());
            }
            match Entry::decode(loc.seq, &raw) {
                Some(entry) if state.apply(&entry) => loc.next_entry += ENTRY_LEN as u32,
                _ => {
                    // Torn (or nonsensical): the log ends here, and these bytes can never be
                    // programmed again, so the next write must compact.
                    loc.needs_compaction = true;
                    return Ok(());
                }
            }
        }
        loc.needs_compaction = true;
        Ok(())
    }

    /// The decoded state (base + log).
    pub const fn state(&self) -> &JournalState {
        &self.state
    }

    /// Sequence of the winning base (0 when there is none).
    pub fn seq(&self) -> u32 {
        self.current.map_or(0, |c| c.seq)
    }

    /// Commits and appends this boot (for wear reports).
    pub const fn counts(&self) -> (u32, u32) {
        (self.commits, self.appends)
    }

    /// Reads the stored manifest into `buf`; `None` when there is none.
    pub fn read_manifest<'b, F: NorFlash>(
        &self,
        storage: &mut Storage<F>,
        buf: &'b mut [u8],
    ) -> Result<Option<&'b [u8]>, AgentError> {
        self.read_blob(storage, buf, |c| c.manifest)
    }

    /// Reads the stored root record into `buf`; `None` when there is none.
    pub fn read_root<'b, F: NorFlash>(
        &self,
        storage: &mut Storage<F>,
        buf: &'b mut [u8],
    ) -> Result<Option<&'b [u8]>, AgentError> {
        self.read_blob(storage, buf, |c| c.root)
    }

    /// Whether a rotated root is stored.
    pub fn has_root(&self) -> bool {
        self.current.is_some_and(|c| c.root.1 != 0)
    }

    fn read_blob<'b, F: NorFlash>(
        &self,
        storage: &mut Storage<F>,
        buf: &'b mut [u8],
        which: impl Fn(&Located) -> (u32, u16),
    ) -> Result<Option<&'b [u8]>, AgentError> {
        let Some(c) = self.current else {
            return Ok(None);
        };
        let (at, len) = which(&c);
        if len == 0 {
            return Ok(None);
        }
        let out = buf
            .get_mut(..usize::from(len))
            .ok_or(AgentError::BufferTooSmall("journal blob"))?;
        storage.read(self.region, u32::from(c.sector) * SECTOR + at, out)?;
        Ok(Some(out))
    }

    /// Writes `next` as a new base into the other sector. The lifecycle must allow the
    /// transition. Blobs are kept, replaced or dropped as given.
    pub fn commit<F: NorFlash>(
        &mut self,
        storage: &mut Storage<F>,
        next: &JournalState,
        manifest: Blob<'_>,
        root: Blob<'_>,
    ) -> Result<(), AgentError> {
        self.state.state.may_become(&next.state)?;
        self.write_base(storage, next, manifest, root)
    }

    fn write_base<F: NorFlash>(
        &mut self,
        storage: &mut Storage<F>,
        next: &JournalState,
        manifest: Blob<'_>,
        root: Blob<'_>,
    ) -> Result<(), AgentError> {
        let w = storage.writable(self.region)?;
        let (sector, seq) = match self.current {
            Some(c) => (
                1 - c.sector,
                c.seq
                    .checked_add(1)
                    .filter(|&s| s != u32::MAX)
                    .ok_or(AgentError::JournalFull)?,
            ),
            None => (0, 1),
        };
        let blob_len = |b: &Blob<'_>, kept: Option<(u32, u16)>| -> Result<u16, AgentError> {
            match b {
                Blob::Keep => Ok(kept.map_or(0, |k| k.1)),
                Blob::New(bytes) => {
                    u16::try_from(bytes.len()).map_err(|_| AgentError::Config("journal blob"))
                }
                Blob::Drop => Ok(0),
            }
        };
        let manifest_len = blob_len(&manifest, self.current.map(|c| c.manifest))?;
        let root_len = blob_len(&root, self.current.map(|c| c.root))?;
        if usize::from(manifest_len) > MAX_MANIFEST_LEN || usize::from(root_len) > MAX_ROOT_LEN {
            return Err(AgentError::Config("journal blob"));
        }
        let base = u32::from(sector) * SECTOR;
        let record_len =
            HEADER_LEN as u32 + BODY_LEN as u32 + u32::from(manifest_len) + u32::from(root_len) + 4;
        let entries = align16(record_len)
            .filter(|&e| e + ENTRY_LEN as u32 <= SECTOR)
            .ok_or(AgentError::Config("journal record larger than a sector"))?;
        storage.erase(&w, base, base + SECTOR)?;
        let mut next_entry = entries;
        if next.offline_floor != 0 {
            // Before the record: once its CRC makes the base valid, the entry is there.
            let bytes = Entry::OfflineFloor(next.offline_floor)
                .encode(seq)
                .ok_or(AgentError::Config("journal entry value"))?;
            storage.program(&w, base + entries, &bytes)?;
            next_entry += ENTRY_LEN as u32;
        }
        let mut rec = RecordWriter::new(base);
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(&MAGIC);
        header[4..8].copy_from_slice(&seq.to_le_bytes());
        header[8..10].copy_from_slice(&(BODY_LEN as u16).to_le_bytes());
        header[10..12].copy_from_slice(&manifest_len.to_le_bytes());
        header[12..14].copy_from_slice(&root_len.to_le_bytes());
        rec.push(storage, &w, &header)?;
        rec.push(storage, &w, &next.encode())?;
        for (blob, kept) in [
            (manifest, self.current.map(|c| c.manifest)),
            (root, self.current.map(|c| c.root)),
        ] {
            match blob {
                Blob::New(bytes) => rec.push(storage, &w, bytes)?,
                Blob::Keep => {
                    if let (Some(c), Some((at, len))) = (self.current, kept) {
                        let from = u32::from(c.sector) * SECTOR + at;
                        let mut buf = [0u8; 64];
                        let mut done = 0u32;
                        while done < u32::from(len) {
                            let n = (u32::from(len) - done).min(buf.len() as u32);
                            let piece = buf
                                .get_mut(..n as usize)
                                .ok_or(AgentError::BufferTooSmall("journal read"))?;
                            storage.read(self.region, from + done, piece)?;
                            rec.push(storage, &w, piece)?;
                            done += n;
                        }
                    }
                }
                Blob::Drop => {}
            }
        }
        if rec.finish(storage, &w)? != entries {
            return Err(AgentError::Config("journal record length"));
        }
        let manifest_at = HEADER_LEN as u32 + BODY_LEN as u32;
        let root_at = manifest_at + u32::from(manifest_len);
        self.current = Some(Located {
            sector,
            seq,
            manifest: (manifest_at, manifest_len),
            root: (root_at, root_len),
            next_entry,
            needs_compaction: false,
        });
        self.state = next.clone();
        self.commits = self.commits.saturating_add(1);
        Ok(())
    }

    /// Appends `entry` to the log (one 16-byte program), or compacts when the log is full or
    /// ends in a torn entry. The state changes only after the flash did.
    pub fn append<F: NorFlash>(
        &mut self,
        storage: &mut Storage<F>,
        entry: Entry,
    ) -> Result<(), AgentError> {
        let mut next = self.state.clone();
        if !next.apply(&entry) {
            return Err(AgentError::Transition(TransitionError {
                from: self.state.state.kind(),
                to: self.state.state.kind(),
            }));
        }
        let Some(c) = self
            .current
            .filter(|c| !c.needs_compaction && c.next_entry + ENTRY_LEN as u32 <= SECTOR)
        else {
            return self.write_base(storage, &next, Blob::Keep, Blob::Keep);
        };
        let bytes = entry
            .encode(c.seq)
            .ok_or(AgentError::Config("journal entry value"))?;
        let w = storage.writable(self.region)?;
        let at = u32::from(c.sector) * SECTOR + c.next_entry;
        if let Err(e) = storage.program(&w, at, &bytes) {
            // Whatever the program left, this slot is spent.
            if let Some(cur) = self.current.as_mut() {
                cur.needs_compaction = true;
            }
            return Err(e);
        }
        if let Some(cur) = self.current.as_mut() {
            cur.next_entry += ENTRY_LEN as u32;
        }
        self.state = next;
        self.appends = self.appends.saturating_add(1);
        Ok(())
    }
}

/// Streams a base record into its sector one page at a time, computing the CRC on the way.
struct RecordWriter {
    base: u32,
    window: [u8; PAGE as usize],
    filled: usize,
    written: u32,
    digest: crc::Digest<'static, u32>,
}

impl RecordWriter {
    fn new(base: u32) -> Self {
        Self {
            base,
            window: [0xFF; PAGE as usize],
            filled: 0,
            written: 0,
            digest: CRC.digest(),
        }
    }

    fn push<F: NorFlash>(
        &mut self,
        storage: &mut Storage<F>,
        w: &Writable,
        mut bytes: &[u8],
    ) -> Result<(), AgentError> {
        self.digest.update(bytes);
        self.raw(storage, w, &mut bytes)
    }

    fn raw<F: NorFlash>(
        &mut self,
        storage: &mut Storage<F>,
        w: &Writable,
        bytes: &mut &[u8],
    ) -> Result<(), AgentError> {
        while !bytes.is_empty() {
            let room = self.window.len() - self.filled;
            let n = room.min(bytes.len());
            let (now, rest) = bytes.split_at(n);
            self.window
                .get_mut(self.filled..self.filled + n)
                .ok_or(AgentError::Config("journal record window"))?
                .copy_from_slice(now);
            self.filled += n;
            *bytes = rest;
            if self.filled == self.window.len() {
                self.flush(storage, w)?;
            }
        }
        Ok(())
    }

    fn flush<F: NorFlash>(
        &mut self,
        storage: &mut Storage<F>,
        w: &Writable,
    ) -> Result<(), AgentError> {
        if self.filled == 0 {
            return Ok(());
        }
        let at = self.base + self.written;
        if self.written + self.filled as u32 > SECTOR {
            return Err(AgentError::Config("journal record larger than a sector"));
        }
        let bytes = self
            .window
            .get(..self.filled)
            .ok_or(AgentError::Config("journal record window"))?;
        storage.program(w, at, bytes)?;
        self.written += self.filled as u32;
        self.filled = 0;
        self.window = [0xFF; PAGE as usize];
        Ok(())
    }

    /// Writes the CRC and the padding; returns where the entries start.
    fn finish<F: NorFlash>(
        mut self,
        storage: &mut Storage<F>,
        w: &Writable,
    ) -> Result<u32, AgentError> {
        let crc = self.digest.clone().finalize().to_le_bytes();
        let mut crc_ref: &[u8] = &crc;
        self.raw(storage, w, &mut crc_ref)?;
        // Pad with erased bytes to a 16-byte boundary (programming 0xFF changes nothing).
        let total = self.written + self.filled as u32;
        let end = align16(total).ok_or(AgentError::Config("journal record"))?;
        self.filled += (end - total) as usize;
        if end > SECTOR {
            return Err(AgentError::Config("journal record larger than a sector"));
        }
        self.flush(storage, w)?;
        Ok(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fota_flash_sim::{Config, Cut, FaultPlan, SimFlash, Tear};
    use proptest::prelude::*;

    const REGION: Region = match Region::new(0x2000, 0x2000) {
        Some(r) => r,
        None => panic!(),
    };

    fn storage() -> Storage<SimFlash> {
        Storage::new(SimFlash::new(Config::ESP32.with_capacity(0x4000)).unwrap())
            .map_err(|e| e.0)
            .unwrap()
    }

    fn reopen(s: Storage<SimFlash>) -> (Storage<SimFlash>, Journal) {
        let mut flash = s.into_inner();
        flash.power_on();
        let mut s = Storage::new(flash).map_err(|e| e.0).unwrap();
        let j = Journal::open(&mut s, REGION).unwrap();
        (s, j)
    }

    fn pending(chunks: u32) -> Pending {
        Pending {
            protocol: Protocol::V2,
            id: [7; 32],
            target_slot: 1,
            from_slot: 0,
            image_size: u64::from(chunks) * 4096,
            chunk_size: 4096,
            chunk_count: chunks,
            image_sha256: [8; 32],
            chunk_list_sha256: [9; 32],
            sequence: 3,
            security_counter: 1,
            fw_version: FixedStr::new("1.0.6").unwrap(),
            project: FixedStr::new("ecowatt").unwrap(),
            generation: 2,
            chunks_done: 0,
            last_digest8: [0; 8],
        }
    }

    fn downloading(chunks: u32) -> JournalState {
        JournalState {
            state: UpdateState::Downloading,
            pending: Some(pending(chunks)),
            ..JournalState::default()
        }
    }

    #[test]
    fn body_round_trips_and_has_the_documented_length() {
        let mut s = downloading(5);
        s.report = Some(Report {
            kind: EventKind::RolledBack,
            reason: ReasonCode::HealthCheckFailed,
            id: [1; 32],
            fw_version: FixedStr::new("1.0.7").unwrap(),
            order_id: 9,
        });
        s.reject(Rejected {
            id: [2; 32],
            generation: 4,
            reason: 15,
        });
        s.legacy_nonce = 77;
        let bytes = s.encode();
        assert_eq!(bytes.len(), BODY_LEN);
        assert_eq!(JournalState::decode(&bytes), Some(s));
        assert_eq!(JournalState::decode(&[0u8; BODY_LEN]), None);
        assert_eq!(JournalState::decode(&bytes[1..]), None);
    }

    /// Sector 0 of a journal as the first layout's agent wrote it: one commit of
    /// [`first_layout_state`] with its floor at 1_800_000_000, then a time-floor entry of
    /// 1_800_007_200.
    const FIRST_LAYOUT: &str = concat!(
        "46414a3101000000d6020000000000000100000000000000000000000170707070707070707070707070707070707070",
        "7070707070707070707070707003000000000000000500000000000000312e302e370000000000000000000000000000",
        "000000000000000000000000007171717171717171717171717171717171717171717171717171717171717171030000",
        "006060606060606060606060606060606060606060606060606060606060606060020000000000000000000000000000",
        "00312e302e36000000000000000000000000000000000000000000000000000000616161616161616161616161616161",
        "616161616161616161616161616161616103000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000004000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000300000000000000050000000000000000d2496b000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000c6f01e5fffffffffffff0000002020ee496b0000000083fa7eac",
    );

    fn first_layout_state() -> JournalState {
        let release = |v: &str, b: u8, sequence: u64, security_counter: u32| Release {
            id: [b; 32],
            sequence,
            security_counter,
            secure_version: 0,
            fw_version: FixedStr::new(v).unwrap(),
            image_sha256: [b + 1; 32],
            generation: 3,
        };
        JournalState {
            legacy_disabled: true,
            installed: release("1.0.7", 0x70, 3, 5),
            previous: release("1.0.6", 0x60, 2, 0),
            last_order_id: 4,
            highest_seq_seen: 3,
            committed_security_counter: 5,
            status_floor: 1_800_000_000,
            ..JournalState::default()
        }
    }

    #[test]
    fn a_journal_of_the_first_layout_reads_its_single_floor_as_the_status_floor() {
        let mut flash = SimFlash::new(Config::ESP32.with_capacity(0x4000)).unwrap();
        flash
            .preload(REGION.offset(), &hex::decode(FIRST_LAYOUT).unwrap())
            .unwrap();
        let mut s = Storage::new(flash).map_err(|e| e.0).unwrap();
        let j = Journal::open(&mut s, REGION).unwrap();
        assert_eq!(j.seq(), 1);
        assert_eq!(
            j.state(),
            &JournalState {
                status_floor: 1_800_007_200,
                offline_floor: 0,
                ..first_layout_state()
            }
        );
    }

    #[test]
    fn bases_stay_in_the_first_layout_and_the_offline_floor_entry_comes_first() {
        let mut s = storage();
        let mut j = Journal::open(&mut s, REGION).unwrap();
        j.commit(&mut s, &first_layout_state(), Blob::Keep, Blob::Keep)
            .unwrap();
        j.append(&mut s, Entry::StatusFloor(1_800_007_200)).unwrap();
        let first = hex::decode(FIRST_LAYOUT).unwrap();
        let sector = |s: &Storage<SimFlash>, n: u32| -> Vec<u8> {
            let at = (REGION.offset() + n * SECTOR) as usize;
            s.inner().contents()[at..at + SECTOR as usize].to_vec()
        };
        let written = sector(&s, 0);
        assert_eq!(&written[..first.len()], &first[..], "byte for byte");
        assert!(written[first.len()..].iter().all(|&b| b == 0xFF));

        // With an offline floor, the base is the same but for its seq and CRC, and the entry
        // sits where the entries start, where an older agent's log ends.
        let next = JournalState {
            offline_floor: 1_790_000_000,
            ..j.state().clone()
        };
        j.commit(&mut s, &next, Blob::Keep, Blob::Keep).unwrap();
        let written = sector(&s, 1);
        let body = HEADER_LEN..HEADER_LEN + BODY_LEN;
        assert_eq!(&written[..8], b"FAJ1\x02\0\0\0");
        assert_eq!(&written[8..HEADER_LEN], &first[8..HEADER_LEN]);
        assert_eq!(written[body.clone()], next.encode());
        assert_eq!(
            JournalState::decode(&written[body]),
            Some(JournalState {
                offline_floor: 0,
                ..next.clone()
            })
        );
        let entries = 752;
        let entry: [u8; ENTRY_LEN] = written[entries..entries + ENTRY_LEN].try_into().unwrap();
        assert_eq!(
            Entry::decode(2, &entry),
            Some(Entry::OfflineFloor(1_790_000_000))
        );
        let (_, j) = reopen(s);
        assert_eq!(j.state(), &next);
    }

    #[test]
    fn fresh_flash_reads_as_default_and_commits_survive_reopen() {
        let mut s = storage();
        let mut j = Journal::open(&mut s, REGION).unwrap();
        assert_eq!(j.state(), &JournalState::default());
        assert_eq!(j.seq(), 0);
        let next = downloading(10);
        j.commit(&mut s, &next, Blob::New(b"manifest bytes"), Blob::Keep)
            .unwrap();
        let (mut s, j) = reopen(s);
        assert_eq!(j.state(), &next);
        assert_eq!(j.seq(), 1);
        let mut buf = [0u8; 64];
        assert_eq!(
            j.read_manifest(&mut s, &mut buf).unwrap(),
            Some(&b"manifest bytes"[..])
        );
        assert_eq!(j.read_root(&mut s, &mut buf).unwrap(), None);
    }

    #[test]
    fn blobs_are_kept_replaced_and_dropped() {
        let mut s = storage();
        let mut j = Journal::open(&mut s, REGION).unwrap();
        let root = [0x5Au8; 1395];
        let manifest = [0xA5u8; 841];
        j.commit(
            &mut s,
            &downloading(3),
            Blob::New(&manifest),
            Blob::New(&root),
        )
        .unwrap();
        j.commit(&mut s, &downloading(3), Blob::Keep, Blob::Keep)
            .unwrap();
        let (mut s, mut j) = reopen(s);
        let mut buf = [0u8; 2048];
        assert_eq!(
            j.read_manifest(&mut s, &mut buf).unwrap(),
            Some(&manifest[..])
        );
        assert_eq!(j.read_root(&mut s, &mut buf).unwrap(), Some(&root[..]));
        let idle = JournalState::default();
        j.commit(&mut s, &idle, Blob::Drop, Blob::Keep).unwrap();
        let (mut s, j) = reopen(s);
        assert_eq!(j.read_manifest(&mut s, &mut buf).unwrap(), None);
        assert_eq!(j.read_root(&mut s, &mut buf).unwrap(), Some(&root[..]));
        assert_eq!(j.seq(), 3);
    }

    #[test]
    fn progress_entries_fold_into_the_state_and_compact_when_full() {
        let mut s = storage();
        let mut j = Journal::open(&mut s, REGION).unwrap();
        j.commit(
            &mut s,
            &downloading(1000),
            Blob::New(&[1u8; 841]),
            Blob::Keep,
        )
        .unwrap();
        for k in 1..=400u32 {
            j.append(
                &mut s,
                Entry::Progress {
                    chunks_done: k,
                    digest8: [k as u8; 8],
                },
            )
            .unwrap();
        }
        let (commits, appends) = j.counts();
        assert!(commits > 2, "a full log compacts: {commits}");
        assert_eq!(commits + appends, 401);
        let (_, j) = reopen(s);
        let p = j.state().pending.unwrap();
        assert_eq!(p.chunks_done, 400);
        assert_eq!(p.last_digest8, [144; 8]);
    }

    #[test]
    fn a_torn_entry_ends_the_log_and_forces_a_compaction() {
        let mut s = storage();
        let mut j = Journal::open(&mut s, REGION).unwrap();
        j.commit(&mut s, &downloading(10), Blob::Keep, Blob::Keep)
            .unwrap();
        j.append(
            &mut s,
            Entry::Progress {
                chunks_done: 1,
                digest8: [1; 8],
            },
        )
        .unwrap();
        let mut flash = s.into_inner();
        flash.arm(FaultPlan::new(3).tear(1, Tear::AllButLast));
        let mut s = Storage::new(flash).map_err(|e| e.0).unwrap();
        assert!(
            j.append(
                &mut s,
                Entry::Progress {
                    chunks_done: 2,
                    digest8: [2; 8]
                }
            )
            .is_err()
        );
        let (mut s, mut j) = reopen(s);
        assert_eq!(j.state().pending.unwrap().chunks_done, 1);
        let seq = j.seq();
        j.append(
            &mut s,
            Entry::Progress {
                chunks_done: 2,
                digest8: [2; 8],
            },
        )
        .unwrap();
        assert_eq!(
            j.seq(),
            seq + 1,
            "the append after a torn entry is a commit"
        );
        let (_, j) = reopen(s);
        assert_eq!(j.state().pending.unwrap().chunks_done, 2);
    }

    #[test]
    fn transitions_outside_the_lifecycle_are_typed_errors() {
        let mut s = storage();
        let mut j = Journal::open(&mut s, REGION).unwrap();
        let confirming = JournalState {
            state: UpdateState::Confirming,
            ..JournalState::default()
        };
        assert_eq!(
            j.commit(&mut s, &confirming, Blob::Keep, Blob::Keep),
            Err(AgentError::Transition(TransitionError {
                from: StateKind::Idle,
                to: StateKind::Confirming
            }))
        );
        // Progress outside a download is refused too.
        assert!(
            j.append(
                &mut s,
                Entry::Progress {
                    chunks_done: 1,
                    digest8: [0; 8]
                }
            )
            .is_err()
        );
        assert_eq!(s.inner().ops(), 0, "a refused transition writes nothing");
    }

    #[test]
    fn rejected_list_keeps_the_newest_four_and_honours_generations() {
        let mut st = JournalState::default();
        for i in 0..6u8 {
            st.reject(Rejected {
                id: [i; 32],
                generation: 1,
                reason: 15,
            });
        }
        assert_eq!(st.rejected.len(), 4);
        assert!(st.is_rejected(&[0; 32], 1).is_none());
        assert!(st.is_rejected(&[5; 32], 1).is_some());
        assert!(st.is_rejected(&[5; 32], 0).is_some());
        assert!(
            st.is_rejected(&[5; 32], 2).is_none(),
            "a new assignment generation lifts it"
        );
    }

    /// One step of a journal write sequence.
    #[derive(Debug, Clone)]
    enum Op {
        /// Lifecycle state, blob choice, and new floors: (status floor, which may go down as a
        /// rotation resets it; offline floor raised to).
        Commit(u8, u8, Option<(u64, u64)>),
        Progress,
        Nonce(u64),
        Floor(u64),
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            (
                0u8..6,
                0u8..3,
                proptest::option::of((any::<u64>(), any::<u64>()))
            )
                .prop_map(|(s, b, f)| Op::Commit(s, b, f)),
            Just(Op::Progress),
            Just(Op::Progress),
            Just(Op::Progress),
            any::<u64>().prop_map(Op::Nonce),
            any::<u64>().prop_map(Op::Floor),
        ]
    }

    /// The state an op leads to from `cur`, or `None` when the op is not allowed there.
    fn target(cur: &JournalState, op: &Op) -> Option<(JournalState, Option<Entry>, u8)> {
        match op {
            Op::Commit(which, blob, floors) => {
                let mut next = cur.clone();
                if let Some((status, offline)) = *floors {
                    next.status_floor = status;
                    next.offline_floor = cur.offline_floor.max(offline);
                }
                next.state = match which {
                    0 => UpdateState::Idle,
                    1 => UpdateState::Downloading,
                    2 => UpdateState::Staged,
                    3 => UpdateState::Trial {
                        attempts: 1,
                        health_failed: false,
                    },
                    4 => UpdateState::Confirming,
                    _ => UpdateState::RollingBack { order_id: 5 },
                };
                cur.state.may_become(&next.state).ok()?;
                next.pending = match next.state {
                    UpdateState::Idle | UpdateState::RollingBack { .. } => None,
                    _ => Some(cur.pending.unwrap_or(pending(40))),
                };
                next.resumes = cur.resumes.wrapping_add(1);
                Some((next, None, *blob))
            }
            Op::Progress => {
                let p = cur.pending?;
                if cur.state != UpdateState::Downloading || p.chunks_done >= p.chunk_count {
                    return None;
                }
                let e = Entry::Progress {
                    chunks_done: p.chunks_done + 1,
                    digest8: [p.chunks_done as u8; 8],
                };
                let mut next = cur.clone();
                next.apply(&e).then_some(())?;
                Some((next, Some(e), 0))
            }
            Op::Nonce(n) => {
                let e = Entry::LegacyNonce(*n);
                let mut next = cur.clone();
                next.apply(&e);
                Some((next, Some(e), 0))
            }
            Op::Floor(t) => {
                let e = Entry::StatusFloor(*t);
                let mut next = cur.clone();
                next.apply(&e);
                Some((next, Some(e), 0))
            }
        }
    }

    fn run(
        j: &mut Journal,
        s: &mut Storage<SimFlash>,
        op: &Op,
    ) -> Option<Result<JournalState, AgentError>> {
        let (next, entry, blob) = target(j.state(), op)?;
        let manifest = [0x33u8; 600];
        let result = match entry {
            Some(e) => j.append(s, e),
            None => {
                let b = match blob {
                    0 => Blob::Keep,
                    1 => Blob::New(&manifest),
                    _ => Blob::Drop,
                };
                j.commit(s, &next, b, Blob::Keep)
            }
        };
        Some(result.map(|()| next))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// A cut at any operation of any journal write sequence (before, after, torn program or
        /// erase) leaves the state before or after the interrupted write readable, never
        /// garbage; the sequence then goes on from what was read.
        #[test]
        fn a_cut_anywhere_leaves_the_old_or_the_new_state(
            ops in proptest::collection::vec(op_strategy(), 1..60),
            cut_at in 1u64..400,
            kind in 0u8..4,
            seed in any::<u64>(),
        ) {
            let cut = match kind {
                0 => Cut::Before,
                1 => Cut::After,
                2 => Cut::Torn(Tear::Random),
                _ => Cut::Torn(Tear::AllButLast),
            };
            let mut flash = SimFlash::new(Config::ESP32.with_capacity(0x4000)).unwrap();
            flash.arm(FaultPlan::new(seed).cut(cut_at, cut));
            let mut s = Storage::new(flash).map_err(|e| e.0).unwrap();
            let mut j = Journal::open(&mut s, REGION).unwrap();
            let mut cut_seen = false;
            for op in &ops {
                let before = j.state().clone();
                let Some(result) = run(&mut j, &mut s, op) else { continue };
                match result {
                    Ok(after) => prop_assert_eq!(j.state(), &after),
                    Err(_) => {
                        prop_assert!(!cut_seen);
                        cut_seen = true;
                        let after = target(&before, op).unwrap().0;
                        let (s2, j2) = reopen(s);
                        s = s2;
                        j = j2;
                        prop_assert!(
                            j.state() == &before || j.state() == &after,
                            "after a cut in {:?}: {:?}", op, j.state()
                        );
                    }
                }
            }
            // Whatever happened, the journal still reads back as what is in RAM.
            let expected = j.state().clone();
            let (_, j) = reopen(s);
            prop_assert_eq!(j.state(), &expected);
        }
    }
}
