//! Server settings: built-in defaults, overridden by a TOML file, overridden by the
//! environment and command-line flags (the CLI merges those two before calling [`Config::resolve`]).
//!
//! Every key of the file (all optional; durations as `"30s"`, `"5m"`, `"90d"`):
//!
//! ```toml
//! data = "./fota-data"           # only honoured in a file given with --config
//! listen = "127.0.0.1:8080"
//! root = "keys/root.bin"         # v2: trusted root record
//! status_key = "keys/status.key" # v2: the key that signs status statements
//! legacy_psk_file = "psk.txt"    # legacy API: raw PSK bytes (one trailing newline dropped)
//! public_url = ""                # prefix of image URLs in check-in answers ("" = relative)
//! insecure_http = false          # plain HTTP on a non-loopback `listen` (without [tls])
//! legacy_http_listen = ""        # plain-HTTP listener for the legacy API alone ("" = none)
//!
//! [tls]                          # HTTPS on `listen`; both or neither (SIGHUP reloads them)
//! cert = "tls/cert.pem"          # certificate chain, leaf first (PEM)
//! key = "tls/key.pem"            # its private key (PEM)
//!
//! [limits]
//! max_release_bytes = 16777216   # image + hash list + manifest of one upload
//! max_json_bytes = 65536         # any JSON body except the legacy upload
//! concurrent_uploads = 4         # uploads (v2 releases and legacy) at once; more: 503 uploads_busy
//!
//! [timeouts]
//! header = "10s"                 # to receive a request's headers
//! body = "30s"                   # between two pieces of a request body
//! idle = "60s"                   # keep-alive connection without traffic
//! request = "30s"                # whole request on non-streaming routes
//!
//! [poll]
//! interval = "5m"                # poll hint sent to devices
//! jitter = 0.2                   # +- fraction applied to each hint
//!
//! [retention]
//! checkins = "30d"
//! events = "90d"
//! audit = "365d"
//!
//! [housekeeping]
//! interval = "1h"                # retention and blob GC run this often
//! blob_grace = "1h"              # unreferenced blobs and temp files younger than this stay
//! seen_flush = "1s"              # how often batched last-seen times are written
//!
//! trusted_proxies = []           # proxies whose X-Forwarded-For names the client (e.g. ["127.0.0.1"])
//!
//! [auth]
//! failures_per_minute = 20       # failed authentications per client address (and per credential) before 429
//!
//! [metrics]
//! token = ""                     # when set, GET /metrics needs `Authorization: Bearer TOKEN` (>= 16 bytes)
//!
//! [legacy]
//! max_devices = 10000            # legacy devices recorded at most (unknown ids beyond: answered, not recorded)
//! new_devices_per_minute = 60    # new legacy devices one client address may make a minute
//! per_device_keys = false        # MAC each answer with HKDF(PSK, device_id), not the PSK itself
//! failures_per_minute = 30       # refused legacy device requests per client address before 429
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::tls::TlsFiles;

/// Default data folder.
pub const DEFAULT_DATA: &str = "./fota-data";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Shortest `metrics.token` accepted: a scrape token guessed online would expose the metrics.
pub const METRICS_TOKEN_MIN: usize = 16;
/// Name of the config file looked for in the data folder.
pub const CONFIG_FILE_NAME: &str = "fota.toml";
/// The environment variable that may hold the legacy PSK itself (the CLI reads it; a key is
/// never a command-line flag, which every user of the machine sees in `ps`).
pub const LEGACY_PSK_ENV: &str = "FOTA_LEGACY_PSK";

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these settings.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
    /// Plain HTTP was asked for on an address other than loopback.
    #[error(
        "refusing plain HTTP on {0}: tokens would cross the network in the clear. Give \
         --tls-cert and --tls-key (`fota server tls self-signed` makes a pair), listen on a \
         loopback address behind a TLS proxy, or pass --insecure-http to accept the risk"
    )]
    PlainHttpNotLoopback(SocketAddr),
}

