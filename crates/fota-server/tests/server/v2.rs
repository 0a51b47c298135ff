//! Router tests of release upload and the v2 device API.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use fota_protocol::v2::{self, Action, EventKind, ReasonCode, RootRecord, StatusStatement};
use serde_json::json;

use crate::common::*;

fn blob_count(f: &Fixture) -> usize {
    let mut n = 0;
    for dir in std::fs::read_dir(f.state.config().blob_dir()).unwrap() {
        let dir = dir.unwrap();
        n += std::fs::read_dir(dir.path()).unwrap().count();
    }
    n
}

#[tokio::test]
async fn release_upload_verifies_everything_and_leaves_nothing_on_rejection() {
    let f = v2_fixture().await;
    let k = &f.keys;
    provision(&f, "d1", "ecowatt").await;
    let op = token(&f, "operator").await;
    let viewer = token(&f, "viewer").await;
    let good = build(k, "ecowatt", "1.0.1", 1, 40_000);

    // wrong role
    upload(&f, &viewer, &good, None)
        .await
        .error(StatusCode::FORBIDDEN);
    // signed by a key the root does not trust (never did, or no longer does)
    let mut forged = good.clone();
    forged.resign(&[&fota_keys::generate_signing_key()]);
    assert_eq!(
        upload(&f, &op, &forged, None)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "unknown_or_revoked_key"
    );
    // signed by the status key (a key of the root, but not of the release role)
    forged.resign(&[&k.status]);
    assert_eq!(
        upload(&f, &op, &forged, None)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "unknown_or_revoked_key"
    );
    // a byte of the image changed
    let mut bad = good.clone();
    bad.image[5000] ^= 1;
    assert_eq!(
        upload(&f, &op, &bad, None)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "image_hash_mismatch"
    );
    // image truncated
    let mut bad = good.clone();
    bad.image.truncate(30_000);
    assert_eq!(
        upload(&f, &op, &bad, None)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "image_size_mismatch"
    );
    // hash list tampered / truncated
    let mut bad = good.clone();
    let last = bad.hashlist.blob.len() - 1;
    bad.hashlist.blob[last] ^= 1;
    assert_eq!(
        upload(&f, &op, &bad, None)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "hashlist_mismatch"
    );
    bad.hashlist.blob.truncate(20);
    assert_eq!(
        upload(&f, &op, &bad, None)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "hashlist_mismatch"
    );
    // manifest version differs from the app descriptor's (validly signed)
    let mut bad = good.clone();
    bad.body.fw_version = v2::FixedStr::new("9.9.9").unwrap();
    bad.resign(&[&k.release]);
    assert_eq!(
        upload(&f, &op, &bad, None)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "version_mismatch"
    );
    // not an ESP image at all, but consistent hashes and signature
    let mut junk = good.clone();
    junk.image = vec![0x42; 40_000];
    let hl = v2::hashlist::build(&junk.image, 4096).unwrap();
    use sha2::Digest as _;
    junk.body.image_size = 40_000;
    junk.body.chunk_count = hl.layout.chunk_count();
    junk.body.image_sha256 = sha2::Sha256::digest(&junk.image).into();
    junk.body.chunk_list_sha256 = hl.chunk_list_sha256;
    junk.hashlist.blob = hl.blob;
    junk.resign(&[&k.release]);
    assert_eq!(
        upload(&f, &op, &junk, None)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "invalid_image"
    );
    // unknown class / class part that does not match
    let other = build(k, "nobody-has-this", "1.0.1", 1, 20_000);
    assert_eq!(
        upload(&f, &op, &other, None)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "unknown_class"
    );
    assert_eq!(
        upload(&f, &op, &good, Some("other"))
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "unknown_class"
    );
    // another vendor
    let foreign = keys();
    let mut alien = build(&foreign, "ecowatt", "1.0.1", 1, 20_000);
    alien.resign(&[&k.release]);
    assert_eq!(
        upload(&f, &op, &alien, None)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "wrong_vendor"
    );
    // malformed multipart: missing part, unknown part, not multipart at all
    let (ct, body) = multipart(&[("manifest", &good.manifest), ("image", &good.image)]);
    let mut r = req(Method::POST, "/api/v2/releases", Some(&op), body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, ct.parse().unwrap());
    assert_eq!(
        send(&f.app, r).await.error(StatusCode::BAD_REQUEST),
        "missing_part"
    );
    let (ct, body) = multipart(&[("evil", b"x")]);
    let mut r = req(Method::POST, "/api/v2/releases", Some(&op), body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, ct.parse().unwrap());
    assert_eq!(
        send(&f.app, r).await.error(StatusCode::BAD_REQUEST),
        "invalid_multipart"
    );
    post_raw(&f.app, "/api/v2/releases", Some(&op), "{}")
        .await
        .error(StatusCode::BAD_REQUEST);

    // none of it left anything behind
    assert_eq!(
        get(&f.app, "/api/v2/releases", Some(&op)).await.json(),
        json!([])
    );
    assert_eq!(blob_count(&f), 0, "rejected uploads leave no blobs");

    // the good one passes
    let a = upload(&f, &op, &good, None).await;
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let rel = a.json();
    assert_eq!(rel["version"], "1.0.1");
    assert_eq!(rel["class"], "ecowatt");
    assert_eq!(rel["image_sha256"], good.sha256_hex());
    assert_eq!(rel["id"], fota_api::release::release_id(&good.digest()));
    assert_eq!(blob_count(&f), 2);
    // the same sequence again, or a lower one: conflict
    let again = build(k, "ecowatt", "1.0.2", 1, 20_000);
    assert_eq!(
        upload(&f, &op, &again, None)
            .await
            .error(StatusCode::CONFLICT),
        "conflict"
    );
    // the manifest is served back as uploaded
    let m = get(
        &f.app,
        &format!("/api/v2/releases/{}/manifest", rel["id"].as_str().unwrap()),
        Some(&viewer),
    )
    .await;
    assert_eq!(m.body.as_ref(), good.manifest.as_slice());
    // audit names the uploader
    let audit = get(&f.app, "/api/v2/audit?limit=1", Some(&viewer))
        .await
        .json();
    assert_eq!(audit[0]["action"], "release.create");
    assert_eq!(audit[0]["detail"]["image_sha256"], good.sha256_hex());
}

