//! The signed envelope shared by manifests, root records and status statements.
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 4 | magic | `FOTM` manifest, `FOTR` root record, `FOTS` status statement |
//! | 4 | 2 | fmt_version | u16 LE: 3 (or 2, the first layout) for manifests, 1 for root records and statements |
//! | 6 | 2 | body_len | u16 LE, ≤ 1024 |
//! | 8 | body_len | body | the record, interpreted only after verification |
//! | 8 + body_len | 1 | sig_count | 1..=8 |
//! | 9 + body_len | 72 × sig_count | signatures | each `key_id[8] ‖ ed25519_signature[64]` |
//!
//! Nothing may follow the last signature. The signature input is `domain ‖ body`, with a
//! domain per kind and manifest format (`"FOTA-MANIFEST-v3\0"`, `"FOTA-MANIFEST-v2\0"`,
//! `"FOTA-ROOT-v1\0"`, `"FOTA-STATUS-v1\0"`), so a
//! signature made for one kind never verifies as another, even under a shared key.
//!
//! Threshold rule: a signature counts only if its key id names a key of the required role,
//! it passes `verify_strict`, and its key has not been counted yet. Signatures under unknown
//! key ids are skipped. The record is accepted when the count reaches the role's threshold.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::codec::Reader;
use crate::v2::Error;
use crate::v2::keys::{KeyId, KeySet, MAX_KEYS, Role};

/// Longest body an envelope may carry.
pub const MAX_BODY_LEN: usize = 1024;
/// Most signatures an envelope may carry.
pub const MAX_SIGNATURES: usize = 8;
/// Bytes before the body: magic, fmt_version, body_len.
pub const HEADER_LEN: usize = 8;
/// Bytes of one signature entry: key id and signature.
pub const SIGNATURE_ENTRY_LEN: usize = 8 + 64;
/// Longest envelope of any kind.
pub const MAX_ENVELOPE_LEN: usize =
    HEADER_LEN + MAX_BODY_LEN + 1 + MAX_SIGNATURES * SIGNATURE_ENTRY_LEN;
/// Longest domain-separation string a kind may use.
pub const MAX_DOMAIN_LEN: usize = 32;

/// What distinguishes the three uses of the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeKind {
    /// First four bytes of the envelope.
    pub magic: [u8; 4],
    /// The format version this crate reads and writes for the kind.
    pub fmt_version: u16,
    /// Prefix of the signature input, NUL-terminated.
    pub domain: &'static [u8],
    /// Role whose keys sign the kind.
    pub role: Role,
}

/// Signed manifests of the first layout: `FOTM`, version 2, signed by the release role.
pub const MANIFEST: EnvelopeKind = EnvelopeKind {
    magic: *b"FOTM",
    fmt_version: 2,
    domain: b"FOTA-MANIFEST-v2\0",
    role: Role::Release,
};

/// Signed manifests of the third layout: `FOTM`, version 3, signed by the release role
/// ([`ManifestFormat`](crate::v2::manifest::ManifestFormat)).
pub const MANIFEST_V3: EnvelopeKind = EnvelopeKind {
    magic: *b"FOTM",
    fmt_version: 3,
    domain: b"FOTA-MANIFEST-v3\0",
    role: Role::Release,
};

/// Root records: `FOTR`, version 1, signed by the root role.
pub const ROOT: EnvelopeKind = EnvelopeKind {
    magic: *b"FOTR",
    fmt_version: 1,
    domain: b"FOTA-ROOT-v1\0",
    role: Role::Root,
};

/// Status statements: `FOTS`, version 1, signed by the status role.
pub const STATUS: EnvelopeKind = EnvelopeKind {
    magic: *b"FOTS",
    fmt_version: 1,
    domain: b"FOTA-STATUS-v1\0",
    role: Role::Status,
};

/// One signature entry of an envelope, not yet verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureEntry {
    /// Names the key that claims to have signed.
    pub key_id: KeyId,
    /// The Ed25519 signature over `domain ‖ body`.
    pub signature: [u8; 64],
}

