//! v2 signed records: root records, manifests, status statements.

use crate::common::*;
use fota_protocol::CodecError;
use fota_protocol::v2::envelope::{self, Envelope};
use fota_protocol::v2::{
    Action, Error, FieldCheck, Manifest, ManifestBody, ManifestFormat, Role, RootRecord,
    StatusBody, StatusStatement, chip_ids, manifest_digest, sign_envelope,
};
use proptest::prelude::*;

// ---------------------------------------------------------------- root records

#[test]
fn initial_root_round_trip() {
    let bytes = root_bytes();
    let root = RootRecord::verify_initial(&bytes).unwrap();
    assert_eq!(root.version(), 1);
    assert_eq!(root.vendor_id(), &VENDOR);
    assert_eq!(root.as_bytes(), &bytes[..]);
    assert_eq!(root.body(), &root_body(1, ROOT_SEEDS, RELEASE_SEEDS));
    assert_eq!(root.keys(Role::Release).threshold(), 2);
    assert_eq!(root.keys(Role::Status).keys(), &[public(STATUS_SEED)]);
    assert!(!root.is_expired(u64::MAX));
    // Persisted and read back, it verifies again to the same record.
    assert_eq!(RootRecord::verify_initial(root.as_bytes()).unwrap(), root);
}

#[test]
fn initial_root_needs_its_own_root_threshold() {
    let body = root_body(1, ROOT_SEEDS, RELEASE_SEEDS);
    let one = sign_with(&[1], |k| body.sign(k).unwrap());
    assert_eq!(
        RootRecord::verify_initial(&one).unwrap_err(),
        Error::ThresholdNotMet {
            role: Role::Root,
            verified: 1,
            required: 2
        }
    );
    let same_twice = sign_with(&[1, 1], |k| body.sign(k).unwrap());
    assert!(matches!(
        RootRecord::verify_initial(&same_twice),
        Err(Error::ThresholdNotMet { verified: 1, .. })
    ));
    // Release keys are not root keys.
    let by_release = sign_with(RELEASE_SEEDS, |k| body.sign(k).unwrap());
    assert!(matches!(
        RootRecord::verify_initial(&by_release),
        Err(Error::UnknownKey { role: Role::Root })
    ));
    let any_two = sign_with(&[3, 9, 1], |k| body.sign(k).unwrap());
    assert!(RootRecord::verify_initial(&any_two).is_ok());
}

/// A root body with a raw key patched in, signed by the root keys: what an attacker with
/// root keys (or a buggy tool) could produce.
fn root_with_patched_release_key(key: [u8; 32]) -> Vec<u8> {
    let body = root_body(1, ROOT_SEEDS, RELEASE_SEEDS);
    let mut raw = [0u8; fota_protocol::v2::root::MAX_BODY_LEN];
    let n = body.encode(&mut raw).unwrap();
    // root set: 2 + 3*32 bytes after the 36-byte fixed part; release keys start 2 later.
    let at = 36 + 2 + 3 * 32 + 2;
    raw[at..at + 32].copy_from_slice(&key);
    sign_with(ROOT_SEEDS, |k| {
        sign_envelope(*b"FOTR", 1, b"FOTA-ROOT-v1\0", &raw[..n], k).unwrap()
    })
}

#[test]
fn weak_and_invalid_keys_are_refused_when_a_root_is_parsed() {
    assert_eq!(
        RootRecord::verify_initial(&root_with_patched_release_key([0; 32])).unwrap_err(),
        Error::WeakKey {
            role: Role::Release,
            index: 0
        }
    );
    // y = 2 is not on the curve.
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    assert_eq!(
        RootRecord::verify_initial(&root_with_patched_release_key(not_a_point)).unwrap_err(),
        Error::InvalidKey {
            role: Role::Release,
            index: 0
        }
    );
    assert_eq!(
        RootRecord::verify_initial(&root_with_patched_release_key(public(12))).unwrap_err(),
        Error::DuplicateKey {
            role: Role::Release,
            index: 1
        }
    );
}

