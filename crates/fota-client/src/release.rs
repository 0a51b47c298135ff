//! Signing a release on the operator's machine: validate the ESP32 image, build its chunk hash
//! list, and sign the manifest with the release key of a key folder.
//!
//! Every byte format is `fota_protocol`'s, and the manifest body is built by
//! `fota_api::release::manifest_body` (whose table says what each field holds); this module
//! decides what goes in:
//!
//! | field | value |
//! |---|---|
//! | vendor_id | the key folder's root record |
//! | sequence | given (the CLI defaults it to the server's highest for the class + 1) |
//! | security_counter | given, else the image's `esp_app_desc_t.secure_version` |
//! | fw_version, project_name | the image's app descriptor (the version must equal the one given) |
//! | issued_at / expires_at | now / now + the validity given, or 0 (never) |
//! | chunk_size | given (power of two, 1-64 KiB) |
//!
//! The result is checked against the root record before it is returned, so a release key that
//! the root record does not trust is caught here and not at the server.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use fota_api::release::{ManifestFields, ReleaseParts, UnsignedRelease, manifest_body};
use fota_keys::{KeyError, files};
use fota_protocol::esp::image::{self as esp_image, VerifyOptions};
use fota_protocol::v2::{self, FixedStr, Manifest, ManifestBody, ManifestFormat, Role};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// The chunk size used unless one is given: 16 KiB, the seed's chunk size.
pub const DEFAULT_CHUNK_SIZE: u32 = 16 * 1024;

/// Why a release could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The release key could not be read (missing, wrong passphrase, not a key).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The root record of the key folder is missing or invalid.
    #[error("{path}: {detail}")]
    Root {
        /// The root record file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// No release key of the newest root record is in the folder.
    #[error(
        "{path}: no release key of the folder's newest root record is in the folder (nor as \
         release-KEYID.key)"
    )]
    UntrustedKey {
        /// The release key file.
        path: PathBuf,
    },
    /// The image is not a valid ESP32 app image.
    #[error("not a valid ESP32 app image: {0}")]
    InvalidImage(String),
    /// Bytes follow the image (a slot dump, or a file with something appended).
    #[error(
        "the ESP32 image ends at {image_len} bytes but the file has {file_len}; give the bare \
         image, not a slot dump"
    )]
    TrailingBytes {
        /// Where the image ends.
        image_len: u64,
        /// Bytes in the file.
        file_len: u64,
    },
    /// The version given is not the image's.
    #[error(
        "--version {given:?} does not match the image's app descriptor version {image:?}; \
         devices compare them, so they must be equal"
    )]
    VersionMismatch {
        /// The version asked for.
        given: String,
        /// The image's `esp_app_desc_t.version`.
        image: String,
    },
    /// The version cannot be a release's (see [`check_version`]).
    #[error("{0:?} is not a release version: 1-31 bytes of text without NUL")]
    InvalidVersion(String),
    /// A manifest field is out of range (chunk size, project name, sequence 0, ...). The
    /// field is named by the source, so that an error chain says it once.
    #[error("the manifest cannot be built")]
    Manifest(#[from] v2::Error),
}

/// Checks that `version` can be a release's: the manifest's `fw_version` holds 1-31 bytes of
/// UTF-8 without NUL (as `esp_app_desc_t.version` does, and it is never empty in a release).
pub fn check_version(version: &str) -> Result<(), ReleaseError> {
    if version.is_empty() || FixedStr::new(version).is_none() {
        return Err(ReleaseError::InvalidVersion(version.to_owned()));
    }
    Ok(())
}

/// The signing side of a key folder (as `fota keys init` writes it): its root record and
/// release key.
pub struct KeyFolder {
    dir: PathBuf,
    root: v2::RootRecord,
    release: SigningKey,
}

impl core::fmt::Debug for KeyFolder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyFolder")
            .field("dir", &self.dir)
            .field("vendor_id", &self.vendor_id())
            .finish_non_exhaustive()
    }
}

impl KeyFolder {
    /// Opens `dir`: verifies its chain of root records (`root.bin` alone, or `root-v1.bin` …
    /// up to `root.bin` after a rotation) and reads the release key to sign with — the newest
    /// root's most recently added release key whose file is in the folder (decrypted with
    /// `passphrase` when it is encrypted).
    pub fn open(dir: &Path, passphrase: Option<&str>) -> Result<Self, ReleaseError> {
        let folder = fota_keys::KeyFolder::open(dir).map_err(|e| match e {
            fota_keys::FolderError::Key(k) => ReleaseError::Key(k),
            other => ReleaseError::Root {
                path: dir.join(files::ROOT_RECORD),
                detail: other.to_string(),
            },
        })?;
        let (_, release) = folder
            .signing_key(Role::Release, passphrase)
            .map_err(|e| match e {
                fota_keys::FolderError::Key(k) => ReleaseError::Key(k),
                _ => ReleaseError::UntrustedKey {
                    path: dir.join(files::RELEASE),
                },
            })?;
        Ok(Self {
            dir: dir.to_owned(),
            root: folder.newest().clone(),
            release,
        })
    }

