//! Legacy (seed) protocol: JSON records as the seed sends them, the chunk HMAC, the replay MAC,
//! PSK parsing and upload validation.

use fota_protocol::legacy::{
    ChunkAnswer, Hex64, LegacyError, ManifestAnswer, ReplayMac, RollbackOrder,
    RollbackStatusAnswer, StatusReport, UploadAnswer, UploadRequest, chunk_mac, mac, paths,
    psk_from_file, psk_from_value, verify_chunk_mac,
};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

const PSK: &[u8] = b"your-32-byte-secret-key-here!!";

// Python: hmac.new(b"your-32-byte-secret-key-here!!", bytes(range(256)), hashlib.sha256).hexdigest()
const KAT_0_255: &str = "100fd7637bc8dde0bc61ec6fe40405375c1445d08b14e30f9f6a0b8337ce2c4b";
// Python: hmac.new(PSK, b"", hashlib.sha256).hexdigest()
const KAT_EMPTY: &str = "20b1a4c3ebe62777ee563298a06af8eff14dd139102760e945dfd6f6c9a6f402";
// Python: hmac.new(b"k" * 100, b"abc", hashlib.sha256).hexdigest() (key longer than a block)
const KAT_LONG_KEY: &str = "b58b2b694fdba0dd76da3ebe99174f728d327560f36ece224e90867972479922";

fn bytes_0_255() -> Vec<u8> {
    (0..=255u8).collect()
}

#[test]
fn chunk_hmac_known_answers() {
    assert_eq!(
        PSK.len(),
        30,
        "the seed's example key is 30 bytes, used as is"
    );
    assert_eq!(
        Hex64::new(&chunk_mac(PSK, &bytes_0_255())).as_str(),
        KAT_0_255
    );
    assert_eq!(Hex64::new(&chunk_mac(PSK, b"")).as_str(), KAT_EMPTY);
    assert_eq!(
        Hex64::new(&chunk_mac(&[b'k'; 100], b"abc")).as_str(),
        KAT_LONG_KEY
    );
}

#[test]
fn chunk_mac_verification() {
    let data = bytes_0_255();
    assert_eq!(verify_chunk_mac(PSK, &data, KAT_0_255), Ok(()));
    assert_eq!(
        verify_chunk_mac(PSK, &data, &KAT_0_255.to_uppercase()),
        Ok(())
    );
    let mut flipped = data.clone();
    flipped[17] ^= 1;
    assert_eq!(
        verify_chunk_mac(PSK, &flipped, KAT_0_255),
        Err(LegacyError::MacMismatch)
    );
    assert_eq!(
        verify_chunk_mac(b"other key", &data, KAT_0_255),
        Err(LegacyError::MacMismatch)
    );
    assert_eq!(
        verify_chunk_mac(PSK, &data, &KAT_0_255[..62]),
        Err(LegacyError::MacFormat)
    );
    let mut bad_digit = KAT_0_255.to_string();
    bad_digit.replace_range(0..1, "g");
    assert_eq!(
        verify_chunk_mac(PSK, &data, &bad_digit),
        Err(LegacyError::MacFormat)
    );
    assert_eq!(
        verify_chunk_mac(PSK, &data, "ü"),
        Err(LegacyError::MacFormat)
    );
}

fn manifest_answer() -> ManifestAnswer<&'static str> {
    ManifestAnswer {
        version: "1.0.6",
        size: 10240,
        hash: "be62a39bbe62a39bbe62a39bbe62a39bbe62a39bbe62a39bbe62a39bbe62a39b",
        chunk_size: 1024,
        total_chunks: 10,
        nonce: Some(7),
        mac: None,
    }
}

#[test]
fn replay_mac_known_answers() {
    // Python: HMAC(PSK, b"FOTA-LEGACY-v1\0" + s(path) + s(device) + s(version) + u64(size)
    //   + s(hash) + u64(chunk_size) + u64(total) + u64(nonce)), s(x) = u32le(len) + x.
    let expected = "74af534a8aaeeb7eca88b941b6b08c29cd7859896a24ba1e68ff7cdb50f55f57";
    let mac = manifest_answer()
        .compute_mac(PSK, paths::MANIFEST, "EcoWatt001")
        .unwrap();
    assert_eq!(Hex64::new(&mac).as_str(), expected);

    // ... + s(path) + s(device) + bool + s(reason) + u64(nonce)
    let expected = "3b6001c0b48807da2596033415c60d54263350b2435b0aeea093f4f03d7d51af";
    let answer = RollbackStatusAnswer {
        rollback_required: true,
        reason: Some("Testing rollback"),
        nonce: Some(8),
        mac: None,
    };
    let mac = answer
        .compute_mac(PSK, paths::ROLLBACK_STATUS, "EcoWatt001")
        .unwrap();
    assert_eq!(Hex64::new(&mac).as_str(), expected);
}

