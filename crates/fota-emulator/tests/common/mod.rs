//! Test kit: the real server (in-process router and on 127.0.0.1:0), release building, an
//! in-process transport, and device runs over the emulator's runtime.
#![allow(dead_code, unreachable_pub, missing_docs)]

use core::time::Duration;
use std::sync::Arc;

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
use fota_keys::KeySet;
use fota_protocol::esp::build::{AppImageSpec, build_app_image};
use fota_protocol::v2::{self, FixedStr, ManifestBody};
use fota_server::AppState;
use fota_server::blobs::LocalBlobStore;
use fota_server::config::Config;
use fota_server::store::SqliteStore;
use fota_server::trust::{LegacyKey, Trust};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub const PSK: &[u8] = b"your-32-byte-secret-key-here!!";
pub const ADMIN: &str = "test-admin-token";
pub const CLASS: &str = "ecowatt";

pub fn image(version: &str, size: u32, boot_fails: bool) -> Vec<u8> {
    let mut spec = AppImageSpec::new(version);
    spec.size = size;
    spec.boot_fails = boot_fails;
    build_app_image(&spec).unwrap()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).into()
}

/// The real server over a temp data folder, with v2 keys and a legacy PSK; optionally
/// listening on 127.0.0.1:0.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub state: AppState,
    pub app: Router,
    pub keys: KeySet,
    pub addr: Option<core::net::SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// A server reachable in-process only (its router).
    pub async fn in_process() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::with_data(dir.path());
        cfg.listen = "127.0.0.1:0".into();
        cfg.seen_flush = Duration::from_millis(50);
        let store = SqliteStore::open(&cfg.db_path()).await.unwrap();
        let blobs = LocalBlobStore::open(cfg.blob_dir()).unwrap();
        let keys = KeySet::generate(uuid::Uuid::new_v4());
        let trust = Trust::new(keys.root_record().unwrap(), keys.status.clone()).unwrap();
        let state = AppState::from_parts(
            cfg,
            Arc::new(store),
            Arc::new(blobs),
            Some(trust),
            Some(LegacyKey::from_bytes(PSK)),
        );
        state.bootstrap_admin(Some(ADMIN)).await.unwrap();
        let app = fota_server::router(state.clone());
        Self {
            dir,
            state,
            app,
            keys,
            addr: None,
            stop: None,
            task: None,
        }
    }

    /// A server listening on 127.0.0.1:0 (the real `serve`).
    pub async fn start() -> Self {
        let mut s = Self::in_process().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        s.addr = Some(listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let state = s.state.clone();
        s.task = Some(tokio::spawn(async move {
            fota_server::serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        }));
        s.stop = Some(tx);
        s
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr.expect("server not listening"))
    }

    /// The same data folder, store and blobs served again under another root record and
    /// status key, on a new port: what an operator does after rotating the root. `keys` are
    /// the keys the rotated root names.
    pub async fn restarted_with(mut self, keys: KeySet, root_record: Vec<u8>) -> Self {
        let (config, store, blobs) = (
            self.state.config().clone(),
            Arc::clone(self.state.store()),
            Arc::clone(self.state.blobs()),
        );
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        let trust = Trust::new(root_record, keys.status.clone()).unwrap();
        let state = AppState::from_parts(
            config,
            store,
            blobs,
            Some(trust),
            Some(LegacyKey::from_bytes(PSK)),
        );
        let app = fota_server::router(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let serving = state.clone();
        let task = tokio::spawn(async move {
            fota_server::serve(listener, serving, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            dir: self.dir,
            state,
            app,
            keys,
            addr: Some(addr),
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// An operator request with the admin token; (status, JSON body or Null).
    pub async fn op(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"));
        let body = match body {
            Some(v) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let resp = self
            .app
            .clone()
            .oneshot(b.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Provisions a v2 device of class `CLASS`.
    pub async fn provision(&self, id: &str) -> Provisioning {
        let (s, v) = self
            .op(
                Method::POST,
                "/api/v2/devices",
                Some(json!({"id": id, "class": CLASS})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        Provisioning::from_json(v.to_string().as_bytes()).unwrap()
    }

    /// Signs (as the release key holder does, offline) and uploads a v2 release; its id.
    pub async fn release(&self, version: &str, sequence: u64, image: &[u8], chunk: u32) -> String {
        let (status, v) = self
            .try_release(version, sequence, image, chunk, |_| {})
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    pub async fn try_release(
        &self,
        version: &str,
        sequence: u64,
        image: &[u8],
        chunk: u32,
        edit: impl FnOnce(&mut ManifestBody),
    ) -> (StatusCode, Value) {
        let hl = v2::hashlist::build(image, chunk).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut body = ManifestBody {
            vendor_id: *self.keys.vendor_id.as_bytes(),
            class_id: *fota_protocol::v2::ids::class_id(&self.keys.vendor_id, CLASS).as_bytes(),
            device_id: [0; 16],
            sequence,
            security_counter: 0,
            payload_format: v2::PayloadFormat::RawEspApp,
            component: v2::Component::Application,
            fw_version: FixedStr::new(version).unwrap(),
            project_name: FixedStr::new("ecowatt").unwrap(),
            issued_at: now - 60,
            expires_at: 0,
            image_size: image.len() as u64,
            chunk_size: chunk,
            chunk_count: hl.layout.chunk_count(),
            image_sha256: sha256(image),
            chunk_list_sha256: hl.chunk_list_sha256,
            precursor_sha256: [0; 32],
        };
        edit(&mut body);
        let manifest = body.sign(&[&self.keys.release]).unwrap();
        let boundary = "fota-emulator-test-boundary";
        let mut data = Vec::new();
        for (name, part) in [
            ("class", CLASS.as_bytes()),
            ("manifest", &manifest[..]),
            ("hashlist", &hl.blob[..]),
            ("image", image),
        ] {
            data.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            data.extend_from_slice(part);
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/v2/releases")
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(data))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn assign_class(&self, release: &str) {
        let (s, v) = self
            .op(
                Method::POST,
                &format!("/api/v2/releases/{release}/assign"),
                Some(json!({"class": CLASS})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    pub async fn assign_devices(&self, release: &str, devices: &[&str]) {
        let (s, v) = self
            .op(
                Method::POST,
                &format!("/api/v2/releases/{release}/assign"),
                Some(json!({"devices": devices})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    /// The seed's quick_upload: `{version, size, hash, chunk_size, firmware_data}`.
    pub async fn legacy_upload(&self, version: &str, fw: &[u8], chunk: u64) -> (StatusCode, Value) {
        self.legacy_upload_with_hash(version, fw, chunk, &hex::encode(sha256(fw)))
            .await
    }

    pub async fn legacy_upload_with_hash(
        &self,
        version: &str,
        fw: &[u8],
        chunk: u64,
        hash: &str,
    ) -> (StatusCode, Value) {
        use base64::Engine as _;
        self.op(
            Method::POST,
            "/api/cloud/fota/upload",
            Some(json!({
                "version": version,
                "size": fw.len(),
                "hash": hash,
                "chunk_size": chunk,
                "firmware_data": base64::engine::general_purpose::STANDARD.encode(fw),
            })),
        )
        .await
    }

    pub async fn device(&self, id: &str) -> Value {
        let (s, v) = self
            .op(Method::GET, &format!("/api/v2/devices/{id}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }
}

// ------------------------------------------------------------------ transports

/// The device API through the server's router, without sockets: what the power-cut sweep
/// uses, so thousands of boots stay fast. Same acceptance rules as the HTTP transport.
#[derive(Clone)]
pub struct RouterTransport {
    pub app: Router,
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

pub fn v2_options(p: &Provisioning) -> DeviceOptions {
    let mut o = DeviceOptions::new(&p.device_id, Protocol::V2(p.clone()));
    o.poll_interval = Duration::from_millis(20);
    o.seed = Some(7);
    o.max_checkins = 60;
    o
}

pub fn legacy_options(name: &str) -> DeviceOptions {
    let mut o = DeviceOptions::new(name, Protocol::Legacy { psk: PSK.to_vec() });
    o.poll_interval = Duration::from_millis(20);
    o.seed = Some(7);
    o.max_checkins = 60;
    o
}

pub fn new_flash(layout: Layout, img: &[u8]) -> SimFlash {
    flash_file::new_in_memory(&FlashSpec::new(layout, img)).unwrap()
}

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
