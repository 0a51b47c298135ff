//! The signed release manifest.

use sha2::{Digest, Sha256};

use crate::codec::{Reader, Writer};
use crate::v2::envelope::{self, Envelope, HEADER_LEN, MAX_SIGNATURES, SIGNATURE_ENTRY_LEN};
use crate::v2::root::RootRecord;
use crate::v2::{Error, FieldCheck, FixedStr};

/// Length of a format-2 manifest body.
pub const BODY_LEN: usize = 256;
/// Longest manifest envelope.
pub const MAX_LEN: usize = HEADER_LEN + BODY_LEN + 1 + MAX_SIGNATURES * SIGNATURE_ENTRY_LEN;
/// Largest image a manifest may describe. Whether it fits the device's slot is the device's
/// check.
pub const MAX_IMAGE_SIZE: u64 = 16 * 1024 * 1024;
/// Smallest chunk size.
pub const MIN_CHUNK_SIZE: u32 = 1024;
/// Largest chunk size.
pub const MAX_CHUNK_SIZE: u32 = 65536;

/// How the image bytes are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum PayloadFormat {
    /// A raw ESP32 app image, written to the slot as is.
    RawEspApp = 0,
}

impl PayloadFormat {
    /// The code on the wire.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The format for a wire code this version supports.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::RawEspApp),
            _ => None,
        }
    }
}

/// Which part of the device the image is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Component {
    /// The application: an OTA app slot.
    Application = 0,
}

impl Component {
    /// The code on the wire.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The component for a wire code this version supports.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Application),
            _ => None,
        }
    }
}

/// `ceil(image_size / chunk_size)` as a u32, or `None` on a zero chunk size or overflow.
pub fn chunk_count_for(image_size: u64, chunk_size: u32) -> Option<u32> {
    let chunk_size = u64::from(chunk_size);
    let count = image_size
        .checked_add(chunk_size.checked_sub(1)?)?
        .checked_div(chunk_size)?;
    u32::try_from(count).ok()
}

/// Checks a chunk size and image size pair as manifests and hash lists require it; `base` is
/// the offset of `image_size` in the manifest body (chunk_size follows 8 bytes later).
pub(crate) fn check_sizes(image_size: u64, chunk_size: u32, base: usize) -> Result<u32, Error> {
    if image_size == 0 || image_size > MAX_IMAGE_SIZE {
        return Err(Error::field("image_size", base, FieldCheck::OutOfRange));
    }
    let chunk_size_at = base.saturating_add(8);
    if !chunk_size.is_power_of_two() {
        return Err(Error::field(
            "chunk_size",
            chunk_size_at,
            FieldCheck::NotPowerOfTwo,
        ));
    }
    let out_of_range = Error::field("chunk_size", chunk_size_at, FieldCheck::OutOfRange);
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        return Err(out_of_range);
    }
    chunk_count_for(image_size, chunk_size).ok_or(out_of_range)
}

/// The fields of a release manifest.
///
/// Body layout (inside a `FOTM` version 2 envelope, domain `"FOTA-MANIFEST-v2\0"`, signed by
/// the release role), exactly 256 bytes, integers little-endian:
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 16 | vendor_id | UUID of the vendor |
/// | 16 | 16 | class_id | UUIDv5(vendor_id, class name) |
/// | 32 | 16 | device_id | one device, or all-zero for the whole class |
/// | 48 | 8 | sequence | u64, ≥ 1, monotonic per class |
/// | 56 | 4 | security_counter | u32, anti-rollback counter |
/// | 60 | 1 | payload_format | [`PayloadFormat`]; 0 = raw ESP32 app image |
/// | 61 | 1 | component | [`Component`]; 0 = application slot |
/// | 62 | 2 | reserved | zero |
/// | 64 | 32 | fw_version | NUL-padded UTF-8, 1..=31 bytes; = `esp_app_desc_t.version` |
/// | 96 | 32 | project_name | NUL-padded UTF-8, 1..=31 bytes; = `esp_app_desc_t.project_name` |
/// | 128 | 8 | issued_at | unix seconds |
/// | 136 | 8 | expires_at | unix seconds, 0 = never; else > issued_at |
/// | 144 | 8 | image_size | u64, 1..=16 MiB |
/// | 152 | 4 | chunk_size | u32, power of two, 1024..=65536 |
/// | 156 | 4 | chunk_count | u32, = ceil(image_size / chunk_size) |
/// | 160 | 32 | image_sha256 | SHA-256 of the whole image |
/// | 192 | 32 | chunk_list_sha256 | SHA-256 of the hash list's header and page-digest table |
/// | 224 | 32 | precursor_sha256 | delta base image; zero for raw images |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestBody {
    /// Vendor UUID.
    pub vendor_id: [u8; 16],
    /// Hardware class UUID.
    pub class_id: [u8; 16],
    /// Target device, or all-zero for the whole class.
    pub device_id: [u8; 16],
    /// Release sequence, monotonic per class, ≥ 1.
    pub sequence: u64,
    /// Anti-rollback counter.
    pub security_counter: u32,
    /// How the image is delivered.
    pub payload_format: PayloadFormat,
    /// Where the image goes.
    pub component: Component,
    /// The image's `esp_app_desc_t.version`.
    pub fw_version: FixedStr,
    /// The image's `esp_app_desc_t.project_name`.
    pub project_name: FixedStr,
    /// Signing time (unix seconds).
    pub issued_at: u64,
    /// Expiry (unix seconds, 0 = never).
    pub expires_at: u64,
    /// Image length in bytes.
    pub image_size: u64,
    /// Chunk length (the last chunk is the remainder).
    pub chunk_size: u32,
    /// Number of chunks.
    pub chunk_count: u32,
    /// SHA-256 of the image.
    pub image_sha256: [u8; 32],
    /// SHA-256 of the hash list's header and page-digest table.
    pub chunk_list_sha256: [u8; 32],
    /// SHA-256 of the delta base; zero for raw images.
    pub precursor_sha256: [u8; 32],
}

