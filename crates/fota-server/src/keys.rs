//! Key files: Ed25519 private keys as PKCS#8 PEM, encrypted with a passphrase or plain.
//!
//! `fota keys init` writes them, the server reads its status key from them and `fota release
//! create` reads the release key. The format is the standard one so that `openssl pkey` can
//! read every file:
//!
//! - with a passphrase: `-----BEGIN ENCRYPTED PRIVATE KEY-----`, PKCS#8 `EncryptedPrivateKeyInfo`
//!   with PBES2 = scrypt (log₂N 15, r 8, p 1) + AES-256-CBC, random salt and IV per file;
//! - without: `-----BEGIN PRIVATE KEY-----` (RFC 8410), file mode `0600`.
//!
//! Files are created exclusively (an existing key is never overwritten) and written with mode
//! `0600` from the start, so a key is never readable by others, not even briefly.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use zeroize::Zeroizing;

/// The environment variable holding the passphrase of encrypted key files.
pub const PASSPHRASE_ENV: &str = "FOTA_KEY_PASSPHRASE";

const ENCRYPTED_LABEL: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";

/// Why a key file could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file could not be created, written or read.
    #[error("{path}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is encrypted and no passphrase was given.
    #[error("{path} is encrypted: set {PASSPHRASE_ENV}")]
    PassphraseNeeded {
        /// The key file.
        path: PathBuf,
    },
    /// The file is not a PKCS#8 Ed25519 key, or the passphrase is wrong.
    #[error("{path}: not an Ed25519 PKCS#8 key, or wrong passphrase ({detail})")]
    Invalid {
        /// The key file.
        path: PathBuf,
        /// What the decoder said.
        detail: String,
    },
}

/// Writes `key` to a new file at `path` (mode 0600), encrypted when `passphrase` is given.
///
/// Fails if the file already exists: key files are never overwritten.
pub fn write_signing_key(
    path: &Path,
    key: &SigningKey,
    passphrase: Option<&str>,
) -> Result<(), KeyError> {
    let invalid = |e: pkcs8::Error| KeyError::Invalid {
        path: path.to_owned(),
        detail: e.to_string(),
    };
    let pem: Zeroizing<String> = match passphrase {
        Some(pass) => key
            .to_pkcs8_encrypted_pem(pass.as_bytes(), LineEnding::LF)
            .map_err(invalid)?,
        None => key.to_pkcs8_pem(LineEnding::LF).map_err(invalid)?,
    };
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(pem.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Reads an Ed25519 key written by [`write_signing_key`] (or any PKCS#8 PEM Ed25519 key).
///
/// `passphrase` is used only when the file is encrypted.
pub fn read_signing_key(path: &Path, passphrase: Option<&str>) -> Result<SigningKey, KeyError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?,
    );
    let invalid = |e: pkcs8::Error| KeyError::Invalid {
        path: path.to_owned(),
        detail: e.to_string(),
    };
    if text.contains(ENCRYPTED_LABEL) {
        let pass = passphrase.ok_or_else(|| KeyError::PassphraseNeeded {
            path: path.to_owned(),
        })?;
        SigningKey::from_pkcs8_encrypted_pem(&text, pass.as_bytes()).map_err(invalid)
    } else {
        SigningKey::from_pkcs8_pem(&text).map_err(invalid)
    }
}

/// Whether the key file at `path` is encrypted (without decrypting it).
pub fn is_encrypted(path: &Path) -> Result<bool, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(text.contains(ENCRYPTED_LABEL))
}

/// File names inside a key folder.
pub mod files {
    /// Root keys (threshold [`super::ROOT_THRESHOLD`] of 3).
    pub const ROOT: [&str; 3] = ["root-1.key", "root-2.key", "root-3.key"];
    /// The release key (signs manifests, offline).
    pub const RELEASE: &str = "release.key";
    /// The status key (signs status statements, on the server).
    pub const STATUS: &str = "status.key";
    /// The signed root record.
    pub const ROOT_RECORD: &str = "root.bin";
    /// Public summary (vendor id, public keys, key ids), for people and tools.
    pub const PUBLIC: &str = "keys.json";
}

/// Root signatures a root record needs.
pub const ROOT_THRESHOLD: u8 = 2;