#[tokio::test]
async fn oversize_release_upload_is_413() {
    let k = keys();
    let f = fixture_with(
        |c| c.limits.max_release_bytes = 16 * 1024,
        Some(trust(&k)),
        None,
    )
    .await;
    provision(&f, "d1", "ecowatt").await;
    let b = build(&k, "ecowatt", "1.0.1", 1, 40_000);
    assert_eq!(
        upload(&f, &f.admin, &b, None)
            .await
            .error(StatusCode::PAYLOAD_TOO_LARGE),
        "payload_too_large"
    );
    // streamed without a length
    let (ct, body) = upload_parts(&b, None);
    let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> = body
        .chunks(4096)
        .map(|c| Ok(axum::body::Bytes::copy_from_slice(c)))
        .collect();
    let mut r = req(
        Method::POST,
        "/api/v2/releases",
        Some(&f.admin),
        Body::from_stream(futures_util::stream::iter(chunks)),
    );
    r.headers_mut()
        .insert(header::CONTENT_TYPE, ct.parse().unwrap());
    send(&f.app, r).await.error(StatusCode::PAYLOAD_TOO_LARGE);
}

struct Dev {
    id: String,
    token: String,
}

async fn dev(f: &Fixture, id: &str, class: &str) -> Dev {
    let p = provision(f, id, class).await;
    assert!(p["token"].as_str().unwrap().starts_with("fota_dev_"));
    Dev {
        id: id.into(),
        token: p["token"].as_str().unwrap().into(),
    }
}

