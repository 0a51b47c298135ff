//! The body of a base record: [`JournalState`] in [`BODY_LEN`] bytes.
//!
//! # Layout
//!
//! Integers are little-endian, flags are 0 or 1, texts are [`FixedStr`] fields (32 bytes,
//! NUL-padded). Parts a state does not use are zero. Offsets are from the start of the body,
//! which is byte 16 of the base record. The constants below are this table; [`BODY_LEN`] is
//! where its last row ends.
//!
//! | offset | size | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 1 | version | 1 |
//! | 1 | 1 | state | 0 idle, 1 downloading, 2 staged, 3 trial, 4 confirming, 5 rolling back |
//! | 2 | 1 | trial attempts | trial: boots so far |
//! | 3 | 1 | trial health failed | trial: flag |
//! | 4 | 8 | rollback order | rolling back: the order id |
//! | 12 | 1 | legacy disabled | flag |
//! | 13 | 116 | installed | release record |
//! | 129 | 116 | previous | release record |
//! | 245 | 1 | has pending | flag: downloading and staged always, trial and confirming when the release is known |
//! | 246 | 207 | pending | pending record |
//! | 453 | 1 | rollback from | the slot the latest manual rollback leaves or left (0xFF factory) |
//! | 454 | 8 | last order | the last rollback order carried out or refused |
//! | 462 | 1 | has report | flag |
//! | 463 | 74 | report | report record |
//! | 537 | 8 | highest sequence | highest v2 sequence accepted |
//! | 545 | 4 | committed security counter | |
//! | 549 | 4 | committed secure version | |
//! | 553 | 8 | status floor | unix seconds ([Time floors](super#time-floors)) |
//! | 561 | 8 | legacy nonce | |
//! | 569 | 1 | rejected count | 0 to 4 |
//! | 570 | 148 | rejected | 4 rejected records, the first `rejected count` used |
//! | 718 | 4 | resumes | downloads resumed after a reset |
//! | 722 | 4 | rechunks | chunks fetched more than once |
//!
//! The offline floor is not in the body (see [Time floors](super#time-floors)).
//!
//! Release record ([`Release`]):
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 32 | id |
//! | 32 | 8 | sequence |
//! | 40 | 4 | security counter |
//! | 44 | 4 | secure version |
//! | 48 | 32 | fw version |
//! | 80 | 32 | image sha256 |
//! | 112 | 4 | generation |
//!
//! Pending record ([`Pending`]):
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 1 | protocol (0 v2, 1 legacy) |
//! | 1 | 32 | id |
//! | 33 | 1 | target slot |
//! | 34 | 1 | from slot |
//! | 35 | 8 | image size |
//! | 43 | 4 | chunk size |
//! | 47 | 4 | chunk count |
//! | 51 | 32 | image sha256 |
//! | 83 | 32 | chunk list sha256 |
//! | 115 | 8 | sequence |
//! | 123 | 4 | security counter |
//! | 127 | 32 | fw version |
//! | 159 | 32 | project |
//! | 191 | 4 | generation |
//! | 195 | 4 | chunks done |
//! | 199 | 8 | last digest8 |
//!
//! Report record ([`Report`]):
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 1 | kind (event code) |
//! | 1 | 1 | reason (reason code) |
//! | 2 | 32 | id |
//! | 34 | 32 | fw version |
//! | 66 | 8 | order id |
//!
//! Rejected record ([`Rejected`]):
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 32 | id |
//! | 32 | 4 | generation |
//! | 36 | 1 | reason (reason code) |

use fota_protocol::v2::{EventKind, FixedStr, ReasonCode};

use super::state::{
    JournalState, MAX_REJECTED, Pending, Protocol, Rejected, Release, Report, UpdateState,
};

/// Where a field of a fixed layout starts, and how long it is (a body is far below 64 KiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    pub(crate) at: u16,
    pub(crate) len: u16,
}

impl Field {
    const fn first(len: u16) -> Self {
        Self { at: 0, len }
    }

    /// The field right after `self`.
    const fn then(self, len: u16) -> Self {
        Self {
            at: self.end(),
            len,
        }
    }

    /// The first byte after the field. (Layouts are a few hundred bytes: nothing saturates,
    /// and the assertion on [`BODY_LEN`] would see it.)
    pub(crate) const fn end(self) -> u16 {
        self.at.saturating_add(self.len)
    }

