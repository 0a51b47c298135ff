//! HTTPS: a certificate chain and its private key (PEM files) as a rustls server
//! configuration that can be swapped while the server runs.
//!
//! [`TlsReloader::reload`] reads the pair again (the CLI calls it on SIGHUP): a new handshake
//! uses the new pair, connections already up keep theirs, and a pair that fails to load leaves
//! the old one in place. rustls with the *ring* provider only; TLS 1.2 and 1.3, ALPN
//! `http/1.1`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Where the certificate chain and its key are (`--tls-cert`, `--tls-key`; `tls.cert`,
/// `tls.key` in the config file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not the PEM expected.
    #[error("{path}: {detail}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// rustls refused the pair (the key does not match the certificate, an unsupported key).
    #[error("{cert} with {key}: {source}")]
    Unusable {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
}

/// The rustls server configuration for `files`, read now.
pub fn load(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let pem = |path: &Path, detail: String| TlsError::Pem {
        path: path.to_owned(),
        detail,
    };
    let cert_bytes = read(&files.cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(&files.cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem(&files.cert, "no CERTIFICATE block in it".into()));
    }
    let key_bytes = zeroize::Zeroizing::new(read(&files.key)?);
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
        pem(
            &files.key,
            format!("no usable private key in it ({e}); PKCS#8, PKCS#1 and SEC1 PEM are read"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let unusable = |source| TlsError::Unusable {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(unusable)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(unusable)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The server's current TLS configuration, swapped by [`TlsReloader::reload`]. Clones share it.
#[derive(Clone)]
pub struct TlsReloader {
    files: TlsFiles,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl core::fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TlsReloader")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsReloader {
    /// Loads `files` now: a server does not start with a pair it cannot use.
    pub fn open(files: TlsFiles) -> Result<Self, TlsError> {
        let config = load(&files)?;
        Ok(Self {
            files,
            current: Arc::new(RwLock::new(Arc::new(config))),
        })
    }

    /// The files it reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Reads the files again and, when they load, makes them the pair new handshakes use.
    /// On an error the old pair stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(load(&self.files)?);
        // A poisoned lock only means a reader panicked; the value inside is a whole `Arc`.
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        Ok(())
    }

    /// An acceptor for one new connection, on the pair current now.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        tokio_rustls::TlsAcceptor::from(config)
    }
}
