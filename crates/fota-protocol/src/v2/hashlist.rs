//! The chunk hash list: per-chunk SHA-256 hashes, verified page by page.
//!
//! Blob layout (fetched separately from the manifest, by byte range):
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 4 | magic | `FHL1` |
//! | 4 | 4 | chunk_count | u32 LE, = the manifest's chunk_count |
//! | 8 | 4 | hashes_per_page | u32 LE, = 128 |
//! | 12 | 4 | page_count | u32 LE, = ceil(chunk_count / 128) |
//! | 16 | 32 × page_count | page digests | page p: SHA-256 of page p's bytes |
//! | 16 + 32·page_count | 32 × chunk_count | chunk hashes | chunk i: SHA-256 of its bytes |
//!
//! Page p is the chunk hashes of chunks `[128p, min(128(p+1), n))`: 4 KiB, the last page
//! shorter. The manifest's `chunk_list_sha256` is SHA-256 of bytes `[0, 16 + 32·page_count)`
//! (header and page-digest table).
//!
//! A device streams the table through [`TableVerifier`] once (keeping only the page digests it
//! wants), fetches one page at a time with [`HashListLayout::page_range`], checks it with
//! [`HashListLayout::verify_page`], and checks each chunk against its hash at its own index
//! with [`VerifiedPage::verify_chunk`]. The device never holds the whole list.

use core::ops::Range;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::v2::manifest::{self, Manifest};
use crate::v2::{Error, FieldCheck};

/// Magic of a hash-list blob.
pub const MAGIC: [u8; 4] = *b"FHL1";
/// Chunk hashes per page.
pub const HASHES_PER_PAGE: u32 = 128;
/// Bytes of the header.
pub const HEADER_LEN: usize = 16;
/// Bytes of a full page.
pub const PAGE_LEN: usize = HASHES_PER_PAGE as usize * 32;

/// The byte geometry of one hash list, derived from a manifest's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashListLayout {
    image_size: u64,
    chunk_size: u32,
    chunk_count: u32,
    page_count: u32,
}

impl HashListLayout {
    /// The layout for an image of `image_size` bytes cut into `chunk_size` chunks; the same
    /// size checks as a manifest's, and errors name the manifest's fields and offsets.
    pub fn new(image_size: u64, chunk_size: u32) -> Result<Self, Error> {
        let chunk_count = manifest::check_sizes(image_size, chunk_size, 144)?;
        Ok(Self {
            image_size,
            chunk_size,
            chunk_count,
            page_count: chunk_count.div_ceil(HASHES_PER_PAGE),
        })
    }

    /// The layout of the hash list a verified manifest commits to.
    pub fn for_manifest(manifest: &Manifest) -> Result<Self, Error> {
        Self::new(manifest.body().image_size, manifest.body().chunk_size)
    }

    /// Number of chunks.
    pub const fn chunk_count(&self) -> u32 {
        self.chunk_count
    }

    /// Number of pages.
    pub const fn page_count(&self) -> u32 {
        self.page_count
    }