impl ManifestBody {
    /// Runs every field check a verifier runs after the signature.
    pub fn check(&self) -> Result<(), Error> {
        if self.sequence == 0 {
            return Err(Error::field("sequence", 48, FieldCheck::Zero));
        }
        if self.fw_version.is_empty() {
            return Err(Error::field("fw_version", 64, FieldCheck::Text));
        }
        if self.project_name.is_empty() {
            return Err(Error::field("project_name", 96, FieldCheck::Text));
        }
        if self.expires_at != 0 && self.expires_at <= self.issued_at {
            return Err(Error::field("expires_at", 136, FieldCheck::Inconsistent));
        }
        let expected = check_sizes(self.image_size, self.chunk_size, 144)?;
        if self.chunk_count != expected {
            return Err(Error::ChunkCount {
                expected,
                found: self.chunk_count,
            });
        }
        // Only raw images exist so far; a delta format will give the precursor a meaning.
        if self.payload_format == PayloadFormat::RawEspApp && self.precursor_sha256 != [0; 32] {
            return Err(Error::field(
                "precursor_sha256",
                224,
                FieldCheck::Inconsistent,
            ));
        }
        Ok(())
    }

    /// The 256-byte body; fails when a field check fails, so an invalid manifest is never
    /// signed.
    pub fn encode(&self) -> Result<[u8; BODY_LEN], Error> {
        self.check()?;
        let mut out = [0u8; BODY_LEN];
        let mut w = Writer::new(&mut out);
        w.bytes(&self.vendor_id)?;
        w.bytes(&self.class_id)?;
        w.bytes(&self.device_id)?;
        w.u64(self.sequence)?;
        w.u32(self.security_counter)?;
        w.u8(self.payload_format.code())?;
        w.u8(self.component.code())?;
        w.u16(0)?;
        w.bytes(self.fw_version.as_bytes())?;
        w.bytes(self.project_name.as_bytes())?;
        w.u64(self.issued_at)?;
        w.u64(self.expires_at)?;
        w.u64(self.image_size)?;
        w.u32(self.chunk_size)?;
        w.u32(self.chunk_count)?;
        w.bytes(&self.image_sha256)?;
        w.bytes(&self.chunk_list_sha256)?;
        w.bytes(&self.precursor_sha256)?;
        Ok(out)
    }

