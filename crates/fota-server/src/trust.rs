//! Key material the server holds: the trusted root record and the status key (v2), and the
//! legacy PSK. Never a release signing key: releases are signed offline and only verified here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

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

/// The verified chain of root records the server serves, newest last.
///
/// Contiguous: each record verified against the one before it ([`RootRecord::verify_update`]),
/// the first by its own root keys. A device whose root is older than the newest gets the
/// records after its own, up to [`v2::answer::MAX_ROOTS`] a check-in, and walks them.
#[derive(Debug, Clone)]
pub struct RootChain {
    records: Vec<RootRecord>,
}

impl RootChain {
    fn single(root: RootRecord) -> Self {
        Self {
            records: vec![root],
        }
    }

    /// The newest record: what releases and statements are checked against.
    pub fn newest(&self) -> &RootRecord {
        self.records
            .last()
            .unwrap_or_else(|| unreachable!("a root chain is never empty"))
    }

    /// Every record, oldest first.
    pub fn records(&self) -> &[RootRecord] {
        &self.records
    }

    /// The records a device holding version `version` walks next: up to `max` of the versions
    /// after it, oldest first. Empty when the device is up to date, or when its version is
    /// older than the chain's first (it cannot verify the first step).
    pub fn after(&self, version: u32, max: usize) -> Vec<&[u8]> {
        let Some(start) = self
            .records
            .iter()
            .position(|r| r.version() == version.saturating_add(1))
        else {
            return Vec::new();
        };
        self.records
            .iter()
            .skip(start)
            .take(max)
            .map(RootRecord::as_bytes)
            .collect()
    }
}

/// Why a root record was not adopted (see [`Trust::adopt`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdoptError {
    /// The record does not verify as the next version of the newest one.
    #[error("not the next root record of version {current}: {detail}")]
    Invalid {
        /// The newest version held.
        current: u32,
        /// Why.
        detail: String,
    },
    /// The version is held already with other bytes.
    #[error("root version {version} is held already with other contents")]
    Conflict {
        /// The version.
        version: u32,
    },
    /// Versions are missing between the newest held and this one.
    #[error(
        "root version {version} follows version {current}, which this server does not hold; publish {next} first"
    )]
    Gap {
        /// The version given.
        version: u32,
        /// The newest held.
        current: u32,
        /// The version to publish first.
        next: u32,
    },
    /// The record has expired.
    #[error("root version {version} has expired")]
    Expired {
        /// The version.
        version: u32,
    },
    /// The server's status key is not one of the record's status keys.
    #[error(
        "root version {version} does not list this server's status key {key_id}: restart the \
         server with a status key it lists first (fota keys rotate-status makes a transitional \
         root that lists both)"
    )]
    StatusKeyNotListed {
        /// The version.
        version: u32,
        /// The server's status key id (hex).
        key_id: String,
    },
}

/// What [`Trust::adopt`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopted {
    /// The record is the new newest version.
    New,
    /// The same record was held already.
    Held,
}

/// The v2 trust: the chain of root records and the status key (`Debug` shows it as
/// `[redacted]`).
///
/// The chain changes while the server runs (`POST /api/v2/roots`); readers take the current
/// [`RootChain`] with [`Trust::chain`] and keep it for the request.
pub struct Trust {
    chain: RwLock<Arc<RootChain>>,
    /// The vendor id from the root record (every version carries the same).
    pub(crate) vendor_id: uuid::Uuid,
    /// Signs status statements.
    pub(crate) status_key: SigningKey,
    /// Whether a stored release's manifest verifies under the newest root, by manifest
    /// digest; cleared when the chain changes.
    offerable: Mutex<HashMap<[u8; 32], bool>>,
}

