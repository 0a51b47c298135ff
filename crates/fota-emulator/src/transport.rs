//! The agent's [`Transport`]: the v2 and legacy device API over [`HttpClient`], and
//! [`Observing`], which notes what each check-in offered so the runtime can tell when the
//! device runs what the server wants (`--until updated`).

use std::sync::{Arc, Mutex, PoisonError};

use fota_agent::{Transport, TransportError};
use fota_protocol::legacy::{ManifestAnswer, paths};
use fota_protocol::v2::{CheckInAnswer, manifest_digest};
use hyper::Method;

use crate::http::{HttpClient, HttpError};

/// The v2 check-in path.
pub const CHECKIN_PATH: &str = "/api/v2/device/checkin";
/// The v2 events path.
pub const EVENTS_PATH: &str = "/api/v2/device/events";

impl From<HttpError> for TransportError {
    fn from(e: HttpError) -> Self {
        match e {
            // An untrusted server is one the device cannot reach.
            HttpError::Connect(_) | HttpError::Tls(_) => Self::Connect,
            HttpError::Timeout => Self::Timeout,
            HttpError::TooLarge { .. } => Self::TooLarge,
            HttpError::Truncated { .. } => Self::Truncated,
            HttpError::BadRange(_) => Self::BadRange,
            HttpError::Status(code) => Self::Status(code),
            _ => Self::Other,
        }
    }
}

/// The device API over HTTP. The bearer device token (v2) is set on the [`HttpClient`].
///
/// Reads of the image the last check-in answer named are streamed
/// ([`HttpClient::get_range_stream`]): the agent reads the image chunk after chunk, so one
/// open-ended range request serves them all. Other ranges (the hash list's pages, read out of
/// order) are single requests.
#[derive(Debug)]
pub struct HttpTransport {
    client: HttpClient,
    image_url: Option<String>,
}

impl HttpTransport {
    /// A transport over `client`.
    pub fn new(client: HttpClient) -> Self {
        Self {
            client,
            image_url: None,
        }
    }

    /// The HTTP client (for its wire counters).
    pub fn client(&self) -> &HttpClient {
        &self.client
    }
}

fn log_err<T>(what: &str, target: &str, r: Result<T, HttpError>) -> Result<T, TransportError> {
    r.map_err(|e| {
        tracing::debug!(request = what, target, error = %e, "request failed");
        e.into()
    })
}

impl Transport for HttpTransport {
    async fn checkin(&mut self, body: &[u8], resp: &mut [u8]) -> Result<usize, TransportError> {
        let r = self
            .client
            .fetch(
                Method::POST,
                CHECKIN_PATH,
                Some("application/octet-stream"),
                body,
                resp,
            )
            .await;
        let n = log_err("checkin", CHECKIN_PATH, r)?;
        // Only to know which URL to stream; the agent verifies the answer itself.
        if let Some(answer) = resp.get(..n).and_then(|b| CheckInAnswer::decode(b).ok())
            && !answer.image_url.is_empty()
        {
            self.image_url = Some(answer.image_url.to_owned());
        }
        Ok(n)
    }

    async fn get_range(
        &mut self,
        url: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, TransportError> {
        let r = if self.image_url.as_deref() == Some(url) {
            self.client.get_range_stream(url, offset, buf).await
        } else {
            self.client.get_range(url, offset, buf).await
        };
        log_err("range", url, r)
    }

    async fn event(&mut self, body: &[u8]) -> Result<(), TransportError> {
        let mut sink = [0u8; 1024];
        let r = self
            .client
            .fetch(
                Method::POST,
                EVENTS_PATH,
                Some("application/octet-stream"),
                body,
                &mut sink,
            )
            .await;
        log_err("event", EVENTS_PATH, r).map(|_| ())
    }

    async fn legacy_get(
        &mut self,
        path_and_query: &str,
        resp: &mut [u8],
    ) -> Result<usize, TransportError> {
        let r = self
            .client
            .fetch(Method::GET, path_and_query, None, b"", resp)
            .await;
        log_err("legacy get", path_and_query, r)
    }

    async fn legacy_post(&mut self, path: &str, body: &[u8]) -> Result<(), TransportError> {
        let mut sink = [0u8; 4096];
        let r = self
            .client
            .fetch(
                Method::POST,
                path,
                Some("application/json"),
                body,
                &mut sink,
            )
            .await;
        log_err("legacy post", path, r).map(|_| ())
    }
}

/// What the last check-in (v2) or manifest poll (legacy) offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Offer {
    /// No check-in answered yet.
    #[default]
    Unknown,
    /// Nothing to install (no manifest; legacy: no firmware).
    Nothing,
    /// v2: a release, by manifest digest.
    Manifest([u8; 32]),
    /// legacy: a release, by image SHA-256.
    Image([u8; 32]),
}

/// The shared record of [`Offer`]s.
#[derive(Debug, Clone, Default)]
pub struct OfferLog(Arc<Mutex<(Offer, u64)>>);

impl OfferLog {
    fn set(&self, offer: Offer) {
        let mut g = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        g.0 = offer;
        g.1 += 1;
    }

    /// The last offer and how many check-ins were answered.
    pub fn last(&self) -> (Offer, u64) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wraps a transport and notes what each check-in answer offers. It reads the answers the
/// agent receives, never changes them, and decides nothing: the agent verifies everything.
#[derive(Debug)]
pub struct Observing<T> {
    inner: T,
    log: OfferLog,
}

impl<T> Observing<T> {
    /// Observes `inner` into `log`.
    pub fn new(inner: T, log: OfferLog) -> Self {
        Self { inner, log }
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }
}

impl<T: Transport> Transport for Observing<T> {
    async fn checkin(&mut self, body: &[u8], resp: &mut [u8]) -> Result<usize, TransportError> {
        let n = self.inner.checkin(body, resp).await?;
        if let Some(answer) = resp.get(..n).and_then(|b| CheckInAnswer::decode(b).ok()) {
            self.log.set(match answer.manifest {
                Some(m) => Offer::Manifest(manifest_digest(m)),
                None => Offer::Nothing,
            });
        }
        Ok(n)
    }

    async fn get_range(
        &mut self,
        url: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, TransportError> {
        self.inner.get_range(url, offset, buf).await
    }

    async fn event(&mut self, body: &[u8]) -> Result<(), TransportError> {
        self.inner.event(body).await
    }

    async fn legacy_get(
        &mut self,
        path_and_query: &str,
        resp: &mut [u8],
    ) -> Result<usize, TransportError> {
        let is_manifest = path_and_query
            .split('?')
            .next()
            .is_some_and(|p| p == paths::MANIFEST);
        let r = self.inner.legacy_get(path_and_query, resp).await;
        if is_manifest {
            match &r {
                Ok(n) => {
                    let parsed = resp
                        .get(..*n)
                        .and_then(|b| serde_json::from_slice::<ManifestAnswer<String>>(b).ok())
                        .and_then(|m| fota_protocol::legacy::mac::parse_hex32(&m.hash));
                    if let Some(hash) = parsed {
                        self.log.set(Offer::Image(hash));
                    }
                }
                Err(TransportError::Status(404)) => self.log.set(Offer::Nothing),
                Err(_) => {}
            }
        }
        r
    }

    async fn legacy_post(&mut self, path: &str, body: &[u8]) -> Result<(), TransportError> {
        self.inner.legacy_post(path, body).await
    }
}