#[test]
fn all_zero_key_with_all_zero_signature_never_verifies_a_manifest() {
    // Non-strict Ed25519 verification accepts this pair for any message.
    let (body, _) = manifest_body(&image(4096), 1024);
    for format in [ManifestFormat::V2, ManifestFormat::V3] {
        let raw = ManifestBody {
            format,
            ..body.clone()
        }
        .encode()
        .unwrap();
        let mut env = Vec::new();
        env.extend_from_slice(b"FOTM");
        env.extend_from_slice(&format.version().to_le_bytes());
        env.extend_from_slice(&u16::try_from(raw.len()).unwrap().to_le_bytes());
        env.extend_from_slice(&raw);
        env.push(1);
        env.extend_from_slice(&fota_protocol::v2::key_id(&[0; 32]));
        env.extend_from_slice(&[0; 64]);
        assert!(matches!(
            Manifest::verify(&root(), &env),
            Err(Error::UnknownKey { .. })
        ));
    }
}

fn rotated(version: u32, new_root: &[u8], new_release: &[u8], signers: &[u8]) -> Vec<u8> {
    let body = root_body(version, new_root, new_release);
    sign_with(signers, |k| body.sign(k).unwrap())
}

#[test]
fn rotation_needs_old_and_new_root_thresholds() {
    let trusted = root();
    // New root keys 4,5,6; release key 11 replaced by 14.
    let new_root = [4, 5, 6];
    let new_release = [12, 13, 14];

    let both = rotated(2, &new_root, &new_release, &[1, 2, 4, 5]);
    let next = RootRecord::verify_update(&trusted, &both).unwrap();
    assert_eq!(next.version(), 2);
    assert_eq!(next.as_bytes(), &both[..]);

    let old_only = rotated(2, &new_root, &new_release, &[1, 2, 4]);
    assert_eq!(
        RootRecord::verify_update(&trusted, &old_only).unwrap_err(),
        Error::ThresholdNotMet {
            role: Role::Root,
            verified: 1,
            required: 2
        }
    );
    let new_only = rotated(2, &new_root, &new_release, &[3, 4, 5]);
    assert_eq!(
        RootRecord::verify_update(&trusted, &new_only).unwrap_err(),
        Error::ThresholdNotMet {
            role: Role::Root,
            verified: 1,
            required: 2
        }
    );
    // Keys shared by both generations count for both.
    let overlap = rotated(2, &[2, 3, 7], &new_release, &[2, 3]);
    assert!(RootRecord::verify_update(&trusted, &overlap).is_ok());

    for version in [1, 3, u32::MAX] {
        let skip = rotated(version, &new_root, &new_release, &[1, 2, 4, 5]);
        assert_eq!(
            RootRecord::verify_update(&trusted, &skip).unwrap_err(),
            Error::RootVersion {
                expected: 2,
                found: version
            }
        );
    }

    let mut other_vendor = root_body(2, &new_root, &new_release);
    other_vendor.vendor_id = [0x99; 16];
    let other_vendor = sign_with(&[1, 2, 4, 5], |k| other_vendor.sign(k).unwrap());
    assert_eq!(
        RootRecord::verify_update(&trusted, &other_vendor).unwrap_err(),
        Error::RootVendorChanged
    );

    // A revoked release key no longer signs for the device.
    let (body, _) = manifest_body(&image(4096), 1024);
    let by_11_and_12 = sign_with(&[11, 12], |k| body.sign(k).unwrap());
    assert!(Manifest::verify(&trusted, &by_11_and_12).is_ok());
    assert!(matches!(
        Manifest::verify(&next, &by_11_and_12),
        Err(Error::ThresholdNotMet { verified: 1, .. })
    ));
    let by_12_and_14 = sign_with(&[12, 14], |k| body.sign(k).unwrap());
    assert!(Manifest::verify(&next, &by_12_and_14).is_ok());
}

#[test]
fn root_version_zero_is_refused() {
    let mut body = root_body(1, ROOT_SEEDS, RELEASE_SEEDS);
    body.version = 0;
    assert!(matches!(
        body.encode(&mut [0u8; 1024]),
        Err(Error::Field {
            field: "version",
            check: FieldCheck::Zero,
            ..
        })
    ));
}

#[test]
fn root_expiry() {
    let mut body = root_body(1, ROOT_SEEDS, RELEASE_SEEDS);
    body.expires_at = 2_000_000_000;
    let root = RootRecord::verify_initial(&sign_with(&[1, 2], |k| body.sign(k).unwrap())).unwrap();
    assert!(!root.is_expired(1_999_999_999));
    assert!(root.is_expired(2_000_000_000));
}

// ---------------------------------------------------------------- manifests

