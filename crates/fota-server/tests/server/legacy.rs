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
    // Write the progress sample now: the status report below is newer, and a batched sample
    // older than the last reported state is dropped when it is written.
    f.state.flush_seen().await.unwrap();
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

fn audit_actions(records: &serde_json::Value, action: &str) -> Vec<serde_json::Value> {
    records
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == action)
        .cloned()
        .collect()
}

/// The review's live attack: unauthenticated legacy requests naming a v2 device rewrote its
/// state and version, read and delivered its rollback order, then closed it.
#[tokio::test]
async fn legacy_requests_for_a_v2_device_are_refused_as_unknown_and_change_nothing() {
    let f = v2_fixture().await;
    post_json(
        &f.app,
        "/api/cloud/fota/upload",
        Some(&f.admin),
        &seed_payload("1.0.5", &[7u8; 3000], 1000),
    )
    .await;
    provision(&f, "devA", "ecowatt-v1").await;
    let order = post_json(
        &f.app,
        "/api/v2/devices/devA/rollback",
        Some(&f.admin),
        &json!({"reason": "secret reason"}),
    )
    .await;
    assert_eq!(order.status, StatusCode::CREATED);

    let bad_status = json!({"device_id": "devA", "status": "failed", "version": "6.6.6"});
    for _ in 0..2 {
        let a = post_json(&f.app, "/api/inverter/fota/status", None, &bad_status).await;
        assert_eq!(a.error(StatusCode::NOT_FOUND), "unknown_device");
    }
    let a = get(
        &f.app,
        "/api/inverter/fota/rollback-status?device_id=devA",
        None,
    )
    .await;
    assert_eq!(a.error(StatusCode::NOT_FOUND), "unknown_device");
    assert!(!String::from_utf8_lossy(&a.body).contains("secret reason"));
    for path in [
        "/api/inverter/fota/manifest?device_id=devA",
        "/api/inverter/fota/chunk?chunk_number=0&device_id=devA",
    ] {
        assert_eq!(
            get(&f.app, path, None).await.error(StatusCode::NOT_FOUND),
            "unknown_device",
            "{path}"
        );
    }
    // an operator's legacy rollback order cannot reach it either
    let a = post_json(
        &f.app,
        "/api/cloud/fota/rollback",
        Some(&f.admin),
        &json!({"device_id": "devA", "reason": "x"}),
    )
    .await;
    assert_eq!(a.error(StatusCode::NOT_FOUND), "unknown_device");

    f.state.flush_seen().await.unwrap();
    let d = get(&f.app, "/api/v2/devices/devA", Some(&f.admin))
        .await
        .json();
    assert_eq!(d["protocol"], "v2");
    assert_eq!(d["state"], "idle");
    assert_eq!(d["fw_version"], serde_json::Value::Null);
    assert_eq!(d["last_seen_at"], serde_json::Value::Null);
    assert_eq!(
        d["rollback_order"]["delivered_at"],
        serde_json::Value::Null,
        "the real device still gets its order"
    );
    let events = get(&f.app, "/api/v2/devices/devA/events", Some(&f.admin))
        .await
        .json();
    assert_eq!(events, json!([]));

    // one audit entry per device per minute, naming the route, never the body
    let audit = get(&f.app, "/api/v2/audit", Some(&f.admin)).await.json();
    let entries = audit_actions(&audit, "legacy_request_for_v2_device");
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["target"], "device:devA");
    assert_eq!(entries[0]["detail"]["route"], "/api/inverter/fota/status");
    assert!(!entries[0].to_string().contains("6.6.6"));
    let metrics = get(&f.app, "/metrics", None).await;
    let text = String::from_utf8_lossy(&metrics.body);
    let count: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("fota_legacy_v2_device_requests_total "))
        .expect("the refusals are counted")
        .trim()
        .parse()
        .unwrap();
    assert!(count >= 6.0, "{count}");
}