#[test]
fn replay_mac_device_checks() {
    let mut server = ManifestAnswer {
        version: "1.0.6".to_string(),
        size: 10240,
        hash: manifest_answer().hash.to_string(),
        chunk_size: 1024,
        total_chunks: 10,
        nonce: None,
        mac: None,
    };
    server.seal(PSK, paths::MANIFEST, "EcoWatt001", 42).unwrap();
    let json = serde_json::to_string(&server).unwrap();

    // The device parses without a heap and checks MAC, then nonce.
    let (answer, _): (ManifestAnswer<&str>, _) = serde_json_core::from_str(&json).unwrap();
    assert_eq!(
        answer.verify_replay(PSK, paths::MANIFEST, "EcoWatt001", 41),
        Ok(42)
    );
    assert_eq!(
        answer.verify_replay(PSK, paths::MANIFEST, "EcoWatt001", 42),
        Err(LegacyError::NonceNotIncreasing {
            nonce: 42,
            last: 42
        })
    );
    // Bound to the path and the device.
    assert_eq!(
        answer.verify_replay(PSK, paths::ROLLBACK_STATUS, "EcoWatt001", 0),
        Err(LegacyError::MacMismatch)
    );
    assert_eq!(
        answer.verify_replay(PSK, paths::MANIFEST, "EcoWatt002", 0),
        Err(LegacyError::MacMismatch)
    );
    // A forged huge nonce fails the MAC before the nonce is even looked at.
    let mut forged = answer.clone();
    forged.nonce = Some(u64::MAX);
    assert_eq!(
        forged.verify_replay(PSK, paths::MANIFEST, "EcoWatt001", 0),
        Err(LegacyError::MacMismatch)
    );
    let mut changed = answer.clone();
    changed.size += 1;
    assert_eq!(
        changed.verify_replay(PSK, paths::MANIFEST, "EcoWatt001", 0),
        Err(LegacyError::MacMismatch)
    );
    let mut stripped = answer.clone();
    stripped.mac = None;
    assert_eq!(
        stripped.verify_replay(PSK, paths::MANIFEST, "EcoWatt001", 0),
        Err(LegacyError::MacMissing)
    );
    stripped.nonce = None;
    stripped.mac = answer.mac;
    assert_eq!(
        stripped.verify_replay(PSK, paths::MANIFEST, "EcoWatt001", 0),
        Err(LegacyError::NonceMissing)
    );
}

#[test]
fn rollback_status_null_reason_is_the_empty_string() {
    let mut answer = RollbackStatusAnswer::<String> {
        rollback_required: false,
        reason: None,
        nonce: None,
        mac: None,
    };
    answer
        .seal(PSK, paths::ROLLBACK_STATUS, "EcoWatt001", 3)
        .unwrap();
    let json = serde_json::to_string(&answer).unwrap();
    assert!(json.contains("\"reason\":null"), "{json}");
    let parsed: RollbackStatusAnswer<&str> = serde_json::from_str(&json).unwrap();
    assert_eq!(
        parsed.verify_replay(PSK, paths::ROLLBACK_STATUS, "EcoWatt001", 2),
        Ok(3)
    );
    let mut flipped = parsed.clone();
    flipped.rollback_required = true;
    assert_eq!(
        flipped.verify_replay(PSK, paths::ROLLBACK_STATUS, "EcoWatt001", 2),
        Err(LegacyError::MacMismatch)
    );
}

#[test]
fn replay_mac_string_lengths_keep_fields_apart() {
    let mac = |a: &str, b: &str| {
        let mut m = ReplayMac::new(PSK);
        m.str(a).str(b);
        m.finish().unwrap()
    };
    assert_ne!(mac("ab", "c"), mac("a", "bc"));
}

#[test]
fn debug_of_a_replay_mac_shows_nothing_of_the_psk() {
    let mut m = ReplayMac::new(PSK);
    m.str("EcoWatt001");
    let debug = format!("{m:?}");
    assert!(debug.contains("mac: [redacted]"), "{debug}");
    let psk = core::str::from_utf8(PSK).unwrap();
    for form in [psk.to_owned(), hex::encode(PSK), format!("{PSK:?}")] {
        assert!(!debug.contains(form.trim_matches(['[', ']'])), "{debug}");
    }
}

