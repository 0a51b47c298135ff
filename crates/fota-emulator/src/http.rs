//! A small HTTP/1.1 client for devices: one keep-alive connection per origin, bodies read
//! straight into the caller's buffer with a hard byte cap, a timeout on every read, and exact
//! wire-byte counters.
//!
//! `http://` and `https://` (rustls on the *ring* provider under the same connection, trusting
//! the platform's roots and, with [`HttpClient::with_tls`], a CA file's: [`tls_config`]; the
//! wire counters then count TLS records, as a device's radio would). Anything the server
//! sends that does not fit the device's rules (a body longer than the buffer, a range other
//! than the one asked for, a stall) ends the request with a typed [`HttpError`] and drops the
//! connection, so a half-read response can never be mistaken for the next one.
//!
//! Image downloads stream ([`HttpClient::get_range_stream`]): one open-ended range request
//! (`Range: bytes=N-`) whose 206 body stays open between reads, each read taking only the
//! bytes asked for, so a download of many chunks costs one response head instead of one per
//! chunk. A stream lives on its own connection (taken out of the pool: its connection is busy
//! until the body ends), serves only the read that starts exactly where it stands, and is
//! dropped, with its connection, on any other read or on any failure.

use core::pin::Pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll};
use core::time::Duration;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

/// Timeouts of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening a TCP connection.
    pub connect: Duration,
    /// Waiting for the response head, and for each piece of the body.
    pub read: Duration,
    /// A whole request, head to last body byte (bounds a server that drips bytes).
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(10),
            request: Duration::from_secs(60),
        }
    }
}

/// Why a request failed. Every failure drops the connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL is not an `http://` or `https://` URL or an absolute path.
    #[error("unusable URL {0:?}")]
    Url(String),
    /// The TLS handshake failed (an untrusted certificate, a name it does not carry), or the
    /// CA file cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The connection could not be made, or broke before the response head.
    #[error("connection: {0}")]
    Connect(String),
    /// The head or a body piece did not arrive in time, or the request took too long.
    #[error("timed out")]
    Timeout,
    /// The body is longer than the caller's buffer (or than its declared length).
    #[error("body longer than {cap} bytes")]
    TooLarge {
        /// The cap.
        cap: usize,
    },
    /// The body ended before its declared length, or the connection broke mid-body.
    #[error("body truncated after {got} bytes")]
    Truncated {
        /// Bytes received.
        got: usize,
    },
    /// A ranged GET was not answered with the asked range.
    #[error("bad range answer: {0}")]
    BadRange(String),
    /// The server answered with an unexpected status.
    #[error("HTTP status {0}")]
    Status(u16),
    /// A request header value the caller gave is not a valid header value.
    #[error("unusable header value {0:?}")]
    Header(String),
}

/// Bytes moved on the wire (request and response heads and bodies, as TCP carried them).
#[derive(Debug, Default)]
pub struct WireCounters {
    /// Bytes sent.
    pub tx: AtomicU64,
    /// Bytes received.
    pub rx: AtomicU64,
    /// TCP connections opened.
    pub connections: AtomicU64,
    /// Requests sent.
    pub requests: AtomicU64,
}

impl WireCounters {
    /// Bytes received so far.
    pub fn rx(&self) -> u64 {
        self.rx.load(Ordering::Relaxed)
    }

    /// Bytes sent so far.
    pub fn tx(&self) -> u64 {
        self.tx.load(Ordering::Relaxed)
    }
}