/// A duration written as `"30s"`, `"5m"`, `"2h 30m"`, `"90d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// The config file as written: every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(
    missing_docs,
    reason = "each field is the config file key of the same name, listed in the module doc"
)]
pub struct FileConfig {
    pub data: Option<PathBuf>,
    pub listen: Option<String>,
    pub root: Option<PathBuf>,
    pub status_key: Option<PathBuf>,
    pub legacy_psk_file: Option<PathBuf>,
    pub public_url: Option<String>,
    pub trusted_proxies: Option<Vec<std::net::IpAddr>>,
    #[serde(default)]
    pub auth: FileAuth,
    pub insecure_http: Option<bool>,
    pub legacy_http_listen: Option<String>,
    #[serde(default)]
    pub tls: FileTls,
    #[serde(default)]
    pub limits: FileLimits,
    #[serde(default)]
    pub timeouts: FileTimeouts,
    #[serde(default)]
    pub poll: FilePoll,
    #[serde(default)]
    pub retention: FileRetention,
    #[serde(default)]
    pub housekeeping: FileHousekeeping,
    #[serde(default)]
    pub legacy: FileLegacy,
    #[serde(default)]
    pub metrics: FileMetrics,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(
    missing_docs,
    reason = "each field is the config file key of the same name, listed in the module doc"
)]
pub struct FileTls {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(
    missing_docs,
    reason = "each field is the config file key of the same name, listed in the module doc"
)]
pub struct FileLegacy {
    pub max_devices: Option<u64>,
    pub new_devices_per_minute: Option<u32>,
    pub per_device_keys: Option<bool>,
    pub failures_per_minute: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(
    missing_docs,
    reason = "each field is the config file key of the same name, listed in the module doc"
)]
pub struct FileLimits {
    pub max_release_bytes: Option<u64>,
    pub max_json_bytes: Option<u64>,
    pub concurrent_uploads: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(
    missing_docs,
    reason = "each field is the config file key of the same name, listed in the module doc"
)]
pub struct FileTimeouts {
    pub header: Option<HumanDuration>,
    pub body: Option<HumanDuration>,
    pub idle: Option<HumanDuration>,
    pub request: Option<HumanDuration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(
    missing_docs,
    reason = "each field is the config file key of the same name, listed in the module doc"
)]
pub struct FilePoll {
    pub interval: Option<HumanDuration>,
    pub jitter: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(
    missing_docs,
    reason = "each field is the config file key of the same name, listed in the module doc"
)]
pub struct FileRetention {
    pub checkins: Option<HumanDuration>,
    pub events: Option<HumanDuration>,
    pub audit: Option<HumanDuration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(
    missing_docs,
    reason = "each field is the config file key of the same name, listed in the module doc"
)]
pub struct FileHousekeeping {
    pub interval: Option<HumanDuration>,
    pub blob_grace: Option<HumanDuration>,
    pub seen_flush: Option<HumanDuration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(
    missing_docs,
    reason = "each field is the config file key of the same name, listed in the module doc"
)]
pub struct FileAuth {
    pub failures_per_minute: Option<u32>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(
    missing_docs,
    reason = "each field is the config file key of the same name, listed in the module doc"
)]
pub struct FileMetrics {
    pub token: Option<String>,
}

impl std::fmt::Debug for FileMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileMetrics")
            .field(
                "token",
                &self.token.as_ref().map(|_| format_args!("[redacted]")),
            )
            .finish()
    }
}

impl FileConfig {
    /// Reads a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }
}

/// Values from flags or the environment (already merged by the CLI: flag > env).
#[derive(Debug, Clone, Default)]
#[expect(
    missing_docs,
    reason = "each field overrides the config key of the same name, listed in the module doc"
)]
pub struct Overrides {
    pub data: Option<PathBuf>,
    pub listen: Option<String>,
    pub root: Option<PathBuf>,
    pub status_key: Option<PathBuf>,
    /// `--legacy-psk-file`, else the key in [`LEGACY_PSK_ENV`] (`Debug` hides the key).
    pub legacy_psk: Option<PskSource>,
    /// An explicit `--config` file (else `DATA/fota.toml` if present).
    pub config: Option<PathBuf>,
    /// `--tls-cert`: `tls.cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`: `tls.key`.
    pub tls_key: Option<PathBuf>,
    /// `--insecure-http` (only ever turns it on).
    pub insecure_http: bool,
    pub legacy_http_listen: Option<String>,
    /// `--legacy-per-device-keys`: `legacy.per_device_keys` (only ever turns it on).
    pub legacy_per_device_keys: bool,
}

