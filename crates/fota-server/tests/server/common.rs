//! Helpers shared by the server tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use fota_server::AppState;
use fota_server::blobs::LocalBlobStore;
use fota_server::config::Config;
use fota_server::store::SqliteStore;
use fota_server::trust::{LegacyKey, Trust};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

/// A state over a fresh temp data folder.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub state: AppState,
    pub app: Router,
    pub admin: String,
}

pub fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::with_data(dir);
    c.listen = "127.0.0.1:0".into();
    c
}

pub async fn fixture_with(
    tweak: impl FnOnce(&mut Config),
    trust: Option<Trust>,
    legacy: Option<&[u8]>,
) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    tweak(&mut cfg);
    let store = SqliteStore::open(&cfg.db_path()).await.unwrap();
    let blobs = LocalBlobStore::open(cfg.blob_dir()).unwrap();
    let state = AppState::from_parts(
        cfg,
        Arc::new(store),
        Arc::new(blobs),
        trust,
        legacy.map(LegacyKey::from_bytes),
    );
    let admin = "test-admin-token".to_owned();
    state.bootstrap_admin(Some(&admin)).await.unwrap();
    let app = fota_server::router(state.clone());
    Fixture {
        dir,
        state,
        app,
        admin,
    }
}

pub async fn fixture() -> Fixture {
    fixture_with(|_| {}, None, None).await
}