    /// The bytes of the field in its record.
    pub(crate) const fn range(self) -> core::ops::Range<usize> {
        self.at as usize..self.end() as usize
    }
}

/// Bytes of a text field.
const TEXT: u16 = 32;
const _: () = assert!(TEXT as usize == FixedStr::LEN);
/// Slots of the rejected list.
const REJECTED_SLOTS: u16 = 4;
const _: () = assert!(REJECTED_SLOTS as usize == MAX_REJECTED);

/// The body's fields, in the order of the table.
pub(crate) mod at {
    use super::{Field, REJECTED_SLOTS, pending, rejected, release, report};

    pub(crate) const VERSION: Field = Field::first(1);
    pub(crate) const STATE: Field = VERSION.then(1);
    pub(crate) const TRIAL_ATTEMPTS: Field = STATE.then(1);
    pub(crate) const TRIAL_HEALTH_FAILED: Field = TRIAL_ATTEMPTS.then(1);
    pub(crate) const ROLLBACK_ORDER: Field = TRIAL_HEALTH_FAILED.then(8);
    pub(crate) const LEGACY_DISABLED: Field = ROLLBACK_ORDER.then(1);
    pub(crate) const INSTALLED: Field = LEGACY_DISABLED.then(release::LEN);
    pub(crate) const PREVIOUS: Field = INSTALLED.then(release::LEN);
    pub(crate) const HAS_PENDING: Field = PREVIOUS.then(1);
    pub(crate) const PENDING: Field = HAS_PENDING.then(pending::LEN);
    pub(crate) const ROLLBACK_FROM: Field = PENDING.then(1);
    pub(crate) const LAST_ORDER: Field = ROLLBACK_FROM.then(8);
    pub(crate) const HAS_REPORT: Field = LAST_ORDER.then(1);
    pub(crate) const REPORT: Field = HAS_REPORT.then(report::LEN);
    pub(crate) const HIGHEST_SEQUENCE: Field = REPORT.then(8);
    pub(crate) const COMMITTED_SECURITY_COUNTER: Field = HIGHEST_SEQUENCE.then(4);
    pub(crate) const COMMITTED_SECURE_VERSION: Field = COMMITTED_SECURITY_COUNTER.then(4);
    pub(crate) const STATUS_FLOOR: Field = COMMITTED_SECURE_VERSION.then(8);
    pub(crate) const LEGACY_NONCE: Field = STATUS_FLOOR.then(8);
    pub(crate) const REJECTED_COUNT: Field = LEGACY_NONCE.then(1);
    pub(crate) const REJECTED: Field = REJECTED_COUNT.then(REJECTED_SLOTS * rejected::LEN);
    pub(crate) const RESUMES: Field = REJECTED.then(4);
    pub(crate) const RECHUNKS: Field = RESUMES.then(4);

    /// Every field, with its name in the table.
    #[cfg(test)]
    pub(crate) const ALL: [(&str, Field); 23] = [
        ("version", VERSION),
        ("state", STATE),
        ("trial attempts", TRIAL_ATTEMPTS),
        ("trial health failed", TRIAL_HEALTH_FAILED),
        ("rollback order", ROLLBACK_ORDER),
        ("legacy disabled", LEGACY_DISABLED),
        ("installed", INSTALLED),
        ("previous", PREVIOUS),
        ("has pending", HAS_PENDING),
        ("pending", PENDING),
        ("rollback from", ROLLBACK_FROM),
        ("last order", LAST_ORDER),
        ("has report", HAS_REPORT),
        ("report", REPORT),
        ("highest sequence", HIGHEST_SEQUENCE),
        ("committed security counter", COMMITTED_SECURITY_COUNTER),
        ("committed secure version", COMMITTED_SECURE_VERSION),
        ("status floor", STATUS_FLOOR),
        ("legacy nonce", LEGACY_NONCE),
        ("rejected count", REJECTED_COUNT),
        ("rejected", REJECTED),
        ("resumes", RESUMES),
        ("rechunks", RECHUNKS),
    ];
}

pub(crate) mod release {
    use super::{Field, TEXT};

