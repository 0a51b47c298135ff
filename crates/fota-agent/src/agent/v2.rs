//! The v2 flow: check-in, answer, root rotation, status statement, manifest, and the
//! decision to install (the chunks come from [`super::ranged`]).

use core::ops::Range;

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::v2::checkin::{OTA_STATE_UNDEFINED, SLOT_FACTORY_OR_UNKNOWN, Telemetry};
use fota_protocol::v2::hashlist::PAGE_LEN;
use fota_protocol::v2::{
    Action, AgentState, CheckIn, CheckInAnswer, Error as V2Error, EventKind, FieldCheck, Manifest,
    ManifestBody, ReasonCode, Role, RootRecord, StatusBody, StatusStatement,
};

use super::download::{Admitted, ChunkSource};
use super::ranged::HashPages;
use super::retry::Retries;
use super::{Agent, PollOutcome, Stop};
use crate::error::AgentError;
use crate::journal::{Blob, Entry, Pending, Protocol, StateKind, TransitionError, UpdateState};
use crate::layout::Running;
use crate::transport::{Platform, Transport};

/// A check-in whose statement (and manifest, for an install) verified.
pub(super) struct Checked {
    /// The latest time the device can vouch for: both floors, this statement's server time
    /// included. What the manifest's expiry is checked against.
    now: u64,
    statement: StatusBody,
    manifest: Option<(Manifest, Range<usize>)>,
}

/// Offset of `inner` inside `outer` (both from the same buffer).
fn offset_in(outer: &[u8], inner: &[u8]) -> Option<Range<usize>> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    let end = start.checked_add(inner.len())?;
    (end <= outer.len()).then_some(start..end)
}

fn manifest_reason(e: &V2Error) -> ReasonCode {
    match e {
        V2Error::UnknownKey { .. } => ReasonCode::UnknownOrRevokedKey,
        V2Error::ThresholdNotMet { .. }
        | V2Error::InvalidKey { .. }
        | V2Error::WeakKey { .. }
        | V2Error::BadMagic { .. }
        | V2Error::SignatureCount { .. } => ReasonCode::SignatureInvalid,
        V2Error::FormatVersion { .. }
        | V2Error::Field {
            check: FieldCheck::Unsupported,
            ..
        } => ReasonCode::UnsupportedFormat,
        _ => ReasonCode::ManifestInvalid,
    }
}