/// An envelope whose framing is valid but whose signatures are not checked yet.
///
/// The body is only reachable as [`unverified_body`](Self::unverified_body) (for display and
/// diagnostics) or through [`verify`](Self::verify). The record types of this crate decode
/// bodies only from the latter.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    kind: EnvelopeKind,
    body: &'a [u8],
    signed: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Checks the framing of `bytes` as an envelope of `kind`: magic, version, body length,
    /// signature count, and that nothing follows the last signature.
    pub fn parse(kind: &EnvelopeKind, bytes: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let magic: [u8; 4] = r.array()?;
        if magic != kind.magic {
            return Err(Error::BadMagic {
                expected: kind.magic,
                found: magic,
            });
        }
        let fmt_version = r.u16()?;
        if fmt_version != kind.fmt_version {
            return Err(Error::FormatVersion {
                expected: kind.fmt_version,
                found: fmt_version,
            });
        }
        let body_len = usize::from(r.u16()?);
        if body_len > MAX_BODY_LEN {
            return Err(Error::BodyTooLong {
                len: body_len,
                max: MAX_BODY_LEN,
            });
        }
        let body = r.take(body_len)?;
        let count_offset = r.position();
        let count = usize::from(r.u8()?);
        if count == 0 || count > MAX_SIGNATURES {
            return Err(Error::SignatureCount {
                offset: count_offset,
                count,
            });
        }
        // count <= 8, so the product cannot overflow.
        let signed = r.take(count * SIGNATURE_ENTRY_LEN)?;
        r.finish()?;
        Ok(Self {
            kind: *kind,
            body,
            signed,
        })
    }

    /// The body bytes before any signature was checked. Never act on them.
    pub fn unverified_body(&self) -> &'a [u8] {
        self.body
    }

    /// The signature entries, in envelope order.
    pub fn signatures(&self) -> impl Iterator<Item = SignatureEntry> + 'a {
        let (entries, _) = self.signed.as_chunks::<SIGNATURE_ENTRY_LEN>();
        // Each entry is 8 + 64 bytes, so the split always succeeds.
        entries.iter().filter_map(|entry| {
            let (key_id, signature) = entry.split_first_chunk::<8>()?;
            Some(SignatureEntry {
                key_id: *key_id,
                signature: signature.try_into().ok()?,
            })
        })
    }

    /// How many distinct keys of `keys` made a valid signature over `domain ‖ body`.
    pub fn count_valid(&self, keys: &KeySet) -> u8 {
        let mut message = [0u8; MAX_DOMAIN_LEN + MAX_BODY_LEN];
        let domain = self.kind.domain;
        let Some(message) = concat(&mut message, domain, self.body) else {
            return 0;
        };
        // counted[i]: key i already counted. Repeated entries for one key cost nothing.
        let mut counted = [false; MAX_KEYS];
        for entry in self.signatures() {
            let set = keys.key_ids().iter().zip(keys.keys());
            for ((id, key), counted) in set.zip(counted.iter_mut()) {
                if *id != entry.key_id || *counted {
                    continue;
                }
                let Ok(key) = VerifyingKey::from_bytes(key) else {
                    continue;
                };
                let signature = Signature::from_bytes(&entry.signature);
                if key.verify_strict(message, &signature).is_ok() {
                    *counted = true;
                    break;
                }
            }
        }
        // At most MAX_KEYS (8), so the sum never saturates.
        counted
            .iter()
            .fold(0u8, |n, &c| n.saturating_add(u8::from(c)))
    }

    /// Verifies the signatures against the threshold of `keys` and returns the authenticated
    /// body.
    ///
    /// When no signature even names a key of `keys` the error is [`Error::UnknownKey`]: signed
    /// by a key the verifier does not (or no longer) trust, which a revocation makes of a key.
    pub fn verify(&self, keys: &KeySet) -> Result<&'a [u8], Error> {
        let verified = self.count_valid(keys);
        if verified >= keys.threshold() {
            Ok(self.body)
        } else if verified == 0
            && !self
                .signatures()
                .any(|entry| keys.key_ids().contains(&entry.key_id))
        {
            Err(Error::UnknownKey {
                role: self.kind.role,
            })
        } else {
            Err(Error::ThresholdNotMet {
                role: self.kind.role,
                verified,
                required: keys.threshold(),
            })
        }
    }
}

/// `domain ‖ body` in `buf`, or `None` when it does not fit.
fn concat<'b>(buf: &'b mut [u8], domain: &[u8], body: &[u8]) -> Option<&'b [u8]> {
    let total = domain.len().checked_add(body.len())?;
    let out = buf.get_mut(..total)?;
    let (d, b) = out.split_at_mut(domain.len());
    d.copy_from_slice(domain);
    b.copy_from_slice(body);
    Some(out)
}

/// Parses an envelope of `kind` and verifies it against `keys`: the authenticated body.
pub fn verify<'a>(kind: &EnvelopeKind, bytes: &'a [u8], keys: &KeySet) -> Result<&'a [u8], Error> {
    Envelope::parse(kind, bytes)?.verify(keys)
}

#[cfg(feature = "alloc")]
pub use signing::sign_envelope;

