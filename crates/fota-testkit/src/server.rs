//! The real server over a fresh temp data folder: in-process (its router, driven with
//! `tower::ServiceExt::oneshot`, no sockets) and, on request, also listening on 127.0.0.1:0
//! (the real `serve`). Its v2 keys are generated per server; the admin token is [`ADMIN`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use fota_api::Provisioning;
use fota_keys::KeySet;
use fota_protocol::v2::ManifestBody;
use fota_server::AppState;
use fota_server::blobs::LocalBlobStore;
use fota_server::config::Config;
use fota_server::store::SqliteStore;
use fota_server::tls::TlsReloader;
use fota_server::trust::{LegacyKey, Trust};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::release::{self, Built};
use crate::seeds::PSK;

/// The admin token every test server is bootstrapped with.
pub const ADMIN: &str = "fota_op_testkit_admin_token_0123456789";
/// The device class the helpers provision and release for.
pub const CLASS: &str = "ecowatt";

/// Fresh v2 keys under a random vendor.
pub fn keys() -> KeySet {
    KeySet::generate(uuid::Uuid::new_v4())
}

/// The server's trust material for `keys`: their root record and status key.
pub fn trust(keys: &KeySet) -> Trust {
    Trust::new(
        keys.root_record().expect("root record"),
        keys.status.clone(),
    )
    .expect("trust")
}

/// The server's settings over `dir`, listening on 127.0.0.1:0.
pub fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::with_data(dir);
    c.listen = "127.0.0.1:0".into();
    c
}

/// The state of a server over data folder `dir` (which may hold an earlier server's data: a
/// restart), with settings tweaked by `tweak`, trusting `trust`, serving legacy with `legacy`.
/// No token is bootstrapped.
pub async fn state_in(
    dir: &std::path::Path,
    tweak: impl FnOnce(&mut Config),
    trust: Option<Trust>,
    legacy: Option<&[u8]>,
) -> AppState {
    let mut cfg = config(dir);
    tweak(&mut cfg);
    let store = SqliteStore::open(&cfg.db_path()).await.expect("store");
    let blobs = LocalBlobStore::open(cfg.blob_dir()).expect("blobs");
    let state = AppState::from_parts(
        cfg,
        Arc::new(store),
        Arc::new(blobs),
        trust,
        legacy.map(LegacyKey::from_bytes),
    );
    state.load_root_chain().await.expect("root chain");
    state
}

/// A server; listening on 127.0.0.1:0 after [`TestServer::listen`].
pub struct TestServer {
    /// The data folder (SQLite file and blobs), removed on drop.
    pub dir: tempfile::TempDir,
    /// The server's state.
    pub state: AppState,
    /// Its router.
    pub app: Router,
    /// The admin token.
    pub admin: String,
    /// v2 keys: the ones the server trusts when it was opened with their [`trust`].
    pub keys: KeySet,
    listening: Option<Listening>,
}

impl TestServer {
    /// A server with settings tweaked by `tweak`, trusting `trust` (v2 when given) and
    /// serving the legacy API with PSK `legacy` (when given). `keys` are kept for the test.
    pub async fn open(
        tweak: impl FnOnce(&mut Config),
        keys: KeySet,
        trust: Option<Trust>,
        legacy: Option<&[u8]>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = state_in(dir.path(), tweak, trust, legacy).await;
        state
            .bootstrap_admin(Some(ADMIN))
            .await
            .expect("admin token");
        let app = fota_server::router(state.clone());
        Self {
            dir,
            state,
            app,
            admin: ADMIN.to_owned(),
            keys,
            listening: None,
        }
    }

    /// Operator API only: no v2 keys, no legacy PSK.
    pub async fn bare() -> Self {
        Self::open(|_| {}, keys(), None, None).await
    }

    /// v2 (fresh keys) and legacy (the seed's PSK), last-seen flushed every 50 ms; in-process.
    pub async fn in_process() -> Self {
        let k = keys();
        let t = trust(&k);
        Self::open(
            |c| c.seen_flush = Duration::from_millis(50),
            k,
            Some(t),
            Some(PSK),
        )
        .await
    }

    /// [`TestServer::in_process`], listening on 127.0.0.1:0.
    pub async fn start() -> Self {
        Self::in_process().await.listen().await
    }

    /// Serves this server on 127.0.0.1:0 too.
    pub async fn listen(mut self) -> Self {
        self.listening = Some(Listening::start(self.state.clone()).await);
        self
    }

