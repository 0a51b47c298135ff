//! Log entries: 16 bytes each, one program, bound to the base they follow by its seq.

use super::CRC;

/// Bytes of one log entry.
pub const ENTRY_LEN: usize = ENTRY_LEN_U32 as usize;
pub(super) const ENTRY_LEN_U32: u32 = 16;

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
    /// The offline floor of the base (written with it, see [Time floors](super#time-floors)).
    OfflineFloor(u64),
    /// Check-ins in a row whose status statement failed (a freeze attack shows as a run of
    /// them); 0 after a good one. Written with the base when not zero, like the offline
    /// floor.
    BadStatements(u32),
}

/// The value bits of the entry word (the kind is in the top four).
const VALUE_MASK: u32 = 0x0FFF_FFFF;

impl Entry {
    /// The entry as appended after the base with sequence `seq`; `None` when its value does
    /// not fit the word.
    pub(super) fn encode(&self, seq: u32) -> Option<[u8; ENTRY_LEN]> {
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
            Entry::BadStatements(n) => (5, 0, u64::from(n).to_le_bytes()),
        };
        let word = ((kind << 28) | value).to_le_bytes();
        let mut head = [0u8; 12];
        let (w, p) = head.split_at_mut(4);
        w.copy_from_slice(&word);
        p.copy_from_slice(&payload);
        let crc = entry_crc(seq, &head).to_le_bytes();
        let mut out = [0u8; ENTRY_LEN];
        let (h, c) = out.split_at_mut(12);
        h.copy_from_slice(&head);
        c.copy_from_slice(&crc);
        Some(out)
    }

    /// The entry in `bytes`, if it is one appended after the base with sequence `seq`.
    pub(super) fn decode(seq: u32, bytes: &[u8; ENTRY_LEN]) -> Option<Self> {
        let (head, crc) = bytes.split_first_chunk::<12>()?;
        let stored = u32::from_le_bytes(crc.try_into().ok()?);
        if entry_crc(seq, head) != stored {
            return None;
        }
        let (word, payload) = head.split_first_chunk::<4>()?;
        let word = u32::from_le_bytes(*word);
        let payload: [u8; 8] = payload.try_into().ok()?;
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
            5 if value == 0 => u32::try_from(u64::from_le_bytes(payload))
                .ok()
                .map(Entry::BadStatements),
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
