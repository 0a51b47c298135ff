//! The signed release manifest.

use sha2::{Digest, Sha256};

use crate::codec::{CodecError, Reader, Writer};
use crate::v2::envelope::{
    self, Envelope, EnvelopeKind, HEADER_LEN, MAX_SIGNATURES, SIGNATURE_ENTRY_LEN,
};
use crate::v2::root::RootRecord;
use crate::v2::{Error, FieldCheck, FixedStr};

/// Length of a format-2 manifest body.
pub const BODY_LEN_V2: usize = 256;
/// Length of a format-3 manifest body.
pub const BODY_LEN_V3: usize = 384;
/// Longest manifest body of any format.
pub const MAX_BODY_LEN: usize = BODY_LEN_V3;
/// Longest manifest envelope.
pub const MAX_LEN: usize = HEADER_LEN + MAX_BODY_LEN + 1 + MAX_SIGNATURES * SIGNATURE_ENTRY_LEN;

/// ESP-IDF's `esp_chip_id_t` values (`esp_app_format.h`), as the image header and the format-3
/// manifest carry them. A format-2 manifest implies [`CHIP_ESP32`].
pub mod chip_ids {
    /// ESP32.
    pub const ESP32: u16 = 0x0000;
    /// ESP32-S2.
    pub const ESP32_S2: u16 = 0x0002;
    /// ESP32-C3.
    pub const ESP32_C3: u16 = 0x0005;
    /// ESP32-S3.
    pub const ESP32_S3: u16 = 0x0009;
    /// ESP32-C2.
    pub const ESP32_C2: u16 = 0x000C;
    /// ESP32-C6.
    pub const ESP32_C6: u16 = 0x000D;
    /// ESP32-H2.
    pub const ESP32_H2: u16 = 0x0010;
    /// ESP32-P4.
    pub const ESP32_P4: u16 = 0x0012;
    /// `ESP_CHIP_ID_INVALID`: never valid in a manifest.
    pub const INVALID: u16 = 0xFFFF;

    /// Every chip id a manifest may name, with esptool's name for it.
    pub const KNOWN: [(u16, &str); 8] = [
        (ESP32, "esp32"),
        (ESP32_S2, "esp32s2"),
        (ESP32_C3, "esp32c3"),
        (ESP32_S3, "esp32s3"),
        (ESP32_C2, "esp32c2"),
        (ESP32_C6, "esp32c6"),
        (ESP32_H2, "esp32h2"),
        (ESP32_P4, "esp32p4"),
    ];

    /// esptool's name of a chip id, or `None` for an id no chip has.
    pub fn name(id: u16) -> Option<&'static str> {
        KNOWN.iter().find(|(i, _)| *i == id).map(|(_, n)| *n)
    }

    /// The chip id of an esptool chip name (`esp32c3`), or `None`.
    pub fn from_name(name: &str) -> Option<u16> {
        KNOWN.iter().find(|(_, n)| *n == name).map(|(i, _)| *i)
    }
}

/// The chip a format-2 manifest is for: it predates the chip field, and every device that
/// read it was an ESP32.
pub const CHIP_ESP32: u16 = chip_ids::ESP32;

/// Which manifest layout: the envelope's `fmt_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum ManifestFormat {
    /// The first layout: 256 bytes, ESP32 only, no encryption fields.
    V2,
    /// 384 bytes: the chip id, and the rows of payload encryption.
    #[default]
    V3,
}

impl ManifestFormat {
    /// The envelope kind of this format.
    pub const fn kind(self) -> &'static EnvelopeKind {
        match self {
            Self::V2 => &envelope::MANIFEST,
            Self::V3 => &envelope::MANIFEST_V3,
        }
    }

    /// Length of the body.
    pub const fn body_len(self) -> usize {
        match self {
            Self::V2 => BODY_LEN_V2,
            Self::V3 => BODY_LEN_V3,
        }
    }

    /// The envelope's `fmt_version`.
    pub const fn version(self) -> u16 {
        self.kind().fmt_version
    }

    /// The format of an envelope `fmt_version`, or `None` for one this crate does not read.
    pub const fn from_version(version: u16) -> Option<Self> {
        match version {
            2 => Some(Self::V2),
            3 => Some(Self::V3),
            _ => None,
        }
    }

    /// The format of a manifest envelope, read from its header (magic and version) without
    /// looking at anything else: which [`EnvelopeKind`] to parse it as.
    pub fn of_envelope(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let magic: [u8; 4] = r.array()?;
        if magic != envelope::MANIFEST.magic {
            return Err(Error::BadMagic {
                expected: envelope::MANIFEST.magic,
                found: magic,
            });
        }
        let version = r.u16()?;
        Self::from_version(version).ok_or(Error::FormatVersion {
            expected: envelope::MANIFEST_V3.fmt_version,
            found: version,
        })
    }
}

/// Parses the framing of a manifest envelope of either format (signatures not checked): for
/// tools that display or route manifests. A device uses [`Manifest::verify`].
pub fn parse_envelope(bytes: &[u8]) -> Result<(ManifestFormat, Envelope<'_>), Error> {
    let format = ManifestFormat::of_envelope(bytes)?;
    Ok((format, Envelope::parse(format.kind(), bytes)?))
}

/// An encoded manifest body: [`ManifestFormat::body_len`] bytes of a buffer that fits every
/// format.
#[derive(Clone, PartialEq, Eq)]
pub struct BodyBytes {
    buf: [u8; MAX_BODY_LEN],
    len: usize,
}

