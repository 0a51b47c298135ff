//! Per-device legacy keys (`legacy.per_device_keys`): every answer is MACed with the key of the
//! device it names, derived from the master PSK per request; chunk bodies stay shared.

use axum::http::StatusCode;
use fota_protocol::legacy::json::{ChunkAnswer, ManifestAnswer, RollbackStatusAnswer};
use fota_protocol::legacy::{DeviceKey, paths};

use crate::common::*;
use crate::legacy::{PSK, seed_payload};

async fn per_device_fixture() -> Fixture {
    let f = fixture_with(|c| c.legacy.per_device_keys = true, None, Some(PSK)).await;
    let fw: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    post_json(
        &f.app,
        paths::UPLOAD,
        Some(&f.admin),
        &seed_payload("1.0.6", &fw, 1024),
    )
    .await
    .json();
    f
}

fn chunk_of(a: &Answer) -> ChunkAnswer<String> {
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    serde_json::from_slice(&a.body).unwrap()
}

#[tokio::test]
async fn requests_without_a_device_id_are_refused_with_a_reason() {
    let f = per_device_fixture().await;
    for path in [
        paths::MANIFEST.to_owned(),
        format!("{}?chunk_number=0", paths::CHUNK),
    ] {
        let a = get(&f.app, &path, None).await;
        assert_eq!(
            a.error(StatusCode::BAD_REQUEST),
            "device_id_required",
            "{path}"
        );
        assert!(a.text().contains("per_device_keys"), "{}", a.text());
    }
}

#[tokio::test]
async fn each_device_gets_answers_maced_with_its_own_key_over_shared_chunk_bytes() {
    let f = per_device_fixture().await;
    let a_key = DeviceKey::derive(PSK, "EcoWatt001");
    let b_key = DeviceKey::derive(PSK, "EcoWatt002");
    let mut buf = vec![0u8; 2048];
    // Twice over, so the second round is answered from the chunk cache.
    for round in 0..2 {
        let a = chunk_of(
            &get(
                &f.app,
                &format!("{}?chunk_number=1&device_id=EcoWatt001", paths::CHUNK),
                None,
            )
            .await,
        );
        let b = chunk_of(
            &get(
                &f.app,
                &format!("{}?chunk_number=1&device_id=EcoWatt002", paths::CHUNK),
                None,
            )
            .await,
        );
        assert_eq!(a.data, b.data, "round {round}: the chunk bytes are shared");
        assert_ne!(a.mac, b.mac, "round {round}: the MACs are not");
        a.decode_verified(a_key.as_bytes(), &mut buf).unwrap();
        b.decode_verified(b_key.as_bytes(), &mut buf).unwrap();
        assert!(a.decode_verified(b_key.as_bytes(), &mut buf).is_err());
        assert!(a.decode_verified(PSK, &mut buf).is_err(), "not the master");
    }

    let m = get(
        &f.app,
        &format!("{}?device_id=EcoWatt001", paths::MANIFEST),
        None,
    )
    .await;
    let m: ManifestAnswer<String> = serde_json::from_slice(&m.body).unwrap();
    m.verify_replay(a_key.as_bytes(), paths::MANIFEST, "EcoWatt001", 0)
        .unwrap();
    assert!(
        m.verify_replay(PSK, paths::MANIFEST, "EcoWatt001", 0)
            .is_err()
    );
    let r = get(
        &f.app,
        &format!("{}?device_id=EcoWatt002", paths::ROLLBACK_STATUS),
        None,
    )
    .await;
    let r: RollbackStatusAnswer<String> = serde_json::from_slice(&r.body).unwrap();
    r.verify_replay(b_key.as_bytes(), paths::ROLLBACK_STATUS, "EcoWatt002", 0)
        .unwrap();
    assert!(
        r.verify_replay(a_key.as_bytes(), paths::ROLLBACK_STATUS, "EcoWatt002", 0)
            .is_err()
    );
}
