//! [`Client`]: one method per operator endpoint, and the [`Error`] every one of them returns.

use core::time::Duration;
use std::io::{self, Read};
use std::time::SystemTime;

use fota_api::multipart::{self, Form};
use fota_api::release::ReleaseParts;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};
use ureq::Body;
use ureq::http::Response;

use crate::api::{
    ApiToken, AssignRequest, AssignResponse, AuditRecord, Device, DeviceEvent, LegacyUploadAnswer,
    NewDeviceRequest, NewTokenRequest, NewTokenResponse, Provisioning, Release, Role,
    RollbackOrder, RollbackRequest, RootChainInfo, ServerInfo,
};

/// Largest JSON answer read (a device list of a big fleet is a few MiB).
const MAX_ANSWER: u64 = 256 << 20;
/// Time allowed to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a whole ordinary request; uploads have no overall limit, only this much
/// silence while waiting for the answer (the server verifies the whole image first).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const UPLOAD_ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the request and said why, in its JSON error body. `code` is stable
    /// (`unauthorized`, `forbidden`, `not_found`, `conflict`, `version_mismatch`, ...).
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's machine-readable code.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// A failed answer without the server's error body: something else answered (a proxy, or
    /// not a FOTA server at all).
    #[error("HTTP {status} from {url}: {body}")]
    Http {
        /// HTTP status.
        status: u16,
        /// The request URL.
        url: String,
        /// The start of the answer's body.
        body: String,
    },
    /// No answer: connection refused, timeout, connection closed mid-way. (Its `Display`
    /// leaves the cause to `source()`, so error chains print it once.)
    #[error("no answer from {url}")]
    Transport {
        /// The request URL.
        url: String,
        /// What the HTTP stack said.
        #[source]
        source: ureq::Error,
    },
    /// A successful answer that is not what the API documents (a server of another version?).
    #[error("unexpected answer from {url}: {detail}")]
    Decode {
        /// The request URL.
        url: String,
        /// What did not parse.
        detail: String,
    },
    /// The CA file given for `https://` cannot be used.
    #[error("CA file {path}: {detail}")]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The server URL cannot be used.
    #[error("server URL {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A release named by version or id does not exist.
    #[error("no release {0}")]
    NoRelease(String),
    /// A version names releases of several classes.
    #[error("version {version:?} exists in several classes ({}); name the class or use the release id", classes.join(", "))]
    AmbiguousRelease {
        /// The version asked for.
        version: String,
        /// Classes holding it.
        classes: Vec<String>,
    },
    /// [`Client::wait_for_device`] gave up.
    #[error("device {device} did not get there within {waited:?} (last state {state:?})")]
    Timeout {
        /// The device waited for.
        device: String,
        /// How long it waited.
        waited: Duration,
        /// Its state when the wait ended.
        state: String,
    },
    /// The image to upload could not be read to the end.
    #[error("reading the image")]
    Image(#[source] io::Error),
}

impl Error {
    /// HTTP status of a server answer, if the request got one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's error code, if it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

type Result<T, E = Error> = core::result::Result<T, E>;

/// What a release upload did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Upload {
    /// The release as the server stores it.
    pub release: Release,
    /// Whether this upload stored it; `false` when the server already held the same signed
    /// manifest (it answered 200, not 201, and changed nothing).
    pub created: bool,
}

/// A blocking client for one server, with one operator token.
///
/// Cheap to clone; connections are pooled.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.base)
            .field(
                "token",
                &self.token.as_ref().map(|_| format_args!("[redacted]")),
            )
            .finish_non_exhaustive()
    }
}

/// rustls on the *ring* provider, trusting the platform's roots and the certificates of
/// `ca_file`. The platform store is read as it is (unreadable entries skipped); an unusable
/// `ca_file` is an error, since the operator asked for it.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<ureq::tls::TlsConfig> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots: Vec<ureq::tls::Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .into_iter()
        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    if let Some(path) = ca_file {
        let bad = |detail: String| Error::CaFile {
            path: path.to_owned(),
            detail,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let before = roots.len();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&bytes) {
            let cert = cert.map_err(|e| bad(e.to_string()))?;
            roots.push(ureq::tls::Certificate::from_der(cert.as_ref()).to_owned());
        }
        if roots.len() == before {
            return Err(bad("no CERTIFICATE block in it".into()));
        }
    }
    Ok(ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .root_certs(ureq::tls::RootCerts::from(roots))
        .build())
}

