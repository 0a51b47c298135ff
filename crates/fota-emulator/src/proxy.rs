//! A loopback HTTP/1.1 proxy that injects network faults between devices and a server.
//!
//! It binds `127.0.0.1:0`, forwards every request to the upstream server, and rewrites the
//! answer as the [`NetFaultSpec`] says, byte-exactly: a reset in the middle of a body, a body
//! shorter or longer than its `Content-Length`, flipped bytes, stalls, synthetic errors, a
//! `Range` header that never reaches the server. Answers are written by hand on the raw
//! socket, so the device's HTTP stack sees exactly the broken bytes a broken network or server
//! would send.
//!
//! `fota emulate --net-fault` puts one in front of the server; the network-fault tests use it
//! directly. Devices speak plain HTTP to it; to an `https://` server it speaks TLS
//! ([`FaultProxy::start_with`]). It learns which blob is the image and which the hash list, and the chunk length,
//! from the v2 check-in answers passing through, so `chunk:K` means the same in both
//! protocols.
//!
//! [`FaultProxy::set_rewrite`] goes further than a broken network: it replaces answer bodies
//! with what a test computes from them, so the proxy can play a server whose online key is
//! compromised (a re-signed status statement, say) while everything else stays the real
//! server's.
//!
//! A device that streams the image asks for an open-ended range (`bytes=N-`) and reads many
//! chunks from one answer. Such an answer carries at most one fault, at the first chunk it
//! covers on which a rule fires. On its first chunk, the fault applies as to a one-chunk
//! answer (a drop, truncation, stall or flip lands inside that chunk; the others concern the
//! whole answer). On a later chunk K, the answer ends cleanly where chunk K starts, short of
//! its `Content-Length`, and the fault is kept for the next request that starts at chunk K,
//! which the device makes when its stream breaks.

use core::net::SocketAddr;
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::netfault::{Fault, Kind, NetFaultSpec, RequestInfo};

/// Largest request head the proxy reads.
const MAX_HEAD: usize = 64 * 1024;
/// Largest body the proxy buffers in either direction.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// How much junk an endless body sends at most (the device must hang up long before).
const ENDLESS_CAP: usize = 256 * 1024 * 1024;

/// Computes the body a device gets instead of a 200 answer's `body` to the request `info`;
/// `None` passes the answer on unchanged.
pub type Rewrite = Arc<dyn Fn(RequestInfo, &[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// The installed [`Rewrite`], if any.
#[derive(Clone, Default)]
struct RewriteSlot(Option<Rewrite>);

impl core::fmt::Debug for RewriteSlot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

/// A fault the proxy injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fired {
    /// The request it hit.
    pub request: RequestInfo,
    /// The fault.
    pub fault: Fault,
}

#[derive(Debug)]
struct Shared {
    spec: NetFaultSpec,
    fired_counts: Vec<u64>,
    rng: StdRng,
    requests: u64,
    checkins: u64,
    image_path: Option<String>,
    hashlist_path: Option<String>,
    chunk_len: HashMap<String, u64>,
    /// Chunk length of the image, from the manifest of the last check-in answer.
    image_chunk: Option<u64>,
    /// Faults that fired on a later chunk of a streamed answer, for the request that starts
    /// at that chunk: (path, chunk) → fault.
    deferred: HashMap<(String, u64), Fault>,
    fired: Vec<Fired>,
    body_bytes: u64,
    rewrite: RewriteSlot,
}

type SharedRef = Arc<Mutex<Shared>>;

fn lock(s: &SharedRef) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running proxy; dropping it stops accepting (open connections end with their task).
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: SharedRef,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, spec: NetFaultSpec) -> io::Result<Self> {
        Self::start_with(upstream, spec, None).await
    }

    /// [`FaultProxy::start`] for an `http://` or `https://` upstream. To an `https://` one it
    /// speaks TLS, verified with `tls` (else the platform's roots), while devices still speak
    /// plain HTTP to it: it plays a TLS-terminating hop (a load balancer, a CDN) that is
    /// broken or compromised, the one place a bit can flip or an answer be rewritten once the
    /// server speaks TLS.
    pub async fn start_with(
        upstream: &str,
        spec: NetFaultSpec,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> io::Result<Self> {
        let uri: hyper::Uri = upstream
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e}")))?;
        let tls = match uri.scheme_str() {
            Some("https") => Some(match tls {
                Some(c) => c,
                None => crate::http::tls_config(None).map_err(io::Error::other)?,
            }),
            _ => None,
        };
        let host = uri
            .host()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "upstream has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if tls.is_some() { 443 } else { 80 });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared {
            fired_counts: vec![0; spec.rules.len()],
            rng: StdRng::seed_from_u64(spec.seed),
            spec,
            requests: 0,
            checkins: 0,
            image_path: None,
            hashlist_path: None,
            chunk_len: HashMap::new(),
            image_chunk: None,
            deferred: HashMap::new(),
            fired: Vec::new(),
            body_bytes: 0,
            rewrite: RewriteSlot::default(),
        }));
        let upstream = Upstream {
            tls,
            host,
            port,
            authority: uri
                .authority()
                .map_or_else(|| format!("127.0.0.1:{port}"), |a| a.to_string()),
        };
        let s = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s = Arc::clone(&s);
                let up = upstream.clone();
                tokio::spawn(async move {
                    let _ = serve_conn(stream, s, up).await;
                });
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Faults injected so far, in order.
    pub fn fired(&self) -> Vec<Fired> {
        lock(&self.shared).fired.clone()
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u64 {
        lock(&self.shared).requests
    }

    /// Body bytes written towards devices (after faults).
    pub fn body_bytes(&self) -> u64 {
        lock(&self.shared).body_bytes
    }

    /// Installs `rewrite` for every later 200 answer (`None` removes it). It runs before the
    /// fault of the request, so a fault also hits a rewritten body.
    pub fn set_rewrite(&self, rewrite: Option<Rewrite>) {
        lock(&self.shared).rewrite = RewriteSlot(rewrite);
    }
}

