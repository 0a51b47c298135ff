//! Reading and writing one key file.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use pkcs8::DecodePrivateKey;
use zeroize::Zeroizing;

use crate::PASSPHRASE_ENV;

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
#[cfg(feature = "sign")]
pub fn write_signing_key(
    path: &Path,
    key: &SigningKey,
    passphrase: Option<&str>,
) -> Result<(), KeyError> {
    use pkcs8::{EncodePrivateKey, LineEnding};
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
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    write_with(path, &options, pem.as_bytes())
}

/// Writes `bytes` to a new file at `path` opened with `options`, and syncs it.
#[cfg(feature = "sign")]
pub(crate) fn write_with(
    path: &Path,
    options: &std::fs::OpenOptions,
    bytes: &[u8],
) -> Result<(), KeyError> {
    use std::io::Write as _;
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Reads an Ed25519 key written by `write_signing_key` (or any PKCS#8 PEM Ed25519 key).
///
/// `passphrase` is used only when the file is encrypted.
pub fn read_signing_key(path: &Path, passphrase: Option<&str>) -> Result<SigningKey, KeyError> {
    let text = Zeroizing::new(read_text(path)?);
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
    Ok(read_text(path)?.contains(ENCRYPTED_LABEL))
}

fn read_text(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(all(test, feature = "sign"))]
mod tests {
    use super::*;
    use crate::generate_signing_key;

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
