//! The device runtime: power on → bootloader → `Agent::boot` → `startup` → `poll` loop →
//! reset when asked, until a goal is reached or the power fails.
//!
//! Every boot builds everything anew from the flash: the bootloader re-reads the table and
//! otadata, the agent re-reads its journal, and the transport and platform are new (a reset
//! drops TCP connections and restarts the clock). [`run`] is one power-on period; after a cut
//! ([`Ended::PowerCut`]) the caller decides what the next power-on is: `fota emulate` exits
//! with status 3 and the next process continues from the file, tests call [`run`] again.

use core::time::Duration;

use fota_agent::{
    Agent, AgentStatus, BootInfo, Buffers, DeviceConfig, Mode, PollOutcome, Running,
    StartupOutcome, Transport, TransportError,
};
use fota_api::Provisioning;
use fota_flash_sim::SimFlash;
use fota_protocol::esp::otadata::{BootIndex, OtaState};
use fota_protocol::v2::FixedStr;

use crate::bootloader::{self, Boot, BootloaderConfig, Efuse};
use crate::platform::{EmuPlatform, ResetCause};
use crate::transport::{Observing, Offer, OfferLog};

/// Largest v2 chunk (the manifest allows 1–64 KiB).
pub const CHUNK_BUF: usize = 64 * 1024;
/// One hash-list page.
pub const PAGE_BUF: usize = 4096;

/// When a run is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// The release the server offers runs and is confirmed (at once if it already is).
    Updated,
    /// A check-in finds nothing to do.
    Idle,
    /// After this many check-ins (a legacy check-in = one manifest poll + one rollback-status
    /// poll, i.e. one agent poll).
    Checkins(u32),
    /// Never (fleets driven by a deadline, `--until` absent in a daemon-like run).
    Forever,
}

impl Until {
    /// Parses `updated`, `idle` or `N-checkins`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "updated" => Some(Self::Updated),
            "idle" => Some(Self::Idle),
            "forever" => Some(Self::Forever),
            other => {
                let n = other.strip_suffix("-checkins")?;
                n.parse().ok().filter(|&n| n > 0).map(Self::Checkins)
            }
        }
    }
}

/// Which protocol, with its secrets. `Debug` shows neither the device token nor the PSK.
#[derive(Clone)]
pub enum Protocol {
    /// v2 with the device's provisioning file.
    V2(Provisioning),
    /// The seed's protocol with the fleet-wide key, or with this device's own key.
    Legacy {
        /// The PSK bytes: the key the device MACs with, or with `per_device_key` the fleet's
        /// master it is derived from.
        psk: Vec<u8>,
        /// Act as legacy firmware built for a server with `legacy.per_device_keys`: the device
        /// verifies answers with `fota_protocol::legacy::DeviceKey::derive(psk, name)` and
        /// never with `psk` itself (it names its `device_id` on every request, as the agent
        /// always does).
        per_device_key: bool,
    },
}

// By hand: run options are printed in logs and test failures; the fleet key must not be. The
// provisioning file's own `Debug` already hides its token.
impl core::fmt::Debug for Protocol {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::V2(provisioning) => f.debug_tuple("V2").field(provisioning).finish(),
            Self::Legacy {
                psk: _,
                per_device_key,
            } => f
                .debug_struct("Legacy")
                .field("psk", &format_args!("[redacted]"))
                .field("per_device_key", per_device_key)
                .finish(),
        }
    }
}

/// How a device behaves (fixed for a run).
#[derive(Debug, Clone)]
pub struct DeviceOptions {
    /// The device's string id (the legacy `device_id`; in v2 it must match the credential).
    pub name: String,
    /// Protocol and secrets.
    pub protocol: Protocol,
    /// Trial boots an unconfirmed image gets (k ≥ 1).
    pub boot_attempts: u8,
    /// Pause between chunks.
    pub chunk_interval: Duration,
    /// Poll interval when the server gives no hint, and the longest the emulator waits
    /// between check-ins (it compresses a production poll hint so runs stay short).
    pub poll_interval: Duration,
    /// Deadline of a trial boot's health check.
    pub health_deadline: Duration,
    /// Attempts per request.
    pub max_retries: u8,
    /// When the run is done.
    pub until: Until,
    /// Bootloader build options.
    pub bootloader: BootloaderConfig,
    /// Seed of nonces and jitter (`None`: from the OS).
    pub seed: Option<u64>,
    /// Boots after which a run gives up as a boot loop.
    pub max_boots: u32,
    /// Check-ins after which a run gives up (a bound for tests and fleets).
    pub max_checkins: u32,
    /// The application's key/values each check-in reports (`fota emulate --attr K=V`).
    pub attributes: Vec<(String, String)>,
}

