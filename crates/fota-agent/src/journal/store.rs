//! The journal on the flash: reading both bases and the log, committing a new base, appending
//! entries.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::codec::{Reader, Writer};

use super::body::{BODY_LEN, BODY_LEN_U16};
use super::entry::{ENTRY_LEN, ENTRY_LEN_U32, Entry};
use super::record::RecordWriter;
use super::state::{JournalState, TransitionError};
use super::{CRC, HEADER_LEN, HEADER_LEN_U32, MAGIC, MAX_MANIFEST_LEN, MAX_ROOT_LEN, align16};
use crate::error::AgentError;
use crate::flash::{Region, SECTOR, Storage};

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

/// The sectors of the region, by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sector {
    First,
    Second,
}

impl Sector {
    const fn other(self) -> Self {
        match self {
            Self::First => Self::Second,
            Self::Second => Self::First,
        }
    }

    /// Offset of the sector in the region.
    const fn base(self) -> u32 {
        match self {
            Self::First => 0,
            Self::Second => SECTOR,
        }
    }
}

/// A blob of the winning base: offset in its sector and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    at: u32,
    len: u16,
}

/// The valid base the journal reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Located {
    sector: Sector,
    seq: u32,
    manifest: Stored,
    root: Stored,
    /// Offset in the sector of the next free entry.
    next_entry: u32,
    needs_compaction: bool,
}

impl Located {
    /// The offset of the next free entry in the region, when the sector has room for one.
    fn free_entry(&self) -> Option<u32> {
        let end = self.next_entry.checked_add(ENTRY_LEN_U32)?;
        (end <= SECTOR).then(|| self.sector.base().checked_add(self.next_entry))?
    }
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
    manifest_len: u16,
    root_len: u16,
}

const BODY_LEN_U32: u32 = BODY_LEN_U16 as u32;
/// Bytes of the CRC after the blobs.
const CRC_LEN: u32 = 4;
/// Reads and copies go through a buffer this large on the stack.
const PIECE: usize = 64;

/// The record's parts before its CRC: header, body, manifest, root. `None` past 4 GiB, which
/// no header of at most 16-bit lengths reaches.
fn record_end(manifest_len: u16, root_len: u16) -> Option<u32> {
    HEADER_LEN_U32
        .checked_add(BODY_LEN_U32)?
        .checked_add(u32::from(manifest_len))?
        .checked_add(u32::from(root_len))
}