/// A TCP stream that counts the bytes through it.
struct Counted {
    stream: TcpStream,
    counters: Arc<WireCounters>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        self.counters.rx.fetch_add(n as u64, Ordering::Relaxed);
        poll
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            self.counters.tx.fetch_add(n as u64, Ordering::Relaxed);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Scheme-less origin of a URL: `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    tls: bool,
    host: String,
    port: u16,
}

impl Origin {
    fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

fn parse_base(url: &str) -> Result<(Origin, String), HttpError> {
    let uri: Uri = url.parse().map_err(|_| HttpError::Url(url.into()))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(HttpError::Url(url.into())),
    };
    let host = uri.host().ok_or_else(|| HttpError::Url(url.into()))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let origin = Origin {
        tls,
        host,
        port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    Ok((origin, path))
}

/// HTTP/1.1 on an open connection; its driver runs as a task until the connection ends.
async fn handshake<I>(io: I) -> Result<SendRequest<Full<Bytes>>, HttpError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| HttpError::Connect(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// The head of a response.
#[derive(Debug, Clone)]
pub struct Head {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
}

struct Conn {
    origin: Origin,
    sender: SendRequest<Full<Bytes>>,
}

/// A 206 body kept open after a streamed range read (see the module documentation).
struct Stream {
    /// The target as the caller named it: the key a later read must match.
    target: String,
    /// The connection the body arrives on; busy until the body ends, closed when dropped.
    _conn: Conn,
    body: hyper::body::Incoming,
    /// Bytes of the last frame beyond what was handed out; they start at `next`.
    spare: Bytes,
    /// Offset (in the resource) of the next byte to hand out.
    next: u64,
    /// Offset one past the last byte received from the body so far.
    received: u64,
    /// One past the last byte the answer's `Content-Range` declared.
    end: u64,
    /// Bytes past `end` arrived (and were dropped): the read that reaches `end` fails.
    overflow: bool,
}

/// One device's HTTP client. See the module documentation.
pub struct HttpClient {
    base: Origin,
    base_path: String,
    bearer: Option<HeaderValue>,
    timeouts: Timeouts,
    conns: Vec<Conn>,
    stream: Option<Stream>,
    counters: Arc<WireCounters>,
    /// For `https://` origins; the platform's roots alone until [`HttpClient::with_tls`].
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// A rustls client configuration (the *ring* provider, TLS 1.2 and 1.3) trusting the
/// platform's root certificates and those in `ca_file` (PEM): what `fota emulate --ca-file`
/// (`FOTA_CA_FILE`) gives a device. A `ca_file` that cannot be read or holds no certificate is
/// an error; unreadable entries of the platform store are skipped.
pub fn tls_config(
    ca_file: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, HttpError> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    let _ = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_file {
        let bad = |e: &dyn core::fmt::Display| HttpError::Tls(format!("{}: {e}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| bad(&e))?;
        let mut added = 0usize;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&bytes) {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad(&"no CERTIFICATE block in it"));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl core::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HttpClient")
            .field("base", &self.base.authority())
            .field(
                "bearer",
                &self.bearer.as_ref().map(|_| format_args!("[redacted]")),
            )
            .finish_non_exhaustive()
    }
}

/// Where a request goes and what it carries.
struct Outgoing<'a> {
    method: Method,
    target: &'a str,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    body: Bytes,
}

impl HttpClient {
    /// A client for the server at `base_url` (`http://host:port[/prefix]`). `bearer` is sent
    /// as `Authorization: Bearer …` to that origin only, never to another host a download
    /// URL may name.
    pub fn new(
        base_url: &str,
        bearer: Option<&str>,
        timeouts: Timeouts,
        counters: Arc<WireCounters>,
    ) -> Result<Self, HttpError> {
        let (base, base_path) = parse_base(base_url)?;
        let bearer = bearer
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
            .transpose()
            .map_err(|_| HttpError::Url("token is not a valid header value".into()))?;
        Ok(Self {
            base,
            base_path: base_path.trim_end_matches('/').to_owned(),
            bearer,
            timeouts,
            conns: Vec::new(),
            stream: None,
            counters,
            tls: None,
        })
    }

    /// Verifies `https://` servers with `config` ([`tls_config`]) instead of the platform's
    /// roots alone.
    #[must_use]
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// A client with the same settings and counters and no open connection: what a device
    /// has after a reset.
    pub fn fresh(&self) -> Self {
        Self {
            base: self.base.clone(),
            base_path: self.base_path.clone(),
            bearer: self.bearer.clone(),
            timeouts: self.timeouts,
            conns: Vec::new(),
            stream: None,
            counters: Arc::clone(&self.counters),
            tls: self.tls.clone(),
        }
    }

    /// The wire counters.
    pub fn counters(&self) -> &Arc<WireCounters> {
        &self.counters
    }

    /// Resolves a URL or absolute path to (origin, path and query).
    fn resolve(&self, target: &str) -> Result<(Origin, String), HttpError> {
        if target.starts_with('/') {
            Ok((self.base.clone(), format!("{}{}", self.base_path, target)))
        } else {
            parse_base(target)
        }
    }

