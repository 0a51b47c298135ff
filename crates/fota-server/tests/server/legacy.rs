//! Router tests of the legacy (seed) API's bad input.

use axum::http::StatusCode;
use base64::Engine as _;
use serde_json::json;
use sha2::Digest as _;

use crate::common::*;

pub(crate) const PSK: &[u8] = b"your-32-byte-secret-key-here!!";

pub(crate) fn seed_payload(version: &str, firmware: &[u8], chunk_size: u64) -> serde_json::Value {
    json!({
        "version": version,
        "size": firmware.len(),
        "hash": hex::encode(sha2::Sha256::digest(firmware)),
        "chunk_size": chunk_size,
        "firmware_data": base64::engine::general_purpose::STANDARD.encode(firmware),
    })
}

#[tokio::test]
async fn upload_validation_and_rejected_uploads_change_nothing() {
    let f = fixture_with(|_| {}, None, Some(PSK)).await;
    let op = token(&f, "operator").await;
    let viewer = token(&f, "viewer").await;
    let fw: Vec<u8> = (0..10_240u32).map(|i| (i * 7 % 251) as u8).collect();
    let good = seed_payload("1.0.5", &fw, 1024);
    let path = "/api/cloud/fota/upload";
    post_json(&f.app, path, None, &good)
        .await
        .error(StatusCode::UNAUTHORIZED);
    post_json(&f.app, path, Some(&viewer), &good)
        .await
        .error(StatusCode::FORBIDDEN);
    let a = post_json(&f.app, path, Some(&op), &good).await;
    assert_eq!(a.json(), json!({"success": true, "total_chunks": 10}));
    let manifest = get(&f.app, "/api/inverter/fota/manifest", None)
        .await
        .json();

    let mut cases: Vec<(serde_json::Value, &str)> = Vec::new();
    let mut v = good.clone();
    v["firmware_data"] = json!("not base64!!");
    cases.push((v, "invalid_base64"));
    let mut v = good.clone();
    v["firmware_data"] =
        json!(base64::engine::general_purpose::STANDARD_NO_PAD.encode(&fw[..10_238]));
    cases.push((v, "invalid_base64"));
    let mut v = good.clone();
    v["size"] = json!(10_241);
    cases.push((v, "size_mismatch"));
    let mut v = good.clone();
    v["hash"] = json!("0".repeat(64));
    cases.push((v, "hash_mismatch"));
    let mut v = good.clone();
    v["hash"] = json!(v["hash"].as_str().unwrap().to_uppercase());
    cases.push((v, "invalid_hash"));
    let mut v = good.clone();
    v["chunk_size"] = json!(0);
    cases.push((v, "invalid_field"));
    let mut v = good.clone();
    v["chunk_size"] = json!(-5);
    cases.push((v, "invalid_field"));
    let mut v = good.clone();
    v["size"] = json!("10240");
    cases.push((v, "invalid_field"));
    let mut v = good.clone();
    v.as_object_mut().unwrap().remove("hash");
    cases.push((v, "invalid_field"));
    let mut v = good.clone();
    v["version"] = json!("");
    cases.push((v, "invalid_field"));
    for (body, code) in cases {
        assert_eq!(
            post_json(&f.app, path, Some(&op), &body)
                .await
                .error(StatusCode::BAD_REQUEST),
            code,
            "{body}"
        );
    }
    assert_eq!(
        post_raw(&f.app, path, Some(&op), "{\"version\":")
            .await
            .error(StatusCode::BAD_REQUEST),
        "invalid_json"
    );
    // the first upload still serves
    let now = get(&f.app, "/api/inverter/fota/manifest", None)
        .await
        .json();
    assert_eq!(
        (now["version"].clone(), now["hash"].clone()),
        (manifest["version"].clone(), manifest["hash"].clone())
    );
    assert!(now["nonce"].as_u64().unwrap() > manifest["nonce"].as_u64().unwrap());
}

