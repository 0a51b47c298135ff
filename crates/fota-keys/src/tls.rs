//! A private TLS CA and one server certificate it signs, for `fota server tls self-signed`, the
//! demo and the tests (feature `tls`).
//!
//! The CA's private key is thrown away once the server certificate is signed: the CA can vouch
//! for this one certificate and nothing else, so `ca.pem` is safe to hand to every client that
//! should trust the server. Keys are ECDSA P-256; both certificates are valid from 1975 to 4096
//! (rcgen's defaults), since they are replaced by making a new set, not by expiry.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// File names inside the folder [`SelfSigned::write_dir`] writes.
pub mod files {
    /// The CA certificate (PEM): what clients trust (`--ca-file`, `FOTA_CA_FILE`).
    pub const CA: &str = "ca.pem";
    /// The server certificate (PEM), signed by the CA (`--tls-cert`).
    pub const CERT: &str = "cert.pem";
    /// The server's private key (PKCS#8 PEM, mode 0600) (`--tls-key`).
    pub const KEY: &str = "key.pem";
}

/// The host names and addresses a server certificate names when none are given.
pub const DEFAULT_HOSTS: [&str; 2] = ["localhost", "127.0.0.1"];

/// Why a certificate set could not be made or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsCertError {
    /// No host name was given.
    #[error("a server certificate needs at least one host name or address")]
    NoHosts,
    /// A host name cannot go into a certificate.
    #[error("host {host:?}: {detail}")]
    Host {
        /// The name.
        host: String,
        /// Why.
        detail: String,
    },
    /// Key generation or signing failed.
    #[error("making the certificates: {0}")]
    Generate(String),
    /// Files of a set are there already; nothing was written.
    #[error(
        "{} already exist(s); nothing was written (remove them or choose another folder)",
        .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    Exists(Vec<PathBuf>),
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A CA certificate and a server certificate signed by it, with the server's key, as PEM.
pub struct SelfSigned {
    /// The CA certificate.
    pub ca_pem: String,
    /// The server certificate.
    pub cert_pem: String,
    /// The server's private key (PKCS#8).
    pub key_pem: zeroize::Zeroizing<String>,
}

impl core::fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SelfSigned")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

impl SelfSigned {
    /// A fresh CA and a server certificate for `hosts` (DNS names, or IP addresses, which
    /// become IP subject alternative names).
    pub fn generate<S: AsRef<str>>(hosts: &[S]) -> Result<Self, TlsCertError> {
        if hosts.is_empty() {
            return Err(TlsCertError::NoHosts);
        }
        let generate = |e: rcgen::Error| TlsCertError::Generate(e.to_string());
        let ca_key = KeyPair::generate().map_err(generate)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(generate)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.distinguished_name
            .push(DnType::CommonName, "fota self-signed CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).map_err(generate)?;
        let issuer = Issuer::new(ca, ca_key);

        let names: Vec<String> = hosts.iter().map(|h| h.as_ref().trim().to_owned()).collect();
        for host in &names {
            if host.is_empty() || host.contains(char::is_whitespace) {
                return Err(TlsCertError::Host {
                    host: host.clone(),
                    detail: "not a host name or address".into(),
                });
            }
        }
        let mut server = CertificateParams::new(names.clone()).map_err(|e| TlsCertError::Host {
            host: names.join(","),
            detail: e.to_string(),
        })?;
        server
            .distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        server.is_ca = IsCa::ExplicitNoCa;
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(generate)?;
        let cert = server.signed_by(&key, &issuer).map_err(generate)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: zeroize::Zeroizing::new(key.serialize_pem()),
        })
    }

    /// Writes `DIR/ca.pem`, `DIR/cert.pem` and `DIR/key.pem` (mode 0600), creating `dir` when
    /// missing. When any of the three exists, nothing is written and the error names them.
    pub fn write_dir(&self, dir: &Path) -> Result<[PathBuf; 3], TlsCertError> {
        let paths = [
            dir.join(files::CA),
            dir.join(files::CERT),
            dir.join(files::KEY),
        ];
        let existing: Vec<PathBuf> = paths.iter().filter(|p| p.exists()).cloned().collect();
        if !existing.is_empty() {
            return Err(TlsCertError::Exists(existing));
        }
        std::fs::create_dir_all(dir).map_err(|source| TlsCertError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| TlsCertError::Io { path, source }
        };
        let mut public = std::fs::OpenOptions::new();
        public.write(true).create_new(true);
        let mut secret = public.clone();
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            secret.mode(0o600);
        }
        for (path, options, text) in [
            (&paths[0], &public, self.ca_pem.as_str()),
            (&paths[1], &public, self.cert_pem.as_str()),
            (&paths[2], &secret, self.key_pem.as_str()),
        ] {
            use std::io::Write as _;
            let mut file = options.open(path).map_err(io(path))?;
            file.write_all(text.as_bytes()).map_err(io(path))?;
            file.sync_all().map_err(io(path))?;
        }
        Ok(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_three_files_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("tls");
        let set = SelfSigned::generate(&DEFAULT_HOSTS).unwrap();
        assert!(set.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(set.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(!format!("{set:?}").contains("PRIVATE KEY"));
        let paths = set.write_dir(&out).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&paths[2]).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key.pem readable by others: {mode:o}");
        }
        let before = std::fs::read(&paths[1]).unwrap();
        let again = SelfSigned::generate(&["example.test"]).unwrap();
        match again.write_dir(&out) {
            Err(TlsCertError::Exists(p)) => assert_eq!(p.len(), 3),
            other => panic!("expected Exists, got {other:?}"),
        }
        assert_eq!(std::fs::read(&paths[1]).unwrap(), before);
        assert!(matches!(
            SelfSigned::generate::<&str>(&[]),
            Err(TlsCertError::NoHosts)
        ));
    }
}