    pub(crate) const ID: Field = Field::first(32);
    pub(crate) const SEQUENCE: Field = ID.then(8);
    pub(crate) const SECURITY_COUNTER: Field = SEQUENCE.then(4);
    pub(crate) const SECURE_VERSION: Field = SECURITY_COUNTER.then(4);
    pub(crate) const FW_VERSION: Field = SECURE_VERSION.then(TEXT);
    pub(crate) const IMAGE_SHA256: Field = FW_VERSION.then(32);
    pub(crate) const GENERATION: Field = IMAGE_SHA256.then(4);
    pub(crate) const LEN: u16 = GENERATION.end();
}

pub(crate) mod pending {
    use super::{Field, TEXT};

    pub(crate) const PROTOCOL: Field = Field::first(1);
    pub(crate) const ID: Field = PROTOCOL.then(32);
    pub(crate) const TARGET_SLOT: Field = ID.then(1);
    pub(crate) const FROM_SLOT: Field = TARGET_SLOT.then(1);
    pub(crate) const IMAGE_SIZE: Field = FROM_SLOT.then(8);
    pub(crate) const CHUNK_SIZE: Field = IMAGE_SIZE.then(4);
    pub(crate) const CHUNK_COUNT: Field = CHUNK_SIZE.then(4);
    pub(crate) const IMAGE_SHA256: Field = CHUNK_COUNT.then(32);
    pub(crate) const CHUNK_LIST_SHA256: Field = IMAGE_SHA256.then(32);
    pub(crate) const SEQUENCE: Field = CHUNK_LIST_SHA256.then(8);
    pub(crate) const SECURITY_COUNTER: Field = SEQUENCE.then(4);
    pub(crate) const FW_VERSION: Field = SECURITY_COUNTER.then(TEXT);
    pub(crate) const PROJECT: Field = FW_VERSION.then(TEXT);
    pub(crate) const GENERATION: Field = PROJECT.then(4);
    pub(crate) const CHUNKS_DONE: Field = GENERATION.then(4);
    pub(crate) const LAST_DIGEST8: Field = CHUNKS_DONE.then(8);
    pub(crate) const LEN: u16 = LAST_DIGEST8.end();
}

pub(crate) mod report {
    use super::{Field, TEXT};

    pub(crate) const KIND: Field = Field::first(1);
    pub(crate) const REASON: Field = KIND.then(1);
    pub(crate) const ID: Field = REASON.then(32);
    pub(crate) const FW_VERSION: Field = ID.then(TEXT);
    pub(crate) const ORDER_ID: Field = FW_VERSION.then(8);
    pub(crate) const LEN: u16 = ORDER_ID.end();
}

pub(crate) mod rejected {
    use super::Field;

    pub(crate) const ID: Field = Field::first(32);
    pub(crate) const GENERATION: Field = ID.then(4);
    pub(crate) const REASON: Field = GENERATION.then(1);
    pub(crate) const LEN: u16 = REASON.end();
}

/// Length of the body: where the last field of the [layout](self#layout) ends.
pub const BODY_LEN: usize = BODY_LEN_U16 as usize;
pub(crate) const BODY_LEN_U16: u16 = at::RECHUNKS.end();

// Every base ever written has this body length in its header, and an agent of the first
// layout refuses a base with any other: the body can never grow.
const _: () = assert!(BODY_LEN == 726);

const BODY_VERSION: u8 = 1;

/// A fixed-layout record being written: every field lands where its [`Field`] says, and a
/// field of the wrong length or outside the record is refused (never a panic).
struct Put<'a>(&'a mut [u8]);

impl Put<'_> {
    fn bytes(&mut self, f: Field, v: &[u8]) -> Option<()> {
        let dst = self.0.get_mut(f.range())?;
        (dst.len() == v.len()).then(|| dst.copy_from_slice(v))
    }

    fn u8(&mut self, f: Field, v: u8) -> Option<()> {
        self.bytes(f, &[v])
    }

    fn flag(&mut self, f: Field, v: bool) -> Option<()> {
        self.u8(f, u8::from(v))
    }

    fn u32(&mut self, f: Field, v: u32) -> Option<()> {
        self.bytes(f, &v.to_le_bytes())
    }

    fn u64(&mut self, f: Field, v: u64) -> Option<()> {
        self.bytes(f, &v.to_le_bytes())
    }

    fn text(&mut self, f: Field, v: &FixedStr) -> Option<()> {
        self.bytes(f, v.as_bytes())
    }

    /// The record inside field `f`.
    fn record(&mut self, f: Field) -> Option<Put<'_>> {
        self.0.get_mut(f.range()).map(Put)
    }
}