impl core::ops::Deref for BodyBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

impl core::ops::DerefMut for BodyBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(..self.len).unwrap_or(&mut [])
    }
}

impl core::fmt::Debug for BodyBytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "BodyBytes({} bytes)", self.len)
    }
}
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
/// Two layouts exist ([`ManifestFormat`]); both are signed by the release role. Format 3
/// (envelope `FOTM` version 3, domain `"FOTA-MANIFEST-v3\0"`, 384 bytes) is what the release
/// tool writes; format 2 (`FOTM` version 2, domain `"FOTA-MANIFEST-v2\0"`, 256 bytes) is the
/// first layout, which agents built before format 3 read, and which every agent still
/// accepts. Format 3 is format 2 with the reserved bytes at 62 holding the chip id, and 128
/// bytes appended. Integers little-endian:
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
/// | 62 | 2 | chip_id | format 3: [`chip_ids`] value of the chip the image is for; format 2: reserved, zero (an ESP32) |
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
/// | 256 | 32 | cipher_list_sha256 | format 3, encrypted payloads: SHA-256 of the ciphertext hash list |
/// | 288 | 8 | nonce_prefix | encrypted payloads: chunk *i*'s AES-GCM nonce is `nonce_prefix ‖ u32 LE i` |
/// | 296 | 8 | kek_id | encrypted payloads: key id of the class key the content key is wrapped for |
/// | 304 | 32 | ephemeral_public | encrypted payloads: the release tool's X25519 ephemeral public key |
/// | 336 | 40 | wrapped_key | encrypted payloads: the content key, AES-KW (RFC 3394) wrapped |
/// | 376 | 8 | reserved | zero |
///
/// Rows 256–375 belong to the encrypted payload format (AES-256-GCM per chunk, the content key
/// wrapped for a per-class X25519 key; DESIGN §9). This version of the crate reads no
/// encrypted payload format yet, so they must be zero: a manifest that sets them is refused as
/// [`FieldCheck::ReservedNotZero`] rather than read as a raw image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestBody {
    /// The layout the body is encoded in.
    pub format: ManifestFormat,
    /// The chip the image is for ([`chip_ids`]); [`CHIP_ESP32`] in a format-2 manifest.
    pub chip_id: u16,
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
        match self.format {
            ManifestFormat::V2 if self.chip_id != CHIP_ESP32 => {
                return Err(Error::field("chip_id", 62, FieldCheck::Unsupported));
            }
            ManifestFormat::V3 if chip_ids::name(self.chip_id).is_none() => {
                return Err(Error::field("chip_id", 62, FieldCheck::UnknownCode));
            }
            _ => {}
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

    /// The body in its format's layout; fails when a field check fails, so an invalid
    /// manifest is never signed.
    pub fn encode(&self) -> Result<BodyBytes, Error> {
        self.check()?;
        let len = self.format.body_len();
        let mut buf = [0u8; MAX_BODY_LEN];
        let out = buf
            .get_mut(..len)
            .ok_or(CodecError::BufferTooSmall { needed: len })?;
        let mut w = Writer::new(out);
        w.bytes(&self.vendor_id)?;
        w.bytes(&self.class_id)?;
        w.bytes(&self.device_id)?;
        w.u64(self.sequence)?;
        w.u32(self.security_counter)?;
        w.u8(self.payload_format.code())?;
        w.u8(self.component.code())?;
        w.u16(self.chip_id)?;
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
        // Format 3's encryption rows and reserved tail stay zero (see the layout).
        Ok(BodyBytes { buf, len })
    }

    /// Decodes a body as [`Envelope::unverified_body`](super::Envelope::unverified_body)
    /// returns it, without checking signatures or fields: for tools that look at traffic
    /// (the emulator's fault proxy learns the chunk length from it). Never act on it; a
    /// device uses [`Manifest::verify`].
    pub fn decode_unverified(format: ManifestFormat, bytes: &[u8]) -> Result<Self, Error> {
        Self::decode(format, bytes)
    }

    fn decode(format: ManifestFormat, bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != format.body_len() {
            return Err(Error::BodyLength {
                expected: format.body_len(),
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
        let chip_id = r.u16()?;
        if format == ManifestFormat::V2 && chip_id != 0 {
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
            format,
            chip_id,
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
        if format == ManifestFormat::V3 {
            let tail = r.take(BODY_LEN_V3 - BODY_LEN_V2)?;
            if let Some(at) = tail.iter().position(|&b| b != 0) {
                let field = if at < 120 { "encryption" } else { "reserved" };
                return Err(Error::field(
                    field,
                    BODY_LEN_V2.saturating_add(at),
                    FieldCheck::ReservedNotZero,
                ));
            }
        }
        r.finish()?;
        body.check()?;
        Ok(body)
    }

    /// Whether the image is for the chip with id `chip_id`.
    pub const fn is_for_chip(&self, chip_id: u16) -> bool {
        self.chip_id == chip_id
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
        self.format.kind().sign(&self.encode()?, keys)
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
    /// Verifies a manifest envelope of either format: framing, release-role threshold of
    /// `root` over the raw bytes, then the fields.
    pub fn verify(root: &RootRecord, bytes: &[u8]) -> Result<Self, Error> {
        let format = ManifestFormat::of_envelope(bytes)?;
        let kind = format.kind();
        let envelope = Envelope::parse(kind, bytes)?;
        let body = envelope.verify(root.keys(kind.role))?;
        Ok(Self {
            body: ManifestBody::decode(format, body)?,
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