#[cfg(feature = "alloc")]
mod signing {
    use alloc::vec::Vec;

    use ed25519_dalek::{Signer, SigningKey};

    use super::{HEADER_LEN, MAX_BODY_LEN, MAX_DOMAIN_LEN, MAX_SIGNATURES, SIGNATURE_ENTRY_LEN};
    use crate::v2::Error;
    use crate::v2::keys::key_id;

    /// Builds an envelope: header, `body`, and one signature over `domain ‖ body` per key,
    /// in the order given.
    ///
    /// Ed25519 signing is deterministic, so no random source is needed. Fails when the body
    /// is longer than 1024 bytes, the domain longer than 32, or when not 1..=8 keys are
    /// given.
    pub fn sign_envelope(
        magic: [u8; 4],
        fmt_version: u16,
        domain: &[u8],
        body: &[u8],
        keys: &[&SigningKey],
    ) -> Result<Vec<u8>, Error> {
        let body_len = u16::try_from(body.len())
            .ok()
            .filter(|&len| usize::from(len) <= MAX_BODY_LEN)
            .ok_or(Error::BodyTooLong {
                len: body.len(),
                max: MAX_BODY_LEN,
            })?;
        if domain.len() > MAX_DOMAIN_LEN {
            return Err(Error::BodyTooLong {
                len: domain.len(),
                max: MAX_DOMAIN_LEN,
            });
        }
        let count_offset = HEADER_LEN.saturating_add(body.len());
        let sig_count = u8::try_from(keys.len())
            .ok()
            .filter(|&count| count != 0 && usize::from(count) <= MAX_SIGNATURES)
            .ok_or(Error::SignatureCount {
                offset: count_offset,
                count: keys.len(),
            })?;
        // Both lengths were bounded above (32 + 1024, and 8 + 1024 + 1 + 8 × 72).
        let mut message = Vec::with_capacity(domain.len().saturating_add(body.len()));
        message.extend_from_slice(domain);
        message.extend_from_slice(body);

        let signatures_len = SIGNATURE_ENTRY_LEN.saturating_mul(keys.len());
        let capacity = count_offset
            .saturating_add(1)
            .saturating_add(signatures_len);
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(&magic);
        out.extend_from_slice(&fmt_version.to_le_bytes());
        out.extend_from_slice(&body_len.to_le_bytes());
        out.extend_from_slice(body);
        out.push(sig_count);
        for key in keys {
            out.extend_from_slice(&key_id(&key.verifying_key().to_bytes()));
            out.extend_from_slice(&key.sign(&message).to_bytes());
        }
        Ok(out)
    }