impl Client {
    /// A client for the server at `server` (`http://HOST:PORT` or `https://HOST:PORT`,
    /// optionally with a path prefix), authenticating with `token` when given. An `https://`
    /// server is verified against the platform's root certificates.
    pub fn new(server: &str, token: Option<String>) -> Result<Self> {
        Self::with_ca_file(server, token, None)
    }

    /// [`Client::new`], trusting the CA certificates in `ca_file` (PEM) besides the platform's
    /// roots for an `https://` server (`--ca-file`, `FOTA_CA_FILE`): how a client trusts a
    /// server whose certificate `fota server tls self-signed` made. Not read for `http://`.
    pub fn with_ca_file(
        server: &str,
        token: Option<String>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self> {
        let base = server.trim().trim_end_matches('/').to_owned();
        let bad = |reason| Error::Url {
            url: server.to_owned(),
            reason,
        };
        let (rest, https) = match (base.strip_prefix("http://"), base.strip_prefix("https://")) {
            (Some(rest), _) => (rest, false),
            (None, Some(rest)) => (rest, true),
            (None, None) => return Err(bad("must start with http:// or https://")),
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err(bad("has no host"));
        }
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .user_agent(concat!("fota-client/", env!("CARGO_PKG_VERSION")));
        if https {
            config = config.tls_config(tls_config(ca_file)?);
        }
        let config = config.build();
        Ok(Self {
            agent: config.into(),
            base,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    /// The server's base URL, without a trailing slash.
    pub fn server(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorize<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => request.header("Authorization", format!("Bearer {t}")),
            None => request,
        }
    }

    /// Turns an answer into its body, or the error it carries.
    fn answer(
        &self,
        url: &str,
        result: Result<Response<Body>, ureq::Error>,
    ) -> Result<(u16, Vec<u8>)> {
        let transport = |source| Error::Transport {
            url: url.to_owned(),
            source,
        };
        let mut response = result.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(transport)?;
        if (200..300).contains(&status) {
            Ok((status, body))
        } else {
            Err(error_answer(status, url, &body))
        }
    }

    fn decode<T: DeserializeOwned>(url: &str, body: &[u8]) -> Result<T> {
        serde_json::from_slice(body).map_err(|e| Error::Decode {
            url: url.to_owned(),
            detail: e.to_string(),
        })
    }

    fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T> {
        let url = self.url(path);
        let mut request = self.authorize(self.agent.get(&url));
        for (k, v) in query {
            request = request.query(*k, v);
        }
        let (_, body) = self.answer(&url, request.call())?;
        Self::decode(&url, &body)
    }

    fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let url = self.url(path);
        let request = self.authorize(self.agent.post(&url));
        let (_, answer) = self.answer(&url, request.send_json(body))?;
        Self::decode(&url, &answer)
    }

    /// A POST without a body, with `query` parameters.
    fn post_empty<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T> {
        let url = self.url(path);
        let mut request = self.authorize(self.agent.post(&url));
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        let (_, answer) = self.answer(&url, request.send_empty())?;
        Self::decode(&url, &answer)
    }

    /// A request answered by `204 No Content`.
    fn no_content(&self, method: &str, path: &str) -> Result<()> {
        let url = self.url(path);
        let result = match method {
            "DELETE" => self.authorize(self.agent.delete(&url)).call(),
            _ => self.authorize(self.agent.post(&url)).send_empty(),
        };
        self.answer(&url, result).map(drop)
    }

    // ------------------------------------------------------------------ server

    /// `GET /healthz`: whether the server answers at all (no token needed).
    pub fn health(&self) -> Result<()> {
        let url = self.url("/healthz");
        self.answer(&url, self.agent.get(&url).call()).map(drop)
    }

    /// `GET /api/v2/roots` (viewer): the root record versions the server holds.
    pub fn roots(&self) -> Result<RootChainInfo> {
        self.get("/api/v2/roots", &[])
    }

    /// `POST /api/v2/roots` (admin): publishes the next root record version. `true` when the
    /// server stored it, `false` when it held that record already.
    pub fn publish_root(&self, record: &[u8]) -> Result<(bool, RootChainInfo)> {
        let url = self.url("/api/v2/roots");
        let request = self
            .authorize(self.agent.post(&url))
            .header("Content-Type", "application/octet-stream");
        let (status, answer) = self.answer(&url, request.send(record))?;
        Ok((status == 201, Self::decode(&url, &answer)?))
    }

    /// `GET /api/v2/server`: configuration, vendor, root record, known classes (viewer).
    pub fn server_info(&self) -> Result<ServerInfo> {
        self.get("/api/v2/server", &[])
    }

    // ------------------------------------------------------------------ tokens

    /// `POST /api/v2/tokens` (admin): a new operator token, expiring at `expires_at` (unix
    /// ms) when given; its secret is in the answer only.
    pub fn create_token(
        &self,
        name: &str,
        role: Role,
        expires_at: Option<i64>,
    ) -> Result<NewTokenResponse> {
        self.post(
            "/api/v2/tokens",
            &NewTokenRequest {
                name: name.to_owned(),
                role,
                expires_at,
            },
        )
    }

    /// `GET /api/v2/tokens` (admin).
    pub fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        self.get("/api/v2/tokens", &[])
    }

    /// `DELETE /api/v2/tokens/{id}` (admin).
    pub fn revoke_token(&self, id: &str) -> Result<()> {
        self.no_content("DELETE", &format!("/api/v2/tokens/{}", segment(id)))
    }

    // ------------------------------------------------------------------ devices

    /// `POST /api/v2/devices` (operator): provisions a v2 device; the answer is its
    /// provisioning file, the only time its token is shown.
    pub fn add_device(&self, id: &str, class: &str) -> Result<Provisioning> {
        self.post(
            "/api/v2/devices",
            &NewDeviceRequest {
                id: id.to_owned(),
                class: class.to_owned(),
            },
        )
    }

    /// `GET /api/v2/devices` (viewer), optionally of one class.
    pub fn list_devices(&self, class: Option<&str>) -> Result<Vec<Device>> {
        self.get("/api/v2/devices", &class_query(class))
    }

    /// `GET /api/v2/devices/{id}` (viewer).
    pub fn device(&self, id: &str) -> Result<Device> {
        self.get(&format!("/api/v2/devices/{}", segment(id)), &[])
    }

    /// Polls the device every `every` until `done` holds for it, for at most `timeout`;
    /// e.g. `|d| d.state == DeviceState::Confirmed`. Returns the device as last read.
    pub fn wait_for_device(
        &self,
        id: &str,
        timeout: Duration,
        every: Duration,
        done: impl Fn(&Device) -> bool,
    ) -> Result<Device> {
        let start = std::time::Instant::now();
        loop {
            let device = self.device(id)?;
            if done(&device) {
                return Ok(device);
            }
            if start.elapsed() >= timeout {
                return Err(Error::Timeout {
                    device: id.to_owned(),
                    waited: start.elapsed(),
                    state: device.state.to_string(),
                });
            }
            std::thread::sleep(every.min(timeout.saturating_sub(start.elapsed())));
        }
    }

    /// `POST /api/v2/devices/{id}/revoke` (operator): the device's requests get 401 from now.
    pub fn revoke_device(&self, id: &str) -> Result<()> {
        self.no_content("POST", &format!("/api/v2/devices/{}/revoke", segment(id)))
    }

    /// `DELETE /api/v2/devices/{id}` (admin): removes a device of either protocol and its
    /// history; the audit log keeps the deletion.
    pub fn delete_device(&self, id: &str) -> Result<()> {
        self.no_content("DELETE", &format!("/api/v2/devices/{}", segment(id)))
    }

    /// `POST /api/v2/devices/{id}/rotate` (operator): a new credential; the old one stops
    /// working at once. A revoked device is refused (409 `device_revoked`) unless
    /// `reactivate`, which also lifts the revocation.
    pub fn rotate_device(&self, id: &str, reactivate: bool) -> Result<Provisioning> {
        let query: &[(&str, &str)] = if reactivate {
            &[("reactivate", "true")]
        } else {
            &[]
        };
        self.post_empty(&format!("/api/v2/devices/{}/rotate", segment(id)), query)
    }

    /// `GET /api/v2/devices/{id}/events` (viewer): newest first, at most `limit` (1-1000,
    /// server default 100), older than event id `before`.
    pub fn device_events(
        &self,
        id: &str,
        before: Option<i64>,
        limit: Option<i64>,
    ) -> Result<Vec<DeviceEvent>> {
        self.get(
            &format!("/api/v2/devices/{}/events", segment(id)),
            &page_query(before, limit),
        )
    }

    /// `POST /api/v2/devices/{id}/rollback` (operator): orders a rollback to the previous
    /// image, carried out once and closed by the device's report.
    pub fn order_rollback(&self, id: &str, reason: &str) -> Result<RollbackOrder> {
        self.post(
            &format!("/api/v2/devices/{}/rollback", segment(id)),
            &RollbackRequest {
                reason: reason.to_owned(),
            },
        )
    }

    /// `GET /api/v2/devices/{id}/rollback` (viewer): the device's orders, newest first.
    pub fn rollback_orders(&self, id: &str) -> Result<Vec<RollbackOrder>> {
        self.get(&format!("/api/v2/devices/{}/rollback", segment(id)), &[])
    }

    // ------------------------------------------------------------------ releases

    /// `POST /api/v2/releases` (operator): uploads a signed release as `multipart/form-data`,
    /// streaming `image_len` bytes of `image` after the small parts. `on_sent` hears how many
    /// image bytes went out, as they go.
    ///
    /// The server verifies everything (signature against its root record, hash list, image
    /// hash and format, sequence above the class's highest) before the release becomes
    /// visible, and answers the stored release. A release it already holds (the same signed
    /// manifest) is not an error: the answer is that release, with [`Upload::created`] false.
    pub fn upload_release(
        &self,
        parts: ReleaseParts<'_>,
        image: &mut dyn Read,
        image_len: u64,
        on_sent: &mut dyn FnMut(u64),
    ) -> Result<Upload> {
        let form = Form::new(boundary(parts.manifest));
        let mut head = Vec::with_capacity(parts.manifest.len() + parts.hashlist.len() + 512);
        head.extend_from_slice(&form.field_head("class"));
        head.extend_from_slice(parts.class.as_bytes());
        head.extend_from_slice(multipart::PART_END);
        for (name, filename, data) in [
            ("manifest", "manifest.bin", parts.manifest),
            ("hashlist", "hashlist.bin", parts.hashlist),
        ] {
            head.extend_from_slice(&form.file_head(name, filename));
            head.extend_from_slice(data);
            head.extend_from_slice(multipart::PART_END);
        }
        // The image part's head; its bytes come from the reader.
        head.extend_from_slice(&form.file_head("image", "image.bin"));
        let tail = [multipart::PART_END, &form.close()].concat();
        let total = head.len() as u64 + image_len + tail.len() as u64;

        let mut failed = None;
        let mut body = io::Cursor::new(head)
            .chain(Exact {
                inner: image,
                left: image_len,
                on_read: on_sent,
                failed: &mut failed,
            })
            .chain(io::Cursor::new(tail));
        let url = self.url("/api/v2/releases");
        let request = self
            .authorize(self.agent.post(&url))
            .header("Content-Type", form.content_type())
            // A known length lets the server refuse an oversize upload before reading it, and
            // waiting for `100 Continue` lets it refuse (bad token, role, size) before the
            // body is sent: a refusal mid-body would only show as a broken pipe.
            .header("Content-Length", total.to_string())
            .header("Expect", "100-continue")
            .config()
            .timeout_global(None)
            .timeout_recv_response(Some(UPLOAD_ANSWER_TIMEOUT))
            .build();
        let result = request.send(ureq::SendBody::from_reader(&mut body));
        drop(body);
        if let Some(e) = failed {
            return Err(Error::Image(e));
        }
        let (status, answer) = self.answer(&url, result)?;
        Ok(Upload {
            release: Self::decode(&url, &answer)?,
            // 201 Created; 200 is the server's answer for a release it already held.
            created: status != 200,
        })
    }

    /// Uploads a release made by [`crate::release::sign`] with the `image` it was signed for
    /// (see [`Self::upload_release`]).
    pub fn upload_signed(
        &self,
        release: &crate::release::SignedRelease,
        image: &[u8],
        on_sent: &mut dyn FnMut(u64),
    ) -> Result<Upload> {
        self.upload_release(
            release.parts(),
            &mut &image[..],
            image.len() as u64,
            on_sent,
        )
    }

    /// `GET /api/v2/releases` (viewer): newest first per class, optionally of one class.
    pub fn list_releases(&self, class: Option<&str>) -> Result<Vec<Release>> {
        self.get("/api/v2/releases", &class_query(class))
    }

    /// `GET /api/v2/releases/{id}` (viewer).
    pub fn release(&self, id: &str) -> Result<Release> {
        self.get(&format!("/api/v2/releases/{}", segment(id)), &[])
    }

    /// `GET /api/v2/releases/{id}/manifest` (viewer): the signed envelope as uploaded.
    pub fn release_manifest(&self, id: &str) -> Result<Vec<u8>> {
        let url = self.url(&format!("/api/v2/releases/{}/manifest", segment(id)));
        let request = self.authorize(self.agent.get(&url));
        self.answer(&url, request.call()).map(|(_, body)| body)
    }

    /// The release named `name`: a release id, or a version (unique within a class). `class`
    /// narrows a version lookup; without it a version found in several classes is an error.
    pub fn find_release(&self, name: &str, class: Option<&str>) -> Result<Release> {
        match self.release(name) {
            Ok(r) if class.is_none_or(|c| c == r.class) => return Ok(r),
            Ok(_) => {}
            Err(Error::Api { status: 404, .. }) => {}
            Err(e) => return Err(e),
        }
        let mut found: Vec<Release> = self
            .list_releases(class)?
            .into_iter()
            .filter(|r| r.version == name)
            .collect();
        match found.len() {
            0 => Err(Error::NoRelease(match class {
                Some(c) => format!("{name:?} in class {c:?}"),
                None => format!("{name:?} (neither a release id nor a version)"),
            })),
            1 => Ok(found.remove(0)),
            _ => Err(Error::AmbiguousRelease {
                version: name.to_owned(),
                classes: found.into_iter().map(|r| r.class).collect(),
            }),
        }
    }

    /// The sequence a new release of `class` needs: one above the class's highest.
    pub fn next_sequence(&self, class: &str) -> Result<u64> {
        let highest = self
            .list_releases(Some(class))?
            .iter()
            .map(|r| r.sequence)
            .max()
            .unwrap_or(0);
        Ok(u64::try_from(highest).unwrap_or(0) + 1)
    }

    /// `POST /api/v2/releases/{id}/assign` with devices (operator): each device gets an
    /// explicit assignment, overriding its class's.
    pub fn assign_devices(&self, release_id: &str, devices: &[String]) -> Result<AssignResponse> {
        self.post(
            &format!("/api/v2/releases/{}/assign", segment(release_id)),
            &AssignRequest {
                devices: Some(devices.to_vec()),
                class: None,
            },
        )
    }

    /// `POST /api/v2/releases/{id}/assign` with the release's class (operator): every device
    /// of the class follows it.
    pub fn assign_class(&self, release_id: &str, class: &str) -> Result<AssignResponse> {
        self.post(
            &format!("/api/v2/releases/{}/assign", segment(release_id)),
            &AssignRequest {
                devices: None,
                class: Some(class.to_owned()),
            },
        )
    }

    // ------------------------------------------------------------------ audit

    /// `GET /api/v2/audit` (viewer): newest first, paged like [`Self::device_events`].
    pub fn audit(&self, before: Option<i64>, limit: Option<i64>) -> Result<Vec<AuditRecord>> {
        self.get("/api/v2/audit", &page_query(before, limit))
    }

    // ------------------------------------------------------------------ legacy

    /// `POST /api/cloud/fota/upload` (operator, legacy API on): the seed's `quick_upload`,
    /// JSON with the firmware in padded base64. `on_sent` hears how many body bytes went out.
    pub fn legacy_upload(
        &self,
        version: &str,
        firmware: &[u8],
        chunk_size: u64,
        on_sent: &mut dyn FnMut(u64),
    ) -> Result<LegacyUploadAnswer> {
        use base64::Engine as _;
        let request = fota_protocol::legacy::json::UploadRequest {
            version: version.to_owned(),
            size: firmware.len() as u64,
            hash: hex::encode(Sha256::digest(firmware)),
            chunk_size,
            firmware_data: base64::engine::general_purpose::STANDARD.encode(firmware),
        };
        let body = serde_json::to_vec(&request).map_err(|e| Error::Decode {
            url: self.url(fota_protocol::legacy::json::paths::UPLOAD),
            detail: e.to_string(),
        })?;
        drop(request);
        let len = body.len() as u64;
        let mut failed = None;
        let mut cursor = io::Cursor::new(body);
        let mut reader = Exact {
            inner: &mut cursor,
            left: len,
            on_read: on_sent,
            failed: &mut failed,
        };
        let url = self.url(fota_protocol::legacy::json::paths::UPLOAD);
        let request = self
            .authorize(self.agent.post(&url))
            .header("Content-Type", "application/json")
            .header("Content-Length", len.to_string())
            .header("Expect", "100-continue")
            .config()
            .timeout_global(None)
            .timeout_recv_response(Some(UPLOAD_ANSWER_TIMEOUT))
            .build();
        let result = request.send(ureq::SendBody::from_reader(&mut reader));
        let (_, answer) = self.answer(&url, result)?;
        Self::decode(&url, &answer)
    }
}

/// The error a failed answer carries: the server's JSON error when it sent one.
fn error_answer(status: u16, url: &str, body: &[u8]) -> Error {
    match serde_json::from_slice::<fota_api::ErrorBody>(body) {
        Ok(fota_api::ErrorBody { error }) => Error::Api {
            status,
            code: error.code,
            message: error.message,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let mut text: String = text.trim().chars().take(200).collect();
            if text.is_empty() {
                text = "(empty body)".into();
            }
            Error::Http {
                status,
                url: url.to_owned(),
                body: text,
            }
        }
    }
}

fn class_query(class: Option<&str>) -> Vec<(&'static str, String)> {
    class.map(|c| ("class", c.to_owned())).into_iter().collect()
}

fn page_query(before: Option<i64>, limit: Option<i64>) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(b) = before {
        q.push(("before", b.to_string()));
    }
    if let Some(l) = limit {
        q.push(("limit", l.to_string()));
    }
    q
}