#[derive(Debug, Clone)]
struct Upstream {
    /// TLS to the upstream (`https://`).
    tls: Option<Arc<rustls::ClientConfig>>,
    host: String,
    port: u16,
    authority: String,
}

struct Incoming {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// Reads one request from `stream`; `None` at a clean end of the connection.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<Incoming>> {
    let head_len = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
        let mut piece = [0u8; 8192];
        let n = stream.read(&mut piece).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&piece[..n]);
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let status = req
        .parse(&buf[..head_len])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    if status.is_partial() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "partial head"));
    }
    let method = req.method.unwrap_or("GET").to_owned();
    let target = req.path.unwrap_or("/").to_owned();
    let headers: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| core::str::from_utf8(v).ok()?.trim().parse().ok())
        .unwrap_or(0);
    if len > MAX_BODY {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
    }
    buf.drain(..head_len);
    while buf.len() < len {
        let mut piece = [0u8; 16384];
        let n = stream.read(&mut piece).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&piece[..n]);
    }
    let body = buf.drain(..len).collect();
    Ok(Some(Incoming {
        method,
        target,
        headers,
        body,
    }))
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| core::str::from_utf8(v).ok())
}

fn query_param<'a>(target: &'a str, name: &str) -> Option<&'a str> {
    let (_, q) = target.split_once('?')?;
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `bytes=a-b` → (a, Some(b - a + 1)); `bytes=a-` → (a, None).
fn asked_range(headers: &[(String, Vec<u8>)]) -> Option<(u64, Option<u64>)> {
    let v = header(headers, "range")?.trim().strip_prefix("bytes=")?;
    let (a, b) = v.split_once('-')?;
    let a: u64 = a.trim().parse().ok()?;
    if b.trim().is_empty() {
        return Some((a, None));
    }
    let b: u64 = b.trim().parse().ok()?;
    (b >= a).then_some((a, Some(b - a + 1)))
}

/// An open-ended image request: its answer may span many chunks.
#[derive(Debug, Clone)]
struct Streamed {
    path: String,
    /// The chunk the answer starts at.
    first: u64,
    /// The chunk length.
    chunk: u64,
}

fn path_of(target: &str) -> &str {
    target.split_once('?').map_or(target, |(p, _)| p)
}

