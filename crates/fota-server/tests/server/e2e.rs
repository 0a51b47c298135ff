//! End-to-end tests over real sockets on 127.0.0.1:0: the seed flow, the v2 flow, a restart,
//! and two servers over one data folder.

use std::sync::Arc;

use fota_protocol::legacy::json::{
    ChunkAnswer, ManifestAnswer, RollbackStatusAnswer, UploadAnswer,
};
use fota_protocol::legacy::paths;
use fota_protocol::v2::{self, Action, RootRecord, StatusStatement};
use fota_server::AppState;
use fota_server::blobs::LocalBlobStore;
use fota_server::store::SqliteStore;
use serde_json::json;
use sha2::Digest as _;

use crate::common::*;
use crate::legacy::{PSK, seed_payload};

const DEV: &str = "EcoWatt001";

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

async fn state_over(dir: &std::path::Path, k: &fota_keys::KeySet) -> AppState {
    let seen = |c: &mut fota_server::config::Config| {
        c.seen_flush = std::time::Duration::from_millis(50);
    };
    let state = state_in(dir, seen, Some(trust(k)), Some(PSK)).await;
    state.bootstrap_admin(Some("admin")).await.unwrap();
    state
}

#[tokio::test]
async fn seed_flow_upload_manifest_chunks_status_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let s = Running::start(state_over(dir.path(), &k).await).await;
    let admin = bearer("admin");

    // the seed's own Test 1: 10 KB of non-ESP bytes in 1 KB chunks
    let fw: Vec<u8> = (0..10_240u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let up = s
        .call(
            "POST",
            paths::UPLOAD,
            &[
                ("Authorization", &admin),
                ("Content-Type", "application/json"),
            ],
            seed_payload("1.0.5", &fw, 1024).to_string().as_bytes(),
        )
        .await;
    let up: UploadAnswer = serde_json::from_slice(&up.body).unwrap();
    assert_eq!(
        up,
        UploadAnswer {
            success: true,
            total_chunks: 10
        }
    );

    let m = s
        .call(
            "GET",
            &format!("{}?device_id={DEV}", paths::MANIFEST),
            &[],
            b"",
        )
        .await;
    assert_eq!(m.status, 200);
    let manifest: ManifestAnswer<String> = serde_json::from_slice(&m.body).unwrap();
    let nonce = manifest
        .verify_replay(PSK, paths::MANIFEST, DEV, 0)
        .unwrap();
    assert_eq!(
        (manifest.size, manifest.chunk_size, manifest.total_chunks),
        (10_240, 1024, 10)
    );
    // a MAC bound to another device or path does not verify
    assert!(
        manifest
            .verify_replay(PSK, paths::MANIFEST, "Other", 0)
            .is_err()
    );

    let mut image = Vec::new();
    for n in 0..manifest.total_chunks {
        let c = s
            .call(
                "GET",
                &format!("{}?chunk_number={n}&device_id={DEV}", paths::CHUNK),
                &[],
                b"",
            )
            .await;
        assert_eq!(c.status, 200);
        let chunk: ChunkAnswer<String> = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(chunk.chunk_number, n);
        let mut buf = vec![0u8; 1024];
        image.extend_from_slice(chunk.decode_verified(PSK, &mut buf).unwrap());
    }
    assert_eq!(hex::encode(sha2::Sha256::digest(&image)), manifest.hash);
    assert_eq!(image, fw);

    let st = s
        .call(
            "POST",
            paths::STATUS,
            &[("Content-Type", "application/json")],
            json!({"device_id": DEV, "status": "success", "version": "1.0.5"})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(st.json(), json!({"success": true}));

    // nothing pending yet
    let r = s
        .call(
            "GET",
            &format!("{}?device_id={DEV}", paths::ROLLBACK_STATUS),
            &[],
            b"",
        )
        .await;
    let rs: RollbackStatusAnswer<String> = serde_json::from_slice(&r.body).unwrap();
    let nonce2 = rs
        .verify_replay(PSK, paths::ROLLBACK_STATUS, DEV, nonce)
        .unwrap();
    assert!(!rs.rollback_required && rs.reason.is_none());

    // the operator orders a rollback (seed body, plus a bearer token)
    let o = s
        .call(
            "POST",
            paths::ROLLBACK,
            &[
                ("Authorization", &admin),
                ("Content-Type", "application/json"),
            ],
            json!({"device_id": DEV, "reason": "Testing rollback"})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(o.json()["success"], true);
    // a status before the flag was read does not close the order
    s.call(
        "POST",
        paths::STATUS,
        &[],
        json!({"device_id": DEV, "status": "running"})
            .to_string()
            .as_bytes(),
    )
    .await;
    let r = s
        .call(
            "GET",
            &format!("{}?device_id={DEV}", paths::ROLLBACK_STATUS),
            &[],
            b"",
        )
        .await;
    let rs: RollbackStatusAnswer<String> = serde_json::from_slice(&r.body).unwrap();
    let nonce3 = rs
        .verify_replay(PSK, paths::ROLLBACK_STATUS, DEV, nonce2)
        .unwrap();
    assert!(rs.rollback_required);
    assert_eq!(rs.reason.as_deref(), Some("Testing rollback"));
    // a replayed older answer fails the nonce check
    assert!(
        rs.verify_replay(PSK, paths::ROLLBACK_STATUS, DEV, nonce3)
            .is_err()
    );
    // other devices are not affected
    let r = s
        .call(
            "GET",
            &format!("{}?device_id=EcoWatt002", paths::ROLLBACK_STATUS),
            &[],
            b"",
        )
        .await;
    assert_eq!(r.json()["rollback_required"], false);

    // the closing report
    let c = s.call("POST", paths::STATUS, &[], json!({"device_id": DEV, "status": "rolled_back", "version": "1.0.4", "reason": "Testing rollback"}).to_string().as_bytes()).await;
    assert_eq!(c.json()["success"], true);
    assert!(c.json()["rollback_closed"].is_string());
    let r = s
        .call(
            "GET",
            &format!("{}?device_id={DEV}", paths::ROLLBACK_STATUS),
            &[],
            b"",
        )
        .await;
    assert_eq!(r.json()["rollback_required"], false);

    // the operator sees it all
    let d = s
        .call(
            "GET",
            &format!("/api/v2/devices/{DEV}"),
            &[("Authorization", &admin)],
            b"",
        )
        .await
        .json();
    assert_eq!(
        (d["fw_version"].as_str(), d["state"].as_str()),
        (Some("1.0.4"), Some("rolled_back"))
    );
    let orders = s
        .call(
            "GET",
            &format!("/api/v2/devices/{DEV}/rollback"),
            &[("Authorization", &admin)],
            b"",
        )
        .await
        .json();
    assert_eq!(orders[0]["outcome"], "rolled_back");
    s.stop().await;
}

/// The v2 flow against a live server, returning what a device would see.
async fn v2_device_flow(s: &Running, k: &fota_keys::KeySet, token: &str, expect: &Built) {
    let nonce = uuid::Uuid::new_v4().into_bytes();
    let body = checkin_record(k, DEV, nonce, [0; 32], 0, 0);
    let a = s
        .call(
            "POST",
            "/api/v2/device/checkin",
            &[("Authorization", &bearer(token))],
            &body,
        )
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let answer = v2::CheckInAnswer::decode(&a.body).unwrap();
    let root = RootRecord::verify_initial(&k.root_record().unwrap()).unwrap();
    let uuid = fota_protocol::v2::ids::device_uuid(&k.vendor_id, DEV);
    let st =
        StatusStatement::verify_for_device(&root, answer.status, uuid.as_bytes(), &nonce).unwrap();
    let manifest_bytes = answer.manifest.expect("a manifest is offered");
    let manifest = v2::Manifest::verify(&root, manifest_bytes).unwrap();
    assert_eq!(
        st.action(),
        Action::Install {
            manifest_digest: *manifest.digest()
        }
    );
    let class_id = fota_protocol::v2::ids::class_id(&k.vendor_id, "ecowatt");
    assert!(manifest.matches_device(k.vendor_id.as_bytes(), class_id.as_bytes(), uuid.as_bytes()));
    assert_eq!(manifest_bytes, expect.manifest.as_slice());

    // the hash list, then the image from a random offset on, checked chunk by chunk
    let hl = s
        .call(
            "GET",
            answer.hashlist_url,
            &[("Authorization", &bearer(token))],
            b"",
        )
        .await;
    let layout = v2::HashListLayout::for_manifest(&manifest).unwrap();
    let table = layout.table_range();
    let mut tv = layout.table_verifier(&manifest.body().chunk_list_sha256);
    tv.update(&hl.body[table.start as usize..table.end as usize])
        .unwrap();
    tv.finish().unwrap();
    let size = manifest.body().image_size as usize;
    let offset = (uuid::Uuid::new_v4().as_u128() % size as u128) as usize;
    let head = s
        .call(
            "GET",
            answer.image_url,
            &[
                ("Authorization", &bearer(token)),
                ("Range", &format!("bytes=0-{}", offset.max(1) - 1)),
            ],
            b"",
        )
        .await;
    assert_eq!(head.status, 206);
    let tail = s
        .call(
            "GET",
            answer.image_url,
            &[
                ("Authorization", &bearer(token)),
                ("Range", &format!("bytes={}-", offset.max(1))),
            ],
            b"",
        )
        .await;
    assert_eq!(tail.status, 206);
    assert_eq!(
        tail.headers["content-range"],
        format!("bytes {}-{}/{size}", offset.max(1), size - 1)
    );
    let image = [head.body.as_ref(), tail.body.as_ref()].concat();
    assert_eq!(image.len(), size);
    let hashes = &hl.body[table.end as usize..];
    for (i, chunk) in image
        .chunks(manifest.body().chunk_size as usize)
        .enumerate()
    {
        let want: [u8; 32] = hashes[i * 32..i * 32 + 32].try_into().unwrap();
        v2::hashlist::verify_chunk_hash(i as u32, chunk, &want).unwrap();
    }
    let sha: [u8; 32] = sha2::Sha256::digest(&image).into();
    assert_eq!(sha, manifest.body().image_sha256);
    assert!(fota_protocol::esp::image::verify(&image, Default::default()).is_ok());
}

#[tokio::test]
async fn v2_flow_keys_provision_upload_checkin_download() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let s = Running::start(state_over(dir.path(), &k).await).await;
    let admin = bearer("admin");
    let p = s
        .call(
            "POST",
            "/api/v2/devices",
            &[("Authorization", &admin)],
            json!({"id": DEV, "class": "ecowatt"})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(p.status, 201);
    let prov = p.json();
    assert_eq!(prov["vendor_id"], k.vendor_id.to_string());
    let token = prov["token"].as_str().unwrap().to_owned();

    let b = build(&k, "ecowatt", "1.0.6", 1, 300_000);
    let (ct, body) = upload_parts(&b, Some("ecowatt"));
    let up = s
        .call(
            "POST",
            "/api/v2/releases",
            &[("Authorization", &admin), ("Content-Type", &ct)],
            &body,
        )
        .await;
    assert_eq!(up.status, 201, "{}", String::from_utf8_lossy(&up.body));
    let rid = up.json()["id"].as_str().unwrap().to_owned();
    let a = s
        .call(
            "POST",
            &format!("/api/v2/releases/{rid}/assign"),
            &[("Authorization", &admin)],
            json!({"devices": [DEV]}).to_string().as_bytes(),
        )
        .await;
    assert_eq!(a.status, 200);
    v2_device_flow(&s, &k, &token, &b).await;
    s.stop().await;
}

/// Everything a client can read, minus what legitimately changes between requests (nonces,
/// MACs over them, last-seen times, statement signatures).
async fn snapshot(s: &Running, token: &str, k: &fota_keys::KeySet) -> serde_json::Value {
    let admin = bearer("admin");
    let mut devices = s
        .call("GET", "/api/v2/devices", &[("Authorization", &admin)], b"")
        .await
        .json();
    for d in devices.as_array_mut().unwrap() {
        // Batched with the contact time, so flushed at shutdown; the restart test checks
        // last_seen_at itself below.
        d.as_object_mut().unwrap().remove("last_seen_at");
        if let Some(t) = d["telemetry"].as_object_mut() {
            for batched in ["uptime_s", "free_heap", "attributes"] {
                t.remove(batched);
            }
        }
    }
    let releases = s
        .call("GET", "/api/v2/releases", &[("Authorization", &admin)], b"")
        .await
        .json();
    let mut manifest = s.call("GET", paths::MANIFEST, &[], b"").await.json();
    manifest.as_object_mut().unwrap().remove("nonce");
    manifest.as_object_mut().unwrap().remove("mac");
    let chunk = s
        .call("GET", &format!("{}?chunk_number=3", paths::CHUNK), &[], b"")
        .await
        .json();
    let body = checkin_record(k, DEV, [5; 16], [0; 32], 0, 0);
    let a = s
        .call(
            "POST",
            "/api/v2/device/checkin",
            &[("Authorization", &bearer(token))],
            &body,
        )
        .await;
    let answer = v2::CheckInAnswer::decode(&a.body).unwrap();
    let root = RootRecord::verify_initial(&k.root_record().unwrap()).unwrap();
    let st = StatusStatement::verify(&root, answer.status).unwrap();
    let sha = releases[0]["image_sha256"].as_str().unwrap();
    let blob = s
        .call(
            "GET",
            &format!("/api/v2/device/blobs/{sha}"),
            &[
                ("Authorization", &bearer(token)),
                ("Range", "bytes=100-199"),
            ],
            b"",
        )
        .await;
    assert_eq!(blob.status, 206);
    json!({
        "devices": devices, "releases": releases, "manifest": manifest, "chunk": chunk,
        "action": format!("{:?}", st.action()), "manifest_env": hex::encode(answer.manifest.unwrap_or_default()),
        "blob": hex::encode(&blob.body),
    })
}

async fn populate(s: &Running, k: &fota_keys::KeySet) -> String {
    let admin = bearer("admin");
    let prov = s
        .call(
            "POST",
            "/api/v2/devices",
            &[("Authorization", &admin)],
            json!({"id": DEV, "class": "ecowatt"})
                .to_string()
                .as_bytes(),
        )
        .await
        .json();
    let b = build(k, "ecowatt", "2.0.0", 7, 50_000);
    let (ct, body) = upload_parts(&b, None);
    let rid = s
        .call(
            "POST",
            "/api/v2/releases",
            &[("Authorization", &admin), ("Content-Type", &ct)],
            &body,
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.call(
        "POST",
        &format!("/api/v2/releases/{rid}/assign"),
        &[("Authorization", &admin)],
        json!({"class": "ecowatt"}).to_string().as_bytes(),
    )
    .await;
    let fw = vec![3u8; 5000];
    s.call(
        "POST",
        paths::UPLOAD,
        &[("Authorization", &admin)],
        seed_payload("9.9", &fw, 512).to_string().as_bytes(),
    )
    .await;
    s.call(
        "POST",
        "/api/v2/devices/EcoWatt001/rollback",
        &[("Authorization", &admin)],
        json!({"reason": "r"}).to_string().as_bytes(),
    )
    .await;
    prov["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn restart_serves_identically() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let s = Running::start(state_over(dir.path(), &k).await).await;
    let token = populate(&s, &k).await;
    // the first check-in records the device's report and delivers the order; after that,
    // reading changes nothing
    snapshot(&s, &token, &k).await;
    let before = snapshot(&s, &token, &k).await;
    s.stop().await;
    let s = Running::start(state_over(dir.path(), &k).await).await;
    let after = snapshot(&s, &token, &k).await;
    assert_eq!(before, after);
    // last-seen was flushed at shutdown, not lost
    let d = s
        .call(
            "GET",
            "/api/v2/devices/EcoWatt001",
            &[("Authorization", "Bearer admin")],
            b"",
        )
        .await
        .json();
    assert!(d["last_seen_at"].is_i64());
    s.stop().await;
}

#[tokio::test]
async fn two_servers_over_one_data_folder_answer_identically() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let a = Running::start(state_over(dir.path(), &k).await).await;
    let b = Running::start(state_over(dir.path(), &k).await).await;
    // writes through A are read through B, and the other way round
    let token = populate(&a, &k).await;
    snapshot(&a, &token, &k).await;
    assert_eq!(
        snapshot(&a, &token, &k).await,
        snapshot(&b, &token, &k).await
    );
    // nonces stay strictly increasing across both
    let mut last = 0;
    for i in 0..10 {
        let s = if i % 2 == 0 { &a } else { &b };
        let m: ManifestAnswer<String> =
            serde_json::from_slice(&s.call("GET", paths::MANIFEST, &[], b"").await.body).unwrap();
        last = m.verify_replay(PSK, paths::MANIFEST, "", last).unwrap();
    }
    // a legacy rollback order made through A, read through B and closed through A (DEV is
    // a v2 device, which the legacy API never touches: the order goes to a legacy device)
    let legacy_dev = "EcoWatt002";
    a.call(
        "POST",
        paths::ROLLBACK,
        &[
            ("Authorization", &bearer("admin")),
            ("Content-Type", "application/json"),
        ],
        json!({"device_id": legacy_dev, "reason": "r"})
            .to_string()
            .as_bytes(),
    )
    .await;
    let r = b
        .call(
            "GET",
            &format!("{}?device_id={legacy_dev}", paths::ROLLBACK_STATUS),
            &[],
            b"",
        )
        .await
        .json();
    assert_eq!(r["rollback_required"], true);
    a.call(
        "POST",
        paths::STATUS,
        &[],
        json!({"device_id": legacy_dev, "status": "rolled_back"})
            .to_string()
            .as_bytes(),
    )
    .await;
    let r = b
        .call(
            "GET",
            &format!("{}?device_id={legacy_dev}", paths::ROLLBACK_STATUS),
            &[],
            b"",
        )
        .await
        .json();
    assert_eq!(r["rollback_required"], false);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let mut cfg = config(dir.path());
    cfg.timeouts.idle = std::time::Duration::from_millis(300);
    cfg.timeouts.header = std::time::Duration::from_millis(300);
    let store = SqliteStore::open(&cfg.db_path()).await.unwrap();
    let state = AppState::from_parts(
        cfg,
        Arc::new(store),
        Arc::new(LocalBlobStore::open(dir.path().join("blobs")).unwrap()),
        Some(trust(&k)),
        None,
    );
    let s = Running::start(state).await;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // a client that sends half a request line and stalls is disconnected
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /healthz HTT").await.unwrap();
    let mut buf = Vec::new();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(5), c.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "stalled client was not disconnected");
    // an idle keep-alive connection is closed after the idle time
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(5), c.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "idle keep-alive connection was not closed");
    assert!(String::from_utf8_lossy(&buf).contains("200 OK"));
    s.stop().await;
}