impl DeviceOptions {
    /// Defaults of `fota emulate`: k = 1, no pacing, 1 s polls, 30 s health check, 3 retries,
    /// until updated.
    pub fn new(name: &str, protocol: Protocol) -> Self {
        Self {
            name: name.into(),
            protocol,
            boot_attempts: 1,
            chunk_interval: Duration::ZERO,
            poll_interval: Duration::from_secs(1),
            health_deadline: Duration::from_secs(30),
            max_retries: 3,
            until: Until::Updated,
            bootloader: BootloaderConfig::default(),
            seed: None,
            max_boots: 64,
            max_checkins: u32::MAX,
            attributes: Vec::new(),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ended {
    /// The `until` goal was reached.
    Done,
    /// The power was cut (a fault plan fired): the flash holds what the cut left.
    PowerCut,
    /// No partition holds a bootable image.
    Bricked(String),
    /// The server refused the device's credential (HTTP 401: unknown, rotated or revoked).
    /// No retry can help: only a new provisioning file can.
    Refused(String),
    /// The bootloader or agent could not start (table, provisioning), or a limit was hit.
    Error(String),
}

/// One boot as the runtime saw it.
#[derive(Debug, Clone)]
pub struct BootRecord {
    /// What booted.
    pub running: BootIndex,
    /// Its version.
    pub version: String,
    /// SHA-256 of the running image.
    pub image_sha256: [u8; 32],
    /// The bootloader fell back from the selected slot.
    pub fell_back: bool,
    /// otadata state of the running slot right after the bootloader's rewrites
    /// (`PendingVerify` on a trial boot).
    pub state: Option<OtaState>,
    /// The startup outcome.
    pub startup: Option<StartupOutcome>,
    /// The poll outcomes of this boot.
    pub polls: Vec<PollOutcome>,
    /// The agent's status at the end of the boot.
    pub status: Option<AgentStatus>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// How it ended.
    pub ended: Ended,
    /// Every boot, in order.
    pub boots: Vec<BootRecord>,
    /// Check-ins made (agent polls) that the server did not refuse.
    pub checkins: u32,
    /// Agent polls the server refused (HTTP 401/403); they are not check-ins.
    pub refused: u32,
    /// The last boot's bootloader view.
    pub last_boot: Option<Boot>,
    /// The last offer seen.
    pub offer: Offer,
}

impl RunResult {
    /// The agent status at the end of the last boot that got that far.
    pub fn status(&self) -> Option<AgentStatus> {
        self.boots.iter().rev().find_map(|b| b.status)
    }

    /// The last poll outcome.
    pub fn last_poll(&self) -> Option<PollOutcome> {
        self.boots
            .iter()
            .rev()
            .find_map(|b| b.polls.last().copied())
    }
}

fn running_of(index: BootIndex) -> Running {
    match index {
        BootIndex::Ota(n) => Running::Ota(u8::try_from(n).unwrap_or(u8::MAX)),
        _ => Running::Factory,
    }
}

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// The HTTP status with which the server refused a poll's request: 401 (the credential is
/// unknown, rotated or revoked) or 403 (a request this credential may not make).
fn refusal(outcome: &PollOutcome) -> Option<u16> {
    match outcome {
        PollOutcome::Retry {
            error: TransportError::Status(code @ (401 | 403)),
            ..
        } => Some(*code),
        _ => None,
    }
}

/// Whether the device runs what the server offers, confirmed.
fn is_updated(
    boot: &Boot,
    flash: &SimFlash,
    status: &AgentStatus,
    installed_id: [u8; 32],
    offer: Offer,
) -> bool {
    let confirmed = matches!(
        boot.running_state_now(flash),
        Some(OtaState::Valid | OtaState::Undefined) | None
    ) && status.state == fota_agent::journal::StateKind::Idle
        && status.pending_report.is_none();
    confirmed
        && match offer {
            Offer::Unknown => false,
            Offer::Nothing => true,
            Offer::Manifest(digest) => digest == installed_id,
            Offer::Image(sha) => sha == boot.image_sha256,
        }
}

/// Runs the device on `flash` for one power-on period. `transport` makes a fresh transport
/// for each boot. The flash's fault plan (if any) decides when the power fails.
pub async fn run<T, MK>(
    flash: &mut SimFlash,
    opts: &DeviceOptions,
    efuse: &mut Efuse,
    mut transport: MK,
) -> RunResult
where
    T: Transport,
    MK: FnMut() -> T,
{
    let offers = OfferLog::default();
    let mut result = RunResult {
        ended: Ended::Done,
        boots: Vec::new(),
        checkins: 0,
        refused: 0,
        last_boot: None,
        offer: Offer::Unknown,
    };
    let device_key;
    let (mode, root, token_ids) = match &opts.protocol {
        Protocol::V2(p) => (Mode::V2, p.root.clone(), Some(p.clone())),
        Protocol::Legacy {
            psk,
            per_device_key: false,
        } => (Mode::Legacy { psk }, Vec::new(), None),
        Protocol::Legacy {
            psk,
            per_device_key: true,
        } => {
            // The firmware holds only this; the master is dropped from its view here.
            device_key = fota_protocol::legacy::DeviceKey::derive(psk, &opts.name);
            (
                Mode::Legacy {
                    psk: device_key.as_bytes(),
                },
                Vec::new(),
                None,
            )
        }
    };
    let mut chunk = vec![0u8; CHUNK_BUF];
    // Legacy answers carry base64 chunks: ≈ 4/3 of a chunk plus the JSON around it.
    let mut io = vec![0u8; CHUNK_BUF * 4 / 3 + 1024];
    let mut page = vec![0u8; PAGE_BUF];
    let mut seed = opts.seed;
    loop {
        if !flash.is_powered() {
            result.ended = Ended::PowerCut;
            break;
        }
        if result.boots.len() as u32 >= opts.max_boots {
            result.ended = Ended::Error(format!("no goal after {} boots", opts.max_boots));
            break;
        }
        let boot = match bootloader::boot(flash, opts.bootloader, efuse) {
            Ok(b) => b,
            Err(e) if e.is_power_loss() => {
                result.ended = Ended::PowerCut;
                break;
            }
            Err(bootloader::BootError::NoBootableImage { tried }) => {
                result.ended = Ended::Bricked(format!("no bootable image ({tried} tried)"));
                break;
            }
            Err(e) => {
                result.ended = Ended::Error(e.to_string());
                break;
            }
        };
        tracing::info!(
            device = %opts.name,
            running = %boot.running,
            version = boot.app_desc.version().unwrap_or("?"),
            fell_back = boot.fell_back,
            "booted"
        );
        let mut record = BootRecord {
            running: boot.running,
            version: boot.app_desc.version().unwrap_or("").to_owned(),
            image_sha256: boot.image_sha256,
            fell_back: boot.fell_back,
            state: boot.running_state(),
            startup: None,
            polls: Vec::new(),
            status: None,
        };
        // The first boot of a power-on period follows power-on; later ones follow the
        // agent's own reset.
        let reset_reason = if result.boots.is_empty() {
            ResetCause::PowerOn
        } else {
            ResetCause::Software
        };
        let platform = EmuPlatform::new(seed, boot.app_desc.boot_fails())
            .with_reset(reset_reason)
            .with_attributes(&opts.attributes);
        seed = seed.map(|s| s.wrapping_add(0x9E37_79B9_7F4A_7C15));
        let (uuid, vendor, class) = token_ids.as_ref().map_or(([0; 16], [0; 16], [0; 16]), |p| {
            (
                *p.device_uuid.as_bytes(),
                *p.vendor_id.as_bytes(),
                *p.class_id.as_bytes(),
            )
        });
        let mut config = DeviceConfig::new(uuid, &opts.name, vendor, class, &root);
        config.mode = mode;
        config.boot_attempt_limit = opts.boot_attempts.max(1);
        config.chunk_interval_ms = ms(opts.chunk_interval);
        config.poll_interval_ms = ms(opts.poll_interval);
        config.health_check_deadline_ms = ms(opts.health_deadline);
        config.max_retries = opts.max_retries;
        let bufs = Buffers {
            chunk: &mut chunk,
            io: &mut io,
            page: &mut page,
        };
        let net = Observing::new(transport(), offers.clone());
        let booted = Agent::boot(
            &mut *flash,
            net,
            platform,
            config,
            BootInfo {
                running: running_of(boot.running),
            },
            bufs,
        );
        let mut agent = match booted {
            Ok(a) => a,
            Err(failure) => {
                let powered = failure.flash.is_powered();
                result.ended = if powered {
                    Ended::Error(format!("agent: {}", failure.error))
                } else {
                    Ended::PowerCut
                };
                result.boots.push(record);
                result.last_boot = Some(boot);
                break;
            }
        };
        let startup = agent.startup().await;
        record.startup = Some(startup);
        let mut stop = None;
        match startup {
            StartupOutcome::Ready => loop {
                if result.checkins.saturating_add(result.refused) >= opts.max_checkins {
                    stop = Some(Ended::Error(format!(
                        "no goal after {} check-ins",
                        opts.max_checkins
                    )));
                    break;
                }
                let outcome = agent.poll().await;
                record.polls.push(outcome);
                let refused = refusal(&outcome);
                match refused {
                    // A refusal is not a check-in: it must neither reach an `N-checkins` goal
                    // nor pass for routine retrying.
                    Some(code) => {
                        result.refused += 1;
                        tracing::error!(
                            device = %opts.name,
                            status = code,
                            "the server refused the device's request (HTTP {code})"
                        );
                    }
                    None => {
                        result.checkins += 1;
                        tracing::info!(device = %opts.name, ?outcome, "poll");
                    }
                }
                if !agent.flash().is_powered() {
                    stop = Some(Ended::PowerCut);
                    break;
                }
                if refused == Some(401) {
                    stop = Some(Ended::Refused(
                        "the server refused the device's credential (HTTP 401): it is unknown, \
                         rotated or revoked; run again with the provisioning file `fota devices \
                         rotate` wrote"
                            .into(),
                    ));
                    break;
                }
                let status = agent.status();
                let done = refused.is_none()
                    && match (opts.until, outcome) {
                        (Until::Checkins(n), _) => result.checkins >= n,
                        (Until::Idle, PollOutcome::Idle { .. }) => true,
                        (Until::Updated, PollOutcome::Idle { .. }) => is_updated(
                            &boot,
                            agent.flash(),
                            &status,
                            agent.journal().installed.id,
                            offers.last().0,
                        ),
                        _ => false,
                    };
                if done {
                    stop = Some(Ended::Done);
                    break;
                }
                let wait = match outcome {
                    PollOutcome::RebootRequired => break,
                    PollOutcome::Idle { next_poll_ms } => next_poll_ms,
                    PollOutcome::Retry { after_ms, .. } => after_ms,
                    PollOutcome::Failed { next_poll_ms, .. } => next_poll_ms,
                    _ => u64::from(ms(opts.poll_interval)),
                };
                let wait = Duration::from_millis(wait).min(opts.poll_interval);
                tokio::time::sleep(wait).await;
            },
            StartupOutcome::ResetRequired(reason) => {
                tracing::info!(device = %opts.name, ?reason, "reset requested at startup");
            }
            StartupOutcome::Error(e) => {
                if agent.flash().is_powered() {
                    tracing::warn!(device = %opts.name, error = %e, "startup failed; resetting");
                } else {
                    stop = Some(Ended::PowerCut);
                }
            }
            _ => {}
        }
        record.status = Some(agent.status());
        drop(agent);
        result.boots.push(record);
        result.last_boot = Some(boot);
        if let Some(s) = stop {
            result.ended = s;
            break;
        }
    }
    result.offer = offers.last().0;
    result
}

/// The version string of a fixed string field, for reports.
pub fn text(s: &FixedStr) -> String {
    s.as_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `debug` names the secret `[redacted]` and holds neither its text nor its bytes.
    fn assert_hidden(debug: &str, secret: &[u8]) {
        assert!(debug.contains("[redacted]"), "{debug}");
        assert!(
            !debug.contains(core::str::from_utf8(secret).unwrap()),
            "{debug}"
        );
        let as_numbers = format!("{secret:?}");
        assert!(
            !debug.contains(as_numbers.trim_matches(['[', ']'])),
            "{debug}"
        );
    }

    #[test]
    fn debug_of_legacy_options_hides_the_psk() {
        let psk = b"fleet-psk-do-not-print";
        let options = DeviceOptions::new(
            "EcoWatt001",
            Protocol::Legacy {
                psk: psk.to_vec(),
                per_device_key: true,
            },
        );
        let debug = format!("{options:?}");
        assert_hidden(&debug, psk);
        assert!(
            debug.contains("Legacy { psk: [redacted], per_device_key: true }"),
            "{debug}"
        );
    }

    #[test]
    fn debug_of_v2_options_hides_the_device_token() {
        let provisioning = Provisioning {
            device_id: "EcoWatt001".into(),
            token: "fota_dev_do-not-print".into(),
            vendor_id: uuid::Uuid::nil(),
            class_id: uuid::Uuid::nil(),
            root: Vec::new(),
            class: None,
            device_uuid: uuid::Uuid::nil(),
        };
        let options = DeviceOptions::new("EcoWatt001", Protocol::V2(provisioning));
        let debug = format!("{options:?}");
        assert_hidden(&debug, b"fota_dev_do-not-print");
        assert!(debug.contains("EcoWatt001"), "{debug}");
    }
}