    /// The 16-byte header this layout has.
    pub fn header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(&MAGIC);
        h[4..8].copy_from_slice(&self.chunk_count.to_le_bytes());
        h[8..12].copy_from_slice(&HASHES_PER_PAGE.to_le_bytes());
        h[12..16].copy_from_slice(&self.page_count.to_le_bytes());
        h
    }

    /// Checks a received header against this layout, naming the first field that differs.
    pub fn check_header(&self, header: &[u8]) -> Result<(), Error> {
        let expected = self.header();
        let header = header
            .get(..HEADER_LEN)
            .ok_or(crate::CodecError::Truncated {
                offset: header.len(),
                needed: HEADER_LEN.saturating_sub(header.len()),
            })?;
        const FIELDS: [(&str, usize); 4] = [
            ("magic", 0),
            ("chunk_count", 4),
            ("hashes_per_page", 8),
            ("page_count", 12),
        ];
        let words = header
            .as_chunks::<4>()
            .0
            .iter()
            .zip(expected.as_chunks::<4>().0);
        for ((field, at), (found, expected)) in FIELDS.into_iter().zip(words) {
            if found != expected {
                return Err(Error::field(field, at, FieldCheck::Inconsistent));
            }
        }
        Ok(())
    }

    /// Byte range of the header and page-digest table: what `chunk_list_sha256` covers.
    pub fn table_range(&self) -> Range<u64> {
        // check_sizes bounds the chunk count to 2^14, so nothing here saturates.
        0..hashes_len(self.page_count).saturating_add(HEADER_LEN as u64)
    }

    /// Total length of the blob.
    pub fn total_len(&self) -> u64 {
        self.table_range()
            .end
            .saturating_add(hashes_len(self.chunk_count))
    }

    /// Byte range of page `page`, or `None` when there is no such page.
    pub fn page_range(&self, page: u32) -> Option<Range<u64>> {
        let first = page.checked_mul(HASHES_PER_PAGE)?;
        if first >= self.chunk_count {
            return None;
        }
        let last = first
            .saturating_add(HASHES_PER_PAGE - 1)
            .min(self.chunk_count.checked_sub(1)?);
        let end = self.chunk_hash_offset(last)?.checked_add(32)?;
        Some(self.chunk_hash_offset(first)?..end)
    }

    /// Length of page `page`, or `None` when there is no such page.
    pub fn page_len(&self, page: u32) -> Option<usize> {
        let r = self.page_range(page)?;
        usize::try_from(r.end.checked_sub(r.start)?).ok()
    }

    /// Byte offset in the blob of chunk `index`'s hash, or `None` past the last chunk.
    pub fn chunk_hash_offset(&self, index: u32) -> Option<u64> {
        if index >= self.chunk_count {
            return None;
        }
        self.table_range().end.checked_add(hashes_len(index))
    }

    /// Page holding chunk `index`'s hash.
    pub fn page_of(&self, index: u32) -> Option<u32> {
        (index < self.chunk_count).then_some(index / HASHES_PER_PAGE)
    }

    /// Length of chunk `index` (the last one is the remainder), or `None` past the end.
    pub fn chunk_len(&self, index: u32) -> Option<usize> {
        manifest::chunk_len(self.image_size, self.chunk_size, index)
    }

    /// Byte offset of chunk `index` in the image.
    pub fn chunk_offset(&self, index: u32) -> Option<u64> {
        if index >= self.chunk_count {
            return None;
        }
        u64::from(index).checked_mul(u64::from(self.chunk_size))
    }

    /// A streaming verifier for the table, to be checked against `chunk_list_sha256`.
    pub fn table_verifier(&self, chunk_list_sha256: &[u8; 32]) -> TableVerifier {
        TableVerifier::new(self, chunk_list_sha256)
    }

    /// Checks a fetched page against its digest from a verified table.
    pub fn verify_page<'a>(
        &self,
        page: u32,
        bytes: &'a [u8],
        digest: &[u8; 32],
    ) -> Result<VerifiedPage<'a>, Error> {
        let expected = self.page_len(page).ok_or(Error::PageIndex {
            page,
            page_count: self.page_count,
        })?;
        if bytes.len() != expected {
            return Err(Error::PageLength {
                page,
                expected,
                found: bytes.len(),
            });
        }
        let actual: [u8; 32] = Sha256::digest(bytes).into();
        if !bool::from(actual.ct_eq(digest)) {
            return Err(Error::PageDigestMismatch { page });
        }
        Ok(VerifiedPage {
            layout: *self,
            page,
            hashes: bytes,
        })
    }
}

/// Streams the header and page-digest table through SHA-256 and checks it against the
/// manifest's `chunk_list_sha256`.
///
/// Feed the bytes of [`HashListLayout::table_range`] in order, in pieces of any size. Page
/// digests seen while streaming are handed out unverified: keep them, but use none before
/// [`finish`](Self::finish) succeeded.
#[derive(Clone)]
pub struct TableVerifier {
    layout: HashListLayout,
    expected: [u8; 32],
    hasher: Sha256,
    fed: u64,
    header: [u8; HEADER_LEN],
    digest: [u8; 32],
    wanted: Option<(u32, [u8; 32])>,
}