#[test]
fn manifest_round_trip() {
    let (body, _) = manifest_body(&image(10_000), 4096);
    let bytes = manifest_bytes(&body);
    assert_eq!(bytes.len(), 8 + 384 + 1 + 2 * 72, "format 3");
    let m = Manifest::verify(&root(), &bytes).unwrap();
    assert_eq!(m.body(), &body);
    assert_eq!(m.digest(), &manifest_digest(&bytes));
    assert_eq!(m.body().chunk_count, 3);
    assert_eq!(m.body().chunk_len(2), Some(10_000 - 8192));
    assert_eq!(m.body().chunk_len(3), None);
    assert_eq!(m.body().chunk_offset(2), Some(8192));
    assert_eq!(m.body().fw_version.as_str(), "1.0.6");
}

#[test]
fn manifest_needs_the_release_threshold() {
    let (body, _) = manifest_body(&image(4096), 1024);
    let one = sign_with(&[11], |k| body.sign(k).unwrap());
    assert_eq!(
        Manifest::verify(&root(), &one).unwrap_err(),
        Error::ThresholdNotMet {
            role: Role::Release,
            verified: 1,
            required: 2
        }
    );
    let dup = sign_with(&[11, 11, 11], |k| body.sign(k).unwrap());
    assert!(Manifest::verify(&root(), &dup).is_err());
    // Root and status keys cannot sign releases.
    let by_root = sign_with(&[1, 2, 3], |k| body.sign(k).unwrap());
    assert!(Manifest::verify(&root(), &by_root).is_err());
    let by_status_and_one = sign_with(&[STATUS_SEED, 13], |k| body.sign(k).unwrap());
    assert!(Manifest::verify(&root(), &by_status_and_one).is_err());
    let with_unknown = sign_with(&[40, 13, 41, 12], |k| body.sign(k).unwrap());
    assert!(Manifest::verify(&root(), &with_unknown).is_ok());
    // A status-domain signature over the same body is not a manifest signature.
    let cross = sign_with(&[11, 12], |k| {
        sign_envelope(
            *b"FOTM",
            2,
            envelope::STATUS.domain,
            &body.encode().unwrap(),
            k,
        )
        .unwrap()
    });
    assert!(Manifest::verify(&root(), &cross).is_err());
}

/// Signs a manifest body whose bytes were patched after encoding, as a release key holder
/// could.
fn patched_manifest(patch: impl FnOnce(&mut [u8; 256])) -> Vec<u8> {
    let (body, _) = manifest_body(&image(10_000), 1024);
    let body = ManifestBody {
        format: ManifestFormat::V2,
        ..body
    };
    let mut raw: [u8; 256] = body.encode().unwrap()[..].try_into().unwrap();
    patch(&mut raw);
    sign_with(&RELEASE_SEEDS[..2], |k| {
        sign_envelope(*b"FOTM", 2, b"FOTA-MANIFEST-v2\0", &raw, k).unwrap()
    })
}

fn field_error(patch: impl FnOnce(&mut [u8; 256])) -> Error {
    Manifest::verify(&root(), &patched_manifest(patch)).unwrap_err()
}

