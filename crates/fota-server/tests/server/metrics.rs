//! `/metrics`: bounded label values whatever clients send, and a `# HELP` for every family.

use axum::body::Body;
use axum::http::{Method, StatusCode};

use crate::common::*;

#[tokio::test]
async fn unknown_methods_are_counted_as_other_not_as_new_series() {
    let f = fixture().await;
    for method in ["ZZ123", "ZZ124", "BREW"] {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let a = send(&f.app, req(m, "/healthz", None, Body::empty())).await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    }
    let text = String::from_utf8(get(&f.app, "/metrics", None).await.body.to_vec()).unwrap();
    for method in ["ZZ123", "ZZ124", "BREW"] {
        assert!(
            !text.contains(method),
            "a client-chosen method became a label value:\n{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("fota_http_requests_total{")
                && l.contains("method=\"other\"")
                && l.contains("path=\"/healthz\"")),
        "unknown methods must count as method=\"other\":\n{text}"
    );
}

#[tokio::test]
async fn every_metric_family_has_help_and_type() {
    let f = v2_fixture().await;
    let k = &f.keys;
    // Touch every family: requests, a denied credential, a release, a check-in, an event, a
    // blob download and a legacy chunk.
    let dev = provision(&f, "m1", "ecowatt").await;
    let token = dev["token"].as_str().unwrap().to_owned();
    get(&f.app, "/api/v2/tokens", Some("nope")).await;
    let b = build(k, "ecowatt", "1.0.1", 1, 10_000);
    let rel = upload(&f, &f.admin, &b, None).await.json();
    let rid = rel["id"].as_str().unwrap();
    post_json(
        &f.app,
        &format!("/api/v2/releases/{rid}/assign"),
        Some(&f.admin),
        &serde_json::json!({"devices": ["m1"]}),
    )
    .await;
    let record = checkin_record(k, "m1", [1; 16], [0; 32], 0, 0);
    let a = post_raw(&f.app, "/api/v2/device/checkin", Some(&token), record).await;
    assert_eq!(a.status, StatusCode::OK);
    let blob = get(
        &f.app,
        &format!("/api/v2/device/blobs/{}", b.sha256_hex()),
        Some(&token),
    )
    .await;
    assert_eq!(blob.status, StatusCode::OK);
    let ev = event_record(
        k,
        "m1",
        fota_protocol::v2::EventKind::Progress,
        fota_protocol::v2::ReasonCode::None,
        b.digest(),
        10,
        100,
        0,
    );
    let a = post_raw(&f.app, "/api/v2/device/events", Some(&token), ev).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let fw = vec![7u8; 3000];
    let seed = crate::legacy::seed_payload("1.0.0", &fw, 1024);
    assert_eq!(
        post_json(&f.app, "/api/cloud/fota/upload", Some(&f.admin), &seed)
            .await
            .status,
        StatusCode::OK
    );
    let chunk = get(&f.app, "/api/inverter/fota/chunk?chunk_number=0", None).await;
    assert_eq!(chunk.status, StatusCode::OK);
    // A legacy request naming the v2 device.
    let refused = get(&f.app, "/api/inverter/fota/manifest?device_id=m1", None).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);

    let text = String::from_utf8(get(&f.app, "/metrics", None).await.body.to_vec()).unwrap();
    let mut helped = std::collections::BTreeSet::new();
    let mut typed = std::collections::BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("#"), Some("HELP"), Some(name), Some(_)) => {
                helped.insert(name.to_owned());
            }
            (Some("#"), Some("TYPE"), Some(name), Some(kind)) => {
                typed.insert(name.to_owned(), kind.to_owned());
            }
            _ => {}
        }
    }
    for family in [
        "fota_http_requests_total",
        "fota_http_request_seconds",
        "fota_auth_denied_total",
        "fota_releases_created_total",
        "fota_checkins_total",
        "fota_blob_bytes_total",
        "fota_device_events_total",
        "fota_legacy_chunks_total",
        "fota_legacy_v2_device_requests_total",
    ] {
        assert!(typed.contains_key(family), "{family} missing:\n{text}");
    }
    for family in typed.keys() {
        assert!(
            helped.contains(family),
            "{family} has no # HELP line:\n{text}"
        );
    }
    // Every sample belongs to a declared family.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains_key(*f)))
            .unwrap_or(name);
        assert!(typed.contains_key(family), "sample {line:?} of no family");
    }
}

/// With `metrics.token` set, only a scrape carrying it reads the metrics; everyone else gets
/// the usual 401 shape, and an operator token is no substitute.
#[tokio::test]
async fn a_metrics_token_closes_metrics_to_everyone_else() {
    let scrape = "scrape-token-0123456789";
    let f = fixture_with(
        |c| c.metrics_token = Some(fota_server::tokens::Secret::new(scrape)),
        None,
        None,
    )
    .await;
    let admin = f.admin.clone();
    for presented in [None, Some("scrape-token-0123456788"), Some(admin.as_str())] {
        let a = get(&f.app, "/metrics", presented).await;
        assert_eq!(
            a.error(StatusCode::UNAUTHORIZED),
            "unauthorized",
            "{presented:?}"
        );
    }
    let a = get(&f.app, "/metrics", Some(scrape)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.text().contains("fota_auth_denied_total"), "{}", a.text());
    // Liveness stays open: load balancers probe it without credentials.
    assert_eq!(get(&f.app, "/healthz", None).await.status, StatusCode::OK);
}