async fn checkin(
    f: &Fixture,
    k: &fota_keys::KeySet,
    d: &Dev,
    running: [u8; 32],
    ack: u64,
) -> (v2::CheckInAnswer<'static>, StatusStatement) {
    let nonce: [u8; 16] = rand_nonce();
    let body = checkin_record(k, &d.id, nonce, running, 0, ack);
    let a = post_raw(&f.app, "/api/v2/device/checkin", Some(&d.token), body).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.headers[header::CONTENT_TYPE], "application/octet-stream");
    let bytes: &'static [u8] = Box::leak(a.body.to_vec().into_boxed_slice());
    let answer = v2::CheckInAnswer::decode(bytes).unwrap();
    let root = RootRecord::verify_initial(&k.root_record().unwrap()).unwrap();
    let uuid = fota_protocol::v2::ids::device_uuid(&k.vendor_id, &d.id);
    let st =
        StatusStatement::verify_for_device(&root, answer.status, uuid.as_bytes(), &nonce).unwrap();
    assert_eq!(st.body().poll_interval_s, answer.poll_hint_s);
    (answer, st)
}

fn rand_nonce() -> [u8; 16] {
    uuid::Uuid::new_v4().into_bytes()
}

#[tokio::test]
async fn checkin_assign_download_events_rollback() {
    let f = v2_fixture().await;
    let k = &f.keys;
    let d1 = dev(&f, "d1", "ecowatt").await;
    let d2 = dev(&f, "d2", "ecowatt").await;
    let o1 = dev(&f, "o1", "other").await;
    let b = build(k, "ecowatt", "1.0.1", 1, 70_000);
    let rel = upload(&f, &f.admin, &b, None).await.json();
    let rid = rel["id"].as_str().unwrap().to_owned();

    // nothing assigned: action none, statement bound to the nonce, poll hint within jitter
    let (a, st) = checkin(&f, k, &d1, [0; 32], 0).await;
    assert_eq!(st.action(), Action::None);
    assert!(a.manifest.is_none() && a.image_url.is_empty());
    assert!((240..=360).contains(&a.poll_hint_s), "{}", a.poll_hint_s);

    // assign to the class: install with the manifest and URLs
    let r = post_json(
        &f.app,
        &format!("/api/v2/releases/{rid}/assign"),
        Some(&f.admin),
        &json!({"class": "ecowatt"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let (a, st) = checkin(&f, k, &d1, [0; 32], 0).await;
    assert_eq!(
        st.action(),
        Action::Install {
            manifest_digest: b.digest()
        }
    );
    let first_generation = st.body().assignment_generation;
    assert!(first_generation >= 1);
    assert_eq!(a.manifest.unwrap(), b.manifest.as_slice());
    let sha = b.sha256_hex();
    assert_eq!(a.image_url, format!("/api/v2/device/blobs/{sha}"));
    let hl_url = a.hashlist_url.to_owned();

    // ranged download from an odd offset
    let image_url = format!("/api/v2/device/blobs/{sha}");
    let mut r = req(Method::GET, &image_url, Some(&d1.token), Body::empty());
    r.headers_mut()
        .insert(header::RANGE, "bytes=12345-".parse().unwrap());
    let part = send(&f.app, r).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.body.as_ref(), &b.image[12345..]);
    assert_eq!(
        part.headers[header::CONTENT_RANGE],
        format!("bytes 12345-{}/{}", b.image.len() - 1, b.image.len())
    );
    assert_eq!(part.headers[header::ETAG], format!("\"{sha}\""));
    assert_eq!(part.headers[header::ACCEPT_RANGES], "bytes");
    assert!(
        part.headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let full = get(&f.app, &image_url, Some(&d1.token)).await;
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(full.body.as_ref(), b.image.as_slice());
    let hl = get(&f.app, &hl_url, Some(&d1.token)).await;
    assert_eq!(hl.body.as_ref(), b.hashlist.blob.as_slice());
    for (range, want) in [
        ("bytes=0-9", 10usize),
        ("bytes=-7", 7),
        ("bytes=100-100", 1),
        ("bytes=0-99999999", b.image.len()),
    ] {
        let mut r = req(Method::GET, &image_url, Some(&d1.token), Body::empty());
        r.headers_mut()
            .insert(header::RANGE, range.parse().unwrap());
        let a = send(&f.app, r).await;
        assert_eq!(
            (a.status, a.body.len()),
            (StatusCode::PARTIAL_CONTENT, want),
            "{range}"
        );
    }
    // bad byte ranges: 416 with our error body and the size (other units are ignored, see
    // a_range_in_another_unit_is_ignored_and_units_are_case_insensitive)
    for range in [
        "bytes=999999999-",
        "bytes=5-1",
        "bytes=a-b",
        "bytes=0-1,5-6",
        "bytes=-0",
    ] {
        let mut r = req(Method::GET, &image_url, Some(&d1.token), Body::empty());
        r.headers_mut()
            .insert(header::RANGE, range.parse().unwrap());
        let a = send(&f.app, r).await;
        a.error(StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(
            a.headers[header::CONTENT_RANGE],
            format!("bytes */{}", b.image.len()),
            "{range}"
        );
    }
    // If-Range with a stale validator sends the whole blob; If-None-Match gives 304
    let mut r = req(Method::GET, &image_url, Some(&d1.token), Body::empty());
    r.headers_mut()
        .insert(header::RANGE, "bytes=10-".parse().unwrap());
    r.headers_mut()
        .insert(header::IF_RANGE, "\"old\"".parse().unwrap());
    assert_eq!(send(&f.app, r).await.status, StatusCode::OK);
    let mut r = req(Method::GET, &image_url, Some(&d1.token), Body::empty());
    r.headers_mut()
        .insert(header::IF_NONE_MATCH, format!("\"{sha}\"").parse().unwrap());
    assert_eq!(send(&f.app, r).await.status, StatusCode::NOT_MODIFIED);

    // access control on blobs
    get(&f.app, &image_url, None)
        .await
        .error(StatusCode::UNAUTHORIZED);
    get(&f.app, &image_url, Some("fota_dev_nope"))
        .await
        .error(StatusCode::UNAUTHORIZED);
    get(&f.app, &image_url, Some(&o1.token))
        .await
        .error(StatusCode::FORBIDDEN);
    get(
        &f.app,
        &format!("/api/v2/device/blobs/{}", "0".repeat(64)),
        Some(&d1.token),
    )
    .await
    .error(StatusCode::FORBIDDEN);
    get(
        &f.app,
        "/api/v2/device/blobs/..%2F..%2Fetc",
        Some(&d1.token),
    )
    .await
    .error(StatusCode::NOT_FOUND);
    // an operator token is not a device credential
    get(&f.app, &image_url, Some(&f.admin))
        .await
        .error(StatusCode::UNAUTHORIZED);

    // events: progress, then the device runs the release and is no longer offered it
    let ev = event_record(
        k,
        "d1",
        EventKind::Progress,
        ReasonCode::None,
        b.digest(),
        4096,
        b.image.len() as u64,
        0,
    );
    assert_eq!(
        post_raw(&f.app, "/api/v2/device/events", Some(&d1.token), ev)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let dv = get(&f.app, "/api/v2/devices/d1", Some(&f.admin))
        .await
        .json();
    assert_eq!(
        (dv["state"].as_str(), dv["progress_bytes"].as_i64()),
        (Some("downloading"), Some(4096))
    );
    assert_eq!(dv["progress_release_id"], rid);
    let ev = event_record(
        k,
        "d1",
        EventKind::Confirmed,
        ReasonCode::None,
        b.digest(),
        0,
        0,
        0,
    );
    post_raw(&f.app, "/api/v2/device/events", Some(&d1.token), ev).await;
    let running: [u8; 32] = hex::decode(&sha).unwrap().try_into().unwrap();
    let (_, st) = checkin(&f, k, &d1, running, 0).await;
    assert_eq!(
        st.action(),
        Action::None,
        "a device running the release is not offered it"
    );
    let dv = get(&f.app, "/api/v2/devices/d1", Some(&f.admin))
        .await
        .json();
    assert_eq!(dv["state"], "confirmed");
    assert_eq!(dv["fw_sha256"], sha);

    // events about another device, or malformed ones
    let ev = event_record(
        k,
        "d2",
        EventKind::Progress,
        ReasonCode::None,
        b.digest(),
        1,
        2,
        0,
    );
    post_raw(&f.app, "/api/v2/device/events", Some(&d1.token), ev)
        .await
        .error(StatusCode::FORBIDDEN);
    assert_eq!(
        post_raw(&f.app, "/api/v2/device/events", Some(&d1.token), "FEV1junk")
            .await
            .error(StatusCode::BAD_REQUEST),
        "invalid_event"
    );
    // check-ins naming another device, malformed, without credential
    let body = checkin_record(k, "d2", rand_nonce(), [0; 32], 0, 0);
    post_raw(&f.app, "/api/v2/device/checkin", Some(&d1.token), body)
        .await
        .error(StatusCode::FORBIDDEN);
    assert_eq!(
        post_raw(
            &f.app,
            "/api/v2/device/checkin",
            Some(&d1.token),
            vec![0u8; 184]
        )
        .await
        .error(StatusCode::BAD_REQUEST),
        "invalid_checkin"
    );
    post_raw(&f.app, "/api/v2/device/checkin", None, "")
        .await
        .error(StatusCode::UNAUTHORIZED);

    // rollback order: carried once, closed by the device's report, kept in the history
    let order = post_json(
        &f.app,
        "/api/v2/devices/d1/rollback",
        Some(&f.admin),
        &json!({"reason": "field issue"}),
    )
    .await;
    assert_eq!(order.status, StatusCode::CREATED);
    let order_id: u64 = order.json()["id"].as_str().unwrap().parse().unwrap();
    post_json(
        &f.app,
        "/api/v2/devices/d1/rollback",
        Some(&f.admin),
        &json!({"reason": "again"}),
    )
    .await
    .error(StatusCode::CONFLICT);
    let (a, st) = checkin(&f, k, &d1, running, 0).await;
    assert_eq!(st.action(), Action::Rollback { order_id });
    assert_eq!((a.rollback_order_id, a.reason), (order_id, "field issue"));
    let ev = event_record(
        k,
        "d1",
        EventKind::RollbackDone,
        ReasonCode::OperatorOrder,
        [0; 32],
        0,
        0,
        order_id,
    );
    post_raw(&f.app, "/api/v2/device/events", Some(&d1.token), ev).await;
    let orders = get(&f.app, "/api/v2/devices/d1/rollback", Some(&f.admin))
        .await
        .json();
    assert_eq!(orders[0]["outcome"], "done");
    assert!(orders[0]["delivered_at"].is_i64() && orders[0]["closed_at"].is_i64());
    // after rolling back from it, the release is not offered again (no loop)...
    let (_, st) = checkin(&f, k, &d1, [7; 32], 0).await;
    assert_eq!(st.action(), Action::None);
    // ...until it is assigned again explicitly
    post_json(
        &f.app,
        &format!("/api/v2/releases/{rid}/assign"),
        Some(&f.admin),
        &json!({"devices": ["d1"]}),
    )
    .await;
    let (_, st) = checkin(&f, k, &d1, [7; 32], 0).await;
    assert_eq!(
        st.action(),
        Action::Install {
            manifest_digest: b.digest()
        }
    );
    assert!(
        st.body().assignment_generation > first_generation,
        "an explicit re-assignment raises the generation"
    );
    // d2 still follows the class
    let (_, st) = checkin(&f, k, &d2, [0; 32], 0).await;
    assert!(matches!(st.action(), Action::Install { .. }));

    // assignment errors
    post_json(
        &f.app,
        &format!("/api/v2/releases/{rid}/assign"),
        Some(&f.admin),
        &json!({"devices": ["o1"]}),
    )
    .await
    .error(StatusCode::CONFLICT);
    post_json(
        &f.app,
        &format!("/api/v2/releases/{rid}/assign"),
        Some(&f.admin),
        &json!({"class": "other"}),
    )
    .await
    .error(StatusCode::CONFLICT);
    post_json(
        &f.app,
        &format!("/api/v2/releases/{rid}/assign"),
        Some(&f.admin),
        &json!({}),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    post_json(
        &f.app,
        "/api/v2/releases/nope/assign",
        Some(&f.admin),
        &json!({"class": "x"}),
    )
    .await
    .error(StatusCode::NOT_FOUND);

    // history of d1
    let events = get(&f.app, "/api/v2/devices/d1/events", Some(&f.admin))
        .await
        .json();
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["rollback_done", "confirmed", "progress"]);
    let _ = o1;
}

#[tokio::test]
async fn device_credentials_revoke_rotate_and_isolation() {
    let f = v2_fixture().await;
    let k = &f.keys;
    let d1 = dev(&f, "d1", "ecowatt").await;
    // duplicate ids and bad names
    post_json(
        &f.app,
        "/api/v2/devices",
        Some(&f.admin),
        &json!({"id": "d1", "class": "ecowatt"}),
    )
    .await
    .error(StatusCode::CONFLICT);
    for bad in ["", "a b", "../x", &"x".repeat(65)] {
        post_json(
            &f.app,
            "/api/v2/devices",
            Some(&f.admin),
            &json!({"id": bad, "class": "c"}),
        )
        .await
        .error(StatusCode::BAD_REQUEST);
    }
    let viewer = token(&f, "viewer").await;
    post_json(
        &f.app,
        "/api/v2/devices",
        Some(&viewer),
        &json!({"id": "d9", "class": "c"}),
    )
    .await
    .error(StatusCode::FORBIDDEN);
    // a device token cannot use the operator API
    get(&f.app, "/api/v2/devices", Some(&d1.token))
        .await
        .error(StatusCode::UNAUTHORIZED);

    checkin(&f, k, &d1, [0; 32], 0).await;
    let r = post_raw(&f.app, "/api/v2/devices/d1/revoke", Some(&f.admin), "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let body = checkin_record(k, "d1", rand_nonce(), [0; 32], 0, 0);
    let a = post_raw(
        &f.app,
        "/api/v2/device/checkin",
        Some(&d1.token),
        body.clone(),
    )
    .await;
    a.error(StatusCode::UNAUTHORIZED);
    // (rotating a revoked device re-enables it only when asked to)
    let rotated = post_raw(
        &f.app,
        "/api/v2/devices/d1/rotate?reactivate=true",
        Some(&f.admin),
        "",
    )
    .await
    .json();
    let new = Dev {
        id: "d1".into(),
        token: rotated["token"].as_str().unwrap().into(),
    };
    assert_ne!(new.token, d1.token);
    post_raw(&f.app, "/api/v2/device/checkin", Some(&d1.token), body)
        .await
        .error(StatusCode::UNAUTHORIZED);
    checkin(&f, k, &new, [0; 32], 0).await;
    let dv = get(&f.app, "/api/v2/devices/d1", Some(&viewer))
        .await
        .json();
    assert!(dv["revoked_at"].is_null());
    assert_eq!(
        dv["uuid"],
        fota_protocol::v2::ids::device_uuid(&k.vendor_id, "d1").to_string()
    );
    get(&f.app, "/api/v2/devices/ghost", Some(&viewer))
        .await
        .error(StatusCode::NOT_FOUND);
    post_raw(&f.app, "/api/v2/devices/ghost/revoke", Some(&f.admin), "")
        .await
        .error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn housekeeping_collects_only_unreferenced_blobs() {
    let k = keys();
    let f = fixture_with(
        |c| c.blob_grace = std::time::Duration::ZERO,
        Some(trust(&k)),
        None,
    )
    .await;
    provision(&f, "d1", "ecowatt").await;
    let b = build(&k, "ecowatt", "1.0.1", 1, 20_000);
    assert_eq!(
        upload(&f, &f.admin, &b, None).await.status,
        StatusCode::CREATED
    );
    // an orphan, as a crash between blob rename and row commit would leave
    let orphan = f.state.config().blob_dir().join("ab").join("ab".repeat(32));
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"orphan").unwrap();
    let stray_tmp = f.state.config().blob_dir().join("tmp").join("deadbeef");
    std::fs::write(&stray_tmp, b"partial").unwrap();
    let (_, removed) = fota_server::housekeeping::run_once(&f.state).await.unwrap();
    assert_eq!(removed, 2);
    assert!(!orphan.exists() && !stray_tmp.exists());
    assert_eq!(blob_count(&f), 2, "the release's image and hash list stay");
}

#[tokio::test]
async fn re_uploading_the_same_signed_manifest_answers_200_with_the_stored_release() {
    let f = v2_fixture().await;
    let k = &f.keys;
    let op = token(&f, "operator").await;
    provision(&f, "d1", "ecowatt").await;
    let good = build(k, "ecowatt", "1.0.1", 50, 20_000);
    let first = upload(&f, &op, &good, None).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let stored = first.json();
    let blobs = blob_count(&f);
    let audits = get(&f.app, "/api/v2/audit", Some(&op)).await.json();

    // The same envelope again: nothing new, the stored release as it was.
    let again = upload(&f, &op, &good, Some("ecowatt")).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    assert_eq!(again.json(), stored);
    assert_eq!(blob_count(&f), blobs, "no second copy of the blobs");
    assert_eq!(
        get(&f.app, "/api/v2/audit", Some(&op)).await.json(),
        audits,
        "a repeat is not a change"
    );
    // It is still checked first: the same manifest with another image is refused.
    let mut wrong = build(k, "ecowatt", "1.0.1", 50, 20_000);
    wrong.manifest = good.manifest.clone();
    wrong.image[100] ^= 1;
    upload(&f, &op, &wrong, None)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY);
    // Another manifest with the same sequence (even the same version and image, signed
    // again) stays a conflict.
    let mut resigned = build(k, "ecowatt", "1.0.1", 50, 20_000);
    resigned.body.issued_at += 1;
    resigned.resign(&[&k.release]);
    assert_eq!(
        upload(&f, &op, &resigned, None)
            .await
            .error(StatusCode::CONFLICT),
        "conflict"
    );
    let list = get(&f.app, "/api/v2/releases", Some(&op)).await.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn rotating_a_revoked_device_is_refused_unless_reactivation_is_asked_for() {
    let f = v2_fixture().await;
    let k = &f.keys;
    let d1 = dev(&f, "d1", "ecowatt").await;
    let r = post_raw(&f.app, "/api/v2/devices/d1/revoke", Some(&f.admin), "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    for path in [
        "/api/v2/devices/d1/rotate",
        "/api/v2/devices/d1/rotate?reactivate=false",
    ] {
        assert_eq!(
            post_raw(&f.app, path, Some(&f.admin), "")
                .await
                .error(StatusCode::CONFLICT),
            "device_revoked"
        );
    }
    let dv = get(&f.app, "/api/v2/devices/d1", Some(&f.admin))
        .await
        .json();
    assert!(dv["revoked_at"].is_i64(), "still revoked: {dv}");
    let audit = get(&f.app, "/api/v2/audit?limit=1", Some(&f.admin))
        .await
        .json();
    assert_eq!(
        audit[0]["action"], "device.revoke",
        "a refusal is not audited"
    );
    let body = checkin_record(k, "d1", rand_nonce(), [0; 32], 0, 0);
    post_raw(&f.app, "/api/v2/device/checkin", Some(&d1.token), body)
        .await
        .error(StatusCode::UNAUTHORIZED);

    let rotated = post_raw(
        &f.app,
        "/api/v2/devices/d1/rotate?reactivate=true",
        Some(&f.admin),
        "",
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK);
    let new = Dev {
        id: "d1".into(),
        token: rotated.json()["token"].as_str().unwrap().into(),
    };
    checkin(&f, k, &new, [0; 32], 0).await;
    let dv = get(&f.app, "/api/v2/devices/d1", Some(&f.admin))
        .await
        .json();
    assert!(dv["revoked_at"].is_null());
    let audit = get(&f.app, "/api/v2/audit?limit=1", Some(&f.admin))
        .await
        .json();
    assert_eq!(audit[0]["action"], "device.rotate");
    assert_eq!(audit[0]["detail"]["reactivated"], true);
    // Unknown query parameters are refused as everywhere.
    post_raw(
        &f.app,
        "/api/v2/devices/d1/rotate?reactivated=1",
        Some(&f.admin),
        "",
    )
    .await
    .error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_range_in_another_unit_is_ignored_and_units_are_case_insensitive() {
    let f = v2_fixture().await;
    let k = &f.keys;
    let d1 = dev(&f, "d1", "ecowatt").await;
    let b = build(k, "ecowatt", "1.0.1", 1, 20_000);
    let rid = upload(&f, &f.admin, &b, None).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let assigned = post_json(
        &f.app,
        &format!("/api/v2/releases/{rid}/assign"),
        Some(&f.admin),
        &json!({"devices": ["d1"]}),
    )
    .await;
    assert_eq!(assigned.status, StatusCode::OK);
    let url = format!("/api/v2/device/blobs/{}", b.sha256_hex());
    // RFC 9110 §14.2: a range unit the server does not understand is ignored, not refused;
    // unit names are case-insensitive (§14.1). A bytes range that cannot be parsed or
    // satisfied stays a 416.
    for (range, status, body) in [
        ("items=0-1", StatusCode::OK, &b.image[..]),
        ("Items=5-", StatusCode::OK, &b.image[..]),
        ("BYTES=0-1", StatusCode::PARTIAL_CONTENT, &b.image[..2]),
        (
            "Bytes=-3",
            StatusCode::PARTIAL_CONTENT,
            &b.image[b.image.len() - 3..],
        ),
        ("bytes=0-1", StatusCode::PARTIAL_CONTENT, &b.image[..2]),
    ] {
        let mut r = req(Method::GET, &url, Some(&d1.token), Body::empty());
        r.headers_mut()
            .insert(header::RANGE, range.parse().unwrap());
        let a = send(&f.app, r).await;
        assert_eq!(a.status, status, "{range}");
        assert_eq!(a.body.as_ref(), body, "{range}");
    }
    for range in [
        "bytes=9-0",
        "bytes=0-1,4-5",
        "0-1",
        "=0-1",
        "bytes=99999999-",
    ] {
        let mut r = req(Method::GET, &url, Some(&d1.token), Body::empty());
        r.headers_mut()
            .insert(header::RANGE, range.parse().unwrap());
        assert_eq!(
            send(&f.app, r)
                .await
                .error(StatusCode::RANGE_NOT_SATISFIABLE),
            "range_not_satisfiable",
            "{range}"
        );
    }
}