impl TableVerifier {
    /// Starts verifying the table of `layout` against `chunk_list_sha256`.
    pub fn new(layout: &HashListLayout, chunk_list_sha256: &[u8; 32]) -> Self {
        Self {
            layout: *layout,
            expected: *chunk_list_sha256,
            hasher: Sha256::new(),
            fed: 0,
            header: [0; HEADER_LEN],
            digest: [0; 32],
            wanted: None,
        }
    }

    /// Keeps the digest of `page`, to be returned by [`finish`](Self::finish).
    pub fn want_page(&mut self, page: u32) -> &mut Self {
        self.wanted = Some((page, [0; 32]));
        self
    }

    /// Feeds the next table bytes.
    pub fn update(&mut self, data: &[u8]) -> Result<(), Error> {
        self.update_with(data, |_, _| {})
    }

    /// Feeds the next table bytes and hands each page digest, as it completes, to `sink`
    /// (unverified until [`finish`](Self::finish) succeeds).
    pub fn update_with(
        &mut self,
        data: &[u8],
        mut sink: impl FnMut(u32, &[u8; 32]),
    ) -> Result<(), Error> {
        let table_len = self.layout.table_range().end;
        u64::try_from(data.len())
            .ok()
            .and_then(|n| self.fed.checked_add(n))
            .filter(|&n| n <= table_len)
            .ok_or(Error::TableLength {
                fed: self.fed.saturating_add(data.len() as u64),
                expected: table_len,
            })?;
        self.hasher.update(data);
        for &byte in data {
            let pos = self.fed;
            // The check above keeps fed <= table_len, so this never saturates.
            self.fed = pos.saturating_add(1);
            let header_slot = usize::try_from(pos)
                .ok()
                .and_then(|pos| self.header.get_mut(pos));
            if let Some(slot) = header_slot {
                *slot = byte;
                if self.fed == HEADER_LEN as u64 {
                    self.layout.check_header(&self.header)?;
                }
                continue;
            }
            // Past the header: byte `in_table % 32` of page digest `in_table / 32`.
            let in_table = pos.saturating_sub(HEADER_LEN as u64);
            let at = usize::try_from(in_table % 32).ok();
            if let Some(slot) = at.and_then(|at| self.digest.get_mut(at)) {
                *slot = byte;
            }
            if in_table % 32 == 31 {
                // Below page_count, a u32, since fed <= table_len.
                let page = u32::try_from(in_table / 32).map_err(|_| Error::TableLength {
                    fed: self.fed,
                    expected: table_len,
                })?;
                if let Some((wanted, digest)) = &mut self.wanted
                    && *wanted == page
                {
                    *digest = self.digest;
                }
                sink(page, &self.digest);
            }
        }
        Ok(())
    }

    /// Checks that the whole table was fed and hashes to `chunk_list_sha256`. Returns the
    /// digest of the page asked for with [`want_page`](Self::want_page), if any and if it
    /// exists.
    pub fn finish(self) -> Result<Option<[u8; 32]>, Error> {
        let table_len = self.layout.table_range().end;
        if self.fed != table_len {
            return Err(Error::TableLength {
                fed: self.fed,
                expected: table_len,
            });
        }
        let actual: [u8; 32] = self.hasher.finalize().into();
        if !bool::from(actual.ct_eq(&self.expected)) {
            return Err(Error::TableDigestMismatch);
        }
        Ok(self
            .wanted
            .filter(|(page, _)| *page < self.layout.page_count)
            .map(|(_, digest)| digest))
    }
}

impl core::fmt::Debug for TableVerifier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TableVerifier")
            .field("layout", &self.layout)
            .field("fed", &self.fed)
            .finish_non_exhaustive()
    }
}

/// A page of chunk hashes that matched its digest.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedPage<'a> {
    layout: HashListLayout,
    page: u32,
    hashes: &'a [u8],
}

