//! The legacy (seed) flow: manifest and rollback-status polls with replay MACs and nonces,
//! chunks with per-chunk HMAC, status reports. Insecure by design (one fleet-wide key); the
//! agent hardens what the wire format allows: MACs checked in constant time before anything
//! is parsed further or persisted, nonces strictly increasing and persisted only once
//! authenticated, offsets computed on the device, exact lengths, no version older than the
//! running one ([`fota_protocol::version`]'s order), and the whole-image SHA-256 over the
//! read-back slot before otadata changes.

use core::cmp::Ordering;
use core::fmt::Write as _;

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::legacy::mac::parse_hex32;
use fota_protocol::legacy::{
    ChunkAnswer, LegacyError, ManifestAnswer, RollbackStatusAnswer, paths,
};
use fota_protocol::v2::{FixedStr, ReasonCode};
use fota_protocol::version;

use super::download::{Admitted, ChunkSource};
use super::retry::Retries;
use super::{Agent, PollOutcome, Stop};
use crate::error::AgentError;
use crate::journal::{Blob, Entry, Pending, Protocol, UpdateState};
use crate::transport::{Platform, Transport};

/// A request line with its query.
type Path = heapless::String<192>;

/// What an authenticated manifest answer offers.
#[derive(Debug, Clone, Copy)]
struct Offer {
    version: FixedStr,
    size: u64,
    hash: [u8; 32],
    chunk_size: u64,
    total_chunks: u64,
}

fn push_encoded(out: &mut Path, value: &str) -> Result<(), Stop> {
    for b in value.bytes() {
        let ok = if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b)).is_ok()
        } else {
            write!(out, "%{b:02X}").is_ok()
        };
        if !ok {
            return Err(Stop::Agent(AgentError::Config(
                "device name too long for a request line",
            )));
        }
    }
    Ok(())
}

fn path_with_device(path: &str, name: &str, chunk: Option<u32>) -> Result<Path, Stop> {
    let mut out = Path::new();
    let too_long = || {
        Stop::Agent(AgentError::Config(
            "device name too long for a request line",
        ))
    };
    out.push_str(path).map_err(|_| too_long())?;
    if let Some(k) = chunk {
        write!(out, "?chunk_number={k}&device_id=").map_err(|_| too_long())?;
    } else {
        out.push_str("?device_id=").map_err(|_| too_long())?;
    }
    push_encoded(&mut out, name)?;
    Ok(out)
}

fn mac_reason(e: LegacyError) -> ReasonCode {
    match e {
        LegacyError::NonceNotIncreasing { .. } | LegacyError::NonceMissing => {
            ReasonCode::StatusInvalid
        }
        _ => ReasonCode::SignatureInvalid,
    }
}

