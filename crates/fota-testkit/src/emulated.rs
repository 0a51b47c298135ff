//! Emulated devices against the real server: the emulator's device runtime (its bootloader,
//! flash, agent and platform) over real HTTP at a URL, or in-process through the server's
//! router ([`RouterTransport`]: what the power-cut sweeps use, so thousands of boots stay
//! fast).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use fota_agent::{Transport, TransportError};
use fota_api::Provisioning;
use fota_emulator::bootloader::Efuse;
use fota_emulator::device::{self, DeviceOptions, Protocol, RunResult, Until};
use fota_emulator::flash_file::{self, FlashSpec, Layout};
use fota_emulator::http::{HttpClient, Timeouts, WireCounters};
use fota_emulator::transport::HttpTransport;
use fota_flash_sim::SimFlash;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use crate::seeds::PSK;

// ------------------------------------------------------------------ transports

/// The device API through the server's router, without sockets: what the power-cut sweep
/// uses, so thousands of boots stay fast. Same acceptance rules as the HTTP transport.
#[derive(Clone)]
pub struct RouterTransport {
    /// The server's router.
    pub app: Router,
    /// The device token (v2).
    pub token: Option<String>,
}

impl RouterTransport {
    async fn call(
        &self,
        method: Method,
        path: &str,
        range: Option<String>,
        body: &[u8],
    ) -> Result<(StatusCode, axum::http::HeaderMap, bytes::Bytes), TransportError> {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = &self.token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(r) = range {
            b = b.header(header::RANGE, r);
        }
        let req = b
            .body(Body::from(body.to_vec()))
            .map_err(|_| TransportError::Other)?;
        let resp = self
            .app
            .clone()
            .oneshot(req)
            .await
            .map_err(|_| TransportError::Connect)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|_| TransportError::Truncated)?
            .to_bytes();
        Ok((status, headers, bytes))
    }

    fn into(out: &mut [u8], data: &[u8]) -> Result<usize, TransportError> {
        let dst = out.get_mut(..data.len()).ok_or(TransportError::TooLarge)?;
        dst.copy_from_slice(data);
        Ok(data.len())
    }
}

impl Transport for RouterTransport {
    async fn checkin(&mut self, body: &[u8], resp: &mut [u8]) -> Result<usize, TransportError> {
        let (s, _, b) = self
            .call(Method::POST, "/api/v2/device/checkin", None, body)
            .await?;
        if !s.is_success() {
            return Err(TransportError::Status(s.as_u16()));
        }
        Self::into(resp, &b)
    }

    async fn get_range(
        &mut self,
        url: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, TransportError> {
        let last = offset + buf.len() as u64 - 1;
        let (s, h, b) = self
            .call(
                Method::GET,
                url,
                Some(format!("bytes={offset}-{last}")),
                b"",
            )
            .await?;
        match s {
            StatusCode::PARTIAL_CONTENT => {
                let want = format!("bytes {offset}-");
                let ok = h
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with(&want));
                if !ok || b.len() > buf.len() {
                    return Err(TransportError::BadRange);
                }
                Self::into(buf, &b)
            }
            StatusCode::OK if offset == 0 => {
                let n = b.len().min(buf.len());
                Self::into(buf, &b[..n])
            }
            StatusCode::OK => Err(TransportError::BadRange),
            other => Err(TransportError::Status(other.as_u16())),
        }
    }

    async fn event(&mut self, body: &[u8]) -> Result<(), TransportError> {
        let (s, _, _) = self
            .call(Method::POST, "/api/v2/device/events", None, body)
            .await?;
        if s.is_success() {
            Ok(())
        } else {
            Err(TransportError::Status(s.as_u16()))
        }
    }

    async fn legacy_get(
        &mut self,
        path_and_query: &str,
        resp: &mut [u8],
    ) -> Result<usize, TransportError> {
        let (s, _, b) = self.call(Method::GET, path_and_query, None, b"").await?;
        if !s.is_success() {
            return Err(TransportError::Status(s.as_u16()));
        }
        Self::into(resp, &b)
    }

    async fn legacy_post(&mut self, path: &str, body: &[u8]) -> Result<(), TransportError> {
        let mut b = Request::builder().method(Method::POST).uri(path);
        b = b.header(header::CONTENT_TYPE, "application/json");
        let req = b.body(Body::from(body.to_vec())).unwrap();
        let resp = self
            .app
            .clone()
            .oneshot(req)
            .await
            .map_err(|_| TransportError::Connect)?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(TransportError::Status(resp.status().as_u16()))
        }
    }
}

// ------------------------------------------------------------------ devices

