//! The check-in answer: the server's reply to a check-in, carrying signed records.
//!
//! The answer itself is not signed. The device trusts only what is signed inside it: the
//! manifest (release keys), the status statement (status key) and newer root records (root
//! keys). It acts on a rollback order only when the statement's action names that order.

use crate::codec::{Reader, Writer};
use crate::v2::{Error, FieldCheck, manifest, root, status};

/// Magic of a check-in answer.
pub const MAGIC: [u8; 4] = *b"FCA1";
/// Format version of a check-in answer.
pub const FMT_VERSION: u16 = 1;
/// Longest reason text.
pub const MAX_REASON_LEN: usize = 128;
/// Most root records one answer carries.
pub const MAX_ROOTS: usize = 4;
/// Longest answer: every variable part at its maximum.
pub const MAX_LEN: usize = 14
    + status::MAX_LEN
    + 2
    + manifest::MAX_LEN
    + 1
    + 255
    + 1
    + 255
    + 8
    + 1
    + MAX_REASON_LEN
    + 1
    + MAX_ROOTS * (2 + root::MAX_LEN);

/// Up to four root records (raw envelopes), oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RootList<'a> {
    items: [&'a [u8]; MAX_ROOTS],
    len: usize,
}

impl<'a> RootList<'a> {
    /// No root records.
    pub const EMPTY: Self = Self {
        items: [&[]; MAX_ROOTS],
        len: 0,
    };

    /// A list of `records`; `None` for more than four.
    pub fn new(records: &[&'a [u8]]) -> Option<Self> {
        let mut list = Self::EMPTY;
        list.items
            .get_mut(..records.len())?
            .copy_from_slice(records);
        list.len = records.len();
        Some(list)
    }

    /// The records.
    pub fn as_slice(&self) -> &[&'a [u8]] {
        // `len <= MAX_ROOTS` holds by construction.
        self.items.get(..self.len).unwrap_or_default()
    }

    /// Number of records.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A check-in answer (server → device), integers little-endian.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 4 | magic | `FCA1` |
/// | 4 | 2 | fmt | 1 |
/// | 6 | 2 | reserved | zero |
/// | 8 | 4 | poll_hint_s | seconds until the next check-in |
/// | 12 | 2 | status_len | 1..=689 |
/// | 14 | status_len | status | status statement envelope (`FOTS`) |
/// | … | 2 | manifest_len | 0 = none, else ≤ 841 |
/// | … | manifest_len | manifest | manifest envelope (`FOTM`) |
/// | … | 1 | image_url_len | non-zero iff a manifest is present |
/// | … | image_url_len | image_url | URL or absolute path, visible ASCII (0x21..=0x7E) |
/// | … | 1 | hashlist_url_len | non-zero iff a manifest is present |
/// | … | hashlist_url_len | hashlist_url | URL or absolute path, visible ASCII |
/// | … | 8 | rollback_order_id | 0 = none |
/// | … | 1 | reason_len | ≤ 128 |
/// | … | reason_len | reason | UTF-8 text for humans (rollback reason) |
/// | … | 1 | root_count | ≤ 4 |
/// | … | root_count × (2 + len) | roots | each `u16 len (1..=1395) ‖ root record envelope`, oldest first |
///
/// Nothing follows the last root record. The URLs exclude spaces and control characters so
/// that a device can put them in a request line as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckInAnswer<'a> {
    /// Seconds until the next check-in.
    pub poll_hint_s: u32,
    /// The status statement envelope.
    pub status: &'a [u8],
    /// The assigned manifest envelope, if any.
    pub manifest: Option<&'a [u8]>,
    /// Where to fetch the image (empty without a manifest).
    pub image_url: &'a str,
    /// Where to fetch the hash list (empty without a manifest).
    pub hashlist_url: &'a str,
    /// Rollback order, 0 for none; acted on only when the statement orders it.
    pub rollback_order_id: u64,
    /// Text for humans, ≤ 128 bytes.
    pub reason: &'a str,
    /// Newer root records, oldest first.
    pub roots: RootList<'a>,
}

fn check_url(url: &str, field: &'static str, offset: usize) -> Result<u8, Error> {
    if !url.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Error::field(field, offset, FieldCheck::NotAscii));
    }
    u8::try_from(url.len()).map_err(|_| Error::field(field, offset, FieldCheck::OutOfRange))
}

fn check_len(len: usize, max: usize, field: &'static str, offset: usize) -> Result<(), Error> {
    if len == 0 || len > max {
        Err(Error::field(field, offset, FieldCheck::OutOfRange))
    } else {
        Ok(())
    }
}

impl<'a> CheckInAnswer<'a> {
    /// Checks lengths, URL characters and that URLs come with a manifest.
    pub fn check(&self) -> Result<(), Error> {
        check_len(self.status.len(), status::MAX_LEN, "status_len", 12)?;
        if let Some(m) = self.manifest {
            check_len(m.len(), manifest::MAX_LEN, "manifest_len", 0)?;
        }
        check_url(self.image_url, "image_url", 0)?;
        check_url(self.hashlist_url, "hashlist_url", 0)?;
        let has_manifest = self.manifest.is_some();
        if self.image_url.is_empty() == has_manifest {
            return Err(Error::field("image_url_len", 0, FieldCheck::Inconsistent));
        }
        if self.hashlist_url.is_empty() == has_manifest {
            return Err(Error::field(
                "hashlist_url_len",
                0,
                FieldCheck::Inconsistent,
            ));
        }
        if self.reason.len() > MAX_REASON_LEN {
            return Err(Error::field("reason_len", 0, FieldCheck::OutOfRange));
        }
        for r in self.roots.as_slice() {
            check_len(r.len(), root::MAX_LEN, "root_len", 0)?;
        }
        Ok(())
    }