impl<F: NorFlash, T: Transport, P: Platform> Agent<'_, F, T, P> {
    fn agent_state(&self) -> AgentState {
        match self.journal.state().state {
            UpdateState::Idle => AgentState::Idle,
            UpdateState::Downloading(_) => AgentState::Downloading,
            UpdateState::Staged(_) => AgentState::Staged,
            UpdateState::Trial { .. } | UpdateState::Confirming { .. } => AgentState::Trial,
            UpdateState::RollingBack { .. } => AgentState::RollingBack,
        }
    }

    /// One authenticated check-in: sends the record, verifies roots, statement and (for an
    /// install) the manifest. Nothing touches flash before the verifications, except
    /// persisting a verified root rotation and the status floor.
    pub(super) async fn v2_checkin(&mut self) -> Result<Checked, Stop> {
        let mut nonce = [0u8; 16];
        self.platform.fill_random(&mut nonce);
        let ota_state = self
            .running_state()
            .ok()
            .flatten()
            .map_or(OTA_STATE_UNDEFINED, |s| {
                u8::try_from(s.raw())
                    .ok()
                    .filter(|&v| v <= 4)
                    .unwrap_or(OTA_STATE_UNDEFINED)
            });
        let js = self.journal.state().clone();
        let mut telemetry = Telemetry::new(self.config.chip_id);
        telemetry.uptime_s = u32::try_from(self.platform.now_ms() / 1000).unwrap_or(u32::MAX);
        self.platform.telemetry(&mut telemetry);
        telemetry.counter = self.checkin_counter();
        // Built and encoded in a block, so the record (with its attribute section) is not
        // kept in the poll future across the request below.
        let len = {
            let record = CheckIn {
                legacy_latched_off: js.legacy_disabled,
                device_id: self.config.device_uuid,
                nonce,
                root_version: self.root_version,
                installed_sequence: js.installed.sequence,
                installed_security_counter: js.committed_security_counter,
                running_fw_version: self.me.version,
                running_image_sha256: self.me.sha256,
                running_slot: match self.running {
                    Running::Ota(n) if n <= 15 => n,
                    _ => SLOT_FACTORY_OR_UNKNOWN,
                },
                running_ota_state: ota_state,
                agent_state: self.agent_state(),
                last_result: self.counters.last_reason.unwrap_or(ReasonCode::None),
                pending_bytes_done: js.pending().map_or(0, Pending::done_bytes),
                pending_bytes_total: js.pending().map_or(0, |p| p.image_size),
                pending_manifest_digest: js
                    .pending()
                    .filter(|p| p.protocol == Protocol::V2)
                    .map_or([0; 32], |p| p.id),
                rollback_order_id: js.report.map_or(js.last_order_id, |r| r.order_id),
                boot_count: match js.state {
                    UpdateState::Trial { attempts, .. } => u32::from(attempts),
                    _ => 0,
                },
                telemetry: Some(telemetry),
            };
            if record.encoded_len() > self.bufs.io.len() {
                return Err(Stop::Agent(AgentError::BufferTooSmall("io (check-in)")));
            }
            record
                .encode(self.bufs.io)
                .map_err(|_| Stop::Agent(AgentError::Config("check-in record")))?
        };
        let mut retries = Retries::new(self.config.max_retries);
        let n = loop {
            let sent = self
                .transport
                .checkin(self.bufs.io.get(..len).unwrap_or(&[]), self.bufs.chunk)
                .await;
            match sent {
                Ok(n) => break n,
                Err(e) => {
                    if !(e.is_transient() && self.retry(&mut retries).await) {
                        return Err(Stop::Net(e));
                    }
                }
            }
        };
        self.v2_verify(n, &nonce)
    }

    /// The check-in counter: grows with every check-in, so the server can skip a report older
    /// than one it applied (a delayed or replayed request). The newest server time a verified
    /// statement gave this boot (whatever became of the rest of the answer), times 2²⁰, plus the check-ins sent this boot — with no flash
    /// write for it. Until the first statement of a boot it is 0 ("not kept"), which makes the
    /// server apply the report and restart its watermark: a reset loses the in-RAM part, and
    /// the device's clock is not to be trusted before a statement arrives.
    fn checkin_counter(&mut self) -> u64 {
        self.checkins = self.checkins.wrapping_add(1);
        if self.counter_time == 0 {
            return 0;
        }
        self.counter_time
            .saturating_mul(1 << 20)
            .saturating_add(u64::from(self.checkins & 0xF_FFFF))
    }

    fn v2_verify(&mut self, n: usize, nonce: &[u8; 16]) -> Result<Checked, Stop> {
        let mut root = Self::trusted_root(
            &mut self.storage,
            &self.journal,
            &self.config,
            self.bufs.page,
        )?;
        let whole = self
            .bufs
            .chunk
            .get(..n)
            .ok_or(Stop::Refused(ReasonCode::StatusInvalid))?;
        let answer =
            CheckInAnswer::decode(whole).map_err(|_| Stop::Refused(ReasonCode::StatusInvalid))?;
        // Root rotation: each newer record must be signed by the trusted and its own root
        // thresholds, version + 1 each time. The root keys alone vouch for a rotation, so each
        // step is kept before anything the online key signed is looked at: whatever that key
        // did, the rotation that replaces it takes effect (TUF §5.3.10-11). A device several
        // versions behind persists every step, so a reset half-way resumes from the last.
        let persist = matches!(
            self.journal.state().state,
            UpdateState::Idle | UpdateState::Downloading(_) | UpdateState::Trial { .. }
        );
        for record in answer.roots.as_slice() {
            match RootRecord::verify_update(&root, record) {
                Ok(next) => {
                    let status_key_replaced = next.keys(Role::Status) != root.keys(Role::Status);
                    root = next;
                    if !persist || root.version() <= self.root_version {
                        continue;
                    }
                    let mut next = self.journal.state().clone();
                    next.offline_floor = next.offline_floor.max(root.body().issued_at);
                    if status_key_replaced {
                        // What the old status key said about time no longer counts: a leaked
                        // key that pushed the floor into the future would otherwise make every
                        // honest statement look expired for good.
                        next.status_floor = 0;
                        self.seen_time = 0;
                        self.counter_time = 0;
                    } else {
                        next.status_floor = next.status_floor.max(self.seen_time);
                    }
                    self.journal
                        .commit(&mut self.storage, &next, Blob::Keep, Blob::New(record))?;
                    self.root_version = root.version();
                    self.persisted_floor = next.status_floor;
                }
                Err(V2Error::RootVersion { found, expected }) if found < expected => {}
                Err(_) => {
                    self.counters.last_reason = Some(ReasonCode::RootInvalid);
                    break;
                }
            }
        }
        // Expiry is checked on the newest root only, after every rotation was applied, and
        // against time that offline keys vouched for (root and manifest issue times): the
        // online status key cannot expire a root to freeze the device (TUF §5.3.10).
        let offline_now = self
            .journal
            .state()
            .offline_floor
            .max(root.body().issued_at);
        if root.is_expired(offline_now) {
            self.counters.last_reason = Some(ReasonCode::RootExpired);
            return Err(Stop::Refused(ReasonCode::RootExpired));
        }
        let statement = match StatusStatement::verify_for_device(
            &root,
            answer.status,
            &self.config.device_uuid,
            nonce,
        ) {
            Ok(s) => s,
            Err(_) => return Err(self.bad_statement(ReasonCode::StatusInvalid)),
        };
        let body = statement.body().clone();
        let js = self.journal.state();
        let status_floor = js.status_floor.max(self.seen_time);
        let offline_floor = js.offline_floor.max(root.body().issued_at);
        if body.expires_at <= status_floor.max(offline_floor) {
            return Err(self.bad_statement(ReasonCode::Expired));
        }
        self.counter_time = self.counter_time.max(body.server_time);
        if self.journal.state().bad_statements != 0 {
            self.journal
                .append(&mut self.storage, Entry::BadStatements(0))?;
        }
        let manifest = match (statement.action(), answer.manifest) {
            (Action::Install { .. }, Some(bytes)) => {
                let m = Manifest::verify(&root, bytes)
                    .map_err(|e| Stop::Refused(manifest_reason(&e)))?;
                if !statement.assigns(&m) {
                    return Err(Stop::Refused(ReasonCode::AssignmentMismatch));
                }
                let range =
                    offset_in(whole, bytes).ok_or(Stop::Refused(ReasonCode::ManifestInvalid))?;
                self.urls.image.clear();
                self.urls.hashlist.clear();
                self.urls
                    .image
                    .push_str(answer.image_url)
                    .map_err(|_| Stop::Refused(ReasonCode::ManifestInvalid))?;
                self.urls
                    .hashlist
                    .push_str(answer.hashlist_url)
                    .map_err(|_| Stop::Refused(ReasonCode::ManifestInvalid))?;
                Some((m, range))
            }
            (Action::Install { .. }, None) => {
                return Err(Stop::Refused(ReasonCode::AssignmentMismatch));
            }
            _ => None,
        };
        self.seen_time = self.seen_time.max(body.server_time);
        Ok(Checked {
            now: self.seen_time.max(status_floor).max(offline_floor),
            statement: body,
            manifest,
        })
    }

    /// Counts a check-in whose statement failed, in the journal so a reset does not hide a
    /// run of them; from the third in a row the refusal is `freshness_unavailable` (someone
    /// may be withholding fresh statements). The count stops at the threshold, so a device
    /// kept from its server writes at most three entries, and one more when it gets through.
    fn bad_statement(&mut self, reason: ReasonCode) -> Stop {
        const THRESHOLD: u32 = 3;
        let n = self.journal.state().bad_statements.saturating_add(1);
        if n <= THRESHOLD
            && let Err(e) = self
                .journal
                .append(&mut self.storage, Entry::BadStatements(n))
        {
            return Stop::Agent(e);
        }
        Stop::Refused(if n >= THRESHOLD {
            ReasonCode::FreshnessUnavailable
        } else {
            reason
        })
    }

    pub(super) async fn v2_poll(&mut self) -> PollOutcome {
        let checked = match self.v2_checkin().await {
            Ok(c) => c,
            Err(s) => return self.outcome(s),
        };
        let next_poll_ms = match checked.statement.poll_interval_s {
            0 => self.poll_ms(),
            s => u64::from(s).saturating_mul(1000),
        };
        match checked.statement.action {
            Action::Rollback { order_id } => self.manual_rollback(order_id).await,
            Action::Install { .. } => match self.v2_install(checked).await {
                Ok(PollOutcome::Idle { .. }) => PollOutcome::Idle { next_poll_ms },
                Ok(o) => o,
                Err(s) => match self.outcome(s) {
                    PollOutcome::Failed { reason, error, .. } => PollOutcome::Failed {
                        reason,
                        error,
                        next_poll_ms,
                    },
                    other => other,
                },
            },
            _ => {
                if matches!(self.journal.state().state, UpdateState::Downloading(_)) {
                    // The assignment was withdrawn.
                    if let Err(e) = self.fail_pending(ReasonCode::Cancelled, false) {
                        return self.flash_failure(e);
                    }
                }
                if let Err(e) = self.persist_status_floor() {
                    return self.flash_failure(e);
                }
                PollOutcome::Idle { next_poll_ms }
            }
        }
    }

    async fn v2_install(&mut self, checked: Checked) -> Result<PollOutcome, Stop> {
        // Decided first, so that what the decision needs is gone before the download runs.
        match self.v2_admit(checked).await? {
            Admitted::Done(outcome) => Ok(outcome),
            Admitted::Download(p) => {
                self.prepare_slot(&p)?;
                let mut pages = HashPages::new(&p)?;
                self.download(&p, ChunkSource::Ranged(&mut pages)).await
            }
        }
    }

    /// Whether the assigned release is downloaded, resumed, or needs nothing; the download
    /// is journaled.
    async fn v2_admit(&mut self, checked: Checked) -> Result<Admitted, Stop> {
        let (manifest, range) = checked
            .manifest
            .ok_or(Stop::Refused(ReasonCode::AssignmentMismatch))?;
        let m = manifest.body();
        let digest = *manifest.digest();
        let generation = checked.statement.assignment_generation;
        let js = self.journal.state().clone();
        let refuse = |reason| Err(Stop::Refused(reason));
        if !manifest.matches_device(
            &self.config.vendor_id,
            &self.config.class_id,
            &self.config.device_uuid,
        ) {
            return refuse(ReasonCode::WrongDeviceOrClass);
        }
        if !m.is_for_chip(self.config.chip_id) {
            self.refused_once(digest, ReasonCode::WrongChip).await;
            return refuse(ReasonCode::WrongChip);
        }
        if m.sequence < js.highest_seq_seen || m.security_counter < js.committed_security_counter {
            return refuse(ReasonCode::Downgrade);
        }
        if manifest.is_expired(checked.now) {
            return refuse(ReasonCode::Expired);
        }
        let idle = Ok(Admitted::Done(PollOutcome::Idle {
            next_poll_ms: self.poll_ms(),
        }));
        if m.image_sha256 == self.me.sha256 {
            self.learn_running(m, digest)?;
            return idle;
        }
        if js.is_rejected(&digest, generation).is_some() {
            return idle;
        }
        let target = self.layout.target(self.running);
        let slot = self
            .layout
            .slot(target)
            .ok_or(Stop::Agent(AgentError::Config("no target slot")))?;
        if m.image_size > u64::from(slot.size()) {
            self.refused_once(digest, ReasonCode::TooLarge).await;
            return refuse(ReasonCode::TooLarge);
        }
        let chunk_fits = usize::try_from(m.chunk_size).is_ok_and(|c| c <= self.bufs.chunk.len());
        if !chunk_fits || self.bufs.page.len() < PAGE_LEN {
            self.refused_once(digest, ReasonCode::UnsupportedFormat)
                .await;
            return refuse(ReasonCode::UnsupportedFormat);
        }
        let p = match js.state {
            UpdateState::Downloading(p) if p.id == digest => p,
            _ => {
                let p = Pending {
                    protocol: Protocol::V2,
                    id: digest,
                    target_slot: target,
                    from_slot: self.running.slot_code(),
                    image_size: m.image_size,
                    chunk_size: m.chunk_size,
                    chunk_count: m.chunk_count,
                    image_sha256: m.image_sha256,
                    chunk_list_sha256: m.chunk_list_sha256,
                    sequence: m.sequence,
                    security_counter: m.security_counter,
                    fw_version: m.fw_version,
                    project: m.project_name,
                    generation,
                    chunks_done: 0,
                    last_digest8: [0; 8],
                };
                self.start_download(p, m.issued_at, range).await?;
                p
            }
        };
        Ok(Admitted::Download(p))
    }

    /// The assigned release is the one running (after a rollback, or at the first contact
    /// after provisioning): learn what it is, and drop any other download.
    fn learn_running(&mut self, m: &ManifestBody, digest: [u8; 32]) -> Result<(), AgentError> {
        if matches!(self.journal.state().state, UpdateState::Downloading(_)) {
            self.fail_pending(ReasonCode::Superseded, false)?;
        }
        let js = self.journal.state().clone();
        if js.state == UpdateState::Idle && js.installed.id != digest {
            let mut next = js.clone();
            next.previous = if js.installed.image_sha256 == self.me.sha256 {
                js.previous
            } else {
                js.installed
            };
            next.installed.id = digest;
            next.installed.sequence = m.sequence;
            next.installed.security_counter = m.security_counter;
            next.installed.fw_version = self.me.version;
            next.installed.image_sha256 = self.me.sha256;
            next.installed.secure_version = self.me.secure_version;
            next.highest_seq_seen = next.highest_seq_seen.max(m.sequence);
            next.committed_security_counter =
                next.committed_security_counter.max(m.security_counter);
            next.legacy_disabled = true;
            next.offline_floor = next.offline_floor.max(m.issued_at);
            self.commit(&next, Blob::Keep)?;
        }
        Ok(())
    }

    /// Journals the download of `p`, whose verified manifest (issued at `issued_at`) is at
    /// `manifest` in the chunk buffer; a download in progress is dropped, and said so.
    async fn start_download(
        &mut self,
        p: Pending,
        issued_at: u64,
        manifest: Range<usize>,
    ) -> Result<(), Stop> {
        if let UpdateState::Downloading(old) = self.journal.state().state {
            self.event(
                EventKind::Failed,
                ReasonCode::Superseded,
                old.id,
                old.fw_version,
                0,
            )
            .await;
        }
        let js = self.journal.state();
        if !matches!(js.state, UpdateState::Idle | UpdateState::Downloading(_)) {
            return Err(Stop::Agent(AgentError::Transition(TransitionError {
                from: js.state.kind(),
                to: StateKind::Downloading,
            })));
        }
        let mut next = js.clone();
        next.legacy_disabled = true;
        next.highest_seq_seen = next.highest_seq_seen.max(p.sequence);
        next.offline_floor = next.offline_floor.max(issued_at);
        next.state = UpdateState::Downloading(p);
        let bytes = self
            .bufs
            .chunk
            .get(manifest)
            .ok_or(Stop::Refused(ReasonCode::ManifestInvalid))?;
        self.journal
            .commit(&mut self.storage, &next, Blob::New(bytes), Blob::Keep)?;
        Ok(())
    }

    /// Reports a refusal once per release, so a repeated assignment does not flood events.
    async fn refused_once(&mut self, id: [u8; 32], reason: ReasonCode) {
        if self.last_refused != Some(id) {
            self.last_refused = Some(id);
            let version = self.me.version;
            self.event(EventKind::Failed, reason, id, version, 0).await;
        }
    }
}
