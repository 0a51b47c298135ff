//! Counters and state for reports (`fota emulate --report json`).

use fota_protocol::v2::{EventKind, FixedStr, ReasonCode};

use crate::journal::StateKind;
use crate::layout::{JournalHome, Running};

/// A snapshot of what the agent knows and did this boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentStatus {
    /// The running app.
    pub running: Running,
    /// Its `esp_app_desc_t.version`.
    pub running_version: FixedStr,
    /// SHA-256 of the running image.
    pub running_sha256: [u8; 32],
    /// The journal's lifecycle state.
    pub state: StateKind,
    /// Sequence of the confirmed release (0 = unknown or legacy).
    pub installed_sequence: u64,
    /// Image bytes received this boot (chunks that passed their check or not).
    pub bytes_downloaded: u64,
    /// Chunks fetched again this boot (a failed check, or a chunk interrupted before it was
    /// journaled).
    pub chunks_redownloaded: u32,
    /// Downloads resumed after a reset, over the device's life (journal).
    pub resumes: u32,
    /// Chunks re-downloaded over the device's life (journal).
    pub rechunks_total: u32,
    /// The last outcome this boot (event kind), if any.
    pub last_outcome: Option<EventKind>,
    /// The reason of the last outcome or failure.
    pub last_reason: ReasonCode,
    /// An outcome waiting to be delivered to the server.
    pub pending_report: Option<EventKind>,
    /// Bytes of the pending image durably written.
    pub pending_bytes_done: u64,
    /// Size of the pending image (0 = none).
    pub pending_bytes_total: u64,
    /// Legacy mode is latched off.
    pub legacy_disabled: bool,
    /// Where the journal lives.
    pub journal_home: JournalHome,
    /// Journal commits (sector erases) and appends this boot.
    pub journal_commits: u32,
    /// Journal entries appended this boot.
    pub journal_appends: u32,
}
