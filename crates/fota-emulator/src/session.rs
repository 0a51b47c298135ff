//! What `fota emulate` does, as a library: one device on a flash file ([`run_session`]) or a
//! fleet of them in one process ([`run_fleet`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fota_flash_sim::{FaultPlan, Tear};
use serde::Serialize;
use tokio::time::Instant;

use crate::bootloader::Efuse;
use crate::device::{self, DeviceOptions, Protocol};
use crate::flash_file::{self, FlashSpec, Layout};
use crate::http::{HttpClient, Timeouts, WireCounters};
use crate::netfault::NetFaultSpec;
use crate::proxy::FaultProxy;
use crate::report::{self, Report};
use crate::transport::HttpTransport;

/// One device run.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    /// Server base URL.
    pub server: String,
    /// The flash file (the device).
    pub flash: PathBuf,
    /// Image written into `ota_0` when the flash file does not exist yet.
    pub initial_image: Option<Vec<u8>>,
    /// Partition layout of a new flash file.
    pub layout: Layout,
    /// Cut the power during the erase/program operation after this many (counted from this
    /// run's first boot).
    pub power_cut_after_ops: Option<u64>,
    /// Network faults.
    pub net_fault: NetFaultSpec,
    /// The device.
    pub options: DeviceOptions,
    /// HTTP timeouts.
    pub timeouts: Timeouts,
    /// How an `https://` server is verified ([`crate::http::tls_config`]); `None`: the
    /// platform's roots alone.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Why a session could not run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The flash file.
    #[error(transparent)]
    Flash(#[from] flash_file::FlashFileError),
    /// The server URL (what is wrong with it is the source, so a chain says it once).
    #[error("server URL")]
    Url(#[from] crate::http::HttpError),
    /// The fault proxy could not start.
    #[error("fault proxy: {0}")]
    Proxy(std::io::Error),
    /// Fleet files.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn protocol_name(p: &Protocol) -> &'static str {
    match p {
        Protocol::V2(_) => "v2",
        Protocol::Legacy { .. } => "legacy",
    }
}

/// Runs one device; returns its report (whose `exit_code` is the process's exit status).
pub async fn run_session(spec: &SessionSpec) -> Result<Report, SessionError> {
    let started = Instant::now();
    let image_spec = spec
        .initial_image
        .as_deref()
        .map(|img| FlashSpec::new(spec.layout, img));
    let (mut flash, created) = flash_file::open_or_create(&spec.flash, image_spec.as_ref())?;
    if created {
        tracing::info!(flash = %spec.flash.display(), layout = spec.layout.name(), "created the flash file");
    }
    // Numbering starts at this run's first boot; ops 1..=N complete and op N+1 is torn, as
    // the chip would leave it when the power fails in the middle of it.
    let plan = match spec.power_cut_after_ops {
        Some(n) => FaultPlan::new(n).tear(n + 1, Tear::Random),
        None => FaultPlan::none(),
    };
    flash.arm(plan);
    let proxy = if spec.net_fault.is_empty() {
        None
    } else {
        Some(
            FaultProxy::start_with(&spec.server, spec.net_fault.clone(), spec.tls.clone())
                .await
                .map_err(SessionError::Proxy)?,
        )
    };
    let url = proxy
        .as_ref()
        .map_or_else(|| spec.server.clone(), FaultProxy::url);
    let token = match &spec.options.protocol {
        Protocol::V2(p) => Some(p.token.clone()),
        Protocol::Legacy { .. } => None,
    };
    let wire = Arc::new(WireCounters::default());
    let mut template = HttpClient::new(&url, token.as_deref(), spec.timeouts, Arc::clone(&wire))?;
    if let Some(tls) = &spec.tls {
        template = template.with_tls(Arc::clone(tls));
    }
    let make = || HttpTransport::new(template.fresh());
    let mut efuse = Efuse::default();
    let result = device::run(&mut flash, &spec.options, &mut efuse, make).await;
    // No fsync: every operation was already written through, so the next process reads the
    // file as the chip was left; a host crash is not a device power cut, and a thousand
    // fsyncs at the end of a fleet run only stall it.
    let fired = proxy.as_ref().map(FaultProxy::fired).unwrap_or_default();
    Ok(report::build(
        &spec.options.name,
        protocol_name(&spec.options.protocol),
        &result,
        &flash,
        Some(&wire),
        &fired,
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    ))
}

/// Raises the soft limit of open files to the hard limit (thousands of devices, each with a
/// socket and a flash file). Returns the new soft limit.
pub fn raise_nofile_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit).ok()?;
    }
    getrlimit(Resource::Nofile).current
}

