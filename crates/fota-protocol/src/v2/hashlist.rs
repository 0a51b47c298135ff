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
        const FIELDS: [&str; 4] = ["magic", "chunk_count", "hashes_per_page", "page_count"];
        for (i, field) in FIELDS.iter().enumerate() {
            let at = i * 4;
            if header[at..at + 4] != expected[at..at + 4] {
                return Err(Error::field(field, at, FieldCheck::Inconsistent));
            }
        }
        Ok(())
    }

    /// Byte range of the header and page-digest table: what `chunk_list_sha256` covers.
    pub fn table_range(&self) -> Range<u64> {
        0..HEADER_LEN as u64 + 32 * u64::from(self.page_count)
    }

    /// Total length of the blob.
    pub fn total_len(&self) -> u64 {
        self.table_range().end + 32 * u64::from(self.chunk_count)
    }

    /// Byte range of page `page`, or `None` when there is no such page.
    pub fn page_range(&self, page: u32) -> Option<Range<u64>> {
        let first = page.checked_mul(HASHES_PER_PAGE)?;
        if first >= self.chunk_count {
            return None;
        }
        let end_chunk = first.saturating_add(HASHES_PER_PAGE).min(self.chunk_count);
        Some(self.chunk_hash_offset(first)?..self.chunk_hash_offset(end_chunk - 1)? + 32)
    }

    /// Length of page `page`, or `None` when there is no such page.
    pub fn page_len(&self, page: u32) -> Option<usize> {
        let r = self.page_range(page)?;
        usize::try_from(r.end - r.start).ok()
    }

    /// Byte offset in the blob of chunk `index`'s hash, or `None` past the last chunk.
    pub fn chunk_hash_offset(&self, index: u32) -> Option<u64> {
        (index < self.chunk_count).then(|| self.table_range().end + 32 * u64::from(index))
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
        (index < self.chunk_count).then(|| u64::from(index) * u64::from(self.chunk_size))
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
            // fed <= table_len <= 16 + 32 * 2^25, so the position fits usize on every target.
            let pos = self.fed as usize;
            self.fed += 1;
            if pos < HEADER_LEN {
                self.header[pos] = byte;
                if pos == HEADER_LEN - 1 {
                    self.layout.check_header(&self.header)?;
                }
                continue;
            }
            let in_table = pos - HEADER_LEN;
            self.digest[in_table % 32] = byte;
            if in_table % 32 == 31 {
                // in_table / 32 < page_count, a u32.
                let page = (in_table / 32) as u32;
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
        let first = self.page * HASHES_PER_PAGE;
        first..(first + HASHES_PER_PAGE).min(self.layout.chunk_count)
    }

    /// The hash of chunk `index` (a global chunk index), if this page holds it.
    pub fn chunk_hash(&self, index: u32) -> Option<&'a [u8; 32]> {
        if !self.chunks().contains(&index) {
            return None;
        }
        let at = ((index - self.page * HASHES_PER_PAGE) as usize) * 32;
        self.hashes.get(at..at + 32)?.try_into().ok()
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

    use super::{HASHES_PER_PAGE, HashListLayout};
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
        let mut hashes = Vec::with_capacity(layout.chunk_count() as usize * 32);
        for chunk in image.chunks(chunk_size as usize) {
            hashes.extend_from_slice(&Sha256::digest(chunk));
        }
        let mut blob = Vec::with_capacity(layout.total_len() as usize);
        blob.extend_from_slice(&layout.header());
        for page in hashes.chunks(HASHES_PER_PAGE as usize * 32) {
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