/// A fixed-layout record being read, the counterpart of [`Put`].
#[derive(Clone, Copy)]
struct Get<'a>(&'a [u8]);

impl<'a> Get<'a> {
    fn array<const N: usize>(self, f: Field) -> Option<[u8; N]> {
        self.0.get(f.range())?.try_into().ok()
    }

    fn u8(self, f: Field) -> Option<u8> {
        self.array::<1>(f).map(|[b]| b)
    }

    /// A flag: 0 or 1, anything else is not a body this agent writes.
    fn flag(self, f: Field) -> Option<bool> {
        match self.u8(f)? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    fn u32(self, f: Field) -> Option<u32> {
        self.array(f).map(u32::from_le_bytes)
    }

    fn u64(self, f: Field) -> Option<u64> {
        self.array(f).map(u64::from_le_bytes)
    }

    fn text(self, f: Field) -> Option<FixedStr> {
        FixedStr::from_field(&self.array(f)?)
    }

    fn record(self, f: Field) -> Option<Get<'a>> {
        self.0.get(f.range()).map(Get)
    }
}

fn put_release(mut w: Put<'_>, r: &Release) -> Option<()> {
    use release as f;
    w.bytes(f::ID, &r.id)?;
    w.u64(f::SEQUENCE, r.sequence)?;
    w.u32(f::SECURITY_COUNTER, r.security_counter)?;
    w.u32(f::SECURE_VERSION, r.secure_version)?;
    w.text(f::FW_VERSION, &r.fw_version)?;
    w.bytes(f::IMAGE_SHA256, &r.image_sha256)?;
    w.u32(f::GENERATION, r.generation)
}

fn get_release(r: Get<'_>) -> Option<Release> {
    use release as f;
    Some(Release {
        id: r.array(f::ID)?,
        sequence: r.u64(f::SEQUENCE)?,
        security_counter: r.u32(f::SECURITY_COUNTER)?,
        secure_version: r.u32(f::SECURE_VERSION)?,
        fw_version: r.text(f::FW_VERSION)?,
        image_sha256: r.array(f::IMAGE_SHA256)?,
        generation: r.u32(f::GENERATION)?,
    })
}

fn put_pending(mut w: Put<'_>, p: &Pending) -> Option<()> {
    use pending as f;
    w.u8(
        f::PROTOCOL,
        match p.protocol {
            Protocol::V2 => 0,
            Protocol::Legacy => 1,
        },
    )?;
    w.bytes(f::ID, &p.id)?;
    w.u8(f::TARGET_SLOT, p.target_slot)?;
    w.u8(f::FROM_SLOT, p.from_slot)?;
    w.u64(f::IMAGE_SIZE, p.image_size)?;
    w.u32(f::CHUNK_SIZE, p.chunk_size)?;
    w.u32(f::CHUNK_COUNT, p.chunk_count)?;
    w.bytes(f::IMAGE_SHA256, &p.image_sha256)?;
    w.bytes(f::CHUNK_LIST_SHA256, &p.chunk_list_sha256)?;
    w.u64(f::SEQUENCE, p.sequence)?;
    w.u32(f::SECURITY_COUNTER, p.security_counter)?;
    w.text(f::FW_VERSION, &p.fw_version)?;
    w.text(f::PROJECT, &p.project)?;
    w.u32(f::GENERATION, p.generation)?;
    w.u32(f::CHUNKS_DONE, p.chunks_done)?;
    w.bytes(f::LAST_DIGEST8, &p.last_digest8)
}