/// Classifies a request and picks the fault that fires on it, if any; for an open-ended
/// image request, also what [`defer_later`] needs.
fn decide(shared: &SharedRef, req: &Incoming) -> (RequestInfo, Option<Fault>, Option<Streamed>) {
    let mut s = lock(shared);
    s.requests += 1;
    let path = path_of(&req.target).to_owned();
    let mut streamed = None;
    let (kind, index) = match (req.method.as_str(), path.as_str()) {
        ("POST", "/api/v2/device/checkin") | ("GET", "/api/inverter/fota/manifest") => {
            s.checkins += 1;
            let kind = if path.ends_with("checkin") {
                Kind::Checkin
            } else {
                Kind::Manifest
            };
            (kind, Some(s.checkins))
        }
        ("GET", "/api/inverter/fota/chunk") => (
            Kind::Chunk,
            query_param(&req.target, "chunk_number").and_then(|n| n.parse().ok()),
        ),
        ("GET", p) if p.starts_with("/api/v2/device/blobs/") => {
            if s.hashlist_path.as_deref() == Some(p) {
                (Kind::Hashlist, None)
            } else {
                let learned = s.image_chunk.filter(|_| s.image_path.as_deref() == Some(p));
                let index = asked_range(&req.headers).map(|(offset, len)| {
                    let seen = s.chunk_len.entry(p.to_owned()).or_insert(0);
                    if let Some(len) = len {
                        *seen = (*seen).max(len);
                    }
                    let chunk = learned.unwrap_or(*seen).max(1);
                    if len.is_none() && learned.is_some() {
                        streamed = Some(Streamed {
                            path: p.to_owned(),
                            first: offset / chunk,
                            chunk,
                        });
                    }
                    offset / chunk
                });
                (Kind::Chunk, Some(index.unwrap_or(0)))
            }
        }
        ("POST", "/api/v2/device/events") => (Kind::Event, None),
        ("POST", "/api/inverter/fota/status") => (Kind::Status, None),
        ("GET", "/api/inverter/fota/rollback-status") => (Kind::Rollback, None),
        _ => (Kind::Other, None),
    };
    let info = RequestInfo {
        number: s.requests,
        kind,
        index,
    };
    if let Some(st) = &streamed
        && let Some(f) = s.deferred.remove(&(st.path.clone(), st.first))
    {
        tracing::info!(request = info.number, index = st.first, fault = %f, "deferred net fault");
        return (info, Some(f), streamed);
    }
    let chosen = pick(&mut s, info);
    (info, chosen, streamed)
}

/// The fault of the first rule that fires on `info`, counted as fired.
fn pick(s: &mut Shared, info: RequestInfo) -> Option<Fault> {
    let mut chosen = None;
    for i in 0..s.spec.rules.len() {
        let rule = s.spec.rules[i];
        if !rule.target.matches(&info) || rule.limit.is_some_and(|l| s.fired_counts[i] >= l) {
            continue;
        }
        if rule.probability < 1.0 && !s.rng.random_bool(rule.probability.clamp(0.0, 1.0)) {
            continue;
        }
        s.fired_counts[i] += 1;
        s.fired.push(Fired {
            request: info,
            fault: rule.fault,
        });
        chosen = Some(rule.fault);
        break;
    }
    if let Some(f) = chosen {
        tracing::info!(request = info.number, kind = ?info.kind, index = ?info.index, fault = %f, "net fault");
    }
    chosen
}

/// A streamed answer that no fault hit on its first chunk: the first later chunk a rule fires
/// on gets the fault deferred to the request that starts there, and the answer's body is to
/// end where that chunk starts. Returns that length.
fn defer_later(shared: &SharedRef, number: u64, st: &Streamed, body_len: u64) -> Option<u64> {
    let mut s = lock(shared);
    let chunks = body_len.div_ceil(st.chunk);
    for k in st.first + 1..st.first + chunks {
        let info = RequestInfo {
            number,
            kind: Kind::Chunk,
            index: Some(k),
        };
        if let Some(f) = pick(&mut s, info) {
            s.deferred.insert((st.path.clone(), k), f);
            return Some((k - st.first) * st.chunk);
        }
    }
    None
}

/// Remembers the image and hash-list paths a check-in answer names.
fn learn(shared: &SharedRef, body: &[u8]) {
    let Ok(answer) = fota_protocol::v2::CheckInAnswer::decode(body) else {
        return;
    };
    let strip = |u: &str| -> Option<String> {
        if u.is_empty() {
            return None;
        }
        let path = if u.starts_with('/') {
            u
        } else {
            u.find("://")
                .and_then(|i| u[i + 3..].find('/').map(|j| &u[i + 3 + j..]))?
        };
        Some(path_of(path).to_owned())
    };
    let chunk = answer
        .manifest
        .and_then(|m| fota_protocol::v2::manifest::parse_envelope(m).ok())
        .and_then(|(format, e)| {
            fota_protocol::v2::ManifestBody::decode_unverified(format, e.unverified_body()).ok()
        })
        .map(|b| u64::from(b.chunk_size));
    let mut s = lock(shared);
    if let Some(c) = chunk {
        s.image_chunk = Some(c);
    }
    if let Some(p) = strip(answer.image_url) {
        s.image_path = Some(p);
    }
    if let Some(p) = strip(answer.hashlist_url) {
        s.hashlist_path = Some(p);
    }
}

