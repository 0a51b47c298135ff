//! Events: what happened to an update, reported by the device as it happens.

use crate::codec::{Reader, Writer};
use crate::v2::codes::{EventKind, ReasonCode};
use crate::v2::{Error, FieldCheck, FixedStr};

/// Magic of an event.
pub const MAGIC: [u8; 4] = *b"FEV1";
/// Format version of an event this crate writes (it reads 1 and 2).
pub const FMT_VERSION: u16 = 2;
/// Format version of the first layout: the same bytes, without the kinds format 2 added
/// ([`EventKind::Resumed`]).
pub const FMT_VERSION_1: u16 = 1;
/// Length of the fixed part (everything before the detail text).
pub const FIXED_LEN: usize = 121;
/// Longest detail text.
pub const MAX_DETAIL_LEN: usize = 120;
/// Longest event.
pub const MAX_LEN: usize = FIXED_LEN + MAX_DETAIL_LEN;

/// An event (device → server), integers little-endian.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 4 | magic | `FEV1` |
/// | 4 | 2 | fmt | 2 (or 1: agents built before format 2, which never send [`EventKind::Resumed`]) |
/// | 6 | 1 | kind | [`EventKind`] code |
/// | 7 | 1 | reason | [`ReasonCode`] code |
/// | 8 | 16 | device_id | the device's UUID |
/// | 24 | 4 | seq | u32, per-boot event counter, for de-duplication |
/// | 28 | 4 | reserved | zero |
/// | 32 | 32 | manifest_digest | the release concerned, zero = none |
/// | 64 | 8 | bytes_done | progress |
/// | 72 | 8 | bytes_total | image size; ≥ bytes_done |
/// | 80 | 32 | fw_version | NUL-padded UTF-8 (0..=31 bytes), the version concerned |
/// | 112 | 8 | rollback_order_id | order concerned, 0 = none |
/// | 120 | 1 | detail_len | ≤ 120 |
/// | 121 | detail_len | detail | UTF-8 text for humans |
///
/// Nothing follows the detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    /// What happened.
    pub kind: EventKind,
    /// Why.
    pub reason: ReasonCode,
    /// The device's UUID.
    pub device_id: [u8; 16],
    /// Per-boot event counter.
    pub seq: u32,
    /// The release concerned, zero for none.
    pub manifest_digest: [u8; 32],
    /// Bytes done.
    pub bytes_done: u64,
    /// Bytes in total.
    pub bytes_total: u64,
    /// The version concerned.
    pub fw_version: FixedStr,
    /// The rollback order concerned, 0 for none.
    pub rollback_order_id: u64,
    /// Free text for humans, ≤ 120 bytes.
    pub detail: &'a str,
}

impl<'a> Event<'a> {
    /// Bytes the encoded event takes.
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN.saturating_add(self.detail.len())
    }

    /// Checks the detail length and progress fields.
    pub fn check(&self) -> Result<(), Error> {
        if self.detail.len() > MAX_DETAIL_LEN {
            return Err(Error::field("detail_len", 120, FieldCheck::OutOfRange));
        }
        if self.bytes_done > self.bytes_total {
            return Err(Error::field("bytes_done", 64, FieldCheck::Inconsistent));
        }
        Ok(())
    }

    /// Writes the event into `out`; returns the bytes written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        self.check()?;
        let mut w = Writer::new(out);
        w.bytes(&MAGIC)?;
        w.u16(FMT_VERSION)?;
        w.u8(self.kind.code())?;
        w.u8(self.reason.code())?;
        w.bytes(&self.device_id)?;
        w.u32(self.seq)?;
        w.u32(0)?;
        w.bytes(&self.manifest_digest)?;
        w.u64(self.bytes_done)?;
        w.u64(self.bytes_total)?;
        w.bytes(self.fw_version.as_bytes())?;
        w.u64(self.rollback_order_id)?;
        // check() bounded the length to 120, so this never fails.
        w.u8(Error::length(self.detail.len(), "detail_len", w.written())?)?;
        w.bytes(self.detail.as_bytes())?;
        Ok(w.written())
    }

    /// The encoded event in a new vector.
    #[cfg(feature = "alloc")]
    pub fn to_vec(&self) -> Result<alloc::vec::Vec<u8>, Error> {
        let mut out = [0u8; MAX_LEN];
        let n = self.encode(&mut out)?;
        Ok(crate::codec::written(&out, n)?.to_vec())
    }

    /// Decodes an event; the whole input must be exactly one event. The detail borrows from
    /// `bytes`.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let magic: [u8; 4] = r.array()?;
        if magic != MAGIC {
            return Err(Error::BadMagic {
                expected: MAGIC,
                found: magic,
            });
        }
        let fmt = r.u16()?;
        if fmt != FMT_VERSION && fmt != FMT_VERSION_1 {
            return Err(Error::FormatVersion {
                expected: FMT_VERSION,
                found: fmt,
            });
        }
        let kind = EventKind::from_code(r.u8()?)
            .filter(|&k| fmt == FMT_VERSION || k != EventKind::Resumed)
            .ok_or(Error::field("kind", 6, FieldCheck::UnknownCode))?;
        let reason = ReasonCode::from_code(r.u8()?).ok_or(Error::field(
            "reason",
            7,
            FieldCheck::UnknownCode,
        ))?;
        let device_id = r.array()?;
        let seq = r.u32()?;
        if r.u32()? != 0 {
            return Err(Error::field("reserved", 28, FieldCheck::ReservedNotZero));
        }
        let manifest_digest = r.array()?;
        let bytes_done = r.u64()?;
        let bytes_total = r.u64()?;
        let fw_version = FixedStr::from_field(&r.array()?).ok_or(Error::field(
            "fw_version",
            80,
            FieldCheck::Text,
        ))?;
        let rollback_order_id = r.u64()?;
        let detail_len = usize::from(r.u8()?);
        if detail_len > MAX_DETAIL_LEN {
            return Err(Error::field("detail_len", 120, FieldCheck::OutOfRange));
        }
        let detail = core::str::from_utf8(r.take(detail_len)?)
            .map_err(|_| Error::field("detail", FIXED_LEN, FieldCheck::Text))?;
        r.finish()?;
        let event = Self {
            kind,
            reason,
            device_id,
            seq,
            manifest_digest,
            bytes_done,
            bytes_total,
            fw_version,
            rollback_order_id,
            detail,
        };
        event.check()?;
        Ok(event)
    }
}