/// Where the legacy PSK comes from. `Debug` shows a key given as a value as `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub enum PskSource {
    /// The value of `FOTA_LEGACY_PSK` as given: its UTF-8 bytes, or after `hex:` the bytes
    /// the digits spell.
    Value(String),
    /// A file read raw, minus one trailing newline.
    File(PathBuf),
}

// By hand: settings are printed (`Config` and `Overrides` derive `Debug`); the key is not.
impl std::fmt::Debug for PskSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(_) => f
                .debug_tuple("Value")
                .field(&format_args!("[redacted]"))
                .finish(),
            Self::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// Size limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest release upload (all parts), and largest legacy image.
    pub max_release_bytes: u64,
    /// Largest JSON body on other routes.
    pub max_json_bytes: u64,
    /// Uploads (v2 releases and legacy uploads together) handled at once; one more is
    /// answered 503 `uploads_busy`. Each holds a temporary file and a body stream, so this
    /// bounds the disk and memory that uploads can take together.
    pub concurrent_uploads: u32,
}

/// Connection and request timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To receive a request's headers.
    pub header: Duration,
    /// Between two pieces of a request body.
    pub body: Duration,
    /// A connection without traffic is closed after this.
    pub idle: Duration,
    /// Whole request, on routes that do not stream.
    pub request: Duration,
}

/// Retention periods.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Check-in history.
    pub checkins: Duration,
    /// Device events.
    pub events: Duration,
    /// Audit log.
    pub audit: Duration,
}

/// Bounds on the device rows that unauthenticated legacy requests create.
#[derive(Debug, Clone, Copy)]
pub struct LegacyLimits {
    /// Legacy devices recorded at most.
    pub max_devices: u64,
    /// New legacy devices one client address may make per minute.
    pub new_devices_per_minute: u32,
    /// Each answer's MAC is made with the key of the device it names,
    /// `fota_protocol::legacy::DeviceKey` (HKDF of the PSK and the device id), instead of the
    /// PSK itself; every request must then name its `device_id`.
    pub per_device_keys: bool,
    /// Refused legacy device requests (malformed, or naming a v2 device) a client address
    /// may make per minute; past that, all its legacy device requests are answered 429
    /// until the minute ends.
    pub failures_per_minute: u32,
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data folder: `fota.db`, `blobs/`.
    pub data: PathBuf,
    /// Listen address (port 0 = any free port).
    pub listen: String,
    /// v2 root record file.
    pub root: Option<PathBuf>,
    /// v2 status key file.
    pub status_key: Option<PathBuf>,
    /// Legacy PSK, which turns the legacy API on.
    pub legacy_psk: Option<PskSource>,
    /// Prefix for blob URLs in check-in answers; empty = relative URLs.
    pub public_url: String,
    /// Size limits.
    pub limits: Limits,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Poll hint.
    pub poll_interval: Duration,
    /// Poll hint jitter fraction (0..=0.5).
    pub poll_jitter: f64,
    /// Retention.
    pub retention: Retention,
    /// Housekeeping period.
    pub housekeeping_interval: Duration,
    /// Grace period before unreferenced blobs are collected.
    pub blob_grace: Duration,
    /// Flush period of batched last-seen times.
    pub seen_flush: Duration,
    /// Legacy device bounds.
    pub legacy: LegacyLimits,
    /// The bearer token `/metrics` requires; `None`: open, as Prometheus scrapes by default.
    pub metrics_token: Option<crate::tokens::Secret>,
    /// Failed authentications a client address (and a presented credential) may make per
    /// minute before further failures are answered 429.
    pub auth_failures_per_minute: u32,
    /// Peers whose `X-Forwarded-For` names the client (a load balancer in front); from any
    /// other peer the header is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// HTTPS on `listen` with this certificate and key; plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
    /// Plain HTTP allowed on a listen address other than loopback.
    pub insecure_http: bool,
    /// A plain-HTTP listener that serves the legacy API alone.
    pub legacy_http_listen: Option<String>,
}

const DAY: u64 = 24 * 3600;

