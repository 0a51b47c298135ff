//! v2 device API records: check-in, check-in answer, event.

use crate::common::*;
use fota_protocol::CodecError;
use fota_protocol::v2::answer::{self, RootList};
use fota_protocol::v2::checkin;
use fota_protocol::v2::event;
use fota_protocol::v2::{
    Action, AgentState, CheckIn, CheckInAnswer, Error, Event, EventKind, FieldCheck, FixedStr,
    Manifest, ReasonCode, RootRecord, StatusBody, StatusStatement,
};
use proptest::prelude::*;

fn check_in() -> CheckIn {
    CheckIn {
        legacy_latched_off: true,
        device_id: DEVICE,
        nonce: [0x55; 16],
        root_version: 1,
        installed_sequence: 4,
        installed_security_counter: 2,
        running_fw_version: FixedStr::new("1.0.5").unwrap(),
        running_image_sha256: [0xab; 32],
        running_slot: 1,
        running_ota_state: 2,
        agent_state: AgentState::Downloading,
        last_result: ReasonCode::Network,
        pending_bytes_done: 4096,
        pending_bytes_total: 10_000,
        pending_manifest_digest: [0xcd; 32],
        rollback_order_id: 0,
        boot_count: 1,
        telemetry: None,
    }
}

/// What a format-2 agent adds to [`check_in`].
fn telemetry() -> checkin::Telemetry {
    let mut attributes = checkin::Attributes::EMPTY;
    attributes.push("site", "A-7").unwrap();
    attributes.push("power_w", "1234").unwrap();
    checkin::Telemetry {
        counter: (3 << 32) | 17,
        chip_id: fota_protocol::v2::chip_ids::ESP32_C3,
        reset_reason: 4,
        uptime_s: 86_400,
        free_heap: 123_456,
        attributes,
    }
}