    impl super::EnvelopeKind {
        /// [`sign_envelope`] with this kind's magic, version and domain.
        pub fn sign(&self, body: &[u8], keys: &[&SigningKey]) -> Result<Vec<u8>, Error> {
            sign_envelope(self.magic, self.fmt_version, self.domain, body, keys)
        }
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn signer(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn set(threshold: u8, seeds: &[u8]) -> KeySet {
        let keys: alloc::vec::Vec<_> = seeds
            .iter()
            .map(|&s| signer(s).verifying_key().to_bytes())
            .collect();
        KeySet::new(Role::Status, threshold, &keys).unwrap()
    }

    #[test]
    fn framing() {
        let env = STATUS.sign(b"hello", &[&signer(1)]).unwrap();
        assert_eq!(&env[..4], b"FOTS");
        assert_eq!(env.len(), 8 + 5 + 1 + 72);
        let parsed = Envelope::parse(&STATUS, &env).unwrap();
        assert_eq!(parsed.unverified_body(), b"hello");
        assert_eq!(parsed.signatures().count(), 1);

        assert!(matches!(
            Envelope::parse(&MANIFEST, &env),
            Err(Error::BadMagic { .. })
        ));
        let mut trailing = env.clone();
        trailing.push(0);
        assert!(matches!(
            Envelope::parse(&STATUS, &trailing),
            Err(Error::Codec(crate::CodecError::TrailingBytes { .. }))
        ));
        let mut zero_sigs = env[..8 + 5].to_vec();
        zero_sigs.push(0);
        assert_eq!(
            Envelope::parse(&STATUS, &zero_sigs).unwrap_err(),
            Error::SignatureCount {
                offset: 13,
                count: 0
            }
        );
        let mut long = alloc::vec![0u8; 8];
        long[..4].copy_from_slice(b"FOTS");
        long[4] = 1;
        long[6..8].copy_from_slice(&1025u16.to_le_bytes());
        assert!(matches!(
            Envelope::parse(&STATUS, &long),
            Err(Error::BodyTooLong { len: 1025, .. })
        ));
        assert!(sign_envelope(*b"FOTS", 1, b"d\0", &[0; 1025], &[&signer(1)]).is_err());
        assert!(sign_envelope(*b"FOTS", 1, b"d\0", b"", &[]).is_err());
        let nine: alloc::vec::Vec<_> = (1..=9).map(signer).collect();
        let nine_refs: alloc::vec::Vec<_> = nine.iter().collect();
        assert!(sign_envelope(*b"FOTS", 1, b"d\0", b"", &nine_refs).is_err());
    }

    #[test]
    fn threshold_counts_distinct_trusted_keys() {
        let two_of_three = set(2, &[1, 2, 3]);
        let ok = STATUS.sign(b"body", &[&signer(1), &signer(3)]).unwrap();
        assert_eq!(verify(&STATUS, &ok, &two_of_three).unwrap(), b"body");

        // The same key twice is one key.
        let dup = STATUS.sign(b"body", &[&signer(1), &signer(1)]).unwrap();
        assert_eq!(
            verify(&STATUS, &dup, &two_of_three),
            Err(Error::ThresholdNotMet {
                role: Role::Status,
                verified: 1,
                required: 2
            })
        );

        // Unknown keys are skipped, not fatal; with nothing but them, the error says so.
        let with_unknown = STATUS
            .sign(b"body", &[&signer(9), &signer(2), &signer(8), &signer(3)])
            .unwrap();
        assert!(verify(&STATUS, &with_unknown, &two_of_three).is_ok());
        let only_unknown = STATUS.sign(b"body", &[&signer(9), &signer(8)]).unwrap();
        assert!(matches!(
            verify(&STATUS, &only_unknown, &two_of_three),
            Err(Error::UnknownKey { role: Role::Status })
        ));
        // A trusted key's entry with a bad signature is a failed threshold, not an unknown key.
        let mut bad = STATUS.sign(b"body", &[&signer(2)]).unwrap();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            verify(&STATUS, &bad, &two_of_three),
            Err(Error::ThresholdNotMet { verified: 0, .. })
        ));
    }

    #[test]
    fn a_bad_signature_does_not_count_but_a_later_good_one_for_the_same_key_does() {
        let keys = set(1, &[1]);
        let good = STATUS.sign(b"body", &[&signer(1)]).unwrap();
        let mut env = good[..8 + 4].to_vec();
        env.push(2);
        let mut bad_entry = good[8 + 4 + 1..].to_vec();
        bad_entry[8 + 5] ^= 1;
        env.extend_from_slice(&bad_entry);
        env.extend_from_slice(&good[8 + 4 + 1..]);
        assert!(verify(&STATUS, &env, &keys).is_ok());
        env.truncate(8 + 4 + 1 + 72);
        env[8 + 4] = 1;
        assert!(verify(&STATUS, &env, &keys).is_err());
    }

    #[test]
    fn domains_separate_kinds() {
        let keys = set(1, &[1]);
        let env = STATUS.sign(b"body", &[&signer(1)]).unwrap();
        // Same key, same body, but signed under the manifest domain: must not verify.
        let mut forged =
            sign_envelope(*b"FOTS", 1, MANIFEST.domain, b"body", &[&signer(1)]).unwrap();
        assert!(verify(&STATUS, &env, &keys).is_ok());
        assert!(verify(&STATUS, &forged, &keys).is_err());
        forged.clear();
    }

    #[test]
    fn all_zero_key_and_signature_never_verify() {
        // verify() (non-strict) would accept this pair; the key set refuses the key and
        // verify_strict refuses the signature.
        assert!(KeySet::new(Role::Release, 1, &[[0; 32]]).is_err());
        let mut env = alloc::vec::Vec::new();
        env.extend_from_slice(b"FOTS");
        env.extend_from_slice(&1u16.to_le_bytes());
        env.extend_from_slice(&4u16.to_le_bytes());
        env.extend_from_slice(b"body");
        env.push(1);
        env.extend_from_slice(&crate::v2::keys::key_id(&[0; 32]));
        env.extend_from_slice(&[0; 64]);
        assert!(verify(&STATUS, &env, &set(1, &[1])).is_err());
        let weak = VerifyingKey::from_bytes(&[0; 32]).unwrap();
        assert!(weak.is_weak());
        let mut msg = STATUS.domain.to_vec();
        msg.extend_from_slice(b"body");
        assert!(
            weak.verify_strict(&msg, &Signature::from_bytes(&[0; 64]))
                .is_err()
        );
    }
}
