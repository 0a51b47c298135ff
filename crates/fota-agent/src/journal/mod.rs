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
//! | 16 | body_len | body | [`JournalState`], laid out as [`body`](body#layout) says |
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
//! | 5 bad statements | 0 | u64 LE count | check-ins in a row whose status statement failed; 0 after a good one |
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
//! offline-floor entry first (and one whose bad-statement count is not zero, a
//! bad-statements entry after it), and a commit programs that entry **before** the base record, so
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
//!
//! # Modules
//!
//! [`state`] is what the journal holds, decoded; [`body`] its layout in a base; [`entry`] the
//! log entries; `store` reading and writing the two sectors; `record` streaming a base into
//! its sector.

pub mod body;
pub mod entry;
mod record;
pub mod state;
mod store;

pub use body::BODY_LEN;
pub use entry::{ENTRY_LEN, Entry};
pub use state::{
    JournalState, MAX_REJECTED, Pending, Protocol, Rejected, Release, Report, StateKind,
    TransitionError, UpdateState,
};
pub use store::{Blob, Journal};

use crate::flash::SECTOR;

/// Magic of a base record.
pub const MAGIC: [u8; 4] = *b"FAJ1";
/// Bytes before the body.
pub const HEADER_LEN: usize = HEADER_LEN_U32 as usize;
const HEADER_LEN_U32: u32 = 16;
/// Largest manifest blob accepted.
pub const MAX_MANIFEST_LEN: usize = fota_protocol::v2::manifest::MAX_LEN;
/// Largest root blob accepted.
pub const MAX_ROOT_LEN: usize = fota_protocol::v2::root::MAX_LEN;

static CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

// The largest base (both blobs at their limits) still leaves room for its offline-floor entry.
const _: () = assert!(
    HEADER_LEN + BODY_LEN + MAX_MANIFEST_LEN + MAX_ROOT_LEN + 4 + 15 + 2 * ENTRY_LEN
        <= SECTOR as usize
);

/// `n` rounded up to a multiple of 16 (where the entries start after a record).
fn align16(n: u32) -> Option<u32> {
    n.checked_add(15).map(|v| v & !15)
}

#[cfg(test)]
mod tests;
