//! The download: one loop over a chunk source (v2's ranged GETs, legacy JSON answers) that
//! resumes from the journal, checks every chunk before it touches flash, journals it once it
//! is there, and ends with the read-back, `Staged`, and the otadata switch.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::esp::image::{ImagePrefix, PREFIX_LEN, VerifyOptions};
use fota_protocol::v2::{EventKind, ReasonCode};
use sha2::{Digest, Sha256};

use super::ranged::HashPages;
use super::{Agent, PollOutcome, Stop, largest};
use crate::error::AgentError;
use crate::image;
use crate::journal::{Blob, Entry, Pending, StateKind, UpdateState};
use crate::transport::{Platform, Transport};
use crate::writer::{self, WriteError};

/// Where the chunks of a download come from.
pub(super) enum ChunkSource<'s> {
    /// v2: ranged GETs of the image, each chunk checked against its hash in the hash list,
    /// whose pages are checked against the manifest's commitment.
    Ranged(&'s mut HashPages),
    /// Legacy: one JSON answer per chunk, its MAC checked with the fleet key.
    Json {
        /// The fleet key.
        psk: &'s [u8],
    },
}

/// What an install decision leads to.
pub(super) enum Admitted {
    /// Nothing to download: the poll ends with this.
    Done(PollOutcome),
    /// The journal now downloads this release (new, or resumed).
    Download(Pending),
}

/// Progress events per download (v2; the legacy protocol has none).
const PROGRESS_EVENTS: u32 = 16;

const PREFIX_LEN_U64: u64 = PREFIX_LEN as u64;

