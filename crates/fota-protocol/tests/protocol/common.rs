//! The formats' fixtures on the test kit: the threshold key plan (2-of-3 root and release
//! keys), a byte pattern standing in for an image, and a manifest over it.

use fota_protocol::v2::hashlist::HashList;
use fota_protocol::v2::{ManifestBody, RootBody, RootRecord};
use fota_testkit::seeds::Plan;
pub(crate) use fota_testkit::seeds::{CLASS, DEVICE, VENDOR, key_set, public, sign_with, signer};

const PLAN: Plan = Plan::THRESHOLD;
/// Root keys 1..=3 (2-of-3), release keys 11..=13 (2-of-3), status key 21.
pub(crate) const ROOT_SEEDS: &[u8] = PLAN.root;
pub(crate) const RELEASE_SEEDS: &[u8] = PLAN.release;
pub(crate) const STATUS_SEED: u8 = 21;

pub(crate) fn root_body(version: u32, root_seeds: &[u8], release_seeds: &[u8]) -> RootBody {
    PLAN.root_body_with(version, root_seeds, release_seeds, &[STATUS_SEED])
}

pub(crate) fn root_bytes() -> Vec<u8> {
    PLAN.root_record()
}

pub(crate) fn root() -> RootRecord {
    PLAN.root()
}

/// Not an ESP image: the v2 formats do not look inside the payload.
pub(crate) fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Version 1.0.6 at sequence 5, security counter 2, of the raw-id class, expiring in 2027.
pub(crate) fn manifest_body(image: &[u8], chunk_size: u32) -> (ManifestBody, HashList) {
    let mut fields =
        fota_testkit::release::fields(uuid::Uuid::from_bytes(VENDOR), "", "1.0.6", 5, chunk_size);
    fields.security_counter = 2;
    fields.issued_at = 1_700_000_100;
    fields.expires_at = 1_800_000_000;
    let (mut body, list) = fota_testkit::release::unsigned(image, &fields);
    body.class_id = CLASS;
    (body, list)
}

pub(crate) fn manifest_bytes(body: &ManifestBody) -> Vec<u8> {
    sign_with(PLAN.release_signers(), |k| body.sign(k).unwrap())
}
