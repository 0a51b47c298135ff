//! A key folder over its whole life: the chain of root records, the private keys by key id,
//! and the changes an operator makes to it (rotations and revocations), each a new root record.
//!
//! # Layout
//!
//! | file | what |
//! |---|---|
//! | `root.bin` | the newest root record (replaced, atomically, by each change) |
//! | `root-vN.bin` | root record version N, for every N from 1; never overwritten |
//! | `root-1.key` … `root-3.key`, `release.key`, `status.key` | the keys `fota keys init` made |
//! | `ROLE-KEYID.key` | a key a later change made, named by role and key id (16 hex digits) |
//! | `keys.json` | public summary of the newest root record (replaced with it) |
//!
//! Until the first change a folder holds only `root.bin` (version 1). The first change writes
//! `root-v1.bin` beside it, then `root-v2.bin`, then replaces `root.bin`, in that order: a crash
//! between any two steps leaves a folder whose `root.bin` is still a record the chain verifies
//! (the older one until the last step).
//!
//! # Changes
//!
//! Every change writes version v+1, signed by the threshold of the current root keys and by
//! the threshold of the new record's root keys, as [`RootRecord::verify_update`] checks, and
//! checks the result with it before anything is written.
//!
//! - [`Change::RotateRelease`], [`Change::RotateStatus`]: a new key joins the role, beside the
//!   old ones (a transition: releases signed by the old release key stay valid, a server still
//!   signing with the old status key keeps working). Revoke the old key to finish.
//! - [`Change::RotateRoot`]: three new root keys (threshold [`ROOT_THRESHOLD`]) replace the
//!   current ones.
//! - [`Change::Revoke`]: a key leaves its role. Refused when the role would keep fewer keys
//!   than its threshold.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use fota_protocol::v2::keys::{MAX_KEYS, PublicKeyBytes};
use fota_protocol::v2::{self, KeyId, Role, RootBody, RootRecord};

use crate::file::{KeyError, write_signing_key, write_with};
use crate::set::generate_signing_key;
use crate::{ROOT_THRESHOLD, files, read_signing_key};

/// Why a key folder could not be read or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FolderError {
    /// A key file could not be read or written.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A root record of the folder is missing, unreadable or does not verify.
    #[error("{path}: {detail}")]
    Chain {
        /// The record file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// Fewer private keys of a role are in the folder than the change must sign with.
    #[error(
        "the folder holds {found} private {role} key(s) of the root record, {needed} needed to sign"
    )]
    MissingKeys {
        /// The role (`root`, or the role whose key is asked for).
        role: Role,
        /// Keys needed.
        needed: u8,
        /// Keys found.
        found: u8,
    },
    /// No key of the newest root record has this id.
    #[error("no key of root record v{version} has id {id}")]
    UnknownKey {
        /// The id asked for, as given.
        id: String,
        /// The newest version.
        version: u32,
    },
    /// Revoking the key would leave its role below its threshold.
    #[error(
        "revoking {id} would leave the {role} role {left} key(s) for a threshold of {threshold}{hint}"
    )]
    BelowThreshold {
        /// The key id.
        id: String,
        /// Its role.
        role: Role,
        /// Keys left.
        left: usize,
        /// The role's threshold.
        threshold: u8,
        /// What to do instead.
        hint: &'static str,
    },
    /// The role already lists the most keys a root record allows.
    #[error("the {role} role already lists {max} keys; revoke one first")]
    RoleFull {
        /// The role.
        role: Role,
        /// [`MAX_KEYS`].
        max: usize,
    },
    /// Building or signing the new record failed.
    #[error("new root record: {0}")]
    Record(#[from] v2::Error),
}

/// One change to a key folder; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A new release key joins the old ones.
    RotateRelease,
    /// A new status key joins the old ones.
    RotateStatus,
    /// New root keys replace the current ones.
    RotateRoot,
    /// The key with this id leaves its role.
    Revoke(KeyId),
}