/// The keys of one fleet, as `fota keys init` makes them.
pub struct KeySet {
    /// Vendor UUID.
    pub vendor_id: uuid::Uuid,
    /// Root keys.
    pub root: [SigningKey; 3],
    /// Release key.
    pub release: SigningKey,
    /// Status key.
    pub status: SigningKey,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("vendor_id", &self.vendor_id)
            .finish_non_exhaustive()
    }
}

impl KeySet {
    /// Fresh keys for `vendor_id`.
    pub fn generate(vendor_id: uuid::Uuid) -> Self {
        Self {
            vendor_id,
            root: [
                generate_signing_key(),
                generate_signing_key(),
                generate_signing_key(),
            ],
            release: generate_signing_key(),
            status: generate_signing_key(),
        }
    }

    /// Writes the private keys, `root.bin` and `keys.json` into `dir` (created if needed).
    /// Refuses to start if any of the files exists. Returns the paths written.
    pub fn write(&self, dir: &Path, passphrase: Option<&str>) -> Result<Vec<PathBuf>, KeyError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| KeyError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut names: Vec<&str> = files::ROOT.to_vec();
        names.extend([
            files::RELEASE,
            files::STATUS,
            files::ROOT_RECORD,
            files::PUBLIC,
        ]);
        for name in &names {
            let path = dir.join(name);
            if path.exists() {
                return Err(KeyError::Io {
                    path,
                    source: std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "exists; key folders are never overwritten",
                    ),
                });
            }
        }
        let root_record = self.root_record()?;
        let mut written = Vec::new();
        for (key, name) in self.root.iter().zip(files::ROOT) {
            let path = dir.join(name);
            write_signing_key(&path, key, passphrase)?;
            written.push(path);
        }
        for (key, name) in [
            (&self.release, files::RELEASE),
            (&self.status, files::STATUS),
        ] {
            let path = dir.join(name);
            write_signing_key(&path, key, passphrase)?;
            written.push(path);
        }
        let path = dir.join(files::ROOT_RECORD);
        write_new(&path, &root_record)?;
        written.push(path);
        let public = |k: &SigningKey| {
            let pk = k.verifying_key().to_bytes();
            serde_json::json!({
                "public_key": hex::encode(pk),
                "key_id": hex::encode(crate::v2::key_id(&pk)),
            })
        };
        let summary = serde_json::json!({
            "vendor_id": self.vendor_id.to_string(),
            "root": { "threshold": ROOT_THRESHOLD, "keys": self.root.iter().map(public).collect::<Vec<_>>() },
            "release": { "threshold": 1, "keys": [public(&self.release)] },
            "status": { "threshold": 1, "keys": [public(&self.status)] },
            "encrypted": passphrase.is_some(),
        });
        let path = dir.join(files::PUBLIC);
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n";
        write_new(&path, text.as_bytes())?;
        written.push(path);
        Ok(written)
    }

    /// The version-1 root record signed by all three root keys.
    pub fn root_record(&self) -> Result<Vec<u8>, KeyError> {
        crate::v2::make_root_record(self).map_err(|detail| KeyError::Invalid {
            path: PathBuf::from(files::ROOT_RECORD),
            detail,
        })
    }
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// A fresh Ed25519 key from the operating system's random source.
pub fn generate_signing_key() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_encrypted_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate_signing_key();
        let plain = dir.path().join("plain.key");
        let enc = dir.path().join("enc.key");
        write_signing_key(&plain, &key, None).unwrap();
        write_signing_key(&enc, &key, Some("correct horse")).unwrap();
        assert!(!is_encrypted(&plain).unwrap());
        assert!(is_encrypted(&enc).unwrap());
        assert_eq!(read_signing_key(&plain, None).unwrap(), key);
        assert_eq!(read_signing_key(&enc, Some("correct horse")).unwrap(), key);
        assert!(matches!(
            read_signing_key(&enc, None),
            Err(KeyError::PassphraseNeeded { .. })
        ));
        assert!(matches!(
            read_signing_key(&enc, Some("wrong")),
            Err(KeyError::Invalid { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&plain).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_signing_key(&path, &generate_signing_key(), None).unwrap();
        assert!(matches!(
            write_signing_key(&path, &generate_signing_key(), None),
            Err(KeyError::Io { .. })
        ));
    }
}