    async fn connection(&mut self, origin: &Origin) -> Result<usize, HttpError> {
        if let Some(i) = self.conns.iter().position(|c| &c.origin == origin) {
            let alive = {
                let c = &mut self.conns[i];
                !c.sender.is_closed() && c.sender.ready().await.is_ok()
            };
            if alive {
                return Ok(i);
            }
            self.conns.swap_remove(i);
        }
        let deadline = Instant::now() + self.timeouts.connect;
        let stream = timeout_at(
            deadline,
            TcpStream::connect((origin.host.as_str(), origin.port)),
        )
        .await
        .map_err(|_| HttpError::Timeout)?
        .map_err(|e| HttpError::Connect(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        self.counters.connections.fetch_add(1, Ordering::Relaxed);
        let counted = Counted {
            stream,
            counters: Arc::clone(&self.counters),
        };
        let sender = if origin.tls {
            let config = match &self.tls {
                Some(c) => Arc::clone(c),
                None => {
                    let c = tls_config(None)?;
                    self.tls = Some(Arc::clone(&c));
                    c
                }
            };
            let name = rustls::pki_types::ServerName::try_from(origin.host.clone())
                .map_err(|e| HttpError::Tls(format!("server name {:?}: {e}", origin.host)))?;
            // The handshake shares the connect budget: both are "opening the connection".
            let tls = timeout_at(
                deadline,
                tokio_rustls::TlsConnector::from(config).connect(name, counted),
            )
            .await
            .map_err(|_| HttpError::Timeout)?
            .map_err(|e| HttpError::Tls(e.to_string()))?;
            handshake(tls).await?
        } else {
            handshake(counted).await?
        };
        self.conns.push(Conn {
            origin: origin.clone(),
            sender,
        });
        Ok(self.conns.len() - 1)
    }

    fn drop_conn(&mut self, origin: &Origin) {
        self.conns.retain(|c| &c.origin != origin);
    }

    /// Takes the pooled connection to `origin` out of the pool (for a kept stream).
    fn take_conn(&mut self, origin: &Origin) -> Option<Conn> {
        let i = self.conns.iter().position(|c| &c.origin == origin)?;
        Some(self.conns.swap_remove(i))
    }

    /// Sends a request; returns the head and the body, still to be read.
    async fn send(
        &mut self,
        out: Outgoing<'_>,
        deadline: Instant,
    ) -> Result<(Origin, Head, hyper::body::Incoming), HttpError> {
        let (origin, path) = self.resolve(out.target)?;
        let i = self.connection(&origin).await?;
        let mut req = Request::builder()
            .method(out.method)
            .uri(path.as_str())
            .header(header::HOST, origin.authority())
            .header(header::USER_AGENT, "fota-emulator");
        if origin == self.base
            && let Some(b) = &self.bearer
        {
            req = req.header(header::AUTHORIZATION, b.clone());
        }
        for (k, v) in out.headers {
            req = req.header(k, v);
        }
        let req = req
            .body(Full::new(out.body))
            .map_err(|e| HttpError::Url(e.to_string()))?;
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let wait = deadline.min(Instant::now() + self.timeouts.read);
        let sent = timeout_at(wait, self.conns[i].sender.send_request(req)).await;
        let response = match sent {
            Err(_) => {
                self.drop_conn(&origin);
                return Err(HttpError::Timeout);
            }
            Ok(Err(e)) => {
                self.drop_conn(&origin);
                return Err(HttpError::Connect(e.to_string()));
            }
            Ok(Ok(r)) => r,
        };
        let (parts, body) = response.into_parts();
        Ok((
            origin,
            Head {
                status: parts.status,
                headers: parts.headers,
            },
            body,
        ))
    }

    /// Reads `body` into `buf`; more than `buf.len()` bytes is [`HttpError::TooLarge`].
    /// `stop_at_cap` instead stops reading once `buf` is full (and drops the connection).
    async fn read_body(
        &mut self,
        origin: &Origin,
        mut body: hyper::body::Incoming,
        buf: &mut [u8],
        deadline: Instant,
        stop_at_cap: bool,
    ) -> Result<usize, HttpError> {
        let mut got = 0usize;
        loop {
            let wait = deadline.min(Instant::now() + self.timeouts.read);
            let frame = match timeout_at(wait, body.frame()).await {
                Err(_) => {
                    self.drop_conn(origin);
                    return Err(HttpError::Timeout);
                }
                Ok(None) => return Ok(got),
                Ok(Some(Err(_))) => {
                    self.drop_conn(origin);
                    return Err(HttpError::Truncated { got });
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let room = buf.len() - got;
            if data.len() > room {
                self.drop_conn(origin);
                if stop_at_cap {
                    buf[got..].copy_from_slice(&data[..room]);
                    return Ok(buf.len());
                }
                return Err(HttpError::TooLarge { cap: buf.len() });
            }
            buf[got..got + data.len()].copy_from_slice(&data);
            got += data.len();
        }
    }

    /// Drains a small error body so the connection stays usable, or drops it.
    async fn discard(&mut self, origin: &Origin, body: hyper::body::Incoming, deadline: Instant) {
        let mut sink = [0u8; 4096];
        if self
            .read_body(origin, body, &mut sink, deadline, false)
            .await
            .is_err()
        {
            self.drop_conn(origin);
        }
    }

    fn declared_len(head: &Head) -> Option<u64> {
        head.headers
            .get(header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// A request whose 2xx body is read into `resp`; other statuses are [`HttpError::Status`].
    pub async fn fetch(
        &mut self,
        method: Method,
        target: &str,
        content_type: Option<&str>,
        body: &[u8],
        resp: &mut [u8],
    ) -> Result<usize, HttpError> {
        let deadline = Instant::now() + self.timeouts.request;
        let mut headers = Vec::new();
        if let Some(ct) = content_type {
            let value = HeaderValue::from_str(ct).map_err(|_| HttpError::Header(ct.to_owned()))?;
            headers.push((header::CONTENT_TYPE, value));
        }
        let out = Outgoing {
            method,
            target,
            headers,
            body: Bytes::copy_from_slice(body),
        };
        let (origin, head, incoming) = self.send(out, deadline).await?;
        if !head.status.is_success() {
            self.discard(&origin, incoming, deadline).await;
            return Err(HttpError::Status(head.status.as_u16()));
        }
        if Self::declared_len(&head).is_some_and(|n| n > resp.len() as u64) {
            self.drop_conn(&origin);
            return Err(HttpError::TooLarge { cap: resp.len() });
        }
        let n = self
            .read_body(&origin, incoming, resp, deadline, false)
            .await?;
        if let Some(declared) = Self::declared_len(&head)
            && declared != n as u64
        {
            self.drop_conn(&origin);
            return Err(HttpError::Truncated { got: n });
        }
        Ok(n)
    }

    /// Bytes `[offset, offset + buf.len())` of `target` with `Range`. Accepted answers: 206
    /// whose `Content-Range` starts at `offset` and ends at the asked end (or earlier, only
    /// at the end of the resource), with a body of exactly that length; or 200 for
    /// `offset == 0`, of which at most `buf.len()` bytes are read. Anything else is
    /// [`HttpError::BadRange`] (or the status). Returns the bytes read.
    pub async fn get_range(
        &mut self,
        target: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, HttpError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = Instant::now() + self.timeouts.request;
        let last = offset + buf.len() as u64 - 1;
        let range = HeaderValue::from_str(&format!("bytes={offset}-{last}"))
            .map_err(|e| HttpError::Url(e.to_string()))?;
        let out = Outgoing {
            method: Method::GET,
            target,
            headers: vec![(header::RANGE, range)],
            body: Bytes::new(),
        };
        let (origin, head, incoming) = self.send(out, deadline).await?;
        match head.status {
            StatusCode::PARTIAL_CONTENT => {
                let (start, end, _total) = match content_range(&head.headers) {
                    Some(r) => r,
                    None => {
                        self.drop_conn(&origin);
                        return Err(HttpError::BadRange(
                            "206 without a valid Content-Range".into(),
                        ));
                    }
                };
                let end_ok = end == last || (end < last && end + 1 == _total);
                if start != offset || !end_ok {
                    self.drop_conn(&origin);
                    return Err(HttpError::BadRange(format!(
                        "asked {offset}-{last}, got {start}-{end}"
                    )));
                }
                let want = (end - start + 1) as usize;
                if Self::declared_len(&head).is_some_and(|n| n != want as u64) {
                    self.drop_conn(&origin);
                    return Err(HttpError::BadRange(
                        "Content-Length differs from Content-Range".into(),
                    ));
                }
                let n = self
                    .read_body(&origin, incoming, &mut buf[..want], deadline, false)
                    .await?;
                if n != want {
                    self.drop_conn(&origin);
                    return Err(HttpError::Truncated { got: n });
                }
                Ok(n)
            }
            StatusCode::OK if offset == 0 => {
                let declared = Self::declared_len(&head);
                let n = self
                    .read_body(&origin, incoming, buf, deadline, true)
                    .await?;
                let complete = n == buf.len() || declared.is_none_or(|d| d == n as u64);
                if !complete {
                    self.drop_conn(&origin);
                    return Err(HttpError::Truncated { got: n });
                }
                Ok(n)
            }
            StatusCode::OK => {
                self.drop_conn(&origin);
                Err(HttpError::BadRange(format!(
                    "200 (whole resource) for a range at offset {offset}"
                )))
            }
            status => {
                self.discard(&origin, incoming, deadline).await;
                Err(HttpError::Status(status.as_u16()))
            }
        }
    }
}

impl HttpClient {
    /// Bytes `[offset, offset + buf.len())` of `target`, streamed: what
    /// [`Self::get_range`] returns, from fewer requests.
    ///
    /// A read that starts exactly where the kept stream of `target` stands continues it.
    /// Otherwise, and once more when the kept stream fails (ends early, breaks, stalls past
    /// the read timeout, or sends more than it declared), a fresh `Range: bytes=offset-`
    /// request is made; its failure is returned. Accepted fresh answers: 206 whose
    /// `Content-Range` starts at `offset` and runs to the end of the resource, with a
    /// `Content-Length` (if any) equal to that length, then kept for the next read; or 200
    /// for `offset == 0`, of which at most `buf.len()` bytes are read and which is never kept
    /// (a server ignoring `Range` still fails every later read with
    /// [`HttpError::BadRange`]). A read never takes more than `buf.len()` bytes or goes past
    /// the declared end; the read that reaches the end also requires the body to end there
    /// ([`HttpError::TooLarge`] otherwise). Returns the bytes read (short only at the end of
    /// the resource).
    pub async fn get_range_stream(
        &mut self,
        target: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, HttpError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = Instant::now() + self.timeouts.request;
        if let Some(mut kept) = self.stream.take()
            && kept.target == target
            && kept.next == offset
        {
            match read_stream(&mut kept, buf, self.timeouts.read, deadline).await {
                Ok(n) => {
                    if kept.next < kept.end {
                        self.stream = Some(kept);
                    }
                    return Ok(n);
                }
                // Dropped with its connection; a long download survives one broken stream.
                Err(e) => tracing::debug!(target, offset, error = %e, "kept stream failed"),
            }
        }
        self.fresh_stream(target, offset, buf, deadline).await
    }

    async fn fresh_stream(
        &mut self,
        target: &str,
        offset: u64,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<usize, HttpError> {
        let range = HeaderValue::from_str(&format!("bytes={offset}-"))
            .map_err(|e| HttpError::Url(e.to_string()))?;
        let out = Outgoing {
            method: Method::GET,
            target,
            headers: vec![(header::RANGE, range)],
            body: Bytes::new(),
        };
        let (origin, head, incoming) = self.send(out, deadline).await?;
        match head.status {
            StatusCode::PARTIAL_CONTENT => {
                let Some((start, last, total)) = content_range(&head.headers) else {
                    self.drop_conn(&origin);
                    return Err(HttpError::BadRange(
                        "206 without a valid Content-Range".into(),
                    ));
                };
                // Asked to the end of the resource: an answer ending earlier (with a known
                // total) is not what was asked.
                if start != offset || (total != u64::MAX && last + 1 != total) {
                    self.drop_conn(&origin);
                    return Err(HttpError::BadRange(format!(
                        "asked {offset}-, got {start}-{last}/{total}"
                    )));
                }
                if Self::declared_len(&head).is_some_and(|n| n != last - start + 1) {
                    self.drop_conn(&origin);
                    return Err(HttpError::BadRange(
                        "Content-Length differs from Content-Range".into(),
                    ));
                }
                let Some(conn) = self.take_conn(&origin) else {
                    return Err(HttpError::Connect("connection lost".into()));
                };
                let mut fresh = Stream {
                    target: target.to_owned(),
                    _conn: conn,
                    body: incoming,
                    spare: Bytes::new(),
                    next: offset,
                    received: offset,
                    end: last + 1,
                    overflow: false,
                };
                let n = read_stream(&mut fresh, buf, self.timeouts.read, deadline).await?;
                if fresh.next < fresh.end {
                    self.stream = Some(fresh);
                }
                Ok(n)
            }
            StatusCode::OK if offset == 0 => {
                let declared = Self::declared_len(&head);
                let n = self
                    .read_body(&origin, incoming, buf, deadline, true)
                    .await?;
                // Never kept: the next read (at offset > 0) must go to the server again.
                self.drop_conn(&origin);
                let complete = n == buf.len() || declared.is_none_or(|d| d == n as u64);
                if !complete {
                    return Err(HttpError::Truncated { got: n });
                }
                Ok(n)
            }
            StatusCode::OK => {
                self.drop_conn(&origin);
                Err(HttpError::BadRange(format!(
                    "200 (whole resource) for a range at offset {offset}"
                )))
            }
            status => {
                self.discard(&origin, incoming, deadline).await;
                Err(HttpError::Status(status.as_u16()))
            }
        }
    }
}

/// Hands out the next `min(buf.len(), end - next)` bytes of a stream. The read that reaches
/// the declared end also waits for the body to end. Any error leaves the stream unusable.
async fn read_stream(
    s: &mut Stream,
    buf: &mut [u8],
    read_timeout: Duration,
    deadline: Instant,
) -> Result<usize, HttpError> {
    let left = usize::try_from(s.end - s.next).unwrap_or(usize::MAX);
    let want = buf.len().min(left);
    let mut got = 0usize;
    while got < want {
        if s.spare.is_empty() {
            s.spare = next_data(s, read_timeout, deadline)
                .await?
                .ok_or(HttpError::Truncated { got })?;
        }
        let take = (want - got).min(s.spare.len());
        buf[got..got + take].copy_from_slice(&s.spare.split_to(take));
        got += take;
    }
    s.next += got as u64;
    if s.next == s.end {
        // More than declared is refused, not left unread: the next byte must be the end.
        if s.overflow || next_data(s, read_timeout, deadline).await?.is_some() {
            return Err(HttpError::TooLarge { cap: want });
        }
    }
    Ok(got)
}

/// The next non-empty data frame of a stream's body, `None` at its end. Bytes past the
/// declared end are never handed out: a frame is cut there and the stream marked, so the read
/// that reaches the end fails with [`HttpError::TooLarge`] (and a frame wholly past it fails
/// at once).
async fn next_data(
    s: &mut Stream,
    read_timeout: Duration,
    deadline: Instant,
) -> Result<Option<Bytes>, HttpError> {
    loop {
        let wait = deadline.min(Instant::now() + read_timeout);
        let frame = match timeout_at(wait, s.body.frame()).await {
            Err(_) => return Err(HttpError::Timeout),
            Ok(None) => return Ok(None),
            // After every declared byte, a broken close-delimited body has still ended.
            Ok(Some(Err(_))) if s.received == s.end => return Ok(None),
            Ok(Some(Err(_))) => {
                return Err(HttpError::Truncated {
                    got: usize::try_from(s.received - s.next).unwrap_or(usize::MAX),
                });
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        let room = s.end - s.received;
        if data.len() as u64 > room {
            s.overflow = true;
            if room == 0 {
                return Err(HttpError::TooLarge {
                    cap: usize::try_from(s.end - s.next).unwrap_or(usize::MAX),
                });
            }
            s.received = s.end;
            return Ok(Some(data.slice(..usize::try_from(room).unwrap_or(0))));
        }
        s.received += data.len() as u64;
        return Ok(Some(data));
    }
}

/// Parses `Content-Range: bytes a-b/total` (total may be `*`, read as unknown = u64::MAX).
fn content_range(headers: &HeaderMap) -> Option<(u64, u64, u64)> {
    let v = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let a: u64 = a.trim().parse().ok()?;
    let b: u64 = b.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => u64::MAX,
        t => t.parse().ok()?,
    };
    (a <= b && b < total).then_some((a, b, total))
}

#[cfg(test)]
mod tests;