impl<F: NorFlash, T: Transport, P: Platform> Agent<'_, F, T, P> {
    /// Before the first byte of the slot is written: nothing in otadata may select it while
    /// it is, and the switch at its end must be possible.
    pub(super) fn prepare_slot(&mut self, p: &Pending) -> Result<(), Stop> {
        self.protect_target(p.target_slot)?;
        self.ensure_switchable(p)
    }

    /// Downloads `p` (the journal's download) from `source`, from the chunk the journal
    /// reached, and stages it.
    pub(super) async fn download(
        &mut self,
        p: &Pending,
        mut source: ChunkSource<'_>,
    ) -> Result<PollOutcome, Stop> {
        let mut k = p.chunks_done;
        if k == 0 && self.slot_already_holds(p)? {
            return self.finish_download().await;
        }
        if k > 0 {
            // Resume: the last journaled chunk must still be on flash, byte for byte.
            if self.resume_holds(p, &mut source).await? {
                let mut next = self.journal.state().clone();
                next.resumes = next.resumes.saturating_add(1);
                self.commit(&next, Blob::Keep)?;
                // Said so the server can tell a resumed download from one restarted from
                // zero, and count how often a device's downloads are interrupted.
                self.event(
                    EventKind::Resumed,
                    ReasonCode::None,
                    p.id,
                    p.fw_version,
                    p.done_bytes(),
                )
                .await;
            } else {
                self.restart_download()?;
                k = 0;
            }
        }
        let first = k;
        let step = (p.chunk_count / PROGRESS_EVENTS).max(1);
        while k < p.chunk_count {
            if k > first && self.config.chunk_interval_ms > 0 {
                self.platform
                    .sleep_ms(u64::from(self.config.chunk_interval_ms))
                    .await;
            }
            let len = p
                .chunk_len(k)
                .ok_or(Stop::Refused(ReasonCode::ManifestInvalid))?;
            self.fetch_chunk(&mut source, p, k, len).await?;
            if let Err(stop) = self.check_prefix(p, k, len) {
                if let Stop::Refused(reason) = stop {
                    self.fail_pending(reason, true)?;
                }
                return Err(stop);
            }
            if let Err(stop) = self.store_chunk(p, k, len) {
                if let Stop::Refused(reason) = stop {
                    self.fail_pending(reason, false)?;
                }
                return Err(stop);
            }
            // k < chunk_count, so this does not overflow.
            k = k.saturating_add(1);
            if k.is_multiple_of(step) && k < p.chunk_count {
                let done = Pending {
                    chunks_done: k,
                    ..*p
                }
                .done_bytes();
                self.event(
                    EventKind::Progress,
                    ReasonCode::None,
                    p.id,
                    p.fw_version,
                    done,
                )
                .await;
            }
        }
        self.finish_download().await
    }

    /// Whether the last chunk the journal holds is still on flash, as the source knows it:
    /// its hash from the hash list (v2), or the first 8 bytes the journal kept (legacy).
    async fn resume_holds(
        &mut self,
        p: &Pending,
        source: &mut ChunkSource<'_>,
    ) -> Result<bool, Stop> {
        match source {
            ChunkSource::Ranged(pages) => {
                let last = p
                    .chunks_done
                    .checked_sub(1)
                    .ok_or(Stop::Refused(ReasonCode::HashlistInvalid))?;
                let expected = self.chunk_hash(pages, p, last).await?;
                Ok(self.last_chunk_digest(p)? == Some(expected))
            }
            ChunkSource::Json { .. } => Ok(self
                .last_chunk_digest(p)?
                .is_some_and(|d| d.first_chunk::<8>() == Some(&p.last_digest8))),
        }
    }

    /// Chunk `k` of `p` from `source` into the chunk buffer, checked.
    async fn fetch_chunk(
        &mut self,
        source: &mut ChunkSource<'_>,
        p: &Pending,
        k: u32,
        len: usize,
    ) -> Result<(), Stop> {
        match source {
            ChunkSource::Ranged(pages) => {
                let hash = self.chunk_hash(pages, p, k).await?;
                self.fetch_ranged(p, k, len, &hash).await
            }
            ChunkSource::Json { psk } => self.fetch_json(psk, k, len).await,
        }
    }

    /// Writes chunk `index` (already authenticated) and journals it.
    fn store_chunk(&mut self, p: &Pending, index: u32, len: usize) -> Result<(), Stop> {
        let region = self.target_region(p)?;
        let permit = self.storage.writable(region)?;
        let at = p
            .chunk_offset(index)
            .ok_or(Stop::Refused(ReasonCode::TooLarge))?;
        let data = self
            .bufs
            .chunk
            .get(..len)
            .ok_or(AgentError::BufferTooSmall("chunk"))?;
        match writer::write_chunk(&mut self.storage, &permit, at, data) {
            Ok(()) => {}
            Err(WriteError::Flash(e)) => return Err(Stop::Agent(e)),
            Err(WriteError::Mismatch { .. }) => return Err(Stop::Refused(ReasonCode::FlashError)),
        }
        let digest: [u8; 32] = Sha256::digest(data).into();
        let digest8 = digest.first_chunk::<8>().copied().unwrap_or_default();
        let chunks_done = index
            .checked_add(1)
            .ok_or(Stop::Refused(ReasonCode::ManifestInvalid))?;
        self.journal.append(
            &mut self.storage,
            Entry::Progress {
                chunks_done,
                digest8,
            },
        )?;
        Ok(())
    }

    /// The first-chunk checks, on the image's first bytes (from flash for what is already
    /// written, from the chunk buffer for the rest): magic, chip, app descriptor, project,
    /// version, secure version, size.
    fn check_prefix(&mut self, p: &Pending, index: u32, len: usize) -> Result<(), Stop> {
        let start = u64::from(index).saturating_mul(u64::from(p.chunk_size));
        if start >= PREFIX_LEN_U64 {
            return Ok(());
        }
        let end = start.saturating_add(u64::try_from(len).unwrap_or(u64::MAX));
        if end < PREFIX_LEN_U64 && end < p.image_size {
            // Not enough bytes yet; the next chunk completes the prefix.
            return Ok(());
        }
        let region = self.target_region(p)?;
        let mut prefix = [0u8; PREFIX_LEN];
        // start < PREFIX_LEN: the bytes before it are on flash.
        let have = usize::try_from(start).map_or(PREFIX_LEN, |s| s.min(PREFIX_LEN));
        let (written, rest) = prefix
            .split_at_mut_checked(have)
            .ok_or(Stop::Refused(ReasonCode::ImageInvalid))?;
        self.storage.read(region, 0, written)?;
        let take = rest.len().min(len);
        if let (Some(dst), Some(src)) = (rest.get_mut(..take), self.bufs.chunk.get(..take)) {
            dst.copy_from_slice(src);
        }
        let filled = have.saturating_add(take);
        let parsed = ImagePrefix::parse(
            prefix.get(..filled).unwrap_or(&[]),
            VerifyOptions {
                max_len: Some(region.size()),
                ..VerifyOptions::default()
            },
        )
        .map_err(|_| Stop::Refused(ReasonCode::ImageInvalid))?;
        let desc = parsed.app_desc;
        let project = desc.project_name().unwrap_or("");
        if project != self.me.project.as_str()
            || (!p.project.is_empty() && project != p.project.as_str())
        {
            return Err(Stop::Refused(ReasonCode::ProjectMismatch));
        }
        if desc.version() != Some(p.fw_version.as_str()) {
            return Err(Stop::Refused(ReasonCode::VersionMismatch));
        }
        if desc.secure_version < self.journal.state().committed_secure_version {
            return Err(Stop::Refused(ReasonCode::Downgrade));
        }
        if p.image_size > u64::from(region.size()) {
            return Err(Stop::Refused(ReasonCode::TooLarge));
        }
        Ok(())
    }

    /// Re-reads the slot: SHA-256 of exactly `image_size` bytes == the expected hash, and a
    /// valid ESP image of exactly that length that fits the slot.
    pub(super) fn verify_staged(&mut self, p: &Pending) -> Result<bool, AgentError> {
        let region = self.target_region(p)?;
        let scan = image::scan(
            &mut self.storage,
            region,
            Some(p.image_size),
            largest(&mut self.bufs),
        )?;
        Ok(scan.sha256 == p.image_sha256 && scan.is_valid_exact())
    }

    /// The slot may already hold this release (a confirmation cut short sent the device back,
    /// and the server assigns the release again): then nothing needs downloading.
    fn slot_already_holds(&mut self, p: &Pending) -> Result<bool, AgentError> {
        let region = self.target_region(p)?;
        match image::prefix(&mut self.storage, region)? {
            Some(prefix) if prefix.app_desc.version() == Some(p.fw_version.as_str()) => {
                self.verify_staged(p)
            }
            _ => Ok(false),
        }
    }

    /// End of a download: read back and verify, commit Staged, switch otadata.
    async fn finish_download(&mut self) -> Result<PollOutcome, Stop> {
        let p = self.downloading(StateKind::Staged)?;
        let region = self.target_region(&p)?;
        let scan = image::scan(
            &mut self.storage,
            region,
            Some(p.image_size),
            largest(&mut self.bufs),
        )?;
        if scan.sha256 != p.image_sha256 || !scan.is_valid_exact() {
            let reason = if scan.sha256 != p.image_sha256 {
                ReasonCode::ImageHashMismatch
            } else {
                ReasonCode::ImageInvalid
            };
            self.fail_pending(reason, true)?;
            let _ = self.deliver_report().await;
            return Err(Stop::Refused(reason));
        }
        self.event(
            EventKind::Verified,
            ReasonCode::None,
            p.id,
            p.fw_version,
            p.image_size,
        )
        .await;
        // Planned (and otadata renormalised if need be) before Staged is committed, so a
        // release that cannot be switched to is never staged. The plan is made again after
        // the event below rather than kept across it: that keeps it out of the future's state.
        if self.switch_plan(p.target_slot)?.is_none() {
            self.fail_pending(ReasonCode::BootSwitchImpossible, true)?;
            let _ = self.deliver_report().await;
            return Err(Stop::Refused(ReasonCode::BootSwitchImpossible));
        }
        let mut next = self.journal.state().clone();
        next.state = UpdateState::Staged(Pending {
            chunks_done: p.chunk_count,
            ..p
        });
        self.commit(&next, Blob::Keep)?;
        self.event(
            EventKind::Installing,
            ReasonCode::None,
            p.id,
            p.fw_version,
            p.image_size,
        )
        .await;
        if !self.switch(&p)? {
            // Only if otadata changed under the agent since it was planned above.
            self.fail_pending(ReasonCode::BootSwitchImpossible, true)?;
            return Err(Stop::Refused(ReasonCode::BootSwitchImpossible));
        }
        self.note(Some(EventKind::Installing), ReasonCode::None);
        Ok(PollOutcome::RebootRequired)
    }

    /// The SHA-256 of the last journaled chunk, read back from flash; `None` when the journal
    /// holds none.
    fn last_chunk_digest(&mut self, p: &Pending) -> Result<Option<[u8; 32]>, AgentError> {
        let Some(index) = p.chunks_done.checked_sub(1) else {
            return Ok(None);
        };
        let Some(len) = p.chunk_len(index) else {
            return Ok(None);
        };
        let region = self.target_region(p)?;
        let at = p.chunk_offset(index).ok_or(AgentError::Geometry)?;
        let buf = self
            .bufs
            .chunk
            .get_mut(..len)
            .ok_or(AgentError::BufferTooSmall("chunk"))?;
        self.storage.read(region, at, buf)?;
        Ok(Some(Sha256::digest(&*buf).into()))
    }

    /// Starts the pending download over from chunk 0 (the journal lost track of the slot).
    fn restart_download(&mut self) -> Result<(), AgentError> {
        let mut next = self.journal.state().clone();
        if let UpdateState::Downloading(p) = &mut next.state {
            p.chunks_done = 0;
            p.last_digest8 = [0; 8];
        }
        next.rechunks = next.rechunks.saturating_add(1);
        self.commit(&next, Blob::Keep)
    }
}
