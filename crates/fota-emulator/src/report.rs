//! The `--report json` object. Every key is documented in the crate README.

use fota_flash_sim::SimFlash;
use fota_protocol::esp::otadata::OtaSelectEntry;
use serde::Serialize;

use crate::device::{Ended, RunResult};
use crate::http::WireCounters;
use crate::proxy::Fired;

/// Exit status of `fota emulate` for each way a run ends (1 and 2 are the CLI's own: an
/// unusable argument or file, a usage error).
pub mod exit {
    /// The `--until` goal was reached.
    pub const DONE: u8 = 0;
    /// The power was cut (`--power-cut-after-ops`); the flash file holds what the cut left.
    pub const POWER_CUT: u8 = 3;
    /// No partition holds a bootable image: the device is bricked.
    pub const BRICKED: u8 = 4;
    /// The device could not start, or gave up (boot loop, check-in limit).
    pub const FAILED: u8 = 5;
    /// The server refused the device's credential (HTTP 401): it is unknown, was rotated or
    /// revoked. Only a new provisioning file helps.
    pub const REFUSED: u8 = 6;
}

/// One otadata entry.
#[derive(Debug, Clone, Serialize)]
pub struct OtadataEntry {
    /// 0 or 1.
    pub sector: usize,
    /// `ota_seq` (`null` when erased).
    pub seq: Option<u32>,
    /// State name (`NEW`, `PENDING_VERIFY`, `VALID`, `INVALID`, `ABORTED`, `UNDEFINED`,
    /// `UNKNOWN`).
    pub state: String,
    /// The CRC matches the sequence.
    pub crc_ok: bool,
    /// The bootloader may select it.
    pub valid: bool,
}

impl OtadataEntry {
    fn new(sector: usize, e: &OtaSelectEntry) -> Self {
        Self {
            sector,
            seq: (e.seq != u32::MAX).then_some(e.seq),
            state: e.state.name().to_owned(),
            crc_ok: e.crc_ok(),
            valid: e.is_valid(),
        }
    }
}

/// The running image.
#[derive(Debug, Clone, Serialize)]
pub struct RunningReport {
    /// `ota_0`, `ota_1`, `factory`.
    pub slot: String,
    /// `esp_app_desc_t.version`.
    pub version: String,
    /// SHA-256 of the image, hex.
    pub sha256: String,
    /// otadata state of the running slot (`null` when no entry selects it).
    pub state: Option<String>,
}

/// Flash operation counters of this run.
#[derive(Debug, Clone, Serialize)]
pub struct FlashReport {
    /// Sector erases.
    pub erases: u64,
    /// Page programs.
    pub programs: u64,
    /// Bytes programmed.
    pub program_bytes: u64,
    /// Reads.
    pub reads: u64,
}

/// Bytes on the wire (device side).
#[derive(Debug, Clone, Serialize)]
pub struct WireReport {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// HTTP requests.
    pub requests: u64,
    /// TCP connections opened.
    pub connections: u64,
}

/// A network fault that fired.
#[derive(Debug, Clone, Serialize)]
pub struct FaultReport {
    /// Request number in the run.
    pub request: u64,
    /// Request kind.
    pub kind: String,
    /// Chunk number or check-in ordinal.
    pub index: Option<u64>,
    /// The fault, in `--net-fault` syntax.
    pub fault: String,
}

