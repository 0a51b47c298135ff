//! Key ids, roles and the per-role key sets a root record lists.

use core::fmt;

use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

use crate::codec::{Reader, Writer};
use crate::v2::Error;

/// Most keys one role may list.
pub const MAX_KEYS: usize = 8;

/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;

/// An Ed25519 public key as raw bytes.
pub type PublicKeyBytes = [u8; PUBLIC_KEY_LEN];

/// A key id: the first 8 bytes of SHA-256 of the Ed25519 public key.
///
/// It only tells the verifier which key to try; it is not trusted. A signature whose key id
/// names no trusted key is skipped, and the threshold decides.
pub type KeyId = [u8; 8];

/// The key id of `public_key`: `SHA-256(public_key)[0..8]`.
pub fn key_id(public_key: &PublicKeyBytes) -> KeyId {
    let digest = Sha256::digest(public_key);
    let mut id = [0u8; 8];
    for (dst, &src) in id.iter_mut().zip(digest.iter()) {
        *dst = src;
    }
    id
}

/// The roles of the root record, in the order the record lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Role {
    /// Signs root records (offline, threshold).
    Root,
    /// Signs release manifests (offline, on the operator's machine).
    Release,
    /// Signs status statements (online, on the server; cannot make a device install anything).
    Status,
}

impl Role {
    /// All roles in record order.
    pub const ALL: [Self; 3] = [Self::Root, Self::Release, Self::Status];

    /// The role's name in snake_case.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Release => "release",
            Self::Status => "status",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The public keys of one role and how many of them must sign.
///
/// Wire layout (inside a root record body):
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 1 | threshold | signatures from distinct keys required, ≥ 1 |
/// | 1 | 1 | key_count | threshold ≤ key_count ≤ 8 |
/// | 2 | 32 × key_count | keys | Ed25519 public keys |
///
/// A key set is valid by construction: every key is a valid, non-weak (not small-order) point,
/// no key appears twice, and the threshold is in range.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySet {
    threshold: u8,
    count: u8,
    keys: [PublicKeyBytes; MAX_KEYS],
    ids: [KeyId; MAX_KEYS],
}

impl KeySet {
    /// Checks and builds a key set; `role` only names the set in errors.
    pub fn new(role: Role, threshold: u8, keys: &[PublicKeyBytes]) -> Result<Self, Error> {
        let key_count = keys.len();
        let count = u8::try_from(key_count)
            .ok()
            .filter(|&count| threshold != 0 && threshold <= count)
            .filter(|&count| usize::from(count) <= MAX_KEYS)
            .ok_or(Error::RoleThreshold {
                role,
                threshold: threshold.into(),
                key_count,
            })?;
        let mut set = Self {
            threshold,
            count,
            keys: [[0; PUBLIC_KEY_LEN]; MAX_KEYS],
            ids: [[0; 8]; MAX_KEYS],
        };
        // At most MAX_KEYS keys (checked above), so every key gets its slot.
        let slots = set.keys.iter_mut().zip(set.ids.iter_mut());
        for (index, (key, (key_slot, id_slot))) in keys.iter().zip(slots).enumerate() {
            let point =
                VerifyingKey::from_bytes(key).map_err(|_| Error::InvalidKey { role, index })?;
            if point.is_weak() {
                return Err(Error::WeakKey { role, index });
            }
            if keys.iter().take(index).any(|earlier| earlier == key) {
                return Err(Error::DuplicateKey { role, index });
            }
            *key_slot = *key;
            *id_slot = key_id(key);
        }
        Ok(set)
    }

    /// Signatures from distinct keys of this set that a record needs.
    pub const fn threshold(&self) -> u8 {
        self.threshold
    }

    /// The public keys, in record order.
    pub fn keys(&self) -> &[PublicKeyBytes] {
        // `count <= MAX_KEYS` holds by construction.
        self.keys.get(..usize::from(self.count)).unwrap_or_default()
    }

    /// The key ids, in the order of [`keys`](Self::keys).
    pub fn key_ids(&self) -> &[KeyId] {
        self.ids.get(..usize::from(self.count)).unwrap_or_default()
    }

    /// Whether `key` is in the set.
    pub fn contains(&self, key: &PublicKeyBytes) -> bool {
        self.keys().contains(key)
    }

    /// Bytes the set takes in a root record body.
    pub fn encoded_len(&self) -> usize {
        // At most 2 + 32 × 8 bytes: the saturation never happens.
        PUBLIC_KEY_LEN
            .saturating_mul(usize::from(self.count))
            .saturating_add(2)
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.u8(self.threshold)?;
        w.u8(self.count)?;
        for key in self.keys() {
            w.bytes(key)?;
        }
        Ok(())
    }

    pub(crate) fn decode(role: Role, r: &mut Reader<'_>) -> Result<Self, Error> {
        let threshold = r.u8()?;
        let count = r.u8()?;
        let bad_threshold = Error::RoleThreshold {
            role,
            threshold: threshold.into(),
            key_count: count.into(),
        };
        if threshold == 0 || threshold > count {
            return Err(bad_threshold);
        }
        let mut buf = [[0u8; PUBLIC_KEY_LEN]; MAX_KEYS];
        // More than MAX_KEYS keys is refused before any key is read.
        let keys = buf.get_mut(..usize::from(count)).ok_or(bad_threshold)?;
        for key in keys.iter_mut() {
            *key = r.array()?;
        }
        Self::new(role, threshold, keys)
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Ids<'a>(&'a [KeyId]);
        impl fmt::Debug for Ids<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(self.0.iter().map(|id| Hex8(*id)))
                    .finish()
            }
        }
        struct Hex8([u8; 8]);
        impl fmt::Debug for Hex8 {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
        f.debug_struct("KeySet")
            .field("threshold", &self.threshold)
            .field("key_ids", &Ids(self.key_ids()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn public(seed: u8) -> PublicKeyBytes {
        SigningKey::from_bytes(&[seed; 32])
            .verifying_key()
            .to_bytes()
    }

    #[test]
    fn key_id_is_sha256_prefix() {
        let k = public(1);
        assert_eq!(key_id(&k)[..], Sha256::digest(k)[..8]);
    }

    #[test]
    fn key_set_checks() {
        let (a, b) = (public(1), public(2));
        let set = KeySet::new(Role::Release, 2, &[a, b]).unwrap();
        assert_eq!(set.threshold(), 2);
        assert_eq!(set.keys(), &[a, b]);
        assert!(set.contains(&b) && !set.contains(&public(3)));

        assert!(matches!(
            KeySet::new(Role::Root, 0, &[a]),
            Err(Error::RoleThreshold { .. })
        ));
        assert!(matches!(
            KeySet::new(Role::Root, 3, &[a, b]),
            Err(Error::RoleThreshold { .. })
        ));
        assert!(matches!(
            KeySet::new(Role::Root, 1, &[public(1); 9]),
            Err(Error::RoleThreshold { .. })
        ));
        assert_eq!(
            KeySet::new(Role::Status, 1, &[a, a]),
            Err(Error::DuplicateKey {
                role: Role::Status,
                index: 1
            })
        );
        // The all-zero key decodes to a point of order 4: weak.
        assert_eq!(
            KeySet::new(Role::Release, 1, &[a, [0; 32]]),
            Err(Error::WeakKey {
                role: Role::Release,
                index: 1
            })
        );
        // The identity point (y = 1) is weak too.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            KeySet::new(Role::Release, 1, &[identity]),
            Err(Error::WeakKey { .. })
        ));
    }
}