struct Answer {
    status: StatusCode,
    headers: Vec<(String, Vec<u8>)>,
    body: Bytes,
}

async fn upstream_conn(up: &Upstream) -> io::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect((up.host.as_str(), up.port)).await?;
    let _ = stream.set_nodelay(true);
    let Some(tls) = &up.tls else {
        return http1(stream).await;
    };
    let name = rustls::pki_types::ServerName::try_from(up.host.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
        .connect(name, stream)
        .await?;
    http1(stream).await
}

async fn http1<I>(io: I) -> io::Result<SendRequest<Full<Bytes>>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
];

async fn forward(
    sender: &mut Option<SendRequest<Full<Bytes>>>,
    up: &Upstream,
    req: &Incoming,
    strip_range: bool,
) -> io::Result<Answer> {
    let usable = match sender.as_mut() {
        Some(s) => !s.is_closed() && s.ready().await.is_ok(),
        None => false,
    };
    if !usable {
        *sender = Some(upstream_conn(up).await?);
    }
    let Some(s) = sender.as_mut() else {
        return Err(io::ErrorKind::NotConnected.into());
    };
    let method = Method::from_bytes(req.method.as_bytes()).map_err(io::Error::other)?;
    let mut builder = Request::builder().method(method).uri(req.target.as_str());
    for (k, v) in &req.headers {
        if HOP_BY_HOP.contains(&k.as_str()) || k == "host" {
            continue;
        }
        if strip_range && (k == "range" || k == "if-range") {
            continue;
        }
        builder = builder.header(k.as_str(), v.as_slice());
    }
    builder = builder.header("host", up.authority.as_str());
    let request = builder
        .body(Full::new(Bytes::copy_from_slice(&req.body)))
        .map_err(io::Error::other)?;
    let response = s.send_request(request).await.map_err(io::Error::other)?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| io::Error::other(e.to_string()))?
        .to_bytes();
    let headers = parts
        .headers
        .iter()
        .filter(|(k, _)| !HOP_BY_HOP.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    Ok(Answer {
        status: parts.status,
        headers,
        body,
    })
}