impl<F: NorFlash, T: Transport, P: Platform> Agent<'_, F, T, P> {
    /// GET with bounded retries; the body lands in `io`.
    async fn legacy_fetch(&mut self, path: &str) -> Result<usize, Stop> {
        let mut retries = Retries::new(self.config.max_retries);
        loop {
            match self.transport.legacy_get(path, self.bufs.io).await {
                Ok(n) => return Ok(n),
                Err(e) => {
                    if !(e.is_transient() && self.retry(&mut retries).await) {
                        return Err(Stop::Net(e));
                    }
                }
            }
        }
    }

    pub(super) async fn legacy_poll(&mut self, psk: &[u8]) -> PollOutcome {
        if self.journal.state().legacy_disabled {
            // W10: after a v2 manifest was accepted, legacy is never spoken again.
            return PollOutcome::Failed {
                reason: ReasonCode::UnsupportedFormat,
                error: Some(AgentError::Config("legacy mode is latched off")),
                next_poll_ms: self.poll_ms(),
            };
        }
        let offer = match self.legacy_manifest(psk).await {
            Ok(o) => o,
            Err(s) => return self.outcome(s),
        };
        match self.legacy_rollback_status(psk).await {
            Ok(true) => return self.manual_rollback(0).await,
            Ok(false) => {}
            Err(s) => return self.outcome(s),
        }
        match self.legacy_install(psk, offer).await {
            Ok(o) => o,
            Err(s) => self.outcome(s),
        }
    }

    async fn legacy_manifest(&mut self, psk: &[u8]) -> Result<Offer, Stop> {
        let path = path_with_device(paths::MANIFEST, self.config.device_name, None)?;
        let n = self.legacy_fetch(&path).await?;
        let body = self.bufs.io.get(..n).unwrap_or(&[]);
        let (answer, _): (ManifestAnswer<&str>, usize) = serde_json_core::from_slice(body)
            .map_err(|_| Stop::Refused(ReasonCode::ManifestInvalid))?;
        let nonce = answer
            .verify_replay(
                psk,
                paths::MANIFEST,
                self.config.device_name,
                self.journal.state().legacy_nonce,
            )
            .map_err(|e| Stop::Refused(mac_reason(e)))?;
        let offer = Offer {
            version: FixedStr::new(answer.version)
                .ok_or(Stop::Refused(ReasonCode::UnsupportedFormat))?,
            size: answer.size,
            hash: parse_hex32(answer.hash).ok_or(Stop::Refused(ReasonCode::ManifestInvalid))?,
            chunk_size: answer.chunk_size,
            total_chunks: answer.total_chunks,
        };
        self.journal
            .append(&mut self.storage, Entry::LegacyNonce(nonce))?;
        Ok(offer)
    }

    async fn legacy_rollback_status(&mut self, psk: &[u8]) -> Result<bool, Stop> {
        let path = path_with_device(paths::ROLLBACK_STATUS, self.config.device_name, None)?;
        let n = self.legacy_fetch(&path).await?;
        let body = self.bufs.io.get(..n).unwrap_or(&[]);
        let (answer, _): (RollbackStatusAnswer<&str>, usize) = serde_json_core::from_slice(body)
            .map_err(|_| Stop::Refused(ReasonCode::StatusInvalid))?;
        let nonce = answer
            .verify_replay(
                psk,
                paths::ROLLBACK_STATUS,
                self.config.device_name,
                self.journal.state().legacy_nonce,
            )
            .map_err(|e| Stop::Refused(mac_reason(e)))?;
        let required = answer.rollback_required;
        self.journal
            .append(&mut self.storage, Entry::LegacyNonce(nonce))?;
        Ok(required)
    }

    async fn legacy_install(&mut self, psk: &[u8], offer: Offer) -> Result<PollOutcome, Stop> {
        // Decided first, so that what the decision needs is gone before the download runs.
        match self.legacy_admit(offer)? {
            Admitted::Done(outcome) => Ok(outcome),
            Admitted::Download(p) => {
                self.prepare_slot(&p)?;
                self.download(&p, ChunkSource::Json { psk }).await
            }
        }
    }

    /// Whether the offered release is downloaded, resumed, or needs nothing; the download is
    /// journaled.
    fn legacy_admit(&mut self, offer: Offer) -> Result<Admitted, Stop> {
        let idle = Admitted::Done(PollOutcome::Idle {
            next_poll_ms: self.poll_ms(),
        });
        let js = self.journal.state().clone();
        if offer.hash == self.me.sha256 || js.is_rejected(&offer.hash, 0).is_some() {
            if matches!(js.state, UpdateState::Downloading(_)) {
                self.fail_pending(ReasonCode::Superseded, false)?;
            }
            return Ok(idle);
        }
        let target = self.layout.target(self.running);
        let slot = self
            .layout
            .slot(target)
            .ok_or(Stop::Agent(AgentError::Config("no target slot")))?;
        if offer.size == 0 || offer.chunk_size == 0 {
            return Err(Stop::Refused(ReasonCode::ManifestInvalid));
        }
        if offer.size > u64::from(slot.size()) {
            return Err(Stop::Refused(ReasonCode::TooLarge));
        }
        let chunk_size = u32::try_from(offer.chunk_size)
            .map_err(|_| Stop::Refused(ReasonCode::UnsupportedFormat))?;
        // One JSON answer must fit `io`: base64 of a chunk plus the other fields.
        let json = offer
            .chunk_size
            .div_ceil(3)
            .saturating_mul(4)
            .saturating_add(256);
        if chunk_size as usize > self.bufs.chunk.len() || json > self.bufs.io.len() as u64 {
            return Err(Stop::Refused(ReasonCode::UnsupportedFormat));
        }
        let count = offer.size.div_ceil(offer.chunk_size);
        if count != offer.total_chunks {
            return Err(Stop::Refused(ReasonCode::ManifestInvalid));
        }
        let count = u32::try_from(count).map_err(|_| Stop::Refused(ReasonCode::ManifestInvalid))?;
        // The seed's manifest carries no counter: its version string is all there is to refuse
        // an older image by. The same version again (another build of it) is let through.
        if version::compare(offer.version.as_str(), self.me.version.as_str()) == Ordering::Less {
            return Err(Stop::Refused(ReasonCode::Downgrade));
        }
        let p = match js.state {
            UpdateState::Downloading(p) if p.id == offer.hash && p.protocol == Protocol::Legacy => {
                p
            }
            _ => {
                let p = Pending {
                    protocol: Protocol::Legacy,
                    id: offer.hash,
                    target_slot: target,
                    from_slot: self.running.slot_code(),
                    image_size: offer.size,
                    chunk_size,
                    chunk_count: count,
                    image_sha256: offer.hash,
                    chunk_list_sha256: [0; 32],
                    sequence: 0,
                    security_counter: 0,
                    fw_version: offer.version,
                    project: FixedStr::default(),
                    generation: 0,
                    chunks_done: 0,
                    last_digest8: [0; 8],
                };
                let mut next = js.clone();
                next.state = UpdateState::Downloading(p);
                // A different image hash lifts earlier rejections: the operator published
                // something new (legacy has no assignment generation). Rejected hashes return
                // above, so the list holds nothing that is offered now.
                next.rejected.clear();
                self.commit(&next, Blob::Drop)?;
                p
            }
        };
        Ok(Admitted::Download(p))
    }

    /// Fetches chunk `k` into the chunk buffer: right index, MAC verified (constant time)
    /// before anything else, exact length.
    pub(super) async fn fetch_json(&mut self, psk: &[u8], k: u32, len: usize) -> Result<(), Stop> {
        let path = path_with_device(paths::CHUNK, self.config.device_name, Some(k))?;
        let mut retries = Retries::new(self.config.max_retries);
        loop {
            let n = self.legacy_fetch(&path).await?;
            let received = u64::try_from(n).unwrap_or(u64::MAX);
            self.counters.bytes = self.counters.bytes.saturating_add(received);
            let body = self.bufs.io.get(..n).unwrap_or(&[]);
            let verified = match serde_json_core::from_slice::<ChunkAnswer<&str>>(body) {
                Ok((answer, _)) if answer.chunk_number == u64::from(k) => answer
                    .decode_verified(psk, self.bufs.chunk)
                    .is_ok_and(|data| data.len() == len),
                _ => false,
            };
            if verified {
                return Ok(());
            }
            self.counters.rechunks = self.counters.rechunks.saturating_add(1);
            if !self.retry(&mut retries).await {
                return Err(Stop::Refused(ReasonCode::ChunkHashMismatch));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        let p = path_with_device(paths::CHUNK, "Eco Watt/1", Some(3)).unwrap();
        assert_eq!(
            p.as_str(),
            "/api/inverter/fota/chunk?chunk_number=3&device_id=Eco%20Watt%2F1"
        );
        let long = "x".repeat(300);
        assert!(path_with_device(paths::MANIFEST, &long, None).is_err());
    }
}
