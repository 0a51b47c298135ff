//! Deterministic keys: an Ed25519 key per one-byte seed (`[seed; 32]`), so a test names its
//! keys by number and a failing case replays with the same bytes, plus the fixed ids and the
//! seed's legacy PSK.
//!
//! Two key plans are in use: [`Plan::THRESHOLD`] (2-of-3 root and release sets, the formats'
//! tests of threshold signing) and [`Plan::SIMPLE`] (one release and one status key, the
//! agent's tests, where signing is not the subject).

use ed25519_dalek::SigningKey;
use fota_protocol::v2::{KeySet, Role, RootBody, RootRecord};

/// Vendor id of the raw-id fixtures.
pub const VENDOR: [u8; 16] = [0x11; 16];
/// Class id of the raw-id fixtures.
pub const CLASS: [u8; 16] = [0x22; 16];
/// Device id of the raw-id fixtures.
pub const DEVICE: [u8; 16] = [0x33; 16];
/// The seed's example legacy PSK (30 bytes, taken as is).
pub const PSK: &[u8] = b"your-32-byte-secret-key-here!!";
/// The device-side fixtures' clock: unix seconds.
pub const NOW: u64 = 1_800_000_000;

/// The signing key of `seed`.
pub fn signer(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The public key of `seed`.
pub fn public(seed: u8) -> [u8; 32] {
    signer(seed).verifying_key().to_bytes()
}

/// A key set of `role` holding the public keys of `seeds`.
pub fn key_set(role: Role, threshold: u8, seeds: &[u8]) -> KeySet {
    let keys: Vec<_> = seeds.iter().map(|&s| public(s)).collect();
    KeySet::new(role, threshold, &keys).expect("key set")
}

/// Calls `f` with the signing keys of `seeds`, as the signing functions take them.
pub fn sign_with<T>(seeds: &[u8], f: impl FnOnce(&[&SigningKey]) -> T) -> T {
    let keys: Vec<_> = seeds.iter().map(|&s| signer(s)).collect();
    let refs: Vec<_> = keys.iter().collect();
    f(&refs)
}

/// Which seeds hold which role, with the thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Root key seeds.
    pub root: &'static [u8],
    /// Signatures a root record needs.
    pub root_threshold: u8,
    /// Release key seeds.
    pub release: &'static [u8],
    /// Signatures a manifest needs.
    pub release_threshold: u8,
    /// Status key seeds (threshold 1).
    pub status: &'static [u8],
    /// The root record's `issued_at`.
    pub issued_at: u64,
}

impl Plan {
    /// Root 1..=3 and release 11..=13, each 2-of-3; status 21.
    pub const THRESHOLD: Self = Self {
        root: &[1, 2, 3],
        root_threshold: 2,
        release: &[11, 12, 13],
        release_threshold: 2,
        status: &[21],
        issued_at: 1_700_000_000,
    };

    /// Root 1 and 2 (threshold 1), release 10, status 20.
    pub const SIMPLE: Self = Self {
        root: &[1, 2],
        root_threshold: 1,
        release: &[10],
        release_threshold: 1,
        status: &[20],
        issued_at: NOW - 1000,
    };

    /// The root body of `version` naming this plan's keys, for [`VENDOR`], never expiring.
    pub fn root_body(&self, version: u32) -> RootBody {
        self.root_body_with(version, self.root, self.release, self.status)
    }

    /// The root body of `version` naming the given seeds, with this plan's thresholds: a
    /// rotated root.
    pub fn root_body_with(
        &self,
        version: u32,
        root: &[u8],
        release: &[u8],
        status: &[u8],
    ) -> RootBody {
        RootBody {
            version,
            vendor_id: VENDOR,
            issued_at: self.issued_at,
            expires_at: 0,
            root: key_set(Role::Root, self.root_threshold, root),
            release: key_set(Role::Release, self.release_threshold, release),
            status: key_set(Role::Status, 1, status),
        }
    }

    /// The root seeds that meet the threshold.
    pub fn root_signers(&self) -> &'static [u8] {
        self.root
            .get(..usize::from(self.root_threshold))
            .unwrap_or(self.root)
    }

    /// The release seeds that meet the threshold.
    pub fn release_signers(&self) -> &'static [u8] {
        self.release
            .get(..usize::from(self.release_threshold))
            .unwrap_or(self.release)
    }

    /// The signed initial root record (version 1).
    pub fn root_record(&self) -> Vec<u8> {
        let body = self.root_body(1);
        sign_with(self.root_signers(), |k| body.sign(k).expect("root record"))
    }

    /// The verified initial root record.
    pub fn root(&self) -> RootRecord {
        RootRecord::verify_initial(&self.root_record()).expect("root verifies")
    }
}