impl Config {
    /// Defaults for a data folder.
    pub fn with_data(data: impl Into<PathBuf>) -> Self {
        Self {
            data: data.into(),
            listen: DEFAULT_LISTEN.into(),
            root: None,
            status_key: None,
            legacy_psk: None,
            public_url: String::new(),
            limits: Limits {
                max_release_bytes: 16 * 1024 * 1024,
                max_json_bytes: 64 * 1024,
                concurrent_uploads: 4,
            },
            timeouts: Timeouts {
                header: Duration::from_secs(10),
                body: Duration::from_secs(30),
                idle: Duration::from_secs(60),
                request: Duration::from_secs(30),
            },
            poll_interval: Duration::from_secs(300),
            poll_jitter: 0.2,
            retention: Retention {
                checkins: Duration::from_secs(30 * DAY),
                events: Duration::from_secs(90 * DAY),
                audit: Duration::from_secs(365 * DAY),
            },
            housekeeping_interval: Duration::from_secs(3600),
            blob_grace: Duration::from_secs(3600),
            seen_flush: Duration::from_secs(1),
            legacy: LegacyLimits {
                max_devices: 10_000,
                new_devices_per_minute: 60,
                per_device_keys: false,
                failures_per_minute: 30,
            },
            metrics_token: None,
            auth_failures_per_minute: 20,
            trusted_proxies: Vec::new(),
            tls: None,
            insecure_http: false,
            legacy_http_listen: None,
        }
    }

