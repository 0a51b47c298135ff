//! The root record: the trusted key sets and thresholds of every role.
//!
//! Devices are provisioned with one root record and the server is started with it. Rotation
//! hands a device the next version, which it accepts only when both the trusted (old) root
//! threshold and the new root threshold signed it.

use crate::codec::{Reader, Writer};
use crate::v2::Error;
use crate::v2::envelope::{self, Envelope, HEADER_LEN, MAX_SIGNATURES, SIGNATURE_ENTRY_LEN};
use crate::v2::keys::{KeySet, MAX_KEYS, PUBLIC_KEY_LEN, Role};

/// Longest root record body: the fixed part and three full roles.
pub const MAX_BODY_LEN: usize = FIXED_LEN + 3 * (2 + MAX_KEYS * PUBLIC_KEY_LEN);
/// Longest root record envelope.
pub const MAX_LEN: usize = HEADER_LEN + MAX_BODY_LEN + 1 + MAX_SIGNATURES * SIGNATURE_ENTRY_LEN;
const FIXED_LEN: usize = 36;

/// The fields of a root record.
///
/// Body layout (inside a `FOTR` version 1 envelope, domain `"FOTA-ROOT-v1\0"`):
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 4 | version | u32, ≥ 1; each rotation adds exactly 1 |
/// | 4 | 16 | vendor_id | UUID; never changes across rotations |
/// | 20 | 8 | issued_at | unix seconds |
/// | 28 | 8 | expires_at | unix seconds, 0 = never |
/// | 36 | 2 + 32·n | root | [`KeySet`]: threshold, key_count, keys |
/// | … | 2 + 32·n | release | [`KeySet`] for manifests |
/// | … | 2 + 32·n | status | [`KeySet`] for status statements |
///
/// Nothing follows the status key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootBody {
    /// Record version, ≥ 1.
    pub version: u32,
    /// Vendor the record speaks for.
    pub vendor_id: [u8; 16],
    /// When it was issued (unix seconds).
    pub issued_at: u64,
    /// When it stops being valid (unix seconds, 0 = never).
    pub expires_at: u64,
    /// Keys that sign root records.
    pub root: KeySet,
    /// Keys that sign release manifests.
    pub release: KeySet,
    /// Keys that sign status statements.
    pub status: KeySet,
}

impl RootBody {
    /// The key set of `role`.
    pub const fn keys(&self, role: Role) -> &KeySet {
        match role {
            Role::Root => &self.root,
            Role::Release => &self.release,
            Role::Status => &self.status,
        }
    }

    /// Bytes the body takes.
    pub fn encoded_len(&self) -> usize {
        Role::ALL
            .into_iter()
            .map(|role| self.keys(role).encoded_len())
            .fold(FIXED_LEN, usize::saturating_add)
    }

    /// Writes the body into `out`; returns the bytes written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        self.check()?;
        let mut w = Writer::new(out);
        w.u32(self.version)?;
        w.bytes(&self.vendor_id)?;
        w.u64(self.issued_at)?;
        w.u64(self.expires_at)?;
        for role in Role::ALL {
            self.keys(role).encode(&mut w)?;
        }
        Ok(w.written())
    }

    fn check(&self) -> Result<(), Error> {
        if self.version == 0 {
            return Err(Error::field("version", 0, crate::v2::FieldCheck::Zero));
        }
        Ok(())
    }

    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let body = Self {
            version: r.u32()?,
            vendor_id: r.array()?,
            issued_at: r.u64()?,
            expires_at: r.u64()?,
            root: KeySet::decode(Role::Root, &mut r)?,
            release: KeySet::decode(Role::Release, &mut r)?,
            status: KeySet::decode(Role::Status, &mut r)?,
        };
        r.finish()?;
        body.check()?;
        Ok(body)
    }

    /// Encodes the body and signs it with `keys` into a root record envelope.
    #[cfg(feature = "alloc")]
    pub fn sign(&self, keys: &[&ed25519_dalek::SigningKey]) -> Result<alloc::vec::Vec<u8>, Error> {
        let mut body = [0u8; MAX_BODY_LEN];
        let len = self.encode(&mut body)?;
        envelope::ROOT.sign(crate::codec::written(&body, len)?, keys)
    }
}