fn get_pending(r: Get<'_>) -> Option<Pending> {
    use pending as f;
    Some(Pending {
        protocol: match r.u8(f::PROTOCOL)? {
            0 => Protocol::V2,
            1 => Protocol::Legacy,
            _ => return None,
        },
        id: r.array(f::ID)?,
        target_slot: r.u8(f::TARGET_SLOT)?,
        from_slot: r.u8(f::FROM_SLOT)?,
        image_size: r.u64(f::IMAGE_SIZE)?,
        chunk_size: r.u32(f::CHUNK_SIZE)?,
        chunk_count: r.u32(f::CHUNK_COUNT)?,
        image_sha256: r.array(f::IMAGE_SHA256)?,
        chunk_list_sha256: r.array(f::CHUNK_LIST_SHA256)?,
        sequence: r.u64(f::SEQUENCE)?,
        security_counter: r.u32(f::SECURITY_COUNTER)?,
        fw_version: r.text(f::FW_VERSION)?,
        project: r.text(f::PROJECT)?,
        generation: r.u32(f::GENERATION)?,
        chunks_done: r.u32(f::CHUNKS_DONE)?,
        last_digest8: r.array(f::LAST_DIGEST8)?,
    })
}

fn put_report(mut w: Put<'_>, r: &Report) -> Option<()> {
    use report as f;
    w.u8(f::KIND, r.kind.code())?;
    w.u8(f::REASON, r.reason.code())?;
    w.bytes(f::ID, &r.id)?;
    w.text(f::FW_VERSION, &r.fw_version)?;
    w.u64(f::ORDER_ID, r.order_id)
}

fn get_report(r: Get<'_>) -> Option<Report> {
    use report as f;
    Some(Report {
        kind: EventKind::from_code(r.u8(f::KIND)?)?,
        reason: ReasonCode::from_code(r.u8(f::REASON)?)?,
        id: r.array(f::ID)?,
        fw_version: r.text(f::FW_VERSION)?,
        order_id: r.u64(f::ORDER_ID)?,
    })
}

/// Rejected record `i` of the rejected field.
fn rejected_slot(i: usize) -> Option<Field> {
    Some(Field {
        at: u16::try_from(i).ok()?.checked_mul(rejected::LEN)?,
        len: rejected::LEN,
    })
}

fn put_rejected(mut w: Put<'_>, r: &Rejected) -> Option<()> {
    use rejected as f;
    w.bytes(f::ID, &r.id)?;
    w.u32(f::GENERATION, r.generation)?;
    w.u8(f::REASON, r.reason)
}

fn get_rejected(r: Get<'_>) -> Option<Rejected> {
    use rejected as f;
    Some(Rejected {
        id: r.array(f::ID)?,
        generation: r.u32(f::GENERATION)?,
        reason: r.u8(f::REASON)?,
    })
}

/// The state's tag and the fields only a trial or a rollback uses.
fn state_fields(state: &UpdateState) -> (u8, u8, bool, u64) {
    match *state {
        UpdateState::Idle => (0, 0, false, 0),
        UpdateState::Downloading(_) => (1, 0, false, 0),
        UpdateState::Staged(_) => (2, 0, false, 0),
        UpdateState::Trial {
            attempts,
            health_failed,
            ..
        } => (3, attempts, health_failed, 0),
        UpdateState::Confirming { .. } => (4, 0, false, 0),
        UpdateState::RollingBack { order_id } => (5, 0, false, order_id),
    }
}

impl JournalState {
    /// Encodes the fixed body ([`BODY_LEN`] bytes, laid out as the [table](self#layout)
    /// says). The offline floor is not part of it (see [Time floors](super#time-floors)).
    pub fn encode(&self) -> [u8; BODY_LEN] {
        let mut out = [0u8; BODY_LEN];
        // Every field lies inside BODY_LEN and has its own width, so nothing here can fail; a
        // failure would leave the version byte zero, which decode rejects.
        if self.encode_into(&mut Put(&mut out)).is_none() {
            out = [0; BODY_LEN];
        }
        out
    }