    /// Decodes a body as [`Envelope::unverified_body`](super::Envelope::unverified_body)
    /// returns it, without checking signatures or fields: for tools that look at traffic
    /// (the emulator's fault proxy learns the chunk length from it). Never act on it; a
    /// device uses [`Manifest::verify`].
    pub fn decode_unverified(bytes: &[u8]) -> Result<Self, Error> {
        Self::decode(bytes)
    }

    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != BODY_LEN {
            return Err(Error::BodyLength {
                expected: BODY_LEN,
                found: bytes.len(),
            });
        }
        let mut r = Reader::new(bytes);
        let vendor_id = r.array()?;
        let class_id = r.array()?;
        let device_id = r.array()?;
        let sequence = r.u64()?;
        let security_counter = r.u32()?;
        let payload_format = PayloadFormat::from_code(r.u8()?).ok_or(Error::field(
            "payload_format",
            60,
            FieldCheck::Unsupported,
        ))?;
        let component = Component::from_code(r.u8()?).ok_or(Error::field(
            "component",
            61,
            FieldCheck::Unsupported,
        ))?;
        if r.u16()? != 0 {
            return Err(Error::field("reserved", 62, FieldCheck::ReservedNotZero));
        }
        let fw_version = FixedStr::from_field(&r.array()?).ok_or(Error::field(
            "fw_version",
            64,
            FieldCheck::Text,
        ))?;
        let project_name = FixedStr::from_field(&r.array()?).ok_or(Error::field(
            "project_name",
            96,
            FieldCheck::Text,
        ))?;
        let body = Self {
            vendor_id,
            class_id,
            device_id,
            sequence,
            security_counter,
            payload_format,
            component,
            fw_version,
            project_name,
            issued_at: r.u64()?,
            expires_at: r.u64()?,
            image_size: r.u64()?,
            chunk_size: r.u32()?,
            chunk_count: r.u32()?,
            image_sha256: r.array()?,
            chunk_list_sha256: r.array()?,
            precursor_sha256: r.array()?,
        };
        r.finish()?;
        body.check()?;
        Ok(body)
    }

    /// Whether the manifest has expired at `now` (unix seconds); never when expires_at is 0.
    pub const fn is_expired(&self, now: u64) -> bool {
        self.expires_at != 0 && now >= self.expires_at
    }

    /// Whether the manifest is for this device: same vendor and class, and either addressed to
    /// the whole class (zero device_id) or to `device_id`.
    pub fn matches_device(
        &self,
        vendor_id: &[u8; 16],
        class_id: &[u8; 16],
        device_id: &[u8; 16],
    ) -> bool {
        self.vendor_id == *vendor_id
            && self.class_id == *class_id
            && (self.device_id == [0; 16] || self.device_id == *device_id)
    }

    /// Length of chunk `index` (the last one is the remainder), or `None` past the end.
    pub fn chunk_len(&self, index: u32) -> Option<usize> {
        chunk_len(self.image_size, self.chunk_size, index)
    }

    /// Offset of chunk `index` in the image (and the slot), or `None` past the end.
    pub fn chunk_offset(&self, index: u32) -> Option<u64> {
        if index >= self.chunk_count {
            return None;
        }
        u64::from(index).checked_mul(u64::from(self.chunk_size))
    }

    /// Encodes and signs the manifest with `keys` (release keys) into an envelope.
    #[cfg(feature = "alloc")]
    pub fn sign(&self, keys: &[&ed25519_dalek::SigningKey]) -> Result<alloc::vec::Vec<u8>, Error> {
        envelope::MANIFEST.sign(&self.encode()?, keys)
    }
}

pub(crate) fn chunk_len(image_size: u64, chunk_size: u32, index: u32) -> Option<usize> {
    let start = u64::from(index).checked_mul(u64::from(chunk_size))?;
    let left = image_size.checked_sub(start).filter(|&l| l > 0)?;
    usize::try_from(left.min(u64::from(chunk_size))).ok()
}

/// SHA-256 of a complete manifest envelope, signatures included. It names a release on the
/// wire: status statements assign it and the agent journal stores it.
pub fn manifest_digest(envelope: &[u8]) -> [u8; 32] {
    Sha256::digest(envelope).into()
}

/// A manifest whose release-role signatures verified against a trusted root and whose fields
/// passed every check. Only [`Manifest::verify`] creates one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    body: ManifestBody,
    digest: [u8; 32],
}

impl Manifest {
    /// Verifies a manifest envelope: framing, release-role threshold of `root` over the raw
    /// bytes, then the fields.
    pub fn verify(root: &RootRecord, bytes: &[u8]) -> Result<Self, Error> {
        let envelope = Envelope::parse(&envelope::MANIFEST, bytes)?;
        let body = envelope.verify(root.keys(envelope::MANIFEST.role))?;
        Ok(Self {
            body: ManifestBody::decode(body)?,
            digest: manifest_digest(bytes),
        })
    }

    /// The verified fields.
    pub const fn body(&self) -> &ManifestBody {
        &self.body
    }

    /// [`manifest_digest`] of the envelope this manifest was verified from.
    pub const fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// See [`ManifestBody::is_expired`].
    pub const fn is_expired(&self, now: u64) -> bool {
        self.body.is_expired(now)
    }

    /// See [`ManifestBody::matches_device`].
    pub fn matches_device(
        &self,
        vendor_id: &[u8; 16],
        class_id: &[u8; 16],
        device_id: &[u8; 16],
    ) -> bool {
        self.body.matches_device(vendor_id, class_id, device_id)
    }
}