/// Percent-encodes one path segment: names typed by operators (versions, ids) must not be
/// able to change the path they are put in.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A multipart boundary that cannot occur in the parts: derived from the manifest and the
/// time, so no image prepared in advance can contain it.
fn boundary(manifest: &[u8]) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(manifest);
    h.update(nanos.to_le_bytes());
    format!("fota-{}", hex::encode(&h.finalize()[..16]))
}

/// Reads exactly `left` bytes from `inner`, reporting progress. An early end is an error (the
/// declared Content-Length would be a lie); the first I/O error is kept for the caller, since
/// the HTTP stack reports it only as a failed send.
struct Exact<'a, 'b> {
    inner: &'a mut dyn Read,
    left: u64,
    on_read: &'b mut dyn FnMut(u64),
    failed: &'b mut Option<io::Error>,
}

impl Read for Exact<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.left).map_or(buf.len(), |l| l.min(buf.len()));
        let result = match self.inner.read(&mut buf[..want]) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("ended {} bytes early (did it change?)", self.left),
            )),
            other => other,
        };
        match result {
            Ok(n) => {
                self.left -= n as u64;
                (self.on_read)(n as u64);
                Ok(n)
            }
            Err(e) => {
                let kind = e.kind();
                let text = e.to_string();
                if self.failed.is_none() {
                    *self.failed = Some(e);
                }
                Err(io::Error::new(kind, text))
            }
        }
    }
}

#[cfg(test)]
mod tests;