    /// Serves this server over HTTPS on 127.0.0.1:0 with `tls` (which the test may
    /// [`TlsReloader::reload`]), and with `legacy_http` the legacy API alone over plain HTTP on
    /// a second 127.0.0.1:0 ([`TestServer::legacy_addr`]).
    pub async fn listen_tls(mut self, tls: TlsReloader, legacy_http: bool) -> Self {
        self.listening =
            Some(Listening::start_with(self.state.clone(), Some(tls), legacy_http).await);
        self
    }

    /// The plain-HTTP legacy listener's address ([`TestServer::listen_tls`]).
    pub fn legacy_addr(&self) -> SocketAddr {
        self.listening
            .as_ref()
            .and_then(|l| l.legacy_addr)
            .expect("no legacy listener")
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.listening.as_ref().expect("server not listening").addr
    }

    /// `http://` (`https://localhost:PORT` over TLS) and the listening address.
    pub fn url(&self) -> String {
        let l = self.listening.as_ref().expect("server not listening");
        if l.tls {
            format!("https://localhost:{}", l.addr.port())
        } else {
            format!("http://{}", l.addr)
        }
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
        if let Some(l) = self.listening.take() {
            l.stop().await;
        }
        let trust = Trust::new(root_record, keys.status.clone()).expect("trust");
        let state = AppState::from_parts(
            config,
            store,
            blobs,
            Some(trust),
            Some(LegacyKey::from_bytes(PSK)),
        );
        state.load_root_chain().await.expect("root chain");
        Self {
            app: fota_server::router(state.clone()),
            listening: Some(Listening::start(state.clone()).await),
            state,
            keys,
            dir: self.dir,
            admin: self.admin,
        }
    }

    /// Stops listening, waiting for the final flush.
    pub async fn stop(mut self) {
        if let Some(l) = self.listening.take() {
            l.stop().await;
        }
    }

    /// An operator request with the admin token: (status, JSON body or Null).
    pub async fn op(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let a = match body {
            Some(v) => post_json_as(&self.app, method, path, Some(&self.admin), &v).await,
            None => {
                send(
                    &self.app,
                    req(method, path, Some(&self.admin), Body::empty()),
                )
                .await
            }
        };
        (
            a.status,
            serde_json::from_slice(&a.body).unwrap_or(Value::Null),
        )
    }

    /// Provisions a v2 device of class [`CLASS`].
    pub async fn provision(&self, id: &str) -> Provisioning {
        let v = provision(self, id, CLASS).await;
        Provisioning::from_json(v.to_string().as_bytes()).expect("provisioning file")
    }

    /// A release of `image` for [`CLASS`] signed with this server's release key.
    pub fn build_release(
        &self,
        version: &str,
        sequence: u64,
        image: &[u8],
        chunk: u32,
        edit: impl FnOnce(&mut ManifestBody),
    ) -> Built {
        signed_by(
            &self.keys,
            CLASS,
            version,
            sequence,
            image.to_vec(),
            chunk,
            edit,
        )
    }

    /// Signs (as the release key holder does, offline) and uploads a v2 release; its id.
    pub async fn release(&self, version: &str, sequence: u64, image: &[u8], chunk: u32) -> String {
        let (status, v) = self
            .try_release(version, sequence, image, chunk, |_| {})
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["id"].as_str().expect("release id").to_owned()
    }

    /// Signs `image` with `edit` applied to its manifest and uploads it: (status, JSON).
    pub async fn try_release(
        &self,
        version: &str,
        sequence: u64,
        image: &[u8],
        chunk: u32,
        edit: impl FnOnce(&mut ManifestBody),
    ) -> (StatusCode, Value) {
        let b = self.build_release(version, sequence, image, chunk, edit);
        let a = upload(self, ADMIN, &b, Some(CLASS)).await;
        (
            a.status,
            serde_json::from_slice(&a.body).unwrap_or(Value::Null),
        )
    }

    /// Assigns release `release` to [`CLASS`].
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

