//! TLS for tests: a certificate set made the way `fota server tls self-signed` makes it (in a
//! temp folder), and an HTTPS connection that keeps alive and tells which certificate the
//! server showed, for tests of the server's TLS listener and its reload.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode};
use fota_keys::tls::{DEFAULT_HOSTS, SelfSigned, files};
use fota_server::tls::TlsFiles;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject as _;

use crate::server::Answer;

/// A CA, a server certificate it signs and its key, in `dir` as `ca.pem`, `cert.pem`,
/// `key.pem`.
pub struct TlsSet {
    /// The folder (removed on drop).
    pub dir: tempfile::TempDir,
}

impl TlsSet {
    /// A fresh set for `localhost` and `127.0.0.1`.
    pub fn new() -> Self {
        Self::for_hosts(&DEFAULT_HOSTS)
    }

    /// A fresh set for `hosts`.
    pub fn for_hosts(hosts: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        SelfSigned::generate(hosts)
            .expect("certificates")
            .write_dir(dir.path())
            .expect("write certificates");
        Self { dir }
    }

    /// `ca.pem`: what a client trusts.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join(files::CA)
    }

    /// `cert.pem` and `key.pem`, as the server takes them.
    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.dir.path().join(files::CERT),
            key: self.dir.path().join(files::KEY),
        }
    }

    /// The server certificate (DER), to compare with what a connection saw.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(self.dir.path().join(files::CERT)).expect("cert.pem")
    }

    /// Puts `other`'s certificate and key in place of this set's (what an operator does before
    /// SIGHUP); `ca.pem` stays this set's.
    pub fn replace_pair_with(&self, other: &TlsSet) {
        for name in [files::CERT, files::KEY] {
            std::fs::copy(other.dir.path().join(name), self.dir.path().join(name))
                .expect("copy certificate");
        }
    }
}

impl Default for TlsSet {
    fn default() -> Self {
        Self::new()
    }
}

/// A client configuration trusting only the CA certificates in `ca_files` (none: trusts
/// nothing, so every handshake fails).
pub fn client_config(ca_files: &[&Path]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in ca_files {
        for cert in CertificateDer::pem_file_iter(ca).expect("ca file") {
            roots.add(cert.expect("ca pem")).expect("ca certificate");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// One HTTPS connection, kept alive across requests.
pub struct HttpsConn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    /// The leaf certificate the server showed in this connection's handshake.
    pub server_cert: CertificateDer<'static>,
    host: String,
}

impl HttpsConn {
    /// Connects to `addr`, verifying the server as `host` against `config`'s roots: `Err` is
    /// the handshake's error (an unknown issuer, a name mismatch).
    pub async fn connect(
        addr: SocketAddr,
        host: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> std::io::Result<Self> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = ServerName::try_from(host.to_owned()).expect("server name");
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        let server_cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .expect("server certificate")
            .clone()
            .into_owned();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            server_cert,
            host: format!("{host}:{}", addr.port()),
        })
    }

    /// `method path` with `headers` and `body` on this connection.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body)))
            .expect("request");
        self.sender.ready().await.expect("connection ready");
        let res = self.sender.send_request(req).await.expect("answer");
        let status = StatusCode::from_u16(res.status().as_u16()).expect("status");
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }
}