#[test]
fn manifest_field_checks() {
    let field = |field, offset, check| Error::Field {
        field,
        offset,
        check,
    };
    assert_eq!(
        field_error(|b| b[48..56].copy_from_slice(&0u64.to_le_bytes())),
        field("sequence", 48, FieldCheck::Zero)
    );
    assert_eq!(
        field_error(|b| b[60] = 1),
        field("payload_format", 60, FieldCheck::Unsupported)
    );
    assert_eq!(
        field_error(|b| b[61] = 1),
        field("component", 61, FieldCheck::Unsupported)
    );
    assert_eq!(
        field_error(|b| b[63] = 1),
        field("reserved", 62, FieldCheck::ReservedNotZero)
    );
    assert_eq!(
        field_error(|b| b[64..96].fill(0)),
        field("fw_version", 64, FieldCheck::Text)
    );
    assert_eq!(
        field_error(|b| b[64..96].fill(b'1')),
        field("fw_version", 64, FieldCheck::Text)
    );
    assert_eq!(
        field_error(|b| b[90] = b'x'),
        field("fw_version", 64, FieldCheck::Text)
    );
    assert_eq!(
        field_error(|b| b[96] = 0xff),
        field("project_name", 96, FieldCheck::Text)
    );
    assert_eq!(
        field_error(|b| b[136..144].copy_from_slice(&1_700_000_100u64.to_le_bytes())),
        field("expires_at", 136, FieldCheck::Inconsistent)
    );
    assert_eq!(
        field_error(|b| b[144..152].copy_from_slice(&0u64.to_le_bytes())),
        field("image_size", 144, FieldCheck::OutOfRange)
    );
    assert_eq!(
        field_error(|b| b[144..152].copy_from_slice(&(16 * 1024 * 1024 + 1u64).to_le_bytes())),
        field("image_size", 144, FieldCheck::OutOfRange)
    );
    assert_eq!(
        field_error(|b| b[144..152].copy_from_slice(&u64::MAX.to_le_bytes())),
        field("image_size", 144, FieldCheck::OutOfRange)
    );
    assert_eq!(
        field_error(|b| b[152..156].copy_from_slice(&1536u32.to_le_bytes())),
        field("chunk_size", 152, FieldCheck::NotPowerOfTwo)
    );
    assert_eq!(
        field_error(|b| b[152..156].copy_from_slice(&0u32.to_le_bytes())),
        field("chunk_size", 152, FieldCheck::NotPowerOfTwo)
    );
    assert_eq!(
        field_error(|b| b[152..156].copy_from_slice(&512u32.to_le_bytes())),
        field("chunk_size", 152, FieldCheck::OutOfRange)
    );
    assert_eq!(
        field_error(|b| b[152..156].copy_from_slice(&(1u32 << 17).to_le_bytes())),
        field("chunk_size", 152, FieldCheck::OutOfRange)
    );
    assert_eq!(
        field_error(|b| b[156..160].copy_from_slice(&9u32.to_le_bytes())),
        Error::ChunkCount {
            expected: 10,
            found: 9
        }
    );
    assert_eq!(
        field_error(|b| b[156..160].copy_from_slice(&u32::MAX.to_le_bytes())),
        Error::ChunkCount {
            expected: 10,
            found: u32::MAX
        }
    );
    assert_eq!(
        field_error(|b| b[224] = 1),
        field("precursor_sha256", 224, FieldCheck::Inconsistent)
    );
    // The largest image at the smallest chunk size: 16384 chunks, no overflow.
    let max = Manifest::verify(
        &root(),
        &patched_manifest(|b| {
            b[144..152].copy_from_slice(&(16u64 << 20).to_le_bytes());
            b[152..156].copy_from_slice(&1024u32.to_le_bytes());
            b[156..160].copy_from_slice(&16384u32.to_le_bytes());
        }),
    )
    .unwrap();
    assert_eq!(max.body().chunk_len(16383), Some(1024));
}

#[test]
fn manifest_encode_refuses_what_verify_refuses() {
    let (body, _) = manifest_body(&image(4096), 1024);
    let bad = ManifestBody {
        chunk_count: 5,
        ..body.clone()
    };
    assert_eq!(
        bad.encode().unwrap_err(),
        Error::ChunkCount {
            expected: 4,
            found: 5
        }
    );
    assert!(
        ManifestBody {
            sequence: 0,
            ..body.clone()
        }
        .sign(&[&signer(11)])
        .is_err()
    );
}

/// Signs a format-3 body patched after encoding.
fn patched_v3(patch: impl FnOnce(&mut [u8])) -> Result<Manifest, Error> {
    let (body, _) = manifest_body(&image(10_000), 1024);
    let mut raw = body.encode().unwrap();
    patch(&mut raw);
    let env = sign_with(&RELEASE_SEEDS[..2], |k| {
        sign_envelope(*b"FOTM", 3, b"FOTA-MANIFEST-v3\0", &raw, k).unwrap()
    });
    Manifest::verify(&root(), &env)
}