/// A verified root record, with the raw envelope it was verified from.
///
/// Only [`verify_initial`](Self::verify_initial) and [`verify_update`](Self::verify_update)
/// create one. [`as_bytes`](Self::as_bytes) gives the envelope for persisting; a device
/// re-verifies it with `verify_initial` after reading it back.
#[derive(Clone)]
pub struct RootRecord {
    body: RootBody,
    raw: [u8; MAX_LEN],
    raw_len: usize,
}

impl RootRecord {
    /// Verifies a self-signed root record: the trust anchor a device is provisioned with and
    /// the server is started with.
    ///
    /// The keys that must have signed are inside the body, so here the body is decoded before
    /// its signatures are checked; the decoder is the same bounds-checked one, and nothing is
    /// returned unless the record's own root threshold signed it.
    pub fn verify_initial(bytes: &[u8]) -> Result<Self, Error> {
        let envelope = Envelope::parse(&envelope::ROOT, bytes)?;
        let body = RootBody::decode(envelope.unverified_body())?;
        envelope.verify(&body.root)?;
        Self::new(body, bytes)
    }

    /// Verifies the next root record against the trusted one `trusted`.
    ///
    /// The trusted root threshold is checked over the raw bytes first; then the new record
    /// must carry version `trusted.version + 1` and the same vendor id, and its own root
    /// threshold must have signed it as well.
    pub fn verify_update(trusted: &Self, bytes: &[u8]) -> Result<Self, Error> {
        let envelope = Envelope::parse(&envelope::ROOT, bytes)?;
        let authenticated = envelope.verify(&trusted.body.root)?;
        let body = RootBody::decode(authenticated)?;
        let expected = trusted
            .body
            .version
            .checked_add(1)
            .ok_or(Error::RootVersion {
                expected: u32::MAX,
                found: body.version,
            })?;
        if body.version != expected {
            return Err(Error::RootVersion {
                expected,
                found: body.version,
            });
        }
        if body.vendor_id != trusted.body.vendor_id {
            return Err(Error::RootVendorChanged);
        }
        envelope.verify(&body.root)?;
        Self::new(body, bytes)
    }

    fn new(body: RootBody, bytes: &[u8]) -> Result<Self, Error> {
        let mut raw = [0u8; MAX_LEN];
        raw.get_mut(..bytes.len())
            .ok_or(crate::CodecError::BufferTooSmall {
                needed: bytes.len(),
            })?
            .copy_from_slice(bytes);
        Ok(Self {
            body,
            raw,
            raw_len: bytes.len(),
        })
    }

    /// The verified fields.
    pub const fn body(&self) -> &RootBody {
        &self.body
    }

    /// Record version.
    pub const fn version(&self) -> u32 {
        self.body.version
    }

    /// Vendor id.
    pub const fn vendor_id(&self) -> &[u8; 16] {
        &self.body.vendor_id
    }

    /// The trusted key set of `role`.
    pub const fn keys(&self, role: Role) -> &KeySet {
        self.body.keys(role)
    }

    /// Whether the record has expired at `now` (unix seconds); never when expires_at is 0.
    pub const fn is_expired(&self, now: u64) -> bool {
        self.body.expires_at != 0 && now >= self.body.expires_at
    }

    /// The signed envelope this record was verified from, for persisting.
    pub fn as_bytes(&self) -> &[u8] {
        // `raw_len <= raw.len()` holds by construction.
        self.raw.get(..self.raw_len).unwrap_or_default()
    }
}

impl core::fmt::Debug for RootRecord {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RootRecord")
            .field("body", &self.body)
            .field("raw_len", &self.raw_len)
            .finish()
    }
}

impl PartialEq for RootRecord {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for RootRecord {}
