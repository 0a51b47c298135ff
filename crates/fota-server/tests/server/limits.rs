//! Load limits as a client meets them, through the real server on 127.0.0.1:0: uploads at
//! once (`limits.concurrent_uploads`: 503 `uploads_busy` with `Retry-After`) and refused
//! legacy device requests per client address (`legacy.failures_per_minute`: 429 with
//! `Retry-After`).

use std::time::{Duration, Instant};

use axum::http::{StatusCode, header};
use fota_protocol::legacy::paths;
use tokio::io::AsyncWriteExt as _;

use crate::common::*;
use crate::legacy::{PSK, seed_payload};

/// Asks `attempt` until it gives `Some` or 5 s pass: for what another connection makes true
/// a moment later (the server took the stalled upload's permit, or gave it back).
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = attempt().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One upload at a time: while an operator's legacy upload is still sending its body, a
/// release upload is told `uploads_busy` and when to come back; once the first is over, the
/// release goes in. Looped: it races a connection against another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_upload_while_one_is_running_is_told_to_retry_later() {
    for round in 0..10 {
        let k = keys();
        let t = trust(&k);
        let f = Fixture::open(|c| c.limits.concurrent_uploads = 1, k, Some(t), Some(PSK))
            .await
            .listen()
            .await;
        let built = build(&f.keys, "ecowatt", "1.0.6", 1, 0x4000);
        // A legacy upload that changes nothing (its hash is wrong: a 400 when it is let in)
        // tells whether the stalled one holds the only permit; it counts against the same
        // limit.
        let mut bad = seed_payload("1.0.6", &[7u8; 2048], 1024);
        bad["hash"] = serde_json::json!("00".repeat(32));
        // The stalled upload: its head and the first bytes of a large body, then nothing. If
        // the probe came first (the stalled one was then told `uploads_busy`, or had not
        // arrived yet), another stalled upload is started.
        let (stalled, legacy) = eventually("a stalled upload holds the only permit", || async {
            let mut stalled = tokio::net::TcpStream::connect(f.addr()).await.unwrap();
            let head = format!(
                "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{\"version\"",
                paths::UPLOAD,
                f.admin
            );
            stalled.write_all(head.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            let a = post_json(&f.app, paths::UPLOAD, Some(&f.admin), &bad).await;
            assert_ne!(a.status, StatusCode::OK, "{}", a.text());
            (a.status == StatusCode::SERVICE_UNAVAILABLE).then_some((stalled, a))
        })
        .await;
        assert_eq!(
            legacy.error(StatusCode::SERVICE_UNAVAILABLE),
            "uploads_busy"
        );
        // A release upload is told the same, and when to come back.
        let busy = upload(&f, &f.admin, &built, Some("ecowatt")).await;
        assert_eq!(busy.error(StatusCode::SERVICE_UNAVAILABLE), "uploads_busy");
        let retry: u64 = busy.headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1, "round {round}: Retry-After {retry}");
        assert!(busy.text().contains("1 uploads"), "{}", busy.text());
        // The stalled client goes away; its permit comes back.
        drop(stalled);
        let created = eventually("the permit is given back", || async {
            let a = upload(&f, &f.admin, &built, Some("ecowatt")).await;
            (a.status != StatusCode::SERVICE_UNAVAILABLE).then_some(a)
        })
        .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    }
}

/// A GET as if through a proxy at 127.0.0.1 (trusted) for `client`, in `X-Forwarded-For`.
async fn from(s: &Fixture, client: &str, path: &str) -> Answer {
    fota_testkit::server::http(s.addr(), "GET", path, &[("X-Forwarded-For", client)], b"").await
}

/// Someone probes the legacy API for ids provisioned for v2 (each such id is a 404
/// `unknown_device`, any other id an answered legacy device). Past the limit everything that
/// address asks is a 429, so it learns nothing more; a fleet polling before the first upload
/// (404 `not_found`) and a device behind another address are never slowed.
#[tokio::test]
async fn an_address_probing_the_legacy_api_is_throttled_and_devices_elsewhere_are_not() {
    let k = keys();
    let t = trust(&k);
    let f = Fixture::open(
        |c| {
            c.legacy.failures_per_minute = 3;
            c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        },
        k,
        Some(t),
        Some(PSK),
    )
    .await;
    for id in ["V2dev1", "V2dev2", "V2dev3", "V2dev4"] {
        provision(&f, id, "ecowatt").await;
    }
    let s = f.listen().await;
    let f = &s;
    let manifest = |id: &str| format!("{}?device_id={id}", paths::MANIFEST);

    // Nothing uploaded yet: a fleet behind one address polls and is told so, every time.
    for _ in 0..10 {
        let a = from(&s, "192.0.2.7", &manifest("EcoWatt001")).await;
        assert_eq!(a.error(StatusCode::NOT_FOUND), "not_found");
    }
    let (status, v) = f.legacy_upload("1.0.6", &[7u8; 2048], 1024).await;
    assert_eq!(status, StatusCode::OK, "{v}");

    let probe = "198.51.100.66";
    for id in ["V2dev1", "V2dev2", "V2dev3"] {
        let a = from(&s, probe, &manifest(id)).await;
        assert_eq!(a.error(StatusCode::NOT_FOUND), "unknown_device");
    }
    let over = from(&s, probe, &manifest("V2dev4")).await;
    assert_eq!(
        over.error(StatusCode::TOO_MANY_REQUESTS),
        "too_many_requests"
    );
    let retry: u64 = over.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // Now even a request that would be answered is not: the address learns nothing.
    let a = from(&s, probe, &manifest("NoSuchDevice")).await;
    assert_eq!(a.error(StatusCode::TOO_MANY_REQUESTS), "too_many_requests");
    let a = from(&s, probe, &format!("{}?chunk_number=x", paths::CHUNK)).await;
    assert_eq!(a.error(StatusCode::TOO_MANY_REQUESTS), "too_many_requests");

    // The fleet's address still gets its manifest and chunks.
    let a = from(&s, "192.0.2.7", &manifest("EcoWatt001")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let a = from(
        &s,
        "192.0.2.7",
        &format!("{}?chunk_number=0&device_id=EcoWatt001", paths::CHUNK),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
}
