//! Signed envelopes: manifest, root record (initial and rotation) and status statement.
#![no_main]

use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use fota_protocol::v2::{
    KeySet, Manifest, ManifestBody, ManifestFormat, Role, RootBody, RootRecord, StatusStatement,
};
use libfuzzer_sys::fuzz_target;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A fixed trusted root, so inputs that reuse its key ids reach the signature checks.
fn root() -> &'static RootRecord {
    static ROOT: OnceLock<RootRecord> = OnceLock::new();
    ROOT.get_or_init(|| {
        let pk = |s| key(s).verifying_key().to_bytes();
        let body = RootBody {
            version: 1,
            vendor_id: [7; 16],
            issued_at: 0,
            expires_at: 0,
            root: KeySet::new(Role::Root, 1, &[pk(1)]).unwrap(),
            release: KeySet::new(Role::Release, 1, &[pk(2)]).unwrap(),
            status: KeySet::new(Role::Status, 1, &[pk(3)]).unwrap(),
        };
        RootRecord::verify_initial(&body.sign(&[&key(1)]).unwrap()).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let root = root();
    let _ = Manifest::verify(root, data);
    // The body decoders of both manifest formats, without signatures: canonical.
    for format in [ManifestFormat::V2, ManifestFormat::V3] {
        if let Ok(body) = ManifestBody::decode_unverified(format, data) {
            assert_eq!(&body.encode().unwrap()[..], data);
        }
    }
    let _ = StatusStatement::verify(root, data);
    let _ = StatusStatement::verify_for_device(root, data, &[0; 16], &[0; 16]);
    let _ = RootRecord::verify_initial(data);
    let _ = RootRecord::verify_update(root, data);
});