#[test]
fn a_format_3_manifest_names_its_chip_and_keeps_the_encryption_rows_zero() {
    let (body, _) = manifest_body(&image(10_000), 1024);
    assert_eq!(
        body.format,
        ManifestFormat::V3,
        "what the release tool writes"
    );
    let c3 = ManifestBody {
        chip_id: chip_ids::ESP32_C3,
        ..body.clone()
    };
    let raw = c3.encode().unwrap();
    assert_eq!(raw.len(), 384);
    assert_eq!(raw[62..64], 5u16.to_le_bytes());
    assert!(raw[256..].iter().all(|&b| b == 0));
    let env = manifest_bytes(&c3);
    assert_eq!(env[4..6], 3u16.to_le_bytes());
    let m = Manifest::verify(&root(), &env).unwrap();
    assert!(m.body().is_for_chip(chip_ids::ESP32_C3));
    assert!(!m.body().is_for_chip(chip_ids::ESP32));
    assert_eq!(m.body(), &c3);

    // The same fields in format 2: 256 bytes, still verified, an ESP32 by definition.
    let v2 = ManifestBody {
        format: ManifestFormat::V2,
        ..body.clone()
    };
    let old = Manifest::verify(&root(), &manifest_bytes(&v2)).unwrap();
    assert_eq!(old.body().format, ManifestFormat::V2);
    assert!(old.body().is_for_chip(chip_ids::ESP32));
    assert_eq!(
        ManifestBody {
            format: ManifestFormat::V2,
            ..c3.clone()
        }
        .encode()
        .unwrap_err(),
        Error::Field {
            field: "chip_id",
            offset: 62,
            check: FieldCheck::Unsupported
        },
        "format 2 cannot name another chip"
    );

    // Any byte of the encryption rows or the reserved tail set: refused, not read as raw.
    for at in [256, 300, 375] {
        assert_eq!(
            patched_v3(|b| b[at] = 1).unwrap_err(),
            Error::Field {
                field: "encryption",
                offset: at,
                check: FieldCheck::ReservedNotZero
            }
        );
    }
    assert!(matches!(
        patched_v3(|b| b[383] = 1).unwrap_err(),
        Error::Field {
            field: "reserved",
            ..
        }
    ));
    assert!(matches!(
        patched_v3(|b| b[62..64].copy_from_slice(&0x00FFu16.to_le_bytes())).unwrap_err(),
        Error::Field {
            field: "chip_id",
            check: FieldCheck::UnknownCode,
            ..
        }
    ));

    // Each format has its own domain: a format-2 signature over the body does not verify as
    // format 3, whatever the header says.
    let raw = body.encode().unwrap();
    let cross = sign_with(&RELEASE_SEEDS[..2], |k| {
        sign_envelope(*b"FOTM", 3, b"FOTA-MANIFEST-v2\0", &raw, k).unwrap()
    });
    assert!(matches!(
        Manifest::verify(&root(), &cross),
        Err(Error::ThresholdNotMet { .. })
    ));
}

#[test]
fn manifest_body_must_be_256_bytes() {
    let (body, _) = manifest_body(&image(4096), 1024);
    let body = ManifestBody {
        format: ManifestFormat::V2,
        ..body
    };
    let mut raw = body.encode().unwrap().to_vec();
    raw.push(0);
    let env = sign_with(&[11, 12], |k| {
        sign_envelope(*b"FOTM", 2, b"FOTA-MANIFEST-v2\0", &raw, k).unwrap()
    });
    assert_eq!(
        Manifest::verify(&root(), &env).unwrap_err(),
        Error::BodyLength {
            expected: 256,
            found: 257
        }
    );
    let v1 = sign_with(&[11, 12], |k| {
        sign_envelope(*b"FOTM", 1, b"FOTA-MANIFEST-v2\0", &raw[..256], k).unwrap()
    });
    assert_eq!(
        Manifest::verify(&root(), &v1).unwrap_err(),
        Error::FormatVersion {
            expected: 3,
            found: 1
        }
    );
}

#[test]
fn device_matching_and_expiry() {
    let (mut body, _) = manifest_body(&image(4096), 1024);
    assert!(body.matches_device(&VENDOR, &CLASS, &DEVICE));
    assert!(body.matches_device(&VENDOR, &CLASS, &[0x44; 16]));
    assert!(!body.matches_device(&[0; 16], &CLASS, &DEVICE));
    assert!(!body.matches_device(&VENDOR, &[0; 16], &DEVICE));
    body.device_id = DEVICE;
    let m = Manifest::verify(&root(), &manifest_bytes(&body)).unwrap();
    assert!(m.matches_device(&VENDOR, &CLASS, &DEVICE));
    assert!(!m.matches_device(&VENDOR, &CLASS, &[0x44; 16]));

    assert!(!m.is_expired(1_799_999_999));
    assert!(m.is_expired(1_800_000_000));
    body.expires_at = 0;
    assert!(!body.is_expired(u64::MAX));
}

// ---------------------------------------------------------------- status statements