    /// Bytes the encoded answer takes.
    pub fn encoded_len(&self) -> usize {
        let roots = self.roots.as_slice().iter().map(|r| r.len());
        let parts = [
            14,
            self.status.len(),
            2,
            self.manifest.map_or(0, <[u8]>::len),
            1,
            self.image_url.len(),
            1,
            self.hashlist_url.len(),
            8,
            1,
            self.reason.len(),
            1,
        ];
        // Saturates only for slices no answer could hold; `encode` then refuses them.
        parts
            .into_iter()
            .chain(roots.flat_map(|len| [2, len]))
            .fold(0, usize::saturating_add)
    }

    /// Writes the answer into `out`; returns the bytes written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        self.check()?;
        // check() bounded every length to its field's width, so `Error::length` never fails.
        let mut w = Writer::new(out);
        w.bytes(&MAGIC)?;
        w.u16(FMT_VERSION)?;
        w.u16(0)?;
        w.u32(self.poll_hint_s)?;
        w.u16(Error::length(self.status.len(), "status_len", w.written())?)?;
        w.bytes(self.status)?;
        let manifest = self.manifest.unwrap_or(&[]);
        w.u16(Error::length(manifest.len(), "manifest_len", w.written())?)?;
        w.bytes(manifest)?;
        w.u8(Error::length(
            self.image_url.len(),
            "image_url_len",
            w.written(),
        )?)?;
        w.bytes(self.image_url.as_bytes())?;
        w.u8(Error::length(
            self.hashlist_url.len(),
            "hashlist_url_len",
            w.written(),
        )?)?;
        w.bytes(self.hashlist_url.as_bytes())?;
        w.u64(self.rollback_order_id)?;
        w.u8(Error::length(self.reason.len(), "reason_len", w.written())?)?;
        w.bytes(self.reason.as_bytes())?;
        w.u8(Error::length(self.roots.len(), "root_count", w.written())?)?;
        for r in self.roots.as_slice() {
            w.u16(Error::length(r.len(), "root_len", w.written())?)?;
            w.bytes(r)?;
        }
        Ok(w.written())
    }

    /// The encoded answer in a new vector.
    #[cfg(feature = "alloc")]
    pub fn to_vec(&self) -> Result<alloc::vec::Vec<u8>, Error> {
        let mut out = alloc::vec![0u8; self.encoded_len()];
        let n = self.encode(&mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// Decodes an answer; the whole input must be exactly one answer. Every slice borrows from
    /// `bytes`; the embedded envelopes still have to be verified.
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
        if fmt != FMT_VERSION {
            return Err(Error::FormatVersion {
                expected: FMT_VERSION,
                found: fmt,
            });
        }
        if r.u16()? != 0 {
            return Err(Error::field("reserved", 6, FieldCheck::ReservedNotZero));
        }
        let poll_hint_s = r.u32()?;

        let status_len = usize::from(r.u16()?);
        check_len(status_len, status::MAX_LEN, "status_len", 12)?;
        let status = r.take(status_len)?;

        let at = r.position();
        let manifest_len = usize::from(r.u16()?);
        let manifest = if manifest_len == 0 {
            None
        } else {
            check_len(manifest_len, manifest::MAX_LEN, "manifest_len", at)?;
            Some(r.take(manifest_len)?)
        };

        let image_url = read_url(&mut r, "image_url")?;
        let hashlist_url = read_url(&mut r, "hashlist_url")?;
        let rollback_order_id = r.u64()?;

        let at = r.position();
        let reason_len = usize::from(r.u8()?);
        if reason_len > MAX_REASON_LEN {
            return Err(Error::field("reason_len", at, FieldCheck::OutOfRange));
        }
        let reason = core::str::from_utf8(r.take(reason_len)?)
            .map_err(|_| Error::field("reason", at.saturating_add(1), FieldCheck::Text))?;

        let at = r.position();
        let root_count = usize::from(r.u8()?);
        if root_count > MAX_ROOTS {
            return Err(Error::field("root_count", at, FieldCheck::OutOfRange));
        }
        let mut roots = RootList::EMPTY;
        for slot in roots.items.iter_mut().take(root_count) {
            let at = r.position();
            let len = usize::from(r.u16()?);
            check_len(len, root::MAX_LEN, "root_len", at)?;
            *slot = r.take(len)?;
        }
        roots.len = root_count;
        r.finish()?;

        let answer = Self {
            poll_hint_s,
            status,
            manifest,
            image_url,
            hashlist_url,
            rollback_order_id,
            reason,
            roots,
        };
        let has_manifest = answer.manifest.is_some();
        if answer.image_url.is_empty() == has_manifest {
            return Err(Error::field("image_url_len", 0, FieldCheck::Inconsistent));
        }
        if answer.hashlist_url.is_empty() == has_manifest {
            return Err(Error::field(
                "hashlist_url_len",
                0,
                FieldCheck::Inconsistent,
            ));
        }
        Ok(answer)
    }
}

fn read_url<'a>(r: &mut Reader<'a>, field: &'static str) -> Result<&'a str, Error> {
    let at = r.position();
    let len = usize::from(r.u8()?);
    let bytes = r.take(len)?;
    let not_ascii = Error::field(field, at.saturating_add(1), FieldCheck::NotAscii);
    if !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(not_ascii);
    }
    // Visible ASCII is UTF-8.
    core::str::from_utf8(bytes).map_err(|_| not_ascii)
}