impl From<&Fired> for FaultReport {
    fn from(f: &Fired) -> Self {
        Self {
            request: f.request.number,
            kind: format!("{:?}", f.request.kind).to_lowercase(),
            index: f.request.index,
            fault: f.fault.to_string(),
        }
    }
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The device's string id.
    pub device_id: String,
    /// `v2` or `legacy`.
    pub protocol: String,
    /// `done`, `power_cut`, `bricked`, `refused`, `error`.
    pub outcome: String,
    /// The exit status this outcome maps to.
    pub exit_code: u8,
    /// The error text when `outcome` is `bricked`, `refused` or `error`.
    pub error: Option<String>,
    /// The running image after the last boot.
    pub running: Option<RunningReport>,
    /// Both otadata entries as the flash holds them now.
    pub otadata: Vec<OtadataEntry>,
    /// The agent's journal state (`idle`, `downloading`, `staged`, `trial`, `confirming`,
    /// `rolling_back`).
    pub agent_state: Option<String>,
    /// Boots in this run.
    pub boots: usize,
    /// Check-ins in this run (polls the server refused not counted).
    pub checkins: u32,
    /// Polls the server refused with HTTP 401 or 403 in this run.
    pub refused: u32,
    /// Image bytes received this run (every boot).
    pub bytes_downloaded: u64,
    /// Chunks fetched again this run.
    pub chunks_redownloaded: u32,
    /// Resumed downloads over the device's life (journal).
    pub resumes: u32,
    /// The last outcome the agent recorded (event kind: `confirmed`, `rolled_back`,
    /// `failed`, …).
    pub last_outcome: Option<String>,
    /// Its reason code (`none`, `hash_mismatch`, `health_check_failed`, …).
    pub reason: String,
    /// An outcome still to be delivered to the server.
    pub pending_report: Option<String>,
    /// Flash counters of this run.
    pub flash: FlashReport,
    /// Wire counters of this run.
    pub wire: Option<WireReport>,
    /// Network faults that fired.
    pub net_faults: Vec<FaultReport>,
    /// Wall time of the run.
    pub elapsed_ms: u64,
}

/// Maps how a run ended to the exit status.
pub fn exit_code(ended: &Ended) -> u8 {
    match ended {
        Ended::Done => exit::DONE,
        Ended::PowerCut => exit::POWER_CUT,
        Ended::Bricked(_) => exit::BRICKED,
        Ended::Refused(_) => exit::REFUSED,
        _ => exit::FAILED,
    }
}

/// Builds the report of a run.
pub fn build(
    device_id: &str,
    protocol: &str,
    result: &RunResult,
    flash: &SimFlash,
    wire: Option<&WireCounters>,
    faults: &[Fired],
    elapsed_ms: u64,
) -> Report {
    let (outcome, error) = match &result.ended {
        Ended::Done => ("done", None),
        Ended::PowerCut => ("power_cut", None),
        Ended::Bricked(e) => ("bricked", Some(e.clone())),
        Ended::Refused(e) => ("refused", Some(e.clone())),
        Ended::Error(e) => ("error", Some(e.clone())),
    };
    let otadata = result
        .last_boot
        .as_ref()
        .map(|b| {
            let [a, c] = crate::bootloader::otadata_now(flash, &b.table.boot_layout());
            vec![OtadataEntry::new(0, &a), OtadataEntry::new(1, &c)]
        })
        .unwrap_or_default();
    let running = result.last_boot.as_ref().map(|b| RunningReport {
        slot: b.running.to_string(),
        version: b.app_desc.version().unwrap_or("").to_owned(),
        sha256: hex::encode(b.image_sha256),
        state: b.running_state_now(flash).map(|s| s.name().to_owned()),
    });
    let status = result.status();
    let (bytes, rechunks) = result
        .boots
        .iter()
        .filter_map(|b| b.status)
        .fold((0u64, 0u32), |(b, r), s| {
            (b + s.bytes_downloaded, r + s.chunks_redownloaded)
        });
    let stats = flash.stats();
    Report {
        device_id: device_id.to_owned(),
        protocol: protocol.to_owned(),
        outcome: outcome.to_owned(),
        exit_code: exit_code(&result.ended),
        error,
        running,
        otadata,
        agent_state: status.map(|s| s.state.as_str().to_owned()),
        boots: result.boots.len(),
        checkins: result.checkins,
        refused: result.refused,
        bytes_downloaded: bytes,
        chunks_redownloaded: rechunks,
        resumes: status.map_or(0, |s| s.resumes),
        last_outcome: status
            .and_then(|s| s.last_outcome)
            .map(|k| k.as_str().to_owned()),
        reason: status.map_or_else(|| "none".to_owned(), |s| s.last_reason.as_str().to_owned()),
        pending_report: status
            .and_then(|s| s.pending_report)
            .map(|k| k.as_str().to_owned()),
        flash: FlashReport {
            erases: stats.erases,
            programs: stats.programs,
            program_bytes: stats.program_bytes,
            reads: stats.reads,
        },
        wire: wire.map(|w| WireReport {
            rx_bytes: w.rx(),
            tx_bytes: w.tx(),
            requests: w.requests.load(core::sync::atomic::Ordering::Relaxed),
            connections: w.connections.load(core::sync::atomic::Ordering::Relaxed),
        }),
        net_faults: faults.iter().map(FaultReport::from).collect(),
        elapsed_ms,
    }
}