/// Truncation at every length and one trailing byte are both rejected.
fn assert_exact_length(bytes: &[u8], decode: impl Fn(&[u8]) -> Result<(), Error>) {
    assert_eq!(decode(bytes), Ok(()));
    for cut in 0..bytes.len() {
        assert!(
            matches!(
                decode(&bytes[..cut]),
                Err(Error::Codec(CodecError::Truncated { .. }))
            ),
            "truncation to {cut}: {:?}",
            decode(&bytes[..cut])
        );
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert_eq!(
        decode(&longer),
        Err(Error::Codec(CodecError::TrailingBytes {
            offset: bytes.len()
        }))
    );
}

#[test]
fn a_format_2_check_in_appends_the_telemetry_to_the_format_1_layout() {
    let c = CheckIn {
        telemetry: Some(telemetry()),
        ..check_in()
    };
    let bytes = c.to_vec().unwrap();
    let one = check_in().to_vec().unwrap();
    assert_eq!(bytes[4..6], 2u16.to_le_bytes());
    assert_eq!(bytes[..4], one[..4]);
    assert_eq!(bytes[6..184], one[6..184], "the shared part is format 1's");
    assert_eq!(bytes[184..192], ((3u64 << 32) | 17).to_le_bytes());
    assert_eq!(bytes[192..194], 5u16.to_le_bytes(), "ESP32-C3");
    assert_eq!(bytes[194], 4);
    assert_eq!(bytes[196..200], 86_400u32.to_le_bytes());
    assert_eq!(bytes[200..204], 123_456u32.to_le_bytes());
    assert_eq!(bytes[206..], *b"\x04site\x03A-7\x07power_w\x041234");
    assert_eq!(bytes[204..206], 22u16.to_le_bytes());
    assert_eq!(bytes.len(), c.encoded_len());
    let back = CheckIn::decode(&bytes).unwrap();
    assert_eq!(back, c);
    let t = back.telemetry.unwrap();
    assert_eq!(t.attributes.get("power_w"), Some("1234"));
    assert_eq!(
        t.attributes.iter().collect::<Vec<_>>(),
        [("site", "A-7"), ("power_w", "1234")]
    );
    assert_exact_length(&bytes, |b| CheckIn::decode(b).map(|_| ()));
    // A section that lies about its entries is refused, not half read.
    let mut bad = bytes.clone();
    bad[206] = 40;
    assert!(matches!(
        CheckIn::decode(&bad),
        Err(Error::Field {
            field: "attributes",
            ..
        })
    ));
    let mut bad = bytes.clone();
    bad[195] = 1;
    assert!(CheckIn::decode(&bad).is_err(), "reserved byte");
    let mut bad = bytes;
    bad[204..206].copy_from_slice(&257u16.to_le_bytes());
    assert!(
        CheckIn::decode(&bad).is_err(),
        "section longer than 256 bytes"
    );
}

#[test]
fn attributes_keep_to_their_bounds() {
    use checkin::AttributeError;
    let mut a = checkin::Attributes::EMPTY;
    assert_eq!(a.push("", "x"), Err(AttributeError::BadKey));
    assert_eq!(a.push("a b", "x"), Err(AttributeError::BadKey));
    assert_eq!(a.push(&"k".repeat(33), "x"), Err(AttributeError::BadKey));
    assert_eq!(a.push("k", &"v".repeat(65)), Err(AttributeError::BadValue));
    assert_eq!(a.push("k", "line\nbreak"), Err(AttributeError::BadValue));
    a.push("k", "").unwrap();
    assert_eq!(a.push("k", "again"), Err(AttributeError::Duplicate));
    let mut n = 0;
    let full = loop {
        match a.push(&format!("key{n}"), &"v".repeat(60)) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(full, AttributeError::Full);
    assert!(a.as_bytes().len() <= checkin::MAX_ATTRIBUTES_LEN);
    assert_eq!(a.iter().count(), n + 1, "nothing half written");
}

#[test]
fn check_in_round_trip_and_layout() {
    // Format 1, as agents built before format 2 send it: still read.
    let c = check_in();
    let bytes = c.to_vec().unwrap();
    assert_eq!(bytes.len(), checkin::LEN_V1);
    assert_eq!(&bytes[..4], b"FCI1");
    assert_eq!(bytes[6], 1, "legacy latch flag");
    assert_eq!(&bytes[8..24], &DEVICE);
    assert_eq!(&bytes[56..61], b"1.0.5");
    assert_eq!(bytes[120..124], [1, 2, 1, 14]);
    assert_eq!(&bytes[180..184], &1u32.to_le_bytes());
    assert_eq!(CheckIn::decode(&bytes).unwrap(), c);
    assert_exact_length(&bytes, |b| CheckIn::decode(b).map(|_| ()));
}

#[test]
fn check_in_field_checks() {
    let bytes = check_in().to_vec().unwrap();
    let patched = |i: usize, v: u8| {
        let mut b = bytes.clone();
        b[i] = v;
        CheckIn::decode(&b)
    };
    assert!(matches!(patched(0, b'X'), Err(Error::BadMagic { .. })));
    assert!(matches!(patched(4, 3), Err(Error::FormatVersion { .. })));
    assert!(
        matches!(
            patched(4, 2),
            Err(Error::Codec(CodecError::Truncated { .. }))
        ),
        "format 2 is longer"
    );
    assert_eq!(
        patched(6, 3).unwrap_err(),
        Error::Field {
            field: "flags",
            offset: 6,
            check: FieldCheck::ReservedNotZero
        }
    );
    assert!(patched(120, 15).is_ok());
    assert!(patched(120, 0xff).is_ok());
    assert!(matches!(
        patched(120, 16),
        Err(Error::Field {
            field: "running_slot",
            ..
        })
    ));
    assert!(patched(121, 0xff).is_ok());
    assert!(patched(121, 5).is_err());
    assert!(matches!(
        patched(122, 200),
        Err(Error::Field {
            check: FieldCheck::UnknownCode,
            ..
        })
    ));
    assert!(patched(123, 250).is_err());
    assert!(patched(70, b'x').is_err(), "text after the version's NUL");
    assert!(
        CheckIn {
            pending_bytes_done: 10_001,
            ..check_in()
        }
        .to_vec()
        .is_err()
    );
    let unlatched = CheckIn {
        legacy_latched_off: false,
        running_fw_version: FixedStr::EMPTY,
        ..check_in()
    };
    assert_eq!(
        CheckIn::decode(&unlatched.to_vec().unwrap()).unwrap(),
        unlatched
    );
}

fn event(detail: &str) -> Event<'_> {
    Event {
        kind: EventKind::RolledBack,
        reason: ReasonCode::NotConfirmed,
        device_id: DEVICE,
        seq: 7,
        manifest_digest: [0x77; 32],
        bytes_done: 10,
        bytes_total: 10,
        fw_version: FixedStr::new("1.0.6").unwrap(),
        rollback_order_id: 0,
        detail,
    }
}

#[test]
fn event_round_trip_and_layout() {
    for detail in ["", "booted 3 times without confirmation", &"é".repeat(60)] {
        let e = event(detail);
        let bytes = e.to_vec().unwrap();
        assert_eq!(bytes.len(), event::FIXED_LEN + detail.len());
        assert_eq!(&bytes[..4], b"FEV1");
        assert_eq!(bytes[6..8], [6, 16]);
        assert_eq!(bytes[120] as usize, detail.len());
        assert_eq!(Event::decode(&bytes).unwrap(), e);
        assert_exact_length(&bytes, |b| Event::decode(b).map(|_| ()));
    }
    assert!(event(&"x".repeat(121)).to_vec().is_err());
    let mut small = [0u8; 130];
    assert!(matches!(
        event(&"x".repeat(10)).encode(&mut small),
        Err(Error::Codec(CodecError::BufferTooSmall { needed: 131 }))
    ));
}

#[test]
fn event_field_checks() {
    let bytes = event("ok").to_vec().unwrap();
    let patched = |i: usize, v: u8| {
        let mut b = bytes.clone();
        b[i] = v;
        Event::decode(&b).map(|e| e.kind)
    };
    assert!(patched(6, 0).is_err(), "kind 0 is not a kind");
    assert!(patched(6, 11).is_err());
    assert_eq!(patched(6, 9), Ok(EventKind::RollbackRefused));
    assert_eq!(patched(6, 10), Ok(EventKind::Resumed));
    assert_eq!(
        bytes[4..6],
        2u16.to_le_bytes(),
        "events are written in format 2"
    );
    // Format 1 is read too, without the kind format 2 added.
    let mut one = bytes.clone();
    one[4..6].copy_from_slice(&1u16.to_le_bytes());
    assert_eq!(
        Event::decode(&one).map(|e| e.kind),
        Ok(EventKind::RolledBack)
    );
    one[6] = 10;
    assert!(matches!(
        Event::decode(&one),
        Err(Error::Field {
            field: "kind",
            check: FieldCheck::UnknownCode,
            ..
        })
    ));
    assert!(patched(7, 200).is_err());
    assert_eq!(
        patched(29, 1).unwrap_err(),
        Error::Field {
            field: "reserved",
            offset: 28,
            check: FieldCheck::ReservedNotZero
        }
    );
    assert!(patched(121, 0xff).is_err(), "detail must be UTF-8");
    assert!(matches!(
        patched(120, 121),
        Err(Error::Field {
            field: "detail_len",
            ..
        })
    ));
    assert!(patched(64, 11).is_err(), "bytes_done > bytes_total");
}

fn status_env(action: Action) -> Vec<u8> {
    let body = StatusBody {
        device_id: DEVICE,
        nonce: [0x55; 16],
        server_time: 1_700_000_500,
        expires_at: 1_700_086_900,
        action,
        poll_interval_s: 300,
        root_version: 2,
        assignment_generation: 0,
    };
    sign_with(&[STATUS_SEED], |k| body.sign(k).unwrap())
}

#[test]
fn answer_round_trip_and_the_device_path() {
    let img = image(10_000);
    let (body, _) = manifest_body(&img, 1024);
    let manifest_env = manifest_bytes(&body);
    let status = status_env(Action::Install {
        manifest_digest: fota_protocol::v2::manifest_digest(&manifest_env),
    });
    let next_root = sign_with(&[1, 2], |k| {
        root_body(2, ROOT_SEEDS, RELEASE_SEEDS).sign(k).unwrap()
    });
    let answer = CheckInAnswer {
        poll_hint_s: 60,
        status: &status,
        manifest: Some(&manifest_env),
        image_url: "/v2/blobs/abc",
        hashlist_url: "https://cdn.example/h/abc",
        rollback_order_id: 0,
        reason: "",
        roots: RootList::new(&[&next_root]).unwrap(),
    };
    let bytes = answer.to_vec().unwrap();
    assert_eq!(bytes.len(), answer.encoded_len());
    assert!(bytes.len() <= answer::MAX_LEN);
    let decoded = CheckInAnswer::decode(&bytes).unwrap();
    assert_eq!(decoded, answer);
    assert_exact_length(&bytes, |b| CheckInAnswer::decode(b).map(|_| ()));

    // The device: rotate the root, verify the statement, then the manifest it assigns.
    let mut trusted = root();
    for r in decoded.roots.as_slice() {
        trusted = RootRecord::verify_update(&trusted, r).unwrap();
    }
    assert_eq!(trusted.version(), 2);
    let st =
        StatusStatement::verify_for_device(&trusted, decoded.status, &DEVICE, &[0x55; 16]).unwrap();
    let m = Manifest::verify(&trusted, decoded.manifest.unwrap()).unwrap();
    assert!(st.assigns(&m));
    assert!(m.matches_device(&VENDOR, &CLASS, &DEVICE));

    // Nothing to do: no manifest, no URLs, a rollback reason.
    let idle_status = status_env(Action::Rollback { order_id: 5 });
    let idle = CheckInAnswer {
        poll_hint_s: 3600,
        status: &idle_status,
        manifest: None,
        image_url: "",
        hashlist_url: "",
        rollback_order_id: 5,
        reason: "New firmware has bugs",
        roots: RootList::EMPTY,
    };
    let bytes = idle.to_vec().unwrap();
    assert_eq!(CheckInAnswer::decode(&bytes).unwrap(), idle);
    assert_exact_length(&bytes, |b| CheckInAnswer::decode(b).map(|_| ()));
}

#[test]
fn answer_checks() {
    let status = status_env(Action::None);
    let base = CheckInAnswer {
        poll_hint_s: 60,
        status: &status,
        manifest: None,
        image_url: "",
        hashlist_url: "",
        rollback_order_id: 0,
        reason: "",
        roots: RootList::EMPTY,
    };
    assert!(base.to_vec().is_ok());
    let m = [1u8; 10];
    // URLs iff a manifest.
    assert!(
        CheckInAnswer {
            image_url: "/x",
            hashlist_url: "/y",
            ..base
        }
        .to_vec()
        .is_err()
    );
    assert!(
        CheckInAnswer {
            manifest: Some(&m),
            ..base
        }
        .to_vec()
        .is_err()
    );
    assert!(
        CheckInAnswer {
            manifest: Some(&m),
            image_url: "/x",
            hashlist_url: "/y",
            ..base
        }
        .to_vec()
        .is_ok()
    );
    for bad in ["/a b", "/a\r\nHost: evil", "/é", &"x".repeat(256)] {
        assert!(
            CheckInAnswer {
                manifest: Some(&m),
                image_url: bad,
                hashlist_url: "/y",
                ..base
            }
            .to_vec()
            .is_err(),
            "{bad:?}"
        );
    }
    assert!(
        CheckInAnswer {
            reason: &"r".repeat(129),
            ..base
        }
        .to_vec()
        .is_err()
    );
    assert!(
        CheckInAnswer {
            status: &[],
            ..base
        }
        .to_vec()
        .is_err()
    );
    let big = vec![0u8; 700];
    assert!(
        CheckInAnswer {
            status: &big,
            ..base
        }
        .to_vec()
        .is_err()
    );
    assert!(RootList::new(&[&m, &m, &m, &m, &m]).is_none());

    let bytes = base.to_vec().unwrap();
    let patched = |i: usize, v: u8| {
        let mut b = bytes.clone();
        b[i] = v;
        CheckInAnswer::decode(&b).map(|a| a.poll_hint_s)
    };
    assert!(matches!(patched(0, 0), Err(Error::BadMagic { .. })));
    assert!(matches!(
        patched(6, 1),
        Err(Error::Field {
            check: FieldCheck::ReservedNotZero,
            ..
        })
    ));
    // status_len 0
    let mut zero = bytes[..12].to_vec();
    zero.extend_from_slice(&[0, 0]);
    zero.extend_from_slice(&bytes[14 + status.len()..]);
    assert!(matches!(
        CheckInAnswer::decode(&zero),
        Err(Error::Field {
            field: "status_len",
            ..
        })
    ));
    // root_count 5
    let last = bytes.len() - 1;
    assert!(matches!(
        patched(last, 5),
        Err(Error::Field {
            field: "root_count",
            ..
        })
    ));
}

proptest! {
    #[test]
    fn device_record_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = CheckIn::decode(&bytes);
        let _ = CheckInAnswer::decode(&bytes);
        let _ = Event::decode(&bytes);
        if bytes.len() >= 32 {
            let _ = FixedStr::from_field(bytes[..32].try_into().unwrap());
        }
    }

    #[test]
    fn device_record_parsers_never_panic_on_mutated_records(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let status = status_env(Action::None);
        let answer = CheckInAnswer {
            poll_hint_s: 1,
            status: &status,
            manifest: Some(&status),
            image_url: "/i",
            hashlist_url: "/h",
            rollback_order_id: 0,
            reason: "why",
            roots: RootList::new(&[&status]).unwrap(),
        }
        .to_vec()
        .unwrap();
        for mut bytes in [check_in().to_vec().unwrap(), CheckIn { telemetry: Some(telemetry()), ..check_in() }.to_vec().unwrap(), event("detail").to_vec().unwrap(), answer] {
            for (pos, v) in &edits {
                let i = pos.index(bytes.len());
                bytes[i] = *v;
            }
            let _ = CheckIn::decode(&bytes);
            let _ = CheckInAnswer::decode(&bytes);
            let _ = Event::decode(&bytes);
            bytes.truncate(cut.index(bytes.len()));
            let _ = CheckIn::decode(&bytes);
            let _ = CheckInAnswer::decode(&bytes);
            let _ = Event::decode(&bytes);
        }
    }

    #[test]
    fn check_in_round_trips(
        device_id in any::<[u8; 16]>(),
        nonce in any::<[u8; 16]>(),
        seq in any::<u64>(),
        slot in prop_oneof![0u8..16, Just(0xffu8)],
        state in prop::sample::select(AgentState::ALL),
        result in prop::sample::select(ReasonCode::ALL),
        done in any::<u32>(),
        version in "[ -~]{0,31}",
        counter in any::<u64>(),
        chip in prop::sample::select(&fota_protocol::v2::chip_ids::KNOWN[..]),
        uptime in any::<u32>(),
        attributes in prop::collection::vec(("[a-z0-9_.-]{1,32}", "[ -~]{0,64}"), 0..6),
        format_2 in any::<bool>(),
    ) {
        let mut t = checkin::Telemetry::new(chip.0);
        t.counter = counter;
        t.uptime_s = uptime;
        for (k, v) in &attributes {
            // Duplicates and overflow are refused; what was taken must come back.
            let _ = t.attributes.push(k, v);
        }
        let c = CheckIn {
            telemetry: format_2.then_some(t),
            device_id,
            nonce,
            installed_sequence: seq,
            running_slot: slot,
            agent_state: state,
            last_result: result,
            pending_bytes_done: u64::from(done),
            pending_bytes_total: u64::from(done) + 1,
            running_fw_version: FixedStr::new(&version).unwrap(),
            ..check_in()
        };
        prop_assert_eq!(CheckIn::decode(&c.to_vec().unwrap()).unwrap(), c);
    }

    #[test]
    fn event_round_trips(
        kind in prop::sample::select(EventKind::ALL),
        reason in prop::sample::select(ReasonCode::ALL),
        detail in "\\PC{0,40}",
        seq in any::<u32>(),
    ) {
        prop_assume!(detail.len() <= 120);
        let e = Event { kind, reason, seq, detail: &detail, ..event("") };
        let bytes = e.to_vec().unwrap();
        prop_assert_eq!(Event::decode(&bytes).unwrap(), e);
    }

    #[test]
    fn answer_round_trips(
        poll in any::<u32>(),
        status in prop::collection::vec(any::<u8>(), 1..=689),
        manifest in prop::option::of(prop::collection::vec(any::<u8>(), 1..=841)),
        image_url in "[!-~]{1,255}",
        hashlist_url in "[!-~]{1,255}",
        order in any::<u64>(),
        reason in "\\PC{0,30}",
        roots in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..=1395), 0..=4),
    ) {
        prop_assume!(reason.len() <= 128);
        let has = manifest.is_some();
        let root_refs: Vec<&[u8]> = roots.iter().map(Vec::as_slice).collect();
        let answer = CheckInAnswer {
            poll_hint_s: poll,
            status: &status,
            manifest: manifest.as_deref(),
            image_url: if has { &image_url } else { "" },
            hashlist_url: if has { &hashlist_url } else { "" },
            rollback_order_id: order,
            reason: &reason,
            roots: RootList::new(&root_refs).unwrap(),
        };
        let bytes = answer.to_vec().unwrap();
        prop_assert!(bytes.len() <= answer::MAX_LEN);
        prop_assert_eq!(CheckInAnswer::decode(&bytes).unwrap(), answer);
    }
}