    /// Assigns release `release` to `devices`.
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
        self.legacy_upload_with_hash(version, fw, chunk, &hex::encode(crate::sha256(fw)))
            .await
    }

    /// A legacy upload that claims `hash`.
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

    /// The operator's view of device `id`.
    pub async fn device(&self, id: &str) -> Value {
        let (s, v) = self
            .op(Method::GET, &format!("/api/v2/devices/{id}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }
}

/// `image` for `class` of `keys`' vendor, in `chunk`-byte chunks, signed with their release
/// key after `edit`.
pub fn signed_by(
    keys: &KeySet,
    class: &str,
    version: &str,
    sequence: u64,
    image: Vec<u8>,
    chunk: u32,
    edit: impl FnOnce(&mut ManifestBody),
) -> Built {
    let fields = release::fields(keys.vendor_id, class, version, sequence, chunk);
    release::build(image, &fields, edit, &[&keys.release])
}

/// Uploads `b` with `token` (with the `class` field when given).
pub async fn upload(s: &TestServer, token: &str, b: &Built, class: Option<&str>) -> Answer {
    let (ct, body) = b.upload_form(class);
    let mut r = req(Method::POST, "/api/v2/releases", Some(token), body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, ct.parse().expect("content type"));
    send(&s.app, r).await
}

/// Provisions device `id` of `class` with the admin token; its provisioning document.
pub async fn provision(s: &TestServer, id: &str, class: &str) -> Value {
    let a = post_json(
        &s.app,
        "/api/v2/devices",
        Some(&s.admin),
        &json!({ "id": id, "class": class }),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    a.json()
}

/// Makes an operator token of `role` (named after it) with the admin token.
pub async fn token(s: &TestServer, role: &str) -> String {
    let a = post_json(
        &s.app,
        "/api/v2/tokens",
        Some(&s.admin),
        &json!({ "name": role, "role": role }),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    a.json()["token"].as_str().expect("token").to_owned()
}

// ------------------------------------------------------------------ requests

/// One answer, body collected.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    /// The body as text, lossily.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status and the JSON error shape; returns the error code.
    pub fn error(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "body: {}", self.text());
        let v = self.json();
        let code = v["error"]["code"].as_str().expect("error.code").to_owned();
        assert!(v["error"]["message"].is_string(), "error.message in {v}");
        code
    }
}

/// Sends `req` through `app`.
pub async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.expect("router answers");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("body collects")
        .to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

/// A request, with a bearer token when given.
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
    b.body(body.into()).expect("request")
}

/// `GET path`.
pub async fn get(app: &Router, path: &str, token: Option<&str>) -> Answer {
    send(app, req(Method::GET, path, token, Body::empty())).await
}

/// `POST path` with a JSON body.
pub async fn post_json(app: &Router, path: &str, token: Option<&str>, json: &Value) -> Answer {
    post_json_as(app, Method::POST, path, token, json).await
}

/// `method path` with a JSON body.
pub async fn post_json_as(
    app: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    json: &Value,
) -> Answer {
    let mut r = req(method, path, token, json.to_string());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    send(app, r).await
}

/// `POST path` with a raw body.
pub async fn post_raw(
    app: &Router,
    path: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> Answer {
    send(app, req(Method::POST, path, token, body)).await
}

// ------------------------------------------------------------------ real sockets

/// A server task listening on 127.0.0.1:0 until stopped (or dropped with the runtime).
pub struct Listening {
    /// Where.
    pub addr: SocketAddr,
    /// The plain-HTTP legacy listener, when started with one.
    pub legacy_addr: Option<SocketAddr>,
    /// Whether `addr` speaks TLS.
    pub tls: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Listening {
    /// Serves `state` with the real `fota_server::serve`.
    pub async fn start(state: AppState) -> Self {
        Self::start_with(state, None, false).await
    }

    /// Serves `state` with the real `fota_server::serve_on`: over TLS with `tls`, and with a
    /// plain-HTTP legacy listener on another 127.0.0.1:0 when `legacy_http`.
    pub async fn start_with(state: AppState, tls: Option<TlsReloader>, legacy_http: bool) -> Self {
        let bind = || async {
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0")
        };
        let listener = bind().await;
        let addr = listener.local_addr().expect("local addr");
        let legacy = if legacy_http {
            Some(bind().await)
        } else {
            None
        };
        let legacy_addr = legacy.as_ref().map(|l| l.local_addr().expect("local addr"));
        let listeners = fota_server::Listeners {
            main: listener,
            tls: tls.clone(),
            legacy_http: legacy,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            fota_server::serve_on(listeners, state, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        Self {
            addr,
            legacy_addr,
            tls: tls.is_some(),
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
            task.await.expect("server task");
        }
    }

    /// One request over a fresh connection ([`http`]).
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

/// A bare HTTP/1.1 exchange, one request per connection, reading the answer to EOF: for
/// tests of what the server puts on the wire (heads, chunked framing, early answers), which a
/// full client would hide.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).await.expect("write head");
    s.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read answer");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let mut map = HeaderMap::new();
    for line in lines {
        let (k, v) = line.split_once(':').expect("header line");
        map.append(
            header::HeaderName::from_bytes(k.trim().as_bytes()).expect("header name"),
            v.trim().parse().expect("header value"),
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
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size line");
            let n = usize::from_str_radix(
                std::str::from_utf8(&rest[..eol])
                    .expect("chunk size")
                    .trim(),
                16,
            )
            .expect("chunk size");
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
        status: StatusCode::from_u16(status).expect("status"),
        headers: map,
        body: Bytes::from(payload),
    }
}
