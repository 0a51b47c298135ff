//! Fixtures shared by the v2 tests: deterministic keys, a root record, a manifest.

use ed25519_dalek::SigningKey;
use fota_protocol::v2::hashlist::{self, HashList};
use fota_protocol::v2::{
    Component, FixedStr, KeySet, ManifestBody, PayloadFormat, Role, RootBody, RootRecord,
};
use sha2::{Digest, Sha256};

pub(crate) const VENDOR: [u8; 16] = [0x11; 16];
pub(crate) const CLASS: [u8; 16] = [0x22; 16];
pub(crate) const DEVICE: [u8; 16] = [0x33; 16];

/// Root keys are seeds 1..=3 (2-of-3), release keys 11..=13 (2-of-3), status key 21.
pub(crate) const ROOT_SEEDS: [u8; 3] = [1, 2, 3];
pub(crate) const RELEASE_SEEDS: [u8; 3] = [11, 12, 13];
pub(crate) const STATUS_SEED: u8 = 21;

pub(crate) fn signer(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub(crate) fn public(seed: u8) -> [u8; 32] {
    signer(seed).verifying_key().to_bytes()
}

pub(crate) fn key_set(role: Role, threshold: u8, seeds: &[u8]) -> KeySet {
    let keys: Vec<_> = seeds.iter().map(|&s| public(s)).collect();
    KeySet::new(role, threshold, &keys).unwrap()
}

pub(crate) fn root_body(version: u32, root_seeds: &[u8], release_seeds: &[u8]) -> RootBody {
    RootBody {
        version,
        vendor_id: VENDOR,
        issued_at: 1_700_000_000,
        expires_at: 0,
        root: key_set(Role::Root, 2, root_seeds),
        release: key_set(Role::Release, 2, release_seeds),
        status: key_set(Role::Status, 1, &[STATUS_SEED]),
    }
}

pub(crate) fn sign_with(seeds: &[u8], f: impl FnOnce(&[&SigningKey]) -> Vec<u8>) -> Vec<u8> {
    let keys: Vec<_> = seeds.iter().map(|&s| signer(s)).collect();
    let refs: Vec<_> = keys.iter().collect();
    f(&refs)
}

pub(crate) fn root_bytes() -> Vec<u8> {
    sign_with(&ROOT_SEEDS[..2], |k| {
        root_body(1, &ROOT_SEEDS, &RELEASE_SEEDS).sign(k).unwrap()
    })
}

pub(crate) fn root() -> RootRecord {
    RootRecord::verify_initial(&root_bytes()).unwrap()
}

pub(crate) fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

pub(crate) fn manifest_body(image: &[u8], chunk_size: u32) -> (ManifestBody, HashList) {
    let list = hashlist::build(image, chunk_size).unwrap();
    let body = ManifestBody {
        vendor_id: VENDOR,
        class_id: CLASS,
        device_id: [0; 16],
        sequence: 5,
        security_counter: 2,
        payload_format: PayloadFormat::RawEspApp,
        component: Component::Application,
        fw_version: FixedStr::new("1.0.6").unwrap(),
        project_name: FixedStr::new("ecowatt").unwrap(),
        issued_at: 1_700_000_100,
        expires_at: 1_800_000_000,
        image_size: image.len() as u64,
        chunk_size,
        chunk_count: list.layout.chunk_count(),
        image_sha256: Sha256::digest(image).into(),
        chunk_list_sha256: list.chunk_list_sha256,
        precursor_sha256: [0; 32],
    };
    (body, list)
}

pub(crate) fn manifest_bytes(body: &ManifestBody) -> Vec<u8> {
    sign_with(&RELEASE_SEEDS[..2], |k| body.sign(k).unwrap())
}