/// What a change wrote.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The new record's version.
    pub version: u32,
    /// Key files written, with the key's role and id.
    pub new_keys: Vec<(Role, KeyId, PathBuf)>,
    /// Every file written or replaced, in the order written.
    pub written: Vec<PathBuf>,
}

/// One key that some root record of the chain lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// Its id.
    pub id: KeyId,
    /// Its role.
    pub role: Role,
    /// The newest root record no longer lists it for that role.
    pub revoked: bool,
    /// The first version that lists it.
    pub since: u32,
    /// Its private key file in the folder, if found by name.
    pub file: Option<PathBuf>,
}

/// A key folder's verified chain of root records. Holds no private key.
#[derive(Debug)]
pub struct KeyFolder {
    dir: PathBuf,
    chain: Vec<RootRecord>,
}

/// The name of a key file a change writes.
pub fn key_file_name(role: Role, id: &KeyId) -> String {
    format!("{}-{}.key", role.as_str(), hex::encode(id))
}

/// The name of root record version `version`.
pub fn root_file_name(version: u32) -> String {
    format!("root-v{version}.bin")
}

impl KeyFolder {
    /// Reads and verifies `dir`'s chain: `root-v1.bin` by its own root keys, each next version
    /// by [`RootRecord::verify_update`], and `root.bin` must be the newest. A folder no change
    /// has touched holds `root.bin` alone.
    pub fn open(dir: &Path) -> Result<Self, FolderError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| FolderError::Chain {
                path: path.to_owned(),
                detail: e.to_string(),
            })
        };
        let bad = |path: &Path, e: v2::Error| FolderError::Chain {
            path: path.to_owned(),
            detail: e.to_string(),
        };
        let newest_path = dir.join(files::ROOT_RECORD);
        let newest = read(&newest_path)?;
        let first_path = dir.join(root_file_name(1));
        let mut chain = Vec::new();
        if !first_path.exists() {
            let record = RootRecord::verify_initial(&newest).map_err(|e| bad(&newest_path, e))?;
            chain.push(record);
        } else {
            let first = read(&first_path)?;
            chain.push(RootRecord::verify_initial(&first).map_err(|e| bad(&first_path, e))?);
            loop {
                let version = chain.len() as u32 + 1;
                let path = dir.join(root_file_name(version));
                if !path.exists() {
                    break;
                }
                let bytes = read(&path)?;
                let trusted = chain
                    .last()
                    .unwrap_or_else(|| unreachable!("starts with v1"));
                let next = RootRecord::verify_update(trusted, &bytes).map_err(|e| bad(&path, e))?;
                chain.push(next);
            }
        }
        let last = chain.last().unwrap_or_else(|| unreachable!("never empty"));
        if last.as_bytes() != newest.as_slice() {
            return Err(FolderError::Chain {
                path: newest_path,
                detail: format!(
                    "is not {} (the newest record of the chain)",
                    root_file_name(last.version())
                ),
            });
        }
        Ok(Self {
            dir: dir.to_owned(),
            chain,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every version, oldest first (v1 first).
    pub fn chain(&self) -> &[RootRecord] {
        &self.chain
    }

    /// The newest root record.
    pub fn newest(&self) -> &RootRecord {
        self.chain
            .last()
            .unwrap_or_else(|| unreachable!("a folder's chain is never empty"))
    }

    /// Every key any version lists, by role, in the order they first appear.
    pub fn keys(&self) -> Vec<KeyEntry> {
        let newest = self.newest();
        let mut out: Vec<KeyEntry> = Vec::new();
        for record in &self.chain {
            for role in Role::ALL {
                for pk in record.keys(role).keys() {
                    let id = v2::key_id(pk);
                    if out.iter().any(|k| k.id == id && k.role == role) {
                        continue;
                    }
                    out.push(KeyEntry {
                        id,
                        role,
                        revoked: !newest.keys(role).contains(pk),
                        since: record.version(),
                        file: self.find_file(role, pk),
                    });
                }
            }
        }
        out
    }

    /// The private key file of `pk`, by name: `ROLE-KEYID.key`, else the names `fota keys
    /// init` used for version 1's keys.
    fn find_file(&self, role: Role, pk: &PublicKeyBytes) -> Option<PathBuf> {
        let named = self.dir.join(key_file_name(role, &v2::key_id(pk)));
        if named.exists() {
            return Some(named);
        }
        let first = self.chain.first()?;
        let initial: Vec<&str> = match role {
            Role::Root => files::ROOT.to_vec(),
            Role::Release => vec![files::RELEASE],
            Role::Status => vec![files::STATUS],
        };
        let index = first.keys(role).keys().iter().position(|k| k == pk)?;
        let name = initial.get(index)?;
        let path = self.dir.join(name);
        path.exists().then_some(path)
    }

    /// Reads the private key of `pk`, checking it is that key.
    fn read_key(
        &self,
        role: Role,
        pk: &PublicKeyBytes,
        passphrase: Option<&str>,
    ) -> Result<Option<SigningKey>, KeyError> {
        let Some(path) = self.find_file(role, pk) else {
            return Ok(None);
        };
        let key = read_signing_key(&path, passphrase)?;
        Ok((key.verifying_key().to_bytes() == *pk).then_some(key))
    }

    /// The key of `role` to sign with: the newest record's most recently added key of that
    /// role whose private file is in the folder, with its path.
    pub fn signing_key(
        &self,
        role: Role,
        passphrase: Option<&str>,
    ) -> Result<(PathBuf, SigningKey), FolderError> {
        for pk in self.newest().keys(role).keys().iter().rev() {
            if let Some(path) = self.find_file(role, pk)
                && let Some(key) = self.read_key(role, pk, passphrase)?
            {
                return Ok((path, key));
            }
        }
        Err(FolderError::MissingKeys {
            role,
            needed: 1,
            found: 0,
        })
    }

    /// Up to `needed` private keys of `keys` found in the folder, skipping `except`.
    fn signers(
        &self,
        role: Role,
        keys: &v2::KeySet,
        except: Option<&KeyId>,
        passphrase: Option<&str>,
    ) -> Result<Vec<SigningKey>, FolderError> {
        let mut found = Vec::new();
        for pk in keys.keys() {
            if found.len() >= usize::from(keys.threshold()) {
                break;
            }
            if except == Some(&v2::key_id(pk)) {
                continue;
            }
            if let Some(key) = self.read_key(role, pk, passphrase)? {
                found.push(key);
            }
        }
        if found.len() < usize::from(keys.threshold()) {
            return Err(FolderError::MissingKeys {
                role,
                needed: keys.threshold(),
                found: u8::try_from(found.len()).unwrap_or(u8::MAX),
            });
        }
        Ok(found)
    }

    /// Makes root record v+1 for `change`, checks it against the newest, and writes it with
    /// any new keys (encrypted with `passphrase` when given). `expires_at` is the new record's
    /// expiry (unix seconds; 0 = never); `None` keeps the current record's lifetime (its
    /// `expires_at − issued_at`) from now.
    pub fn apply(
        &mut self,
        change: Change,
        expires_at: Option<u64>,
        passphrase: Option<&str>,
    ) -> Result<Applied, FolderError> {
        let current = self.newest().clone();
        let cur = current.body();
        let now = unix_s();
        let mut body: RootBody = cur.clone();
        body.version = cur.version.checked_add(1).ok_or(v2::Error::RootVersion {
            expected: u32::MAX,
            found: cur.version,
        })?;
        body.issued_at = now.max(cur.issued_at);
        body.expires_at = expires_at.unwrap_or(if cur.expires_at == 0 {
            0
        } else {
            now.saturating_add(cur.expires_at.saturating_sub(cur.issued_at))
        });
        let mut new_keys: Vec<(Role, SigningKey)> = Vec::new();
        let mut revoked: Option<KeyId> = None;
        match change {
            Change::RotateRelease | Change::RotateStatus => {
                let role = if change == Change::RotateRelease {
                    Role::Release
                } else {
                    Role::Status
                };
                let set = cur.keys(role);
                if set.keys().len() >= MAX_KEYS {
                    return Err(FolderError::RoleFull {
                        role,
                        max: MAX_KEYS,
                    });
                }
                let key = generate_signing_key();
                let mut keys = set.keys().to_vec();
                keys.push(key.verifying_key().to_bytes());
                *role_mut(&mut body, role) = v2::KeySet::new(role, set.threshold(), &keys)?;
                new_keys.push((role, key));
            }
            Change::RotateRoot => {
                let keys: Vec<SigningKey> = (0..3).map(|_| generate_signing_key()).collect();
                let public: Vec<PublicKeyBytes> =
                    keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
                body.root = v2::KeySet::new(Role::Root, ROOT_THRESHOLD, &public)?;
                new_keys.extend(keys.into_iter().map(|k| (Role::Root, k)));
            }
            Change::Revoke(id) => {
                let hex_id = hex::encode(id);
                let (role, set) = Role::ALL
                    .into_iter()
                    .map(|role| (role, cur.keys(role)))
                    .find(|(_, set)| set.key_ids().contains(&id))
                    .ok_or_else(|| FolderError::UnknownKey {
                        id: hex_id.clone(),
                        version: cur.version,
                    })?;
                let left: Vec<PublicKeyBytes> = set
                    .keys()
                    .iter()
                    .filter(|pk| v2::key_id(pk) != id)
                    .copied()
                    .collect();
                if left.len() < usize::from(set.threshold()) {
                    return Err(FolderError::BelowThreshold {
                        id: hex_id,
                        role,
                        left: left.len(),
                        threshold: set.threshold(),
                        hint: match role {
                            Role::Root => "; rotate the root keys instead (fota keys rotate-root)",
                            Role::Release => {
                                "; rotate first (fota keys rotate-release), then revoke it"
                            }
                            Role::Status => {
                                "; rotate first (fota keys rotate-status), then revoke it"
                            }
                        },
                    });
                }
                *role_mut(&mut body, role) = v2::KeySet::new(role, set.threshold(), &left)?;
                revoked = Some(id);
            }
        }
        // Old root threshold (without a revoked key where others suffice) and new root
        // threshold; a key in both signs once.
        let old = self
            .signers(Role::Root, &cur.root, revoked.as_ref(), passphrase)
            .or_else(|_| self.signers(Role::Root, &cur.root, None, passphrase))?;
        let new_root_private: Vec<&SigningKey> = new_keys
            .iter()
            .filter(|(role, _)| *role == Role::Root)
            .map(|(_, k)| k)
            .collect();
        let new = if new_root_private.is_empty() {
            self.signers(Role::Root, &body.root, None, passphrase)?
        } else {
            Vec::new()
        };
        let mut signers: Vec<&SigningKey> = Vec::new();
        for key in old.iter().chain(new.iter()).chain(
            new_root_private
                .into_iter()
                .take(usize::from(ROOT_THRESHOLD)),
        ) {
            if !signers
                .iter()
                .any(|s| s.verifying_key() == key.verifying_key())
            {
                signers.push(key);
            }
        }
        let bytes = body.sign(&signers)?;
        let next = RootRecord::verify_update(&current, &bytes)?;

        let mut written = Vec::new();
        let mut new_key_files = Vec::new();
        for (role, key) in &new_keys {
            let id = v2::key_id(&key.verifying_key().to_bytes());
            let path = self.dir.join(key_file_name(*role, &id));
            write_signing_key(&path, key, passphrase)?;
            written.push(path.clone());
            new_key_files.push((*role, id, path));
        }
        let mut new_file = std::fs::OpenOptions::new();
        new_file.write(true).create_new(true);
        for record in &self.chain {
            let path = self.dir.join(root_file_name(record.version()));
            if !path.exists() {
                write_with(&path, &new_file, record.as_bytes())?;
                written.push(path);
            }
        }
        let path = self.dir.join(root_file_name(next.version()));
        write_with(&path, &new_file, &bytes)?;
        written.push(path);
        let path = self.dir.join(files::ROOT_RECORD);
        replace(&path, &bytes)?;
        written.push(path);
        let path = self.dir.join(files::PUBLIC);
        replace(&path, summary(&next, passphrase.is_some()).as_bytes())?;
        written.push(path);
        self.chain.push(next);
        Ok(Applied {
            version: body.version,
            new_keys: new_key_files,
            written,
        })
    }
}

fn role_mut(body: &mut RootBody, role: Role) -> &mut v2::KeySet {
    match role {
        Role::Root => &mut body.root,
        Role::Release => &mut body.release,
        Role::Status => &mut body.status,
    }
}

/// `keys.json`: the vendor, the newest version and every role's public keys.
pub(crate) fn summary(record: &RootRecord, encrypted: bool) -> String {
    let role = |role: Role| {
        let set = record.keys(role);
        let keys: Vec<serde_json::Value> = set
            .keys()
            .iter()
            .map(|pk| {
                serde_json::json!({
                    "public_key": hex::encode(pk),
                    "key_id": hex::encode(v2::key_id(pk)),
                })
            })
            .collect();
        serde_json::json!({ "threshold": set.threshold(), "keys": keys })
    };
    let json = serde_json::json!({
        "vendor_id": uuid::Uuid::from_bytes(*record.vendor_id()).to_string(),
        "root_version": record.version(),
        "expires_at": record.body().expires_at,
        "root": role(Role::Root),
        "release": role(Role::Release),
        "status": role(Role::Status),
        "encrypted": encrypted,
    });
    serde_json::to_string_pretty(&json).unwrap_or_default() + "\n"
}

/// Replaces `path` with `bytes` through a synced temporary file and a rename, so a reader sees
/// the old or the new content, never a mix.
fn replace(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut new_file = std::fs::OpenOptions::new();
    new_file.write(true).create_new(true);
    write_with(&tmp, &new_file, bytes)?;
    std::fs::rename(&tmp, path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

fn unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeySet;

    fn folder() -> (tempfile::TempDir, KeyFolder) {
        let dir = tempfile::tempdir().unwrap();
        KeySet::generate(uuid::Uuid::new_v4())
            .write(dir.path(), None)
            .unwrap();
        let folder = KeyFolder::open(dir.path()).unwrap();
        (dir, folder)
    }

    #[test]
    fn a_fresh_folder_is_a_chain_of_one() {
        let (_dir, folder) = folder();
        assert_eq!(folder.chain().len(), 1);
        assert_eq!(folder.newest().version(), 1);
        let keys = folder.keys();
        assert_eq!(keys.len(), 5);
        assert!(keys.iter().all(|k| !k.revoked && k.file.is_some()));
    }

    #[test]
    fn rotating_the_release_key_then_revoking_the_old_one_walks_a_verified_chain() {
        let (dir, mut folder) = folder();
        let (_, old) = folder.signing_key(Role::Release, None).unwrap();
        let old_id = v2::key_id(&old.verifying_key().to_bytes());

        let applied = folder.apply(Change::RotateRelease, None, None).unwrap();
        assert_eq!(applied.version, 2);
        let [(role, new_id, path)] = applied.new_keys.as_slice() else {
            panic!("one new key: {:?}", applied.new_keys)
        };
        assert_eq!(*role, Role::Release);
        assert!(path.ends_with(key_file_name(Role::Release, new_id)));
        assert!(dir.path().join("root-v1.bin").exists());
        assert!(dir.path().join("root-v2.bin").exists());
        // The newest release key signs from now on; the old one is still trusted.
        let (_, active) = folder.signing_key(Role::Release, None).unwrap();
        assert_eq!(v2::key_id(&active.verifying_key().to_bytes()), *new_id);
        assert!(folder.keys().iter().all(|k| !k.revoked));

        folder.apply(Change::Revoke(old_id), None, None).unwrap();
        let reopened = KeyFolder::open(dir.path()).unwrap();
        assert_eq!(reopened.newest().version(), 3);
        let old_entry = reopened
            .keys()
            .into_iter()
            .find(|k| k.id == old_id)
            .unwrap();
        assert!(old_entry.revoked);
        assert_eq!(old_entry.role, Role::Release);
        // Each version verifies from the one before: what a device walks.
        for pair in reopened.chain().windows(2) {
            RootRecord::verify_update(&pair[0], pair[1].as_bytes()).unwrap();
        }
    }

    #[test]
    fn a_root_rotation_is_signed_by_old_and_new_root_keys_and_they_sign_the_next() {
        let (dir, mut folder) = folder();
        folder.apply(Change::RotateRoot, None, None).unwrap();
        let v2_root = folder.newest().clone();
        assert_eq!(v2_root.keys(Role::Root).keys().len(), 3);
        assert!(
            folder
                .keys()
                .iter()
                .filter(|k| k.role == Role::Root && k.revoked)
                .count()
                == 3,
            "the three first root keys are retired"
        );
        // The next change needs the new root keys only: hide the old ones.
        for name in files::ROOT {
            std::fs::remove_file(dir.path().join(name)).unwrap();
        }
        folder.apply(Change::RotateStatus, None, None).unwrap();
        assert_eq!(KeyFolder::open(dir.path()).unwrap().newest().version(), 3);
    }

    #[test]
    fn a_revocation_that_would_break_a_threshold_is_refused_and_writes_nothing() {
        let (dir, mut folder) = folder();
        let (_, status) = folder.signing_key(Role::Status, None).unwrap();
        let id = v2::key_id(&status.verifying_key().to_bytes());
        let before: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        let err = folder.apply(Change::Revoke(id), None, None).unwrap_err();
        assert!(
            matches!(
                err,
                FolderError::BelowThreshold {
                    role: Role::Status,
                    left: 0,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("rotate-status"), "{err}");
        let err = folder
            .apply(Change::Revoke([7; 8]), None, None)
            .unwrap_err();
        assert!(matches!(err, FolderError::UnknownKey { .. }), "{err}");
        let after: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(before.len(), after.len());
        assert_eq!(folder.newest().version(), 1);
    }

    #[test]
    fn a_change_without_enough_root_keys_is_refused_before_writing() {
        let (dir, mut folder) = folder();
        std::fs::remove_file(dir.path().join(files::ROOT[0])).unwrap();
        std::fs::remove_file(dir.path().join(files::ROOT[1])).unwrap();
        let err = folder.apply(Change::RotateRelease, None, None).unwrap_err();
        assert!(
            matches!(
                err,
                FolderError::MissingKeys {
                    role: Role::Root,
                    needed: 2,
                    found: 1
                }
            ),
            "{err}"
        );
        assert!(!dir.path().join("root-v2.bin").exists());
        let keys: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("release-"))
            .collect();
        assert!(keys.is_empty(), "no key file written");
    }

    #[test]
    fn a_root_bin_that_is_not_the_newest_of_the_chain_is_refused() {
        let (dir, mut folder) = folder();
        folder.apply(Change::RotateStatus, None, None).unwrap();
        std::fs::copy(dir.path().join("root-v1.bin"), dir.path().join("root.bin")).unwrap();
        let err = KeyFolder::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("root-v2.bin"), "{err}");
    }

    #[test]
    fn expiry_is_kept_as_a_lifetime_or_set() {
        let (_dir, mut folder) = folder();
        folder
            .apply(Change::RotateStatus, Some(4_000_000_000), None)
            .unwrap();
        assert_eq!(folder.newest().body().expires_at, 4_000_000_000);
        folder.apply(Change::RotateRelease, None, None).unwrap();
        let b = folder.newest().body();
        assert!(b.expires_at > b.issued_at && b.expires_at != 0);
    }
}