#[test]
fn seed_json_examples_parse() {
    // The seed doc's manifest answer (hash written out in full; the doc elides it).
    let seed_manifest = r#"{
        "version": "1.0.6",
        "size": 10240,
        "hash": "be62a39bbe62a39bbe62a39bbe62a39bbe62a39bbe62a39bbe62a39bbe62a39b",
        "chunk_size": 1024,
        "total_chunks": 10
    }"#;
    let m: ManifestAnswer<String> = serde_json::from_str(seed_manifest).unwrap();
    assert_eq!(
        (m.version.as_str(), m.size, m.chunk_size, m.total_chunks),
        ("1.0.6", 10240, 1024, 10)
    );
    assert_eq!((m.nonce, m.mac), (None, None));
    let (d, _): (ManifestAnswer<&str>, _) = serde_json_core::from_str(seed_manifest).unwrap();
    assert_eq!(d.total_chunks, 10);

    let upload_answer: UploadAnswer =
        serde_json::from_str(r#"{"success": true, "total_chunks": 10}"#).unwrap();
    assert_eq!(
        upload_answer,
        UploadAnswer {
            success: true,
            total_chunks: 10
        }
    );

    let order: RollbackOrder<&str> =
        serde_json::from_str(r#"{"device_id":"EcoWatt001","reason":"Testing rollback"}"#).unwrap();
    assert_eq!(order.device_id, "EcoWatt001");
    assert_eq!(order.reason, "Testing rollback");

    let (flag, _): (RollbackStatusAnswer<&str>, _) = serde_json_core::from_str(
        r#"{"rollback_required": true, "reason": "New firmware has bugs"}"#,
    )
    .unwrap();
    assert!(flag.rollback_required);
    assert_eq!(flag.reason, Some("New firmware has bugs"));
    let none: RollbackStatusAnswer<String> =
        serde_json::from_str(r#"{"rollback_required": false, "reason": null}"#).unwrap();
    assert_eq!(none.reason, None);

    // The seed's chunk answer as app.py builds it.
    let data = b"firmware_code_segment_5...";
    let chunk = ChunkAnswer::new_signed(PSK, 5, data);
    let json = serde_json::to_string(&chunk).unwrap();
    let (device, _): (ChunkAnswer<&str>, _) = serde_json_core::from_str(&json).unwrap();
    assert_eq!(device.chunk_number, 5);
    let mut buf = [0u8; 64];
    assert_eq!(device.decode_verified(PSK, &mut buf).unwrap(), data);

    // Status reports: any object with device_id; unknown fields of any type are ignored.
    let report = r#"{"device_id":"EcoWatt001","status":"success","version":"1.0.6",
        "extra":{"nested":[1,2,3]},"uptime":12.5}"#;
    let r: StatusReport<String> = serde_json::from_str(report).unwrap();
    assert_eq!(r.status.as_deref(), Some("success"));
    assert_eq!(r.reason, None);
    let (r, _): (StatusReport<&str>, _) = serde_json_core::from_str(report).unwrap();
    assert_eq!(r.version, Some("1.0.6"));
    assert!(serde_json::from_str::<StatusReport<String>>(r#"{"status":"x"}"#).is_err());

    let upload = r#"{"version":"1.0.5","size":3,"hash":"039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81","chunk_size":1024,"firmware_data":"AQID"}"#;
    let u: UploadRequest<String> = serde_json::from_str(upload).unwrap();
    assert_eq!(u.validate().unwrap().total_chunks, 1);
}

#[test]
fn chunk_decoding_needs_room_and_padding() {
    let data: Vec<u8> = (0..1024u32).map(|i| i as u8).collect();
    let chunk = ChunkAnswer::new_signed(PSK, 0, &data);
    let mut exact = vec![0u8; 1024];
    assert_eq!(chunk.decode_verified(PSK, &mut exact).unwrap(), &data[..]);
    let mut small = vec![0u8; 1023];
    assert_eq!(
        chunk.decode_data(&mut small),
        Err(LegacyError::BufferTooSmall)
    );

    let unpadded = ChunkAnswer {
        chunk_number: 0,
        data: "AQI",
        mac: "00",
    };
    assert_eq!(
        unpadded.decode_data(&mut [0u8; 8]),
        Err(LegacyError::Base64)
    );
    let mut tampered = chunk.clone();
    tampered.data.replace_range(0..4, "AAAA");
    assert_eq!(
        tampered.decode_verified(PSK, &mut exact),
        Err(LegacyError::MacMismatch)
    );
}

fn upload(data: &[u8], chunk_size: u64) -> UploadRequest<String> {
    use base64::Engine as _;
    UploadRequest {
        version: "1.0.5".into(),
        size: data.len() as u64,
        hash: Hex64::new(&Sha256::digest(data).into()).as_str().into(),
        chunk_size,
        firmware_data: base64::engine::general_purpose::STANDARD.encode(data),
    }
}

#[test]
fn upload_validation() {
    // The seed's Test 1: 10 KB of non-ESP bytes in 1 KB chunks is accepted.
    let data = vec![0x5au8; 10240];
    let ok = upload(&data, 1024).validate().unwrap();
    assert_eq!(ok.total_chunks, 10);
    assert_eq!(ok.firmware, data);
    assert_eq!(ok.chunk(9).map(<[u8]>::len), Some(1024));
    assert_eq!(ok.chunk(10), None);
    assert_eq!(
        upload(&data[..10241 - 2], 1024)
            .validate()
            .unwrap()
            .total_chunks,
        10
    );
    assert_eq!(
        upload(&[1], 1024).validate().unwrap().chunk(0),
        Some(&[1u8][..])
    );

    let mut r = upload(&data, 1024);
    r.size += 1;
    assert_eq!(
        r.validate(),
        Err(LegacyError::SizeMismatch {
            declared: 10241,
            decoded: 10240
        })
    );
    let mut r = upload(&data, 0);
    assert_eq!(r.validate(), Err(LegacyError::ChunkSizeZero));
    r = upload(&data, 1024);
    r.hash = r.hash.to_uppercase();
    assert_eq!(r.validate(), Err(LegacyError::HashFormat));
    r = upload(&data, 1024);
    r.hash = Hex64::new(&[0; 32]).as_str().into();
    assert_eq!(r.validate(), Err(LegacyError::HashMismatch));
    r = upload(&data, 1024);
    r.firmware_data.pop();
    assert_eq!(r.validate(), Err(LegacyError::Base64));
    r = upload(&[], 1024);
    assert_eq!(r.validate(), Err(LegacyError::SizeZero));
    r = upload(&[1, 2], 1024);
    r.firmware_data = "AQI".into(); // unpadded
    assert_eq!(r.validate(), Err(LegacyError::Base64));
}

#[test]
fn psk_parsing() {
    assert_eq!(
        psk_from_value("your-32-byte-secret-key-here!!").unwrap(),
        PSK
    );
    assert_eq!(psk_from_value("hex:00ff10").unwrap(), [0, 0xff, 0x10]);
    assert_eq!(psk_from_value("hex:ABcd").unwrap(), [0xab, 0xcd]);
    assert_eq!(psk_from_value("hex:abc"), Err(LegacyError::PskHex));
    assert_eq!(psk_from_value("hex:zz"), Err(LegacyError::PskHex));
    assert_eq!(psk_from_value("hex:"), Err(LegacyError::PskEmpty));
    assert_eq!(psk_from_value(""), Err(LegacyError::PskEmpty));
    assert_eq!(psk_from_file(b"secret\n").unwrap(), b"secret");
    assert_eq!(psk_from_file(b"secret\n\n").unwrap(), b"secret\n");
    assert_eq!(psk_from_file(b" secret \r\n").unwrap(), b" secret \r");
    assert_eq!(psk_from_file(b"\x00\xff").unwrap(), b"\x00\xff");
    assert_eq!(psk_from_file(b"\n"), Err(LegacyError::PskEmpty));
}

proptest! {
    #[test]
    fn chunk_mac_verifies_only_its_data(
        psk in prop::collection::vec(any::<u8>(), 1..100),
        data in prop::collection::vec(any::<u8>(), 0..2048),
        flip in any::<prop::sample::Index>(),
    ) {
        let hex = Hex64::new(&chunk_mac(&psk, &data));
        prop_assert!(verify_chunk_mac(&psk, &data, hex.as_str()).is_ok());
        if !data.is_empty() {
            let mut other = data.clone();
            other[flip.index(data.len())] ^= 0x80;
            prop_assert_eq!(
                verify_chunk_mac(&psk, &other, hex.as_str()),
                Err(LegacyError::MacMismatch)
            );
        }
    }

    #[test]
    fn hex_round_trip(bytes in any::<[u8; 32]>()) {
        let hex = Hex64::new(&bytes);
        prop_assert!(mac::is_lower_hex64(hex.as_str()));
        prop_assert_eq!(mac::parse_hex32(hex.as_str()), Some(bytes));
    }

    #[test]
    fn mac_and_hex_parsers_never_panic(s in ".{0,80}", data in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = verify_chunk_mac(PSK, &data, &s);
        let _ = mac::parse_hex32(&s);
        let _ = psk_from_value(&s);
        let chunk = ChunkAnswer { chunk_number: 0, data: s.as_str(), mac: s.as_str() };
        let _ = chunk.decode_verified(PSK, &mut [0u8; 64]);
        let req = UploadRequest { version: "v", size: data.len() as u64, hash: s.as_str(), chunk_size: 1, firmware_data: s.as_str() };
        let _ = req.validate();
    }

    #[test]
    fn upload_chunks_cover_the_firmware(data in prop::collection::vec(any::<u8>(), 1..5000), chunk_size in 1u64..2000) {
        let ok = upload(&data, chunk_size).validate().unwrap();
        prop_assert_eq!(ok.total_chunks, (data.len() as u64).div_ceil(chunk_size));
        let joined: Vec<u8> = (0..ok.total_chunks).flat_map(|n| ok.chunk(n).unwrap().to_vec()).collect();
        prop_assert_eq!(joined, data);
    }
}