fn head_bytes(status: StatusCode, headers: &[(String, Vec<u8>)], len: Option<usize>) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    match len {
        Some(n) => out.extend_from_slice(format!("content-length: {n}\r\n").as_bytes()),
        None => out.extend_from_slice(b"connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn junk(shared: &SharedRef, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    lock(shared).rng.fill(&mut v[..]);
    v
}

/// What to do with the connection after an answer.
enum After {
    KeepAlive,
    Close,
    Reset,
}

/// Writes `answer` with `fault`. Body faults land inside the first `unit` bytes (the first
/// chunk of a streamed answer; the whole body otherwise). `end_at` ends the body early,
/// short of its declared length, with a clean close.
async fn write_answer(
    stream: &mut TcpStream,
    shared: &SharedRef,
    answer: Answer,
    fault: Option<Fault>,
    unit: Option<usize>,
    end_at: Option<usize>,
) -> io::Result<After> {
    let Answer {
        status,
        headers,
        body,
    } = answer;
    let len = body.len();
    let unit = unit.unwrap_or(len).min(len);
    let count = |n: usize| lock(shared).body_bytes += n as u64;
    if let Some(keep) = end_at.filter(|&k| k < len) {
        stream
            .write_all(&head_bytes(status, &headers, Some(len)))
            .await?;
        stream.write_all(&body[..keep]).await?;
        stream.flush().await?;
        count(keep);
        return Ok(After::Close);
    }
    match fault {
        Some(Fault::Drop(at)) => {
            let at = at.unwrap_or(unit / 2).min(unit.saturating_sub(1));
            stream
                .write_all(&head_bytes(status, &headers, Some(len)))
                .await?;
            stream.write_all(&body[..at]).await?;
            stream.flush().await?;
            count(at);
            Ok(After::Reset)
        }
        Some(Fault::Truncate(cut)) => {
            let keep = unit.saturating_sub(cut.unwrap_or(unit / 2).max(1));
            stream
                .write_all(&head_bytes(status, &headers, Some(len)))
                .await?;
            stream.write_all(&body[..keep]).await?;
            stream.flush().await?;
            count(keep);
            Ok(After::Close)
        }
        Some(Fault::Overlong(extra)) => {
            let tail = junk(shared, extra);
            stream
                .write_all(&head_bytes(status, &headers, Some(len + extra)))
                .await?;
            stream.write_all(&body).await?;
            stream.write_all(&tail).await?;
            count(len + extra);
            Ok(After::KeepAlive)
        }
        Some(Fault::Endless) => {
            stream
                .write_all(&head_bytes(status, &headers, None))
                .await?;
            stream.write_all(&body).await?;
            let block = junk(shared, 16 * 1024);
            let mut sent = len;
            while sent < ENDLESS_CAP {
                if stream.write_all(&block).await.is_err() {
                    break;
                }
                sent += block.len();
            }
            count(sent);
            Ok(After::Close)
        }
        Some(Fault::Flip(n)) => {
            let mut body = body.to_vec();
            if unit > 0 {
                let mut s = lock(shared);
                for _ in 0..n {
                    let i = s.rng.random_range(0..unit);
                    body[i] ^= s.rng.random_range(1..=255u8);
                }
            }
            stream
                .write_all(&head_bytes(status, &headers, Some(len)))
                .await?;
            stream.write_all(&body).await?;
            count(len);
            Ok(After::KeepAlive)
        }
        Some(Fault::Stall(d)) => {
            stream
                .write_all(&head_bytes(status, &headers, Some(len)))
                .await?;
            stream.write_all(&body[..unit / 2]).await?;
            stream.flush().await?;
            tokio::time::sleep(d).await;
            stream.write_all(&body[unit / 2..]).await?;
            count(len);
            Ok(After::KeepAlive)
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            stream
                .write_all(&head_bytes(status, &headers, Some(len)))
                .await?;
            stream.write_all(&body).await?;
            count(len);
            Ok(After::KeepAlive)
        }
        _ => {
            stream
                .write_all(&head_bytes(status, &headers, Some(len)))
                .await?;
            stream.write_all(&body).await?;
            count(len);
            Ok(After::KeepAlive)
        }
    }
}

fn synthetic(status: u16, message: &str) -> Answer {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = serde_json::json!({ "error": { "code": "injected", "message": message } });
    Answer {
        status,
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        body: Bytes::from(body.to_string()),
    }
}

async fn serve_conn(mut stream: TcpStream, shared: SharedRef, up: Upstream) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    let mut sender = None;
    while let Some(req) = read_request(&mut stream, &mut buf).await? {
        let (info, fault, streamed) = decide(&shared, &req);
        let mut answer = match fault {
            Some(Fault::Reset) => {
                stream.set_zero_linger()?;
                return Ok(());
            }
            Some(Fault::Status(code)) => synthetic(code, "injected by the fault proxy"),
            _ => match forward(&mut sender, &up, &req, fault == Some(Fault::NoRange)).await {
                Ok(a) => a,
                Err(e) => {
                    sender = None;
                    synthetic(502, &format!("upstream: {e}"))
                }
            },
        };
        if answer.status == StatusCode::OK {
            let rewrite = lock(&shared).rewrite.0.clone();
            if let Some(body) = rewrite.and_then(|f| f(info, &answer.body)) {
                answer.body = Bytes::from(body);
            }
        }
        if matches!(info.kind, Kind::Checkin) && answer.status == StatusCode::OK {
            learn(&shared, &answer.body);
        }
        let partial = answer.status == StatusCode::PARTIAL_CONTENT;
        let streamed = streamed.filter(|_| partial);
        let unit = streamed
            .as_ref()
            .and_then(|st| usize::try_from(st.chunk).ok());
        let end_at = match (&streamed, fault) {
            (Some(st), None) => defer_later(&shared, info.number, st, answer.body.len() as u64)
                .and_then(|n| usize::try_from(n).ok()),
            _ => None,
        };
        match write_answer(&mut stream, &shared, answer, fault, unit, end_at).await? {
            After::KeepAlive => {}
            After::Close => {
                let _ = stream.shutdown().await;
                return Ok(());
            }
            After::Reset => {
                stream.set_zero_linger()?;
                return Ok(());
            }
        }
    }
    Ok(())
}