// By hand: the status key is the server's one private key.
impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("vendor_id", &self.vendor_id)
            .field("root_version", &self.chain().newest().version())
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
            chain: RwLock::new(Arc::new(RootChain::single(root))),
            vendor_id,
            status_key,
            offerable: Mutex::default(),
        })
    }

    /// The vendor id of the root record.
    pub fn vendor_id(&self) -> uuid::Uuid {
        self.vendor_id
    }

    /// The current chain.
    pub fn chain(&self) -> Arc<RootChain> {
        Arc::clone(&self.chain.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The newest root record's bytes (what a new device is provisioned with).
    pub fn root_bytes(&self) -> Vec<u8> {
        self.chain().newest().as_bytes().to_vec()
    }

    /// The id of the status key (hex).
    pub fn status_key_id(&self) -> String {
        hex::encode(fota_protocol::v2::key_id(
            &self.status_key.verifying_key().to_bytes(),
        ))
    }

    /// Replaces the chain with `records` (oldest first; each the next version of the one
    /// before, the first self-signed) — the chain the store holds — after checking it and
    /// that its newest lists this server's status key.
    pub fn replace_chain(&self, records: &[Vec<u8>]) -> Result<(), TrustError> {
        let mut iter = records.iter();
        let broken = |version: usize, e: String| TrustError::Root {
            path: PathBuf::from(format!("stored root record #{version}")),
            message: e,
        };
        let first = iter.next().ok_or_else(|| broken(0, "no record".into()))?;
        let mut chain =
            vec![RootRecord::verify_initial(first).map_err(|e| broken(1, e.to_string()))?];
        for (i, bytes) in iter.enumerate() {
            let trusted = chain.last().unwrap_or_else(|| unreachable!("not empty"));
            let next = RootRecord::verify_update(trusted, bytes)
                .map_err(|e| broken(i + 2, e.to_string()))?;
            chain.push(next);
        }
        let newest = chain.last().unwrap_or_else(|| unreachable!("not empty"));
        if *newest.vendor_id() != *self.vendor_id.as_bytes() {
            return Err(broken(chain.len(), "another vendor's root record".into()));
        }
        if !newest
            .keys(Role::Status)
            .contains(&self.status_key.verifying_key().to_bytes())
        {
            return Err(TrustError::Root {
                path: PathBuf::from(format!("stored root record v{}", newest.version())),
                message: format!(
                    "does not list this server's status key {}; start the server with a \
                     status key it lists",
                    self.status_key_id()
                ),
            });
        }
        self.set(RootChain { records: chain });
        Ok(())
    }

    /// Takes `bytes` as the next root record when it verifies as the next version of the
    /// newest (signed by the newest's root threshold and its own), has not expired at `now`,
    /// and lists this server's status key. The caller stores it first.
    pub fn check_next(&self, bytes: &[u8], now: u64) -> Result<Option<RootRecord>, AdoptError> {
        let chain = self.chain();
        let newest = chain.newest();
        let current = newest.version();
        let invalid = |detail: String| AdoptError::Invalid { current, detail };
        let envelope =
            fota_protocol::v2::Envelope::parse(&fota_protocol::v2::envelope::ROOT, bytes)
                .map_err(|e| invalid(e.to_string()))?;
        // The version, to tell a gap or a repeat from a bad record; nothing else of the
        // unverified body is used.
        let version = envelope
            .unverified_body()
            .first_chunk::<4>()
            .map(|b| u32::from_le_bytes(*b))
            .ok_or_else(|| invalid("the body is too short".into()))?;
        if version <= current {
            let held = chain.records().iter().find(|r| r.version() == version);
            return match held {
                Some(r) if r.as_bytes() == bytes => Ok(None),
                Some(_) => Err(AdoptError::Conflict { version }),
                None => Err(invalid(format!(
                    "version {version} is older than the chain this server holds"
                ))),
            };
        }
        if version > current.saturating_add(1) {
            return Err(AdoptError::Gap {
                version,
                current,
                next: current.saturating_add(1),
            });
        }
        let next = RootRecord::verify_update(newest, bytes).map_err(|e| invalid(e.to_string()))?;
        if next.is_expired(now) {
            return Err(AdoptError::Expired { version });
        }
        if !next
            .keys(Role::Status)
            .contains(&self.status_key.verifying_key().to_bytes())
        {
            return Err(AdoptError::StatusKeyNotListed {
                version,
                key_id: self.status_key_id(),
            });
        }
        Ok(Some(next))
    }

    /// Appends `next` (from [`Self::check_next`]) to the chain, unless the chain moved on
    /// meanwhile.
    pub fn push(&self, next: RootRecord) {
        let mut guard = self.chain.write().unwrap_or_else(PoisonError::into_inner);
        if guard.newest().version().checked_add(1) == Some(next.version()) {
            let mut chain = RootChain::clone(&guard);
            chain.records.push(next);
            *guard = Arc::new(chain);
            drop(guard);
            self.offerable
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }

    fn set(&self, chain: RootChain) {
        *self.chain.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(chain);
        self.offerable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Whether a stored release with this signed manifest may be offered: its release
    /// signatures still verify under the newest root. A release signed only by a key a
    /// rotation removed is no longer offered (the device would refuse it anyway).
    pub fn offerable(&self, manifest: &[u8]) -> bool {
        let digest = fota_protocol::v2::manifest_digest(manifest);
        if let Some(&known) = self
            .offerable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&digest)
        {
            return known;
        }
        let ok = fota_protocol::v2::Manifest::verify(self.chain().newest(), manifest).is_ok();
        let mut cache = self
            .offerable
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Bounded: there are as many entries as releases, and a flood of distinct
        // manifests cannot reach here (only stored releases are offered).
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(digest, ok);
        ok
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