impl Journal {
    /// Reads the journal in `region` (two sectors).
    pub fn open<F: NorFlash>(storage: &mut Storage<F>, region: Region) -> Result<Self, AgentError> {
        if Some(region.size()) != SECTOR.checked_mul(2) {
            return Err(AgentError::NoJournalRegion);
        }
        let mut best: Option<(Located, JournalState)> = None;
        for sector in [Sector::First, Sector::Second] {
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
        sector: Sector,
    ) -> Result<Option<Header>, AgentError> {
        let mut h = [0u8; HEADER_LEN];
        storage.read(region, sector.base(), &mut h)?;
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
            manifest_len,
            root_len,
        }))
    }

    fn read_base<F: NorFlash>(
        storage: &mut Storage<F>,
        region: Region,
        sector: Sector,
    ) -> Result<Option<(Located, JournalState)>, AgentError> {
        let base = sector.base();
        let Some(h) = Self::read_header(storage, region, sector)? else {
            return Ok(None);
        };
        let Some(crc_at) = record_end(h.manifest_len, h.root_len) else {
            return Ok(None);
        };
        let Some(entries) = crc_at
            .checked_add(CRC_LEN)
            .and_then(align16)
            .filter(|&e| e <= SECTOR)
        else {
            return Ok(None);
        };
        // CRC over header, body and blobs, read back in small pieces.
        let mut digest = CRC.digest();
        let mut buf = [0u8; PIECE];
        let mut at = 0u32;
        while let Some(left) = crc_at.checked_sub(at).filter(|&l| l > 0) {
            let piece = piece_of(&mut buf, left)?;
            storage.read(region, offset(base, at)?, piece)?;
            digest.update(piece);
            at = advance(at, piece.len())?;
        }
        let mut stored = [0u8; 4];
        storage.read(region, offset(base, crc_at)?, &mut stored)?;
        if digest.finalize() != u32::from_le_bytes(stored) {
            return Ok(None);
        }
        let mut body = [0u8; BODY_LEN];
        storage.read(region, offset(base, HEADER_LEN_U32)?, &mut body)?;
        let Some(state) = JournalState::decode(&body) else {
            return Ok(None);
        };
        let Some((manifest, root)) = blobs(h.manifest_len, h.root_len) else {
            return Ok(None);
        };
        Ok(Some((
            Located {
                sector,
                seq: h.seq,
                manifest,
                root,
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
        let mut raw = [0u8; ENTRY_LEN];
        while let Some(at) = loc.free_entry() {
            storage.read(region, at, &mut raw)?;
            if raw.iter().all(|&b| b == 0xFF) {
                return Ok(());
            }
            match Entry::decode(loc.seq, &raw) {
                Some(entry) if state.apply(&entry) => {
                    loc.next_entry = advance(loc.next_entry, ENTRY_LEN)?;
                }
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
        self.current.is_some_and(|c| c.root.len != 0)
    }

    fn read_blob<'b, F: NorFlash>(
        &self,
        storage: &mut Storage<F>,
        buf: &'b mut [u8],
        which: impl Fn(&Located) -> Stored,
    ) -> Result<Option<&'b [u8]>, AgentError> {
        let Some(c) = self.current else {
            return Ok(None);
        };
        let blob = which(&c);
        if blob.len == 0 {
            return Ok(None);
        }
        let out = buf
            .get_mut(..usize::from(blob.len))
            .ok_or(AgentError::BufferTooSmall("journal blob"))?;
        storage.read(self.region, offset(c.sector.base(), blob.at)?, out)?;
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
                c.sector.other(),
                c.seq
                    .checked_add(1)
                    .filter(|&s| s != u32::MAX)
                    .ok_or(AgentError::JournalFull)?,
            ),
            None => (Sector::First, 1),
        };
        let blob_len = |b: &Blob<'_>, kept: Option<Stored>| -> Result<u16, AgentError> {
            match b {
                Blob::Keep => Ok(kept.map_or(0, |k| k.len)),
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
        let base = sector.base();
        let oversized = || AgentError::Config("journal record larger than a sector");
        let entries = record_end(manifest_len, root_len)
            .and_then(|end| end.checked_add(CRC_LEN))
            .and_then(align16)
            .filter(|&e| {
                // Room for the carried entries.
                e.checked_add(2 * ENTRY_LEN_U32)
                    .is_some_and(|end| end <= SECTOR)
            })
            .ok_or_else(oversized)?;
        storage.erase(&w, base, offset(base, SECTOR)?)?;
        let mut next_entry = entries;
        // What the body cannot hold, before the record: once its CRC makes the base valid,
        // the entries are there.
        let carried = [
            (next.offline_floor != 0).then_some(Entry::OfflineFloor(next.offline_floor)),
            (next.bad_statements != 0).then_some(Entry::BadStatements(next.bad_statements)),
        ];
        for entry in carried.into_iter().flatten() {
            let bytes = entry
                .encode(seq)
                .ok_or(AgentError::Config("journal entry value"))?;
            storage.program(&w, offset(base, next_entry)?, &bytes)?;
            next_entry = advance(next_entry, ENTRY_LEN)?;
        }
        let mut rec = RecordWriter::new(base);
        rec.push(storage, &w, &header(seq, manifest_len, root_len)?)?;
        rec.push(storage, &w, &next.encode())?;
        for (blob, kept) in [
            (manifest, self.current.map(|c| (c.sector, c.manifest))),
            (root, self.current.map(|c| (c.sector, c.root))),
        ] {
            match blob {
                Blob::New(bytes) => rec.push(storage, &w, bytes)?,
                Blob::Keep => {
                    if let Some((from, blob)) = kept {
                        let from = offset(from.base(), blob.at)?;
                        let mut buf = [0u8; PIECE];
                        let mut done = 0u32;
                        while let Some(left) =
                            u32::from(blob.len).checked_sub(done).filter(|&l| l > 0)
                        {
                            let piece = piece_of(&mut buf, left)?;
                            storage.read(self.region, offset(from, done)?, piece)?;
                            rec.push(storage, &w, piece)?;
                            done = advance(done, piece.len())?;
                        }
                    }
                }
                Blob::Drop => {}
            }
        }
        if rec.finish(storage, &w)? != entries {
            return Err(AgentError::Config("journal record length"));
        }
        let (manifest, root) = blobs(manifest_len, root_len).ok_or_else(oversized)?;
        self.current = Some(Located {
            sector,
            seq,
            manifest,
            root,
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
        let Some((c, at)) = self
            .current
            .filter(|c| !c.needs_compaction)
            .and_then(|c| Some((c, c.free_entry()?)))
        else {
            return self.write_base(storage, &next, Blob::Keep, Blob::Keep);
        };
        let bytes = entry
            .encode(c.seq)
            .ok_or(AgentError::Config("journal entry value"))?;
        let w = storage.writable(self.region)?;
        let programmed = storage.program(&w, at, &bytes);
        if let Some(cur) = self.current.as_mut() {
            match programmed {
                Ok(()) => cur.next_entry = advance(cur.next_entry, ENTRY_LEN)?,
                // Whatever the program left, this slot is spent.
                Err(_) => cur.needs_compaction = true,
            }
        }
        programmed?;
        self.state = next;
        self.appends = self.appends.saturating_add(1);
        Ok(())
    }
}

/// The 16-byte header of a base.
fn header(seq: u32, manifest_len: u16, root_len: u16) -> Result<[u8; HEADER_LEN], AgentError> {
    let mut h = [0u8; HEADER_LEN];
    let mut w = Writer::new(&mut h);
    w.bytes(&MAGIC)
        .and_then(|()| w.u32(seq))
        .and_then(|()| w.u16(BODY_LEN_U16))
        .and_then(|()| w.u16(manifest_len))
        .and_then(|()| w.u16(root_len))
        // reserved
        .and_then(|()| w.u16(0))
        .map_err(|_| AgentError::Config("journal header"))?;
    Ok(h)
}

/// Where the blobs of a base with these lengths lie in its sector.
fn blobs(manifest_len: u16, root_len: u16) -> Option<(Stored, Stored)> {
    let manifest_at = HEADER_LEN_U32.checked_add(BODY_LEN_U32)?;
    let root_at = manifest_at.checked_add(u32::from(manifest_len))?;
    Some((
        Stored {
            at: manifest_at,
            len: manifest_len,
        },
        Stored {
            at: root_at,
            len: root_len,
        },
    ))
}

/// `base + at` inside the region; an overflow is reported as an access outside it.
fn offset(base: u32, at: u32) -> Result<u32, AgentError> {
    base.checked_add(at).ok_or(AgentError::OutOfRegion {
        region: base,
        offset: at,
        len: 0,
    })
}

/// `at` moved on by `n` bytes.
fn advance(at: u32, n: usize) -> Result<u32, AgentError> {
    u32::try_from(n)
        .ok()
        .and_then(|n| at.checked_add(n))
        .ok_or(AgentError::Config("journal offset"))
}

/// The first `left` bytes of `buf`, or all of it when `left` is larger.
fn piece_of(buf: &mut [u8; PIECE], left: u32) -> Result<&mut [u8], AgentError> {
    let n = usize::try_from(left).map_or(PIECE, |l| l.min(PIECE));
    buf.get_mut(..n)
        .ok_or(AgentError::BufferTooSmall("journal read"))
}
