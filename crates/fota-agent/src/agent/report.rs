//! What goes back to the server: the journal's pending outcome (retried until delivered),
//! best-effort events, legacy status reports, and the status floor worth persisting.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::legacy::{StatusReport, paths};
use fota_protocol::v2::{EventKind, FixedStr, ReasonCode};

use super::retry::Retries;
use super::{Agent, Stop};
use crate::config::Mode;
use crate::error::AgentError;
use crate::journal::{Entry, Report};
use crate::transport::{Platform, Transport, TransportError};

impl<F: NorFlash, T: Transport, P: Platform> Agent<'_, F, T, P> {
    /// Sends the journal's pending outcome, then marks it delivered.
    pub(super) async fn deliver_report(&mut self) -> Result<(), Stop> {
        let Some(report) = self.journal.state().report else {
            return Ok(());
        };
        let mut retries = Retries::new(self.config.max_retries);
        loop {
            let sent = match self.config.mode {
                Mode::V2 => self.send_event(&report, 0, 0).await,
                Mode::Legacy { .. } => {
                    self.legacy_status(
                        report.kind.as_str(),
                        report.fw_version.as_str(),
                        report.reason.as_str(),
                    )
                    .await
                }
            };
            match sent {
                Ok(()) => break,
                Err(e) => {
                    if !(e.is_transient() && self.retry(&mut retries).await) {
                        return Err(Stop::Net(e));
                    }
                }
            }
        }
        self.journal
            .append(&mut self.storage, Entry::ReportDelivered)?;
        Ok(())
    }

    /// Best-effort event (progress, verified, installing, booted_on_trial): never retried,
    /// never fatal.
    pub(super) async fn event(
        &mut self,
        kind: EventKind,
        reason: ReasonCode,
        id: [u8; 32],
        version: FixedStr,
        done: u64,
    ) {
        let total = self.journal.state().pending().map_or(0, |p| p.image_size);
        if let Mode::V2 = self.config.mode {
            let event = Report {
                kind,
                reason,
                id,
                fw_version: version,
                order_id: 0,
            };
            let _ = self.send_event(&event, done.min(total), total).await;
        } else if matches!(kind, EventKind::BootedOnTrial | EventKind::Installing) {
            let _ = self
                .legacy_status(kind.as_str(), version.as_str(), reason.as_str())
                .await;
        }
    }

    /// A v2 event saying `what`, with the download's progress.
    async fn send_event(
        &mut self,
        what: &Report,
        done: u64,
        total: u64,
    ) -> Result<(), TransportError> {
        let event = fota_protocol::v2::Event {
            kind: what.kind,
            reason: what.reason,
            device_id: self.config.device_uuid,
            seq: self.event_seq,
            manifest_digest: what.id,
            bytes_done: done,
            bytes_total: total,
            fw_version: what.fw_version,
            rollback_order_id: what.order_id,
            detail: "",
        };
        self.event_seq = self.event_seq.wrapping_add(1);
        let n = event
            .encode(self.bufs.io)
            .map_err(|_| TransportError::TooLarge)?;
        let body = self.bufs.io.get(..n).ok_or(TransportError::TooLarge)?;
        self.transport.event(body).await
    }

    /// `POST /api/inverter/fota/status` with `{device_id, status, version, reason}`.
    pub(super) async fn legacy_status(
        &mut self,
        status: &str,
        version: &str,
        reason: &str,
    ) -> Result<(), TransportError> {
        let report = StatusReport {
            device_id: self.config.device_name,
            status: Some(status),
            version: Some(version),
            reason: Some(reason),
            error: None,
        };
        let n = serde_json_core::to_slice(&report, self.bufs.io)
            .map_err(|_| TransportError::TooLarge)?;
        let body = self.bufs.io.get(..n).ok_or(TransportError::TooLarge)?;
        self.transport.legacy_post(paths::STATUS, body).await
    }

    /// Persists the status floor when this boot's statements moved it on by an hour or more
    /// (a log entry, not a commit, so polling does not wear the journal).
    pub(super) fn persist_status_floor(&mut self) -> Result<(), AgentError> {
        let t = self.seen_time;
        if t >= self.persisted_floor.saturating_add(3600) {
            self.journal
                .append(&mut self.storage, Entry::StatusFloor(t))?;
            self.persisted_floor = t;
        }
        Ok(())
    }
}