fn status_body(action: Action) -> StatusBody {
    StatusBody {
        device_id: DEVICE,
        nonce: [0x55; 16],
        server_time: 1_700_000_500,
        expires_at: 1_700_086_900,
        action,
        poll_interval_s: 300,
        root_version: 1,
        assignment_generation: 0,
    }
}

fn status_bytes(body: &StatusBody) -> Vec<u8> {
    sign_with(&[STATUS_SEED], |k| body.sign(k).unwrap())
}

#[test]
fn status_round_trip_and_device_checks() {
    let (mbody, _) = manifest_body(&image(4096), 1024);
    let manifest_env = manifest_bytes(&mbody);
    let manifest = Manifest::verify(&root(), &manifest_env).unwrap();
    let body = status_body(Action::Install {
        manifest_digest: manifest_digest(&manifest_env),
    });
    let bytes = status_bytes(&body);
    let st = StatusStatement::verify_for_device(&root(), &bytes, &DEVICE, &[0x55; 16]).unwrap();
    assert_eq!(st.body(), &body);
    assert!(st.assigns(&manifest));
    assert_eq!(st.rollback_order(), None);

    assert_eq!(
        StatusStatement::verify_for_device(&root(), &bytes, &DEVICE, &[0x56; 16]).unwrap_err(),
        Error::NonceMismatch
    );
    assert_eq!(
        StatusStatement::verify_for_device(&root(), &bytes, &[0x34; 16], &[0x55; 16]).unwrap_err(),
        Error::DeviceMismatch
    );

    let rollback = status_bytes(&status_body(Action::Rollback { order_id: 9 }));
    let st = StatusStatement::verify(&root(), &rollback).unwrap();
    assert_eq!(st.rollback_order(), Some(9));
    assert!(!st.assigns(&manifest));
    let none = StatusStatement::verify(&root(), &status_bytes(&status_body(Action::None)));
    assert_eq!(none.unwrap().action(), Action::None);
}

#[test]
fn status_statements_need_the_status_key() {
    let body = status_body(Action::None);
    let by_release = sign_with(&[11, 12], |k| body.sign(k).unwrap());
    assert_eq!(
        StatusStatement::verify(&root(), &by_release).unwrap_err(),
        Error::UnknownKey { role: Role::Status }
    );
    // A status key signing a manifest gets nowhere either.
    let (mbody, _) = manifest_body(&image(4096), 1024);
    let by_status = sign_with(&[STATUS_SEED], |k| mbody.sign(k).unwrap());
    assert!(Manifest::verify(&root(), &by_status).is_err());
}

fn patched_status(patch: impl FnOnce(&mut [u8; 104])) -> Error {
    let mut raw = status_body(Action::None).encode().unwrap();
    patch(&mut raw);
    let env = sign_with(&[STATUS_SEED], |k| {
        sign_envelope(*b"FOTS", 1, b"FOTA-STATUS-v1\0", &raw, k).unwrap()
    });
    StatusStatement::verify(&root(), &env).unwrap_err()
}

fn patched_status_ok(patch: impl FnOnce(&mut [u8; 104])) -> bool {
    let mut raw = status_body(Action::None).encode().unwrap();
    patch(&mut raw);
    let env = sign_with(&[STATUS_SEED], |k| {
        sign_envelope(*b"FOTS", 1, b"FOTA-STATUS-v1\0", &raw, k).unwrap()
    });
    StatusStatement::verify(&root(), &env)
        .is_ok_and(|st| st.body().assignment_generation == 0x0100_0000)
}

#[test]
fn status_field_checks() {
    let field = |field, offset, check| Error::Field {
        field,
        offset,
        check,
    };
    assert_eq!(
        patched_status(|b| b[48] = 3),
        field("action", 48, FieldCheck::UnknownCode)
    );
    assert_eq!(
        patched_status(|b| b[50] = 1),
        field("reserved", 49, FieldCheck::ReservedNotZero)
    );
    // Bytes 100..104 carry the assignment generation, any value.
    assert!(patched_status_ok(|b| b[103] = 1));
    // action none with a digest or an order id
    assert_eq!(
        patched_status(|b| b[60] = 1),
        field("assigned_manifest_digest", 56, FieldCheck::Inconsistent)
    );
    assert_eq!(
        patched_status(|b| b[88] = 1),
        field("rollback_order_id", 88, FieldCheck::Inconsistent)
    );
    // install without a digest, rollback without an order id
    assert_eq!(
        patched_status(|b| b[48] = 1),
        field("assigned_manifest_digest", 56, FieldCheck::Zero)
    );
    assert_eq!(
        patched_status(|b| b[48] = 2),
        field("rollback_order_id", 88, FieldCheck::Zero)
    );
    // install with an order id as well
    assert_eq!(
        patched_status(|b| {
            b[48] = 1;
            b[56] = 1;
            b[88] = 1;
        }),
        field("rollback_order_id", 88, FieldCheck::Inconsistent)
    );
    assert_eq!(
        patched_status(|b| b[40..48].copy_from_slice(&1_700_000_500u64.to_le_bytes())),
        field("expires_at", 40, FieldCheck::Inconsistent)
    );
    assert_eq!(
        patched_status(|b| b[96..100].fill(0)),
        field("root_version", 96, FieldCheck::Zero)
    );
    assert!(
        status_body(Action::Install {
            manifest_digest: [0; 32]
        })
        .encode()
        .is_err()
    );
}