#[tokio::test]
async fn oversize_legacy_upload_is_413() {
    let f = fixture_with(|c| c.limits.max_release_bytes = 8 * 1024, None, Some(PSK)).await;
    let fw = vec![1u8; 64 * 1024];
    let a = post_json(
        &f.app,
        "/api/cloud/fota/upload",
        Some(&f.admin),
        &seed_payload("1", &fw, 1024),
    )
    .await;
    a.error(StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn chunk_numbers_and_device_ids_are_checked() {
    let f = fixture_with(|_| {}, None, Some(PSK)).await;
    // nothing uploaded yet
    assert_eq!(
        get(&f.app, "/api/inverter/fota/manifest", None)
            .await
            .error(StatusCode::NOT_FOUND),
        "not_found"
    );
    get(&f.app, "/api/inverter/fota/chunk?chunk_number=0", None)
        .await
        .error(StatusCode::NOT_FOUND);
    let fw = vec![9u8; 2500];
    post_json(
        &f.app,
        "/api/cloud/fota/upload",
        Some(&f.admin),
        &seed_payload("2.0", &fw, 1000),
    )
    .await;
    for q in [
        "",
        "chunk_number=",
        "chunk_number=abc",
        "chunk_number=-1",
        "chunk_number=1.5",
        "chunk_number=99999999999999999999999",
        "chunk_number=0x1",
        "chunk_number=%20",
    ] {
        let a = get(&f.app, &format!("/api/inverter/fota/chunk?{q}"), None).await;
        a.error(StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        get(&f.app, "/api/inverter/fota/chunk?chunk_number=3", None)
            .await
            .error(StatusCode::NOT_FOUND),
        "not_found"
    );
    assert_eq!(
        get(
            &f.app,
            "/api/inverter/fota/chunk?chunk_number=18446744073709551615",
            None
        )
        .await
        .error(StatusCode::NOT_FOUND),
        "not_found"
    );
    let last = get(
        &f.app,
        "/api/inverter/fota/chunk?chunk_number=2&device_id=Eco1",
        None,
    )
    .await
    .json();
    let answer: fota_protocol::legacy::json::ChunkAnswer<String> =
        serde_json::from_value(last).unwrap();
    let mut buf = [0u8; 1000];
    assert_eq!(answer.decode_verified(PSK, &mut buf).unwrap(), &fw[2000..]);
    get(
        &f.app,
        "/api/inverter/fota/chunk?chunk_number=0&device_id=a%20b",
        None,
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    get(&f.app, "/api/inverter/fota/rollback-status", None)
        .await
        .error(StatusCode::BAD_REQUEST);
    get(
        &f.app,
        "/api/inverter/fota/rollback-status?device_id=",
        None,
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    for body in [
        "[]",
        "5",
        "{}",
        "{\"device_id\": 5.5e999}",
        "{\"device_id\": [1]}",
        "nope",
    ] {
        post_raw(&f.app, "/api/inverter/fota/status", None, body)
            .await
            .error(StatusCode::BAD_REQUEST);
    }
    // status without Content-Type and with extra fields is fine
    let ok = post_raw(
        &f.app,
        "/api/inverter/fota/status",
        None,
        "{\"device_id\": \"Eco1\", \"status\": \"success\", \"uptime\": 5}",
    )
    .await;
    assert_eq!(ok.json(), json!({"success": true}));
    // the legacy rollback order needs an operator token and a valid body
    post_json(
        &f.app,
        "/api/cloud/fota/rollback",
        None,
        &json!({"device_id": "Eco1", "reason": "x"}),
    )
    .await
    .error(StatusCode::UNAUTHORIZED);
    post_json(
        &f.app,
        "/api/cloud/fota/rollback",
        Some(&f.admin),
        &json!({"reason": "x"}),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    // device_id recorded as a check-in, with download progress
    f.state.flush_seen().await.unwrap();
    let d = get(&f.app, "/api/v2/devices/Eco1", Some(&f.admin))
        .await
        .json();
    assert_eq!(
        (
            d["protocol"].as_str(),
            d["progress_bytes"].as_i64(),
            d["progress_total"].as_i64()
        ),
        (Some("legacy"), Some(2500), Some(2500))
    );
    assert!(d["last_seen_at"].is_i64());
}