    /// The vendor of the root record.
    pub fn vendor_id(&self) -> Uuid {
        Uuid::from_bytes(*self.root.vendor_id())
    }

    /// The verified root record.
    pub fn root(&self) -> &v2::RootRecord {
        &self.root
    }
}

/// What an image says about itself, after it passed the validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `esp_app_desc_t.version`.
    pub version: String,
    /// `esp_app_desc_t.project_name`.
    pub project: String,
    /// `esp_app_desc_t.secure_version`.
    pub secure_version: u32,
    /// Length in bytes.
    pub size: u64,
    /// SHA-256 of the whole image.
    pub sha256: [u8; 32],
    /// The header's chip id (`esp_chip_id_t`), which the manifest names.
    pub chip_id: u16,
}

/// Validates `image` as the server and the devices will (ESP-IDF's `esp_image_verify` rules,
/// nothing after the image) and reads its app descriptor.
pub fn inspect_image(image: &[u8]) -> Result<ImageInfo, ReleaseError> {
    let report = esp_image::verify(image, VerifyOptions::default())
        .map_err(|e| ReleaseError::InvalidImage(e.to_string()))?;
    let image_len = report.image_len.map_or(0, u64::from);
    if image_len != image.len() as u64 {
        return Err(ReleaseError::TrailingBytes {
            image_len,
            file_len: image.len() as u64,
        });
    }
    let desc = report
        .app_desc
        .ok_or_else(|| ReleaseError::InvalidImage("no app descriptor".into()))?;
    Ok(ImageInfo {
        version: desc.version().unwrap_or_default().to_owned(),
        project: desc.project_name().unwrap_or_default().to_owned(),
        secure_version: desc.secure_version,
        size: image.len() as u64,
        sha256: Sha256::digest(image).into(),
        chip_id: report.header.map_or(v2::chip_ids::ESP32, |h| h.chip_id),
    })
}

/// The choices of a release beyond what the image fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseSpec {
    /// Hardware class name.
    pub class: String,
    /// Firmware version; must equal the image's app descriptor version.
    pub version: String,
    /// Sequence, ≥ 1, above every earlier release of the class.
    pub sequence: u64,
    /// Anti-rollback counter; `None` takes the image's `secure_version`.
    pub security_counter: Option<u32>,
    /// Chunk size: a power of two, 1-64 KiB.
    pub chunk_size: u32,
    /// Signing time, unix seconds.
    pub issued_at: u64,
    /// Expiry, unix seconds; 0 = never.
    pub expires_at: u64,
    /// Manifest layout: [`ManifestFormat::V3`] unless the fleet's agents predate it (format
    /// 2 can only name an ESP32).
    pub manifest_format: ManifestFormat,
}

/// A signed release, ready to upload or to put in a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRelease {
    /// Class name.
    pub class: String,
    /// The signed manifest envelope.
    pub manifest: Vec<u8>,
    /// The chunk hash list blob.
    pub hashlist: Vec<u8>,
    /// The fields that were signed.
    pub body: ManifestBody,
}

impl SignedRelease {
    /// The parts the upload endpoint takes besides the image.
    pub fn parts(&self) -> ReleaseParts<'_> {
        ReleaseParts {
            class: &self.class,
            manifest: &self.manifest,
            hashlist: &self.hashlist,
        }
    }

    /// The id the server will give the release: the first 16 hex digits of the manifest
    /// envelope's SHA-256.
    pub fn release_id(&self) -> String {
        fota_api::release::release_id(&v2::manifest_digest(&self.manifest))
    }
}

/// Validates `image`, builds its hash list and signs its manifest for `spec` with the release
/// key of `keys`.
pub fn sign(
    image: &[u8],
    spec: &ReleaseSpec,
    keys: &KeyFolder,
) -> Result<SignedRelease, ReleaseError> {
    check_version(&spec.version)?;
    let info = inspect_image(image)?;
    if info.version != spec.version {
        return Err(ReleaseError::VersionMismatch {
            given: spec.version.clone(),
            image: info.version,
        });
    }
    let UnsignedRelease { body, hashlist } = manifest_body(
        image,
        &ManifestFields {
            vendor_id: keys.vendor_id(),
            class: &spec.class,
            sequence: spec.sequence,
            security_counter: spec.security_counter.unwrap_or(info.secure_version),
            version: &info.version,
            project: &info.project,
            chunk_size: spec.chunk_size,
            issued_at: spec.issued_at,
            expires_at: spec.expires_at,
            format: spec.manifest_format,
            chip_id: info.chip_id,
        },
    )?;
    let manifest = body.sign(&[&keys.release])?;
    // What devices will do with it: a manifest that does not verify is never uploaded.
    Manifest::verify(&keys.root, &manifest)?;
    Ok(SignedRelease {
        class: spec.class.clone(),
        manifest,
        hashlist,
        body,
    })
}
