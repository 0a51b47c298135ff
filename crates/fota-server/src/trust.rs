//! Key material the server holds: the trusted root record and the status key (v2), and the
//! legacy PSK. Never a release signing key: releases are signed offline and only verified here.

use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use fota_protocol::v2::{Role, RootRecord};
use zeroize::Zeroizing;

use crate::clock::unix_s;
use crate::config::{Config, PskSource};

/// Why key material could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// Only one of root record and status key was given.
    #[error("v2 needs both --root and --status-key (run `fota keys init --dir K` to make them)")]
    Incomplete,
    /// The root record file could not be read.
    #[error("root record {path}: {message}")]
    Root {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The status key could not be loaded.
    #[error("status key: {0}")]
    StatusKey(#[from] fota_keys::KeyError),
    /// The status key is not one the root record trusts for the status role.
    #[error("status key {path} is not a status key of the root record")]
    StatusKeyNotTrusted {
        /// The file.
        path: PathBuf,
    },
    /// The legacy PSK could not be read or is empty/malformed.
    #[error("legacy PSK: {0}")]
    Psk(String),
}

/// The v2 trust anchor and the status key (`Debug` shows it as `[redacted]`).
pub struct Trust {
    /// The verified root record.
    pub(crate) root: RootRecord,
    /// The vendor id from the root record.
    pub(crate) vendor_id: uuid::Uuid,
    /// Signs status statements.
    pub(crate) status_key: SigningKey,
}

// By hand: the status key is the server's one private key.
impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("vendor_id", &self.vendor_id)
            .field("root_version", &self.root.version())
            .field("status_key", &format_args!("[redacted]"))
            .finish()
    }
}

impl Trust {
    /// Loads the root record and status key named by the settings; `None` when neither is set.
    pub fn load(config: &Config, passphrase: Option<&str>) -> Result<Option<Self>, TrustError> {
        match (&config.root, &config.status_key) {
            (None, None) => Ok(None),
            (Some(root), Some(key)) => {
                let root_bytes = std::fs::read(root).map_err(|e| TrustError::Root {
                    path: root.clone(),
                    message: e.to_string(),
                })?;
                let status_key = fota_keys::read_signing_key(key, passphrase)?;
                Self::new(root_bytes, status_key)
                    .map_err(|e| match e {
                        TrustError::Root { message, .. } => TrustError::Root {
                            path: root.clone(),
                            message,
                        },
                        TrustError::StatusKeyNotTrusted { .. } => {
                            TrustError::StatusKeyNotTrusted { path: key.clone() }
                        }
                        other => other,
                    })
                    .map(Some)
            }
            _ => Err(TrustError::Incomplete),
        }
    }

    /// Checks that `root_bytes` is a valid, self-signed root record and that `status_key` is
    /// one of its status keys.
    pub fn new(root_bytes: Vec<u8>, status_key: SigningKey) -> Result<Self, TrustError> {
        let root = verify_root(&root_bytes, &status_key)?;
        let vendor_id = uuid::Uuid::from_bytes(*root.vendor_id());
        Ok(Self {
            root,
            vendor_id,
            status_key,
        })
    }

    /// The vendor id of the root record.
    pub fn vendor_id(&self) -> uuid::Uuid {
        self.vendor_id
    }

    /// The root record bytes.
    pub fn root_bytes(&self) -> &[u8] {
        self.root.as_bytes()
    }
}

/// Verifies a self-signed root record and that `status_key` is one of its status keys.
fn verify_root(root: &[u8], status_key: &SigningKey) -> Result<RootRecord, TrustError> {
    let record = RootRecord::verify_initial(root).map_err(|e| TrustError::Root {
        path: Default::default(),
        message: e.to_string(),
    })?;
    if record.is_expired(unix_s()) {
        return Err(TrustError::Root {
            path: Default::default(),
            message: "the root record has expired".into(),
        });
    }
    let pk = status_key.verifying_key().to_bytes();
    if !record.keys(Role::Status).contains(&pk) {
        return Err(TrustError::StatusKeyNotTrusted {
            path: Default::default(),
        });
    }
    Ok(record)
}

/// The legacy (seed) pre-shared key (`Debug` shows it as `[redacted]`).
pub struct LegacyKey {
    pub(crate) psk: Zeroizing<Vec<u8>>,
}

// By hand: the fleet key authenticates every legacy device; it is never logged.
impl std::fmt::Debug for LegacyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyKey")
            .field("psk", &format_args!("[redacted]"))
            .finish()
    }
}

impl LegacyKey {
    /// Loads the PSK the settings name; `None` turns the legacy API off.
    pub fn load(config: &Config) -> Result<Option<Self>, TrustError> {
        let Some(source) = &config.legacy_psk else {
            return Ok(None);
        };
        let psk = match source {
            PskSource::Value(v) => fota_protocol::legacy::psk_from_value(v),
            PskSource::File(path) => {
                let raw = Zeroizing::new(
                    std::fs::read(path)
                        .map_err(|e| TrustError::Psk(format!("{}: {e}", path.display())))?,
                );
                fota_protocol::legacy::psk_from_file(&raw)
            }
        }
        .map_err(|e| TrustError::Psk(e.to_string()))?;
        Ok(Some(Self {
            psk: Zeroizing::new(psk),
        }))
    }

    /// A key from bytes (tests).
    pub fn from_bytes(psk: &[u8]) -> Self {
        Self {
            psk: Zeroizing::new(psk.to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `debug` names the secret `[redacted]` and holds neither its text, its hex nor its bytes.
    fn assert_hidden(debug: &str, secret: &[u8]) {
        assert!(debug.contains("[redacted]"), "{debug}");
        let forms = [
            String::from_utf8_lossy(secret).into_owned(),
            hex::encode(secret),
            format!("{secret:?}").trim_matches(['[', ']']).to_owned(),
        ];
        for form in forms {
            assert!(!debug.contains(&form), "{form} in {debug}");
        }
    }

    #[test]
    fn debug_of_the_legacy_key_hides_it() {
        let psk = b"your-32-byte-secret-key-here!!";
        let debug = format!("{:?}", LegacyKey::from_bytes(psk));
        assert_eq!(debug, "LegacyKey { psk: [redacted] }");
        assert_hidden(&debug, psk);
    }

    #[test]
    fn debug_of_the_trust_anchor_hides_the_status_key() {
        let keys = fota_keys::KeySet::generate(uuid::Uuid::new_v4());
        let trust = Trust::new(keys.root_record().unwrap(), keys.status.clone()).unwrap();
        let debug = format!("{trust:?}");
        assert!(debug.contains("status_key: [redacted]"), "{debug}");
        assert!(debug.contains(&keys.vendor_id.to_string()), "{debug}");
        assert_hidden(&debug, &keys.status.to_bytes());
    }
}
