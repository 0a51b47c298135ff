//! The keys of one fleet and the root record they sign.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use fota_protocol::v2::{self, Role};

use crate::file::{KeyError, write_signing_key, write_with};
use crate::{ROOT_THRESHOLD, files};

/// The keys of one fleet, as `fota keys init` makes them. `Debug` shows the vendor id only.
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

// By hand: these are a fleet's private keys. (ed25519-dalek's own `Debug` prints only the
// public half; the marker says so without relying on it.)
impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = format_args!("[redacted]");
        f.debug_struct("KeySet")
            .field("vendor_id", &self.vendor_id)
            .field("root", &redacted)
            .field("release", &redacted)
            .field("status", &redacted)
            .finish()
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
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Io {
            path: dir.to_owned(),
            source,
        })?;
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
        let mut new_file = std::fs::OpenOptions::new();
        new_file.write(true).create_new(true);
        let path = dir.join(files::ROOT_RECORD);
        write_with(&path, &new_file, &root_record)?;
        written.push(path);
        let record =
            v2::RootRecord::verify_initial(&root_record).map_err(|e| KeyError::Invalid {
                path: dir.join(files::ROOT_RECORD),
                detail: e.to_string(),
            })?;
        let text = crate::folder::summary(&record, passphrase.is_some());
        let path = dir.join(files::PUBLIC);
        write_with(&path, &new_file, text.as_bytes())?;
        written.push(path);
        Ok(written)
    }

    /// The version-1 root record: root threshold [`ROOT_THRESHOLD`] of 3, release and status
    /// 1 of 1, signed by all three root keys (so any one may be lost later).
    pub fn root_record(&self) -> Result<Vec<u8>, KeyError> {
        let invalid = |e: v2::Error| KeyError::Invalid {
            path: PathBuf::from(files::ROOT_RECORD),
            detail: e.to_string(),
        };
        let public = |k: &SigningKey| k.verifying_key().to_bytes();
        let root_keys: Vec<[u8; 32]> = self.root.iter().map(public).collect();
        let body = v2::RootBody {
            version: 1,
            vendor_id: *self.vendor_id.as_bytes(),
            issued_at: unix_s(),
            expires_at: 0,
            root: v2::KeySet::new(Role::Root, ROOT_THRESHOLD, &root_keys).map_err(invalid)?,
            release: v2::KeySet::new(Role::Release, 1, &[public(&self.release)])
                .map_err(invalid)?,
            status: v2::KeySet::new(Role::Status, 1, &[public(&self.status)]).map_err(invalid)?,
        };
        let signers: Vec<&SigningKey> = self.root.iter().collect();
        body.sign(&signers).map_err(invalid)
    }
}

fn unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
    fn debug_of_a_key_set_shows_no_key() {
        let set = KeySet::generate(uuid::Uuid::new_v4());
        let debug = format!("{set:?}");
        assert!(debug.contains("release: [redacted]"), "{debug}");
        assert!(debug.contains(&set.vendor_id.to_string()), "{debug}");
        let keys = set.root.iter().chain([&set.release, &set.status]);
        for key in keys {
            // The secret half in every form a formatter might print it, and the public half.
            let secret = key.to_bytes();
            let public = key.verifying_key().to_bytes();
            for form in [
                hex::encode(secret),
                format!("{secret:?}"),
                hex::encode(public),
            ] {
                assert!(!debug.contains(form.trim_matches(['[', ']'])), "{debug}");
            }
        }
    }

    #[test]
    fn a_written_key_folder_holds_a_root_record_that_trusts_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        let set = KeySet::generate(uuid::Uuid::new_v4());
        let written = set.write(dir.path(), None).unwrap();
        assert_eq!(written.len(), 7);
        let root = std::fs::read(dir.path().join(files::ROOT_RECORD)).unwrap();
        let record = v2::RootRecord::verify_initial(&root).unwrap();
        assert_eq!(record.vendor_id(), set.vendor_id.as_bytes());
        let release = crate::read_signing_key(&dir.path().join(files::RELEASE), None).unwrap();
        assert!(
            record
                .keys(Role::Release)
                .contains(&release.verifying_key().to_bytes())
        );
        assert!(
            set.write(dir.path(), None).is_err(),
            "a key folder is never overwritten"
        );
    }
}