/// Emulator options for a v2 device provisioned as `p`: fast polls, a fixed seed.
pub fn v2_options(p: &Provisioning) -> DeviceOptions {
    let mut o = DeviceOptions::new(&p.device_id, Protocol::V2(p.clone()));
    o.poll_interval = Duration::from_millis(20);
    o.seed = Some(7);
    o.max_checkins = 60;
    o
}

/// Emulator options for a legacy device named `name` (the seed's PSK).
pub fn legacy_options(name: &str) -> DeviceOptions {
    legacy_options_with(name, PSK, false)
}

/// Emulator options for a legacy device named `name` holding `psk`, or with `per_device_key`
/// the key derived from `psk` (the master) for `name`: firmware built for a server with
/// `legacy.per_device_keys`.
pub fn legacy_options_with(name: &str, psk: &[u8], per_device_key: bool) -> DeviceOptions {
    let mut o = DeviceOptions::new(
        name,
        Protocol::Legacy {
            psk: psk.to_vec(),
            per_device_key,
        },
    );
    o.poll_interval = Duration::from_millis(20);
    o.seed = Some(7);
    o.max_checkins = 60;
    o
}

/// A flash of `layout` with `img` installed.
pub fn new_flash(layout: Layout, img: &[u8]) -> SimFlash {
    flash_file::new_in_memory(&FlashSpec::new(layout, img)).unwrap()
}

/// Short HTTP timeouts for loopback.
pub fn http_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        read: Duration::from_secs(2),
        request: Duration::from_secs(10),
    }
}

/// Runs a device over real HTTP at `url` until `until`.
pub async fn run_http(
    flash: &mut SimFlash,
    opts: &DeviceOptions,
    url: &str,
    until: Until,
) -> (RunResult, Arc<WireCounters>) {
    let mut opts = opts.clone();
    opts.until = until;
    let token = match &opts.protocol {
        Protocol::V2(p) => Some(p.token.clone()),
        Protocol::Legacy { .. } => None,
    };
    let wire = Arc::new(WireCounters::default());
    let template =
        HttpClient::new(url, token.as_deref(), http_timeouts(), Arc::clone(&wire)).unwrap();
    let r = device::run(flash, &opts, &mut Efuse::default(), || {
        HttpTransport::new(template.fresh())
    })
    .await;
    (r, wire)
}

/// [`run_http`] to an `https://` server, verifying it with `tls`
/// (`fota_emulator::http::tls_config`).
pub async fn run_https(
    flash: &mut SimFlash,
    opts: &DeviceOptions,
    url: &str,
    until: Until,
    tls: Arc<rustls::ClientConfig>,
) -> (RunResult, Arc<WireCounters>) {
    let mut opts = opts.clone();
    opts.until = until;
    let token = match &opts.protocol {
        Protocol::V2(p) => Some(p.token.clone()),
        Protocol::Legacy { .. } => None,
    };
    let wire = Arc::new(WireCounters::default());
    let template = HttpClient::new(url, token.as_deref(), http_timeouts(), Arc::clone(&wire))
        .unwrap()
        .with_tls(tls);
    let r = device::run(flash, &opts, &mut Efuse::default(), || {
        HttpTransport::new(template.fresh())
    })
    .await;
    (r, wire)
}

/// Runs a device in-process through the router until `until`.
pub async fn run_local(
    flash: &mut SimFlash,
    opts: &DeviceOptions,
    app: &Router,
    until: Until,
) -> RunResult {
    let mut opts = opts.clone();
    opts.until = until;
    let token = match &opts.protocol {
        Protocol::V2(p) => Some(p.token.clone()),
        Protocol::Legacy { .. } => None,
    };
    let t = RouterTransport {
        app: app.clone(),
        token,
    };
    device::run(flash, &opts, &mut Efuse::default(), || t.clone()).await
}

/// The agent's journal as the next boot will read it from `flash`.
pub fn journal_of(flash: &mut SimFlash) -> fota_agent::journal::JournalState {
    use fota_agent::flash::Storage;
    let mut storage = Storage::new(&mut *flash).map_err(|e| e.0).unwrap();
    let mut scratch = vec![0u8; 0xC00];
    let layout = fota_agent::layout::Layout::discover(&mut storage, &mut scratch).unwrap();
    fota_agent::journal::Journal::open(&mut storage, layout.journal())
        .unwrap()
        .state()
        .clone()
}

/// The running version after a run.
pub fn running_version(r: &RunResult) -> String {
    r.last_boot
        .as_ref()
        .and_then(|b| b.app_desc.version().map(str::to_owned))
        .unwrap_or_default()
}