#[tokio::test]
async fn a_legacy_device_provisioned_for_v2_keeps_its_history_and_leaves_the_legacy_api() {
    let f = v2_fixture().await;
    let status = json!({"device_id": "EcoWatt009", "status": "success", "version": "1.0.5"});
    let a = post_json(&f.app, "/api/inverter/fota/status", None, &status).await;
    assert_eq!(a.json(), json!({"success": true}));
    assert_eq!(
        get(&f.app, "/api/v2/devices/EcoWatt009", Some(&f.admin))
            .await
            .json()["protocol"],
        "legacy"
    );
    provision(&f, "EcoWatt009", "ecowatt-v1").await;
    let d = get(&f.app, "/api/v2/devices/EcoWatt009", Some(&f.admin))
        .await
        .json();
    assert_eq!(
        (d["protocol"].as_str(), d["class"].as_str()),
        (Some("v2"), Some("ecowatt-v1"))
    );
    let a = post_json(&f.app, "/api/inverter/fota/status", None, &status).await;
    assert_eq!(a.error(StatusCode::NOT_FOUND), "unknown_device");
    let events = get(&f.app, "/api/v2/devices/EcoWatt009/events", Some(&f.admin))
        .await
        .json();
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["legacy_status"],
        "the legacy history is kept, nothing added"
    );
}

/// 3,000 made-up ids once made 3,203 permanent rows in 7 s. Now one client address makes at
/// most `new_devices_per_minute` new devices, every request is still answered, and the audit
/// log says what went unrecorded.
#[tokio::test]
async fn new_legacy_devices_are_limited_per_client_address() {
    let k = keys();
    let f = fixture_with(
        |c| c.legacy.new_devices_per_minute = 3,
        Some(trust(&k)),
        Some(PSK),
    )
    .await;
    post_json(
        &f.app,
        "/api/cloud/fota/upload",
        Some(&f.admin),
        &seed_payload("1.0.5", &[7u8; 3000], 1000),
    )
    .await;
    let s = Running::start(f.state.clone()).await;
    for i in 0..6 {
        let path = format!("/api/inverter/fota/manifest?device_id=made-up-{i}");
        let a = s.call("GET", &path, &[], b"").await;
        assert_eq!(a.status, StatusCode::OK, "still answered: {path}");
        assert_eq!(a.json()["version"], "1.0.5");
    }
    // the same new device polling again is not a new device
    let a = s
        .call(
            "GET",
            "/api/inverter/fota/manifest?device_id=made-up-0",
            &[],
            b"",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    f.state.flush_seen().await.unwrap();
    let devices = get(&f.app, "/api/v2/devices", Some(&f.admin)).await.json();
    let ids: Vec<&str> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["made-up-0", "made-up-1", "made-up-2"]);
    let audit = get(&f.app, "/api/v2/audit", Some(&f.admin)).await.json();
    let entries = audit_actions(&audit, "legacy.device_not_recorded");
    assert_eq!(entries.len(), 1, "one entry a minute: {audit}");
    assert_eq!(entries[0]["detail"]["reason"], "new_devices_per_minute");
    assert_eq!(entries[0]["detail"]["client"], "127.0.0.1");
    s.stop().await;
}

#[tokio::test]
async fn legacy_devices_beyond_the_cap_are_answered_but_not_recorded() {
    let k = keys();
    let f = fixture_with(|c| c.legacy.max_devices = 2, Some(trust(&k)), Some(PSK)).await;
    for i in 0..4 {
        let status = json!({"device_id": format!("Eco{i}"), "status": "success"});
        let a = post_json(&f.app, "/api/inverter/fota/status", None, &status).await;
        assert_eq!(a.json(), json!({"success": true}));
    }
    get(
        &f.app,
        "/api/inverter/fota/rollback-status?device_id=Eco5",
        None,
    )
    .await
    .json();
    f.state.flush_seen().await.unwrap();
    let devices = get(&f.app, "/api/v2/devices", Some(&f.admin)).await.json();
    assert_eq!(devices.as_array().unwrap().len(), 2, "{devices}");
    let audit = get(&f.app, "/api/v2/audit", Some(&f.admin)).await.json();
    let entries = audit_actions(&audit, "legacy.device_not_recorded");
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["detail"]["reason"], "max_devices");
    // v2 provisioning is not bound by the legacy cap, and deleting a legacy device frees a
    // place for a new one
    provision(&f, "devA", "ecowatt-v1").await;
    let a = send(
        &f.app,
        req(
            axum::http::Method::DELETE,
            "/api/v2/devices/Eco0",
            Some(&f.admin),
            axum::body::Body::empty(),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let status = json!({"device_id": "Eco7", "status": "success"});
    post_json(&f.app, "/api/inverter/fota/status", None, &status).await;
    assert_eq!(
        get(&f.app, "/api/v2/devices/Eco7", Some(&f.admin))
            .await
            .json()["protocol"],
        "legacy"
    );
}