    fn encode_into(&self, w: &mut Put<'_>) -> Option<()> {
        use at as f;
        w.u8(f::VERSION, BODY_VERSION)?;
        let (tag, attempts, health_failed, order_id) = state_fields(&self.state);
        w.u8(f::STATE, tag)?;
        w.u8(f::TRIAL_ATTEMPTS, attempts)?;
        w.flag(f::TRIAL_HEALTH_FAILED, health_failed)?;
        w.u64(f::ROLLBACK_ORDER, order_id)?;
        w.flag(f::LEGACY_DISABLED, self.legacy_disabled)?;
        put_release(w.record(f::INSTALLED)?, &self.installed)?;
        put_release(w.record(f::PREVIOUS)?, &self.previous)?;
        if let Some(p) = self.pending() {
            w.flag(f::HAS_PENDING, true)?;
            put_pending(w.record(f::PENDING)?, p)?;
        }
        w.u8(f::ROLLBACK_FROM, self.rollback_from)?;
        w.u64(f::LAST_ORDER, self.last_order_id)?;
        if let Some(r) = &self.report {
            w.flag(f::HAS_REPORT, true)?;
            put_report(w.record(f::REPORT)?, r)?;
        }
        w.u64(f::HIGHEST_SEQUENCE, self.highest_seq_seen)?;
        w.u32(
            f::COMMITTED_SECURITY_COUNTER,
            self.committed_security_counter,
        )?;
        w.u32(f::COMMITTED_SECURE_VERSION, self.committed_secure_version)?;
        w.u64(f::STATUS_FLOOR, self.status_floor)?;
        w.u64(f::LEGACY_NONCE, self.legacy_nonce)?;
        w.u8(f::REJECTED_COUNT, u8::try_from(self.rejected.len()).ok()?)?;
        let mut slots = w.record(f::REJECTED)?;
        for (i, r) in self.rejected.iter().enumerate() {
            put_rejected(slots.record(rejected_slot(i)?)?, r)?;
        }
        w.u32(f::RESUMES, self.resumes)?;
        w.u32(f::RECHUNKS, self.rechunks)
    }

    /// Decodes a body; `None` for anything [`Self::encode`] would not have written (a
    /// download or a staged image without its release included), except that the unused
    /// parts are not checked.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        use at as f;
        if bytes.len() != BODY_LEN {
            return None;
        }
        let r = Get(bytes);
        if r.u8(f::VERSION)? != BODY_VERSION {
            return None;
        }
        let health_failed = r.flag(f::TRIAL_HEALTH_FAILED)?;
        let legacy_disabled = r.flag(f::LEGACY_DISABLED)?;
        let installed = get_release(r.record(f::INSTALLED)?)?;
        let previous = get_release(r.record(f::PREVIOUS)?)?;
        let pending = if r.flag(f::HAS_PENDING)? {
            Some(get_pending(r.record(f::PENDING)?)?)
        } else {
            None
        };
        let state = match r.u8(f::STATE)? {
            // No agent writes a release beside these states; one read is not kept.
            0 => UpdateState::Idle,
            1 => UpdateState::Downloading(pending?),
            2 => UpdateState::Staged(pending?),
            3 => UpdateState::Trial {
                pending,
                attempts: r.u8(f::TRIAL_ATTEMPTS)?,
                health_failed,
            },
            4 => UpdateState::Confirming { pending },
            5 => UpdateState::RollingBack {
                order_id: r.u64(f::ROLLBACK_ORDER)?,
            },
            _ => return None,
        };
        let report = if r.flag(f::HAS_REPORT)? {
            Some(get_report(r.record(f::REPORT)?)?)
        } else {
            None
        };
        let count = usize::from(r.u8(f::REJECTED_COUNT)?);
        let slots = r.record(f::REJECTED)?;
        let mut rejected = heapless::Vec::new();
        for i in 0..count.min(MAX_REJECTED.saturating_add(1)) {
            // A count above MAX_REJECTED finds no slot: not a body this agent writes.
            rejected
                .push(get_rejected(slots.record(rejected_slot(i)?)?)?)
                .ok()?;
        }
        Some(Self {
            state,
            legacy_disabled,
            installed,
            previous,
            rollback_from: r.u8(f::ROLLBACK_FROM)?,
            last_order_id: r.u64(f::LAST_ORDER)?,
            report,
            highest_seq_seen: r.u64(f::HIGHEST_SEQUENCE)?,
            committed_security_counter: r.u32(f::COMMITTED_SECURITY_COUNTER)?,
            committed_secure_version: r.u32(f::COMMITTED_SECURE_VERSION)?,
            status_floor: r.u64(f::STATUS_FLOOR)?,
            offline_floor: 0,
            legacy_nonce: r.u64(f::LEGACY_NONCE)?,
            rejected,
            resumes: r.u32(f::RESUMES)?,
            rechunks: r.u32(f::RECHUNKS)?,
            // In an entry, not the body (see the journal's Time floors).
            bad_statements: 0,
        })
    }
}