    /// Applies flag > env > file > defaults. The file is `overrides.config`, else
    /// `DATA/fota.toml` when it exists. Relative paths in the file are relative to the file.
    pub fn resolve(overrides: Overrides) -> Result<Self, ConfigError> {
        let data_hint = overrides
            .data
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
        let (file, base) = match &overrides.config {
            Some(path) => (FileConfig::load(path)?, path.parent().map(Path::to_owned)),
            None => {
                let path = data_hint.join(CONFIG_FILE_NAME);
                if path.exists() {
                    (FileConfig::load(&path)?, path.parent().map(Path::to_owned))
                } else {
                    (FileConfig::default(), None)
                }
            }
        };
        let rel = |p: PathBuf| match (&base, p.is_relative()) {
            (Some(base), true) => base.join(p),
            _ => p,
        };
        let data = overrides
            .data
            .or_else(|| {
                // `data` in DATA/fota.toml itself would be circular; only an explicit file sets it
                overrides.config.as_ref().and(file.data.clone().map(rel))
            })
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
        let mut c = Self::with_data(data);
        c.listen = overrides
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        c.root = overrides.root.or(file.root.map(rel));
        c.status_key = overrides.status_key.or(file.status_key.map(rel));
        c.legacy_psk = overrides
            .legacy_psk
            .or_else(|| file.legacy_psk_file.map(rel).map(PskSource::File));
        c.tls = match (
            overrides.tls_cert.or(file.tls.cert.map(&rel)),
            overrides.tls_key.or(file.tls.key.map(&rel)),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Invalid(
                    "TLS needs both a certificate and its key (--tls-cert and --tls-key, or \
                     tls.cert and tls.key)"
                        .into(),
                ));
            }
        };
        c.insecure_http = overrides.insecure_http || file.insecure_http.unwrap_or(false);
        c.legacy_http_listen = overrides
            .legacy_http_listen
            .or(file.legacy_http_listen)
            .filter(|a| !a.trim().is_empty());
        if let Some(u) = file.public_url {
            c.public_url = u.trim_end_matches('/').to_owned();
        }
        let l = file.limits;
        c.limits.max_release_bytes = l.max_release_bytes.unwrap_or(c.limits.max_release_bytes);
        c.limits.max_json_bytes = l.max_json_bytes.unwrap_or(c.limits.max_json_bytes);
        c.limits.concurrent_uploads = l.concurrent_uploads.unwrap_or(c.limits.concurrent_uploads);
        let t = file.timeouts;
        c.timeouts.header = t.header.map_or(c.timeouts.header, |d| d.0);
        c.timeouts.body = t.body.map_or(c.timeouts.body, |d| d.0);
        c.timeouts.idle = t.idle.map_or(c.timeouts.idle, |d| d.0);
        c.timeouts.request = t.request.map_or(c.timeouts.request, |d| d.0);
        c.poll_interval = file.poll.interval.map_or(c.poll_interval, |d| d.0);
        c.poll_jitter = file.poll.jitter.unwrap_or(c.poll_jitter);
        let r = file.retention;
        c.retention.checkins = r.checkins.map_or(c.retention.checkins, |d| d.0);
        c.retention.events = r.events.map_or(c.retention.events, |d| d.0);
        c.retention.audit = r.audit.map_or(c.retention.audit, |d| d.0);
        let h = file.housekeeping;
        c.housekeeping_interval = h.interval.map_or(c.housekeeping_interval, |d| d.0);
        c.blob_grace = h.blob_grace.map_or(c.blob_grace, |d| d.0);
        c.seen_flush = h.seen_flush.map_or(c.seen_flush, |d| d.0);
        let lg = file.legacy;
        c.legacy.max_devices = lg.max_devices.unwrap_or(c.legacy.max_devices);
        c.legacy.new_devices_per_minute = lg
            .new_devices_per_minute
            .unwrap_or(c.legacy.new_devices_per_minute);
        c.legacy.per_device_keys =
            overrides.legacy_per_device_keys || lg.per_device_keys.unwrap_or(false);
        c.legacy.failures_per_minute = lg
            .failures_per_minute
            .unwrap_or(c.legacy.failures_per_minute);
        c.metrics_token = file.metrics.token.map(crate::tokens::Secret::new);
        c.auth_failures_per_minute = file
            .auth
            .failures_per_minute
            .unwrap_or(c.auth_failures_per_minute);
        c.trusted_proxies = file.trusted_proxies.unwrap_or_default();
        c.validate()?;
        Ok(c)
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=0.5).contains(&self.poll_jitter) {
            return Err(ConfigError::Invalid(format!(
                "poll.jitter must be within 0..=0.5, not {}",
                self.poll_jitter
            )));
        }
        if self.poll_interval < Duration::from_secs(1) {
            return Err(ConfigError::Invalid("poll.interval must be >= 1s".into()));
        }
        if self.limits.max_release_bytes < 1024 || self.limits.max_json_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "limits must be at least 1024 bytes".into(),
            ));
        }
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < METRICS_TOKEN_MIN)
        {
            return Err(ConfigError::Invalid(format!(
                "metrics.token must be at least {METRICS_TOKEN_MIN} bytes"
            )));
        }
        if self.limits.concurrent_uploads == 0 {
            return Err(ConfigError::Invalid(
                "limits.concurrent_uploads must be >= 1".into(),
            ));
        }
        if self.legacy.failures_per_minute == 0 {
            return Err(ConfigError::Invalid(
                "legacy.failures_per_minute must be >= 1".into(),
            ));
        }
        if self.legacy.per_device_keys && self.legacy_psk.is_none() {
            return Err(ConfigError::Invalid(
                "legacy.per_device_keys derives device keys from the legacy PSK, which is not \
                 configured (--legacy-psk-file or FOTA_LEGACY_PSK)"
                    .into(),
            ));
        }
        if self.auth_failures_per_minute == 0 {
            return Err(ConfigError::Invalid(
                "auth.failures_per_minute must be >= 1".into(),
            ));
        }
        if self.seen_flush.is_zero() || self.housekeeping_interval.is_zero() {
            return Err(ConfigError::Invalid(
                "housekeeping periods must be > 0".into(),
            ));
        }
        if self.legacy_http_listen.is_some() && self.legacy_psk.is_none() {
            return Err(ConfigError::Invalid(
                "legacy_http_listen serves the legacy API, which needs a legacy PSK \
                 (--legacy-psk-file or FOTA_LEGACY_PSK)"
                    .into(),
            ));
        }
        let addr = self.listen_addr()?;
        if self.tls.is_none() && !addr.ip().is_loopback() && !self.insecure_http {
            return Err(ConfigError::PlainHttpNotLoopback(addr));
        }
        Ok(())
    }

    /// The legacy listener's address parsed, when there is one.
    pub fn legacy_http_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        self.legacy_http_listen
            .as_deref()
            .map(|a| {
                a.parse().map_err(|e| {
                    ConfigError::Invalid(format!("legacy_http_listen address {a:?}: {e}"))
                })
            })
            .transpose()
    }

    /// The listen address parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen
            .parse()
            .map_err(|e| ConfigError::Invalid(format!("listen address {:?}: {e}", self.listen)))
    }

    /// The SQLite file.
    pub fn db_path(&self) -> PathBuf {
        self.data.join("fota.db")
    }

    /// The blob folder.
    pub fn blob_dir(&self) -> PathBuf {
        self.data.join("blobs")
    }
}

#[cfg(test)]
mod tests;