/// A fleet run: `count` devices named `{prefix}-0001` …, each with its flash file
/// `DIR/{name}.bin` and, in v2, its provisioning file `DIR/{name}.json`.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Settings shared by every device (the flash path and device name are per device).
    pub device: SessionSpec,
    /// Number of devices.
    pub count: u32,
    /// Folder of flash and provisioning files.
    pub dir: PathBuf,
    /// Device name prefix.
    pub prefix: String,
}

/// The fleet's report.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    /// Devices run.
    pub devices: u32,
    /// Devices per outcome (`done`, `power_cut`, `bricked`, `refused`, `error`).
    pub outcomes: std::collections::BTreeMap<String, u32>,
    /// Wall time until the last device finished.
    pub elapsed_ms: u64,
    /// The soft open-files limit during the run.
    pub nofile_limit: Option<u64>,
    /// Each device's report.
    pub reports: Vec<Report>,
}

impl FleetReport {
    /// The worst exit status among the devices.
    pub fn exit_code(&self) -> u8 {
        self.reports.iter().map(|r| r.exit_code).max().unwrap_or(0)
    }
}

/// The name of fleet device `i` (1-based).
pub fn fleet_name(prefix: &str, i: u32) -> String {
    format!("{prefix}-{i:04}")
}

fn read_provisioning(path: &Path) -> Result<fota_api::Provisioning, SessionError> {
    let bytes = std::fs::read(path).map_err(|e| SessionError::File {
        path: path.into(),
        message: e.to_string(),
    })?;
    fota_api::Provisioning::from_json(&bytes).map_err(|e| SessionError::File {
        path: path.into(),
        message: e.to_string(),
    })
}

/// `e` and its sources, `: `-separated (the messages leave their causes to `source()`).
fn chain(e: &dyn core::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Runs a fleet: one task per device in this process.
pub async fn run_fleet(spec: &FleetSpec) -> Result<FleetReport, SessionError> {
    let nofile_limit = raise_nofile_limit();
    std::fs::create_dir_all(&spec.dir).map_err(|e| SessionError::File {
        path: spec.dir.clone(),
        message: e.to_string(),
    })?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 1..=spec.count {
        let name = fleet_name(&spec.prefix, i);
        let mut one = spec.device.clone();
        one.flash = spec.dir.join(format!("{name}.bin"));
        one.options.name = name.clone();
        if let Protocol::V2(_) = one.options.protocol {
            let p = read_provisioning(&spec.dir.join(format!("{name}.json")))?;
            one.options.name = p.device_id.clone();
            one.options.protocol = Protocol::V2(p);
        }
        tasks.spawn(async move {
            let name = one.options.name.clone();
            (i, name, run_session(&one).await)
        });
    }
    let mut reports = Vec::new();
    let mut outcomes = std::collections::BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let Ok((i, name, r)) = joined else { continue };
        let report = match r {
            Ok(rep) => rep,
            Err(e) => {
                tracing::warn!(device = %name, error = %chain(&e), "device could not run");
                *outcomes.entry("error".to_owned()).or_insert(0) += 1;
                continue;
            }
        };
        *outcomes.entry(report.outcome.clone()).or_insert(0) += 1;
        reports.push((i, report));
    }
    reports.sort_by_key(|(i, _)| *i);
    Ok(FleetReport {
        devices: spec.count,
        outcomes,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        nofile_limit,
        reports: reports.into_iter().map(|(_, r)| r).collect(),
    })
}