impl<'a> VerifiedPage<'a> {
    /// The page index.
    pub const fn page(&self) -> u32 {
        self.page
    }

    /// Chunk indices this page covers.
    pub fn chunks(&self) -> Range<u32> {
        // page < page_count, so the first chunk index fits a u32.
        let first = self.page.saturating_mul(HASHES_PER_PAGE);
        first
            ..first
                .saturating_add(HASHES_PER_PAGE)
                .min(self.layout.chunk_count)
    }

    /// The hash of chunk `index` (a global chunk index), if this page holds it.
    pub fn chunk_hash(&self, index: u32) -> Option<&'a [u8; 32]> {
        let chunks = self.chunks();
        if !chunks.contains(&index) {
            return None;
        }
        let in_page = usize::try_from(index.checked_sub(chunks.start)?).ok()?;
        self.hashes.as_chunks::<32>().0.get(in_page)
    }

    /// Checks chunk `index`: its length (the last chunk is the remainder) and its hash.
    pub fn verify_chunk(&self, index: u32, data: &[u8]) -> Result<(), Error> {
        let hash = self.chunk_hash(index).ok_or(Error::ChunkIndex {
            index,
            page: self.page,
        })?;
        let expected = self.layout.chunk_len(index).ok_or(Error::ChunkIndex {
            index,
            page: self.page,
        })?;
        if data.len() != expected {
            return Err(Error::ChunkLength {
                index,
                expected,
                found: data.len(),
            });
        }
        verify_chunk_hash(index, data, hash)
    }
}

/// Bytes of `count` SHA-256 digests.
fn hashes_len(count: u32) -> u64 {
    u64::from(count).saturating_mul(32)
}

/// Checks that `data` hashes to `expected` (constant-time compare); `index` names the chunk
/// in the error.
pub fn verify_chunk_hash(index: u32, data: &[u8], expected: &[u8; 32]) -> Result<(), Error> {
    let actual: [u8; 32] = Sha256::digest(data).into();
    if bool::from(actual.ct_eq(expected)) {
        Ok(())
    } else {
        Err(Error::ChunkHashMismatch { index })
    }
}

#[cfg(feature = "alloc")]
pub use build::{HashList, build};

#[cfg(feature = "alloc")]
mod build {
    use alloc::vec::Vec;

    use sha2::{Digest, Sha256};

    use super::{HashListLayout, PAGE_LEN};
    use crate::v2::Error;

    /// A hash-list blob built from an image.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct HashList {
        /// The whole blob, as served.
        pub blob: Vec<u8>,
        /// SHA-256 of the header and page-digest table: the manifest's `chunk_list_sha256`.
        pub chunk_list_sha256: [u8; 32],
        /// Its geometry.
        pub layout: HashListLayout,
    }

    /// Cuts `image` into `chunk_size` chunks and builds the hash-list blob.
    pub fn build(image: &[u8], chunk_size: u32) -> Result<HashList, Error> {
        let layout = HashListLayout::new(image.len() as u64, chunk_size)?;
        // Capacities only, and the layout bounds both lengths to well under 1 MiB.
        let capacity = |len: u64| usize::try_from(len).unwrap_or(0);
        let chunk_size = usize::try_from(chunk_size).unwrap_or(usize::MAX);
        let mut hashes = Vec::with_capacity(capacity(super::hashes_len(layout.chunk_count())));
        for chunk in image.chunks(chunk_size) {
            hashes.extend_from_slice(&Sha256::digest(chunk));
        }
        let mut blob = Vec::with_capacity(capacity(layout.total_len()));
        blob.extend_from_slice(&layout.header());
        for page in hashes.chunks(PAGE_LEN) {
            blob.extend_from_slice(&Sha256::digest(page));
        }
        let chunk_list_sha256 = Sha256::digest(&blob).into();
        blob.extend_from_slice(&hashes);
        Ok(HashList {
            blob,
            chunk_list_sha256,
            layout,
        })
    }
}