/// One answer, body collected.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts the status and the JSON error shape; returns the error code.
    pub fn error(&self, status: StatusCode) -> String {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let v = self.json();
        let code = v["error"]["code"].as_str().expect("error.code").to_owned();
        assert!(v["error"]["message"].is_string(), "error.message in {v}");
        code
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

pub fn req(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(body.into()).unwrap()
}

pub async fn get(app: &Router, path: &str, token: Option<&str>) -> Answer {
    send(app, req(Method::GET, path, token, Body::empty())).await
}

pub async fn post_json(
    app: &Router,
    path: &str,
    token: Option<&str>,
    json: &serde_json::Value,
) -> Answer {
    let mut r = req(Method::POST, path, token, json.to_string());
    r.headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    send(app, r).await
}

pub async fn post_raw(
    app: &Router,
    path: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> Answer {
    send(app, req(Method::POST, path, token, body)).await
}

/// Makes an operator token of `role` with the admin token.
pub async fn token(f: &Fixture, role: &str) -> String {
    let a = post_json(
        &f.app,
        "/api/v2/tokens",
        Some(&f.admin),
        &serde_json::json!({ "name": role, "role": role }),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);
    a.json()["token"].as_str().unwrap().to_owned()
}

// ------------------------------------------------------------------ v2 helpers

use fota_keys::KeySet;
use fota_protocol::esp::build::{AppImageSpec, build_app_image};
use fota_protocol::v2::{self, FixedStr, ManifestBody};

pub fn keys() -> KeySet {
    KeySet::generate(uuid::Uuid::new_v4())
}

pub fn trust(keys: &KeySet) -> Trust {
    Trust::new(keys.root_record().unwrap(), keys.status.clone()).unwrap()
}

/// A v2 fixture: keys, a legacy PSK, and the state.
pub async fn v2_fixture() -> (Fixture, KeySet) {
    let k = keys();
    let f = fixture_with(
        |_| {},
        Some(trust(&k)),
        Some(b"your-32-byte-secret-key-here!!"),
    )
    .await;
    (f, k)
}

/// A signed release: the three upload parts.
#[derive(Clone)]
pub struct Built {
    pub manifest: Vec<u8>,
    pub hashlist: Vec<u8>,
    pub image: Vec<u8>,
    pub body: ManifestBody,
}

impl Built {
    pub fn digest(&self) -> [u8; 32] {
        v2::manifest_digest(&self.manifest)
    }

    pub fn sha256(&self) -> String {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&self.image))
    }

    pub fn resign(&mut self, keys: &[&ed25519_dalek::SigningKey]) {
        self.manifest = self.body.sign(keys).unwrap();
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Builds an ESP image of `version` (about `size` bytes), its hash list and a manifest signed
/// with the release key.
pub fn build(keys: &KeySet, class: &str, version: &str, sequence: u64, size: u32) -> Built {
    let image = build_app_image(&AppImageSpec {
        size,
        ..AppImageSpec::new(version)
    })
    .unwrap();
    let chunk_size = 4096;
    let hl = v2::hashlist::build(&image, chunk_size).unwrap();
    use sha2::Digest as _;
    let body = ManifestBody {
        vendor_id: *keys.vendor_id.as_bytes(),
        class_id: *fota_protocol::v2::ids::class_id(&keys.vendor_id, class).as_bytes(),
        device_id: [0; 16],
        sequence,
        security_counter: 0,
        payload_format: v2::PayloadFormat::RawEspApp,
        component: v2::Component::Application,
        fw_version: FixedStr::new(version).unwrap(),
        project_name: FixedStr::new("ecowatt").unwrap(),
        issued_at: unix_now(),
        expires_at: 0,
        image_size: image.len() as u64,
        chunk_size,
        chunk_count: hl.layout.chunk_count(),
        image_sha256: sha2::Sha256::digest(&image).into(),
        chunk_list_sha256: hl.chunk_list_sha256,
        precursor_sha256: [0; 32],
    };
    let manifest = body.sign(&[&keys.release]).unwrap();
    Built {
        manifest,
        hashlist: hl.blob,
        image,
        body,
    }
}

/// A multipart/form-data body: (content type, bytes).
pub fn multipart(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "fota-test-boundary-7d1b";
    let mut body = Vec::new();
    for (name, data) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub fn upload_parts(b: &Built, class: Option<&str>) -> (String, Vec<u8>) {
    let mut parts: Vec<(&str, &[u8])> = Vec::new();
    if let Some(c) = class {
        parts.push(("class", c.as_bytes()));
    }
    parts.push(("manifest", &b.manifest));
    parts.push(("hashlist", &b.hashlist));
    parts.push(("image", &b.image));
    multipart(&parts)
}

pub async fn upload(f: &Fixture, token: &str, b: &Built, class: Option<&str>) -> Answer {
    let (ct, body) = upload_parts(b, class);
    let mut r = req(Method::POST, "/api/v2/releases", Some(token), body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, ct.parse().unwrap());
    send(&f.app, r).await
}

/// Provisions a device; returns its provisioning document.
pub async fn provision(f: &Fixture, id: &str, class: &str) -> serde_json::Value {
    let a = post_json(
        &f.app,
        "/api/v2/devices",
        Some(&f.admin),
        &serde_json::json!({ "id": id, "class": class }),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    a.json()
}

/// A check-in record for a device that runs `running` (sha256) at `sequence`.
pub fn checkin_record(
    keys: &KeySet,
    device_id: &str,
    nonce: [u8; 16],
    running_sha: [u8; 32],
    sequence: u64,
    rollback_ack: u64,
) -> Vec<u8> {
    v2::CheckIn {
        legacy_latched_off: true,
        device_id: *fota_protocol::v2::ids::device_uuid(&keys.vendor_id, device_id).as_bytes(),
        nonce,
        root_version: 1,
        installed_sequence: sequence,
        installed_security_counter: 0,
        running_fw_version: FixedStr::new("1.0.0").unwrap(),
        running_image_sha256: running_sha,
        running_slot: 0,
        running_ota_state: 2,
        agent_state: v2::AgentState::Idle,
        last_result: v2::ReasonCode::None,
        pending_bytes_done: 0,
        pending_bytes_total: 0,
        pending_manifest_digest: [0; 32],
        rollback_order_id: rollback_ack,
        boot_count: 0,
    }
    .encode()
    .unwrap()
    .to_vec()
}

#[allow(clippy::too_many_arguments)]
pub fn event_record(
    keys: &KeySet,
    device_id: &str,
    kind: v2::EventKind,
    reason: v2::ReasonCode,
    digest: [u8; 32],
    done: u64,
    total: u64,
    order: u64,
) -> Vec<u8> {
    v2::Event {
        kind,
        reason,
        device_id: *fota_protocol::v2::ids::device_uuid(&keys.vendor_id, device_id).as_bytes(),
        seq: 1,
        manifest_digest: digest,
        bytes_done: done,
        bytes_total: total,
        fw_version: FixedStr::new("1.0.1").unwrap(),
        rollback_order_id: order,
        detail: "test",
    }
    .to_vec()
    .unwrap()
}

// ------------------------------------------------------------------ real sockets

/// A server running on 127.0.0.1:0 until dropped or stopped.
pub struct Running {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub async fn start(state: AppState) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            fota_server::serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Graceful stop: waits for the final flush.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        http(self.addr, method, path, headers, body).await
    }
}

/// A minimal HTTP/1.1 client (one request per connection), enough to test the server over a
/// real socket without another HTTP stack.
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut map = HeaderMap::new();
    for line in lines {
        let (k, v) = line.split_once(':').unwrap();
        map.append(
            header::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
            v.trim().parse().unwrap(),
        );
    }
    let mut payload = raw[split + 4..].to_vec();
    if map
        .get(header::TRANSFER_ENCODING)
        .is_some_and(|v| v == "chunked")
    {
        let mut out = Vec::new();
        let mut rest = &payload[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16)
                .unwrap();
            rest = &rest[eol + 2..];
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[..n]);
            rest = &rest[n + 2..];
        }
        payload = out;
    }
    Answer {
        status: StatusCode::from_u16(status).unwrap(),
        headers: map,
        body: Bytes::from(payload),
    }
}