// ---------------------------------------------------------------- corruption

/// Every single-byte change of a signed envelope is rejected, whichever byte and however it is
/// changed (three patterns per byte: low bit, high bit, all bits).
fn assert_every_corruption_rejected(bytes: &[u8], verify: impl Fn(&[u8]) -> bool) {
    assert!(verify(bytes), "the intact envelope must verify");
    for i in 0..bytes.len() {
        for x in [0x01u8, 0x80, 0xff] {
            let mut b = bytes.to_vec();
            b[i] ^= x;
            assert!(!verify(&b), "byte {i} ^ {x:#04x} was accepted");
        }
    }
    for cut in 0..bytes.len() {
        assert!(!verify(&bytes[..cut]), "truncation to {cut} was accepted");
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(!verify(&longer), "a trailing byte was accepted");
}

#[test]
fn every_single_byte_corruption_of_a_manifest_is_rejected() {
    let (body, _) = manifest_body(&image(5000), 1024);
    let root = root();
    assert_every_corruption_rejected(&manifest_bytes(&body), |b| {
        Manifest::verify(&root, b).is_ok()
    });
}

#[test]
fn every_single_byte_corruption_of_a_root_is_rejected() {
    assert_every_corruption_rejected(&root_bytes(), |b| RootRecord::verify_initial(b).is_ok());
    let trusted = root();
    let update = rotated(2, &[4, 5, 6], RELEASE_SEEDS, &[1, 2, 4, 5]);
    assert_every_corruption_rejected(&update, |b| RootRecord::verify_update(&trusted, b).is_ok());
}

#[test]
fn every_single_byte_corruption_of_a_statement_is_rejected() {
    let root = root();
    let bytes = status_bytes(&status_body(Action::Rollback { order_id: 77 }));
    assert_every_corruption_rejected(&bytes, |b| StatusStatement::verify(&root, b).is_ok());
}

#[test]
fn envelope_framing_errors_name_the_check() {
    let bytes = manifest_bytes(&manifest_body(&image(4096), 1024).0);
    assert_eq!(
        Envelope::parse(&envelope::MANIFEST_V3, &bytes[..3]).unwrap_err(),
        Error::Codec(CodecError::Truncated {
            offset: 0,
            needed: 4
        })
    );
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(&[0; 5]);
    assert_eq!(
        Envelope::parse(&envelope::MANIFEST_V3, &trailing).unwrap_err(),
        Error::Codec(CodecError::TrailingBytes {
            offset: bytes.len()
        })
    );
    let mut nine = bytes.clone();
    nine[8 + 384] = 9;
    assert_eq!(
        Envelope::parse(&envelope::MANIFEST_V3, &nine).unwrap_err(),
        Error::SignatureCount {
            offset: 392,
            count: 9
        }
    );
    let parsed = Envelope::parse(&envelope::MANIFEST_V3, &bytes).unwrap();
    assert_eq!(parsed.signatures().count(), 2);
    assert_eq!(
        parsed.signatures().next().unwrap().key_id,
        fota_protocol::v2::key_id(&public(11))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_corruptions_are_rejected(pos in any::<prop::sample::Index>(), value in any::<u8>()) {
        let root = root();
        let bytes = manifest_bytes(&manifest_body(&image(3000), 1024).0);
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != value);
        let mut b = bytes.clone();
        b[i] = value;
        prop_assert!(Manifest::verify(&root, &b).is_err());
    }

    #[test]
    fn signed_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let root = root();
        let _ = Envelope::parse(&envelope::MANIFEST, &bytes);
        let _ = RootRecord::verify_initial(&bytes);
        let _ = RootRecord::verify_update(&root, &bytes);
        let _ = Manifest::verify(&root, &bytes);
        let _ = StatusStatement::verify(&root, &bytes);
    }

    #[test]
    fn signed_parsers_never_panic_on_mutated_records(
        which in 0usize..3,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let root = root();
        let mut bytes = match which {
            0 => root_bytes(),
            1 => manifest_bytes(&manifest_body(&image(3000), 1024).0),
            _ => status_bytes(&status_body(Action::None)),
        };
        for (pos, v) in edits {
            let i = pos.index(bytes.len());
            bytes[i] = v;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let _ = RootRecord::verify_initial(&bytes);
        let _ = RootRecord::verify_update(&root, &bytes);
        let _ = Manifest::verify(&root, &bytes);
        let _ = StatusStatement::verify(&root, &bytes);
    }

    #[test]
    fn manifest_round_trips(
        len in 1usize..200_000,
        shift in 10u32..=16,
        sequence in 1u64..,
        counter in any::<u32>(),
        device in any::<[u8; 16]>(),
    ) {
        let chunk_size = 1u32 << shift;
        let (mut body, _) = manifest_body(&image(64), 1024);
        body.image_size = len as u64;
        body.chunk_size = chunk_size;
        body.chunk_count = (len as u64).div_ceil(chunk_size.into()) as u32;
        body.sequence = sequence;
        body.security_counter = counter;
        body.device_id = device;
        let bytes = manifest_bytes(&body);
        let m = Manifest::verify(&root(), &bytes).unwrap();
        prop_assert_eq!(m.body(), &body);
    }

    #[test]
    fn root_round_trips(
        version in 1u32..,
        vendor in any::<[u8; 16]>(),
        issued in any::<u64>(),
        expires in any::<u64>(),
        counts in (1usize..=8, 1usize..=8, 1usize..=8),
        thresholds in (any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<prop::sample::Index>()),
    ) {
        // Distinct seeds per role: root 100.., release 120.., status 140..
        let seeds = |base: u8, n: usize| (0..n as u8).map(|i| base + i).collect::<Vec<_>>();
        let (rs, ls, ss) = (seeds(100, counts.0), seeds(120, counts.1), seeds(140, counts.2));
        let t = |i: prop::sample::Index, n: usize| (i.index(n) + 1) as u8;
        let body = fota_protocol::v2::RootBody {
            version,
            vendor_id: vendor,
            issued_at: issued,
            expires_at: expires,
            root: key_set(Role::Root, t(thresholds.0, counts.0), &rs),
            release: key_set(Role::Release, t(thresholds.1, counts.1), &ls),
            status: key_set(Role::Status, t(thresholds.2, counts.2), &ss),
        };
        let signers = &rs[..body.root.threshold() as usize];
        let bytes = sign_with(signers, |k| body.sign(k).unwrap());
        let root = RootRecord::verify_initial(&bytes).unwrap();
        prop_assert_eq!(root.body(), &body);
        prop_assert_eq!(root.as_bytes(), &bytes[..]);
        if body.root.threshold() > 1 {
            let short = sign_with(&signers[1..], |k| body.sign(k).unwrap());
            prop_assert!(RootRecord::verify_initial(&short).is_err());
        }
    }

    #[test]
    fn status_round_trips(
        device in any::<[u8; 16]>(),
        nonce in any::<[u8; 16]>(),
        server_time in 0u64..u64::MAX,
        ttl in 1u64..1_000_000,
        kind in 0u8..3,
        digest in any::<[u8; 32]>(),
        order in 1u64..,
        poll in any::<u32>(),
        root_version in 1u32..,
        generation in any::<u32>(),
    ) {
        prop_assume!(digest != [0; 32]);
        let action = match kind {
            0 => Action::None,
            1 => Action::Install { manifest_digest: digest },
            _ => Action::Rollback { order_id: order },
        };
        let body = StatusBody {
            device_id: device,
            nonce,
            server_time,
            expires_at: server_time.saturating_add(ttl),
            action,
            poll_interval_s: poll,
            root_version,
            assignment_generation: generation,
        };
        let st = StatusStatement::verify_for_device(&root(), &status_bytes(&body), &device, &nonce)
            .unwrap();
        prop_assert_eq!(st.body(), &body);
    }
}
