//! v2's chunk source: ranged GETs of the image, each chunk checked against its SHA-256 from
//! the hash list, whose pages are checked against the page-digest table, itself checked
//! against the manifest's `chunk_list_sha256`.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::v2::hashlist::HASHES_PER_PAGE;
use fota_protocol::v2::{HashListLayout, ReasonCode};
use sha2::{Digest, Sha256};

use super::retry::Retries;
use super::{Agent, Stop};
use crate::error::AgentError;
use crate::journal::Pending;
use crate::transport::{Platform, Transport, TransportError};

/// Page digests kept at once: a window of the table, reloaded when a chunk falls outside.
const WINDOW_U32: u32 = 8;
const WINDOW: usize = WINDOW_U32 as usize;

/// The hash list of a download, as far as it was fetched and verified.
pub(super) struct HashPages {
    layout: HashListLayout,
    /// First page whose digest is in `digests`.
    base: u32,
    /// Pages from `base` whose digests are in `digests`.
    count: u32,
    digests: [[u8; 32]; WINDOW],
    /// The page currently in the page buffer, verified.
    loaded: Option<u32>,
}

impl HashPages {
    /// The hash list of `p`, nothing fetched yet.
    pub(super) fn new(p: &Pending) -> Result<Self, Stop> {
        let layout = HashListLayout::new(p.image_size, p.chunk_size)
            .map_err(|_| Stop::Refused(ReasonCode::HashlistInvalid))?;
        Ok(Self {
            layout,
            base: 0,
            count: 0,
            digests: [[0; 32]; WINDOW],
            loaded: None,
        })
    }

    /// The digest of `page`, if the window holds it.
    fn digest(&self, page: u32) -> Option<[u8; 32]> {
        let i = page.checked_sub(self.base).filter(|&i| i < self.count)?;
        self.digests.get(usize::try_from(i).ok()?).copied()
    }
}

fn invalid() -> Stop {
    Stop::Refused(ReasonCode::HashlistInvalid)
}

impl<F: NorFlash, T: Transport, P: Platform> Agent<'_, F, T, P> {
    /// The hash of chunk `k` from its verified hash-list page (fetched when needed).
    pub(super) async fn chunk_hash(
        &mut self,
        pages: &mut HashPages,
        p: &Pending,
        k: u32,
    ) -> Result<[u8; 32], Stop> {
        let page = pages.layout.page_of(k).ok_or_else(invalid)?;
        if pages.loaded != Some(page) {
            if pages.digest(page).is_none() {
                self.load_table(pages, p, page).await?;
            }
            let digest = pages.digest(page).ok_or_else(invalid)?;
            let range = pages.layout.page_range(page).ok_or_else(invalid)?;
            let len = range
                .end
                .checked_sub(range.start)
                .and_then(|l| usize::try_from(l).ok())
                .ok_or_else(invalid)?;
            self.fetch_hashlist(range.start, len).await?;
            let bytes = self.bufs.page.get(..len).unwrap_or(&[]);
            if pages.layout.verify_page(page, bytes, &digest).is_err() {
                return Err(invalid());
            }
            pages.loaded = Some(page);
        }
        let first = page.checked_mul(HASHES_PER_PAGE).ok_or_else(invalid)?;
        let at = k
            .checked_sub(first)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| i.checked_mul(32))
            .ok_or_else(invalid)?;
        self.bufs
            .page
            .get(at..)
            .and_then(|rest| rest.first_chunk::<32>())
            .copied()
            .ok_or_else(invalid)
    }

    /// Streams the hash list's header and page-digest table through its verifier against the
    /// manifest's `chunk_list_sha256`, keeping the digests of up to [`WINDOW`] pages from
    /// `page` on.
    async fn load_table(
        &mut self,
        pages: &mut HashPages,
        p: &Pending,
        page: u32,
    ) -> Result<(), Stop> {
        let table_len = pages.layout.table_range().end;
        let mut verifier = pages.layout.table_verifier(&p.chunk_list_sha256);
        pages.base = page;
        pages.count = 0;
        pages.loaded = None;
        let mut off = 0u64;
        while let Some(left) = table_len.checked_sub(off).filter(|&l| l > 0) {
            let n =
                usize::try_from(left).map_or(self.bufs.page.len(), |l| l.min(self.bufs.page.len()));
            if n == 0 {
                return Err(Stop::Agent(AgentError::BufferTooSmall("page")));
            }
            self.fetch_hashlist(off, n).await?;
            let bytes = self.bufs.page.get(..n).unwrap_or(&[]);
            let digests = &mut pages.digests;
            verifier
                .update_with(bytes, |pg, d| {
                    if let Some(slot) = pg
                        .checked_sub(page)
                        .and_then(|i| usize::try_from(i).ok())
                        .and_then(|i| digests.get_mut(i))
                    {
                        *slot = *d;
                    }
                })
                .map_err(|_| invalid())?;
            off = off.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        }
        verifier.finish().map_err(|_| invalid())?;
        pages.count = pages
            .layout
            .page_count()
            .saturating_sub(page)
            .min(WINDOW_U32);
        Ok(())
    }

    /// Bytes `[offset, offset + len)` of the hash list into the page buffer, retried.
    async fn fetch_hashlist(&mut self, offset: u64, len: usize) -> Result<(), Stop> {
        let mut retries = Retries::new(self.config.max_retries);
        loop {
            let buf = self
                .bufs
                .page
                .get_mut(..len)
                .ok_or(Stop::Agent(AgentError::BufferTooSmall("page")))?;
            let failure = match self
                .transport
                .get_range(&self.urls.hashlist, offset, buf)
                .await
            {
                Ok(n) if n == len => return Ok(()),
                Ok(_) => TransportError::Truncated,
                Err(e) if !e.is_transient() => return Err(Stop::Net(e)),
                Err(e) => e,
            };
            if !self.retry(&mut retries).await {
                return Err(Stop::Net(failure));
            }
        }
    }

    /// Chunk `k` of `p` (`len` bytes) into the chunk buffer by a ranged GET of the image,
    /// retried until its SHA-256 is `hash`.
    pub(super) async fn fetch_ranged(
        &mut self,
        p: &Pending,
        k: u32,
        len: usize,
        hash: &[u8; 32],
    ) -> Result<(), Stop> {
        let offset = u64::from(k).saturating_mul(u64::from(p.chunk_size));
        let mut retries = Retries::new(self.config.max_retries);
        loop {
            let buf = self
                .bufs
                .chunk
                .get_mut(..len)
                .ok_or(Stop::Agent(AgentError::BufferTooSmall("chunk")))?;
            let got = self
                .transport
                .get_range(&self.urls.image, offset, buf)
                .await;
            let failure = match got {
                Ok(n) => {
                    let received = u64::try_from(n).unwrap_or(u64::MAX);
                    self.counters.bytes = self.counters.bytes.saturating_add(received);
                    let data = self.bufs.chunk.get(..len).unwrap_or(&[]);
                    if n == len && Sha256::digest(data).as_slice() == hash.as_slice() {
                        return Ok(());
                    }
                    self.counters.rechunks = self.counters.rechunks.saturating_add(1);
                    if n == len {
                        Stop::Refused(ReasonCode::ChunkHashMismatch)
                    } else {
                        Stop::Net(TransportError::Truncated)
                    }
                }
                Err(e) if !e.is_transient() => return Err(Stop::Net(e)),
                Err(e) => Stop::Net(e),
            };
            if !self.retry(&mut retries).await {
                return Err(failure);
            }
        }
    }
}
