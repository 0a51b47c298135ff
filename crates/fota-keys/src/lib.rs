//! A fleet's key files: Ed25519 private keys as PKCS#8 PEM, encrypted with a passphrase or
//! plain, the key set `fota keys init` makes, and the root record that key set signs.
//!
//! The format is the standard one, so `openssl pkey` reads every file:
//!
//! - with a passphrase: `-----BEGIN ENCRYPTED PRIVATE KEY-----`, PKCS#8 `EncryptedPrivateKeyInfo`
//!   with PBES2 = scrypt (log₂N 15, r 8, p 1) + AES-256-CBC, random salt and IV per file;
//! - without: `-----BEGIN PRIVATE KEY-----` (RFC 8410), file mode `0600`.
//!
//! Files are created exclusively (an existing key is never overwritten) and written with mode
//! `0600` from the start, so a key is never readable by others, not even briefly.
//!
//! # Two sides
//!
//! Reading a key file ([`read_signing_key`], [`is_encrypted`]) is always available: the update
//! server reads its status key with it. Making keys and signing with them ([`KeySet`],
//! [`write_signing_key`], [`generate_signing_key`], the root record) needs the `sign` feature
//! (on by default). `fota-server` depends on this crate without it, so a server that tried to
//! make or sign anything would not build: releases and root records are signed offline, by the
//! operator's tools.
//!
//! A key folder lives on: [`KeyFolder`] reads its chain of root records and makes the next
//! one for a rotation or a revocation (`fota keys rotate-*`, `fota keys revoke`).
//!
//! With the `tls` feature, [`tls`] makes a private TLS CA and a server certificate it signs
//! (`fota server tls self-signed`).
//!
//! # What this crate never does
//!
//! - **Read the environment.** Passphrases are parameters; the `fota` CLI reads
//!   [`PASSPHRASE_ENV`] and passes the value on.
//! - **Overwrite a key file** (nor a certificate file).
//!
//! Where this crate stands among the others, what each never does and which test suite is the
//! authority for what: [docs/ARCHITECTURE.md](../../../docs/ARCHITECTURE.md) in the repository.

// Key files live on a host file system: the std paths are the idiomatic ones here.
#![allow(
    clippy::std_instead_of_core,
    clippy::alloc_instead_of_core,
    reason = "a host-only crate: std paths say what they are, and nothing here builds for no_std"
)]

mod file;
#[cfg(feature = "sign")]
pub mod folder;
#[cfg(feature = "sign")]
mod set;
#[cfg(feature = "tls")]
pub mod tls;

#[cfg(feature = "sign")]
pub use file::write_signing_key;
pub use file::{KeyError, is_encrypted, read_signing_key};
#[cfg(feature = "sign")]
pub use folder::{Change, FolderError, KeyFolder};
#[cfg(feature = "sign")]
pub use set::{KeySet, generate_signing_key};

/// The environment variable the `fota` CLI takes the passphrase of encrypted key files from.
/// This crate only names it (in [`KeyError::PassphraseNeeded`]); it never reads it.
pub const PASSPHRASE_ENV: &str = "FOTA_KEY_PASSPHRASE";

/// Root signatures a root record needs.
pub const ROOT_THRESHOLD: u8 = 2;

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
