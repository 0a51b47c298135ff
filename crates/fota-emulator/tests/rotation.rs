//! Key rotation and revocation as an operator runs them: `fota keys` changes to a key folder
//! (`fota_keys::KeyFolder`), `POST /api/v2/roots` on the real server, and the real agent on
//! the emulated device walking the chain at its check-ins.

use axum::http::{Method, StatusCode};
use fota_agent::PollOutcome;
use fota_emulator::device::{Ended, RunResult, Until};
use fota_emulator::flash_file::Layout;
use fota_keys::{Change, KeyFolder, KeySet};
use fota_protocol::v2::{self, Role};
use fota_server::trust::Trust;

use fota_testkit::emulated::*;
use fota_testkit::image;
use fota_testkit::seeds::PSK;
use fota_testkit::server::*;

const SIZE: u32 = 0x4000;
const CHUNK: u32 = 1024;

/// A key folder as `fota keys init --no-passphrase` writes it, and a server started on it.
async fn folder_and_server() -> (tempfile::TempDir, KeyFolder, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let keys = fota_testkit::server::keys();
    keys.write(dir.path(), None).unwrap();
    let folder = KeyFolder::open(dir.path()).unwrap();
    let trust = trust_from(&folder, &keys.status);
    let server = TestServer::open(
        |c| c.seen_flush = core::time::Duration::from_millis(50),
        keys,
        Some(trust),
        Some(PSK),
    )
    .await
    .listen()
    .await;
    (dir, folder, server)
}

/// The server's trust as `fota server --root K/root-v1.bin --status-key KEY` loads it.
fn trust_from(folder: &KeyFolder, status: &ed25519_dalek::SigningKey) -> Trust {
    Trust::new(folder.chain()[0].as_bytes().to_vec(), status.clone()).unwrap()
}

/// `keys` with another release key: what `fota release create` signs with after a rotation.
fn with_release(keys: &KeySet, release: ed25519_dalek::SigningKey) -> KeySet {
    KeySet {
        vendor_id: keys.vendor_id,
        root: keys.root.clone(),
        release,
        status: keys.status.clone(),
    }
}

/// `fota root publish` of version `version` of the folder: (status, JSON).
async fn publish(
    server: &TestServer,
    folder: &KeyFolder,
    version: u32,
) -> (StatusCode, serde_json::Value) {
    let record = folder.chain()[version as usize - 1].as_bytes().to_vec();
    let a = post_raw(&server.app, "/api/v2/roots", Some(&server.admin), record).await;
    (
        a.status,
        serde_json::from_slice(&a.body).unwrap_or_default(),
    )
}

async fn upload_signed(server: &TestServer, keys: &KeySet, version: &str, seq: u64) -> Answer {
    let b = signed_by(
        keys,
        CLASS,
        version,
        seq,
        image(version, SIZE, false),
        CHUNK,
        |_| {},
    );
    upload(server, ADMIN, &b, Some(CLASS)).await
}

fn polls(r: &RunResult) -> Vec<PollOutcome> {
    r.boots.iter().flat_map(|b| b.polls.clone()).collect()
}

/// D02 through the real server: release key R1 is rotated out (root v2 adds R2, v3 revokes
/// R1). Published in order, the server refuses R1 uploads, stops offering the R1 release it
/// stored before, and a device still on root v1 walks v2 and v3 and installs an R2 release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d02_a_revoked_release_key_is_refused_by_the_server_and_stored_releases_by_it_withdrawn() {
    let (_dir, mut folder, server) = folder_and_server().await;
    let opts = v2_options(&server.provision("d02").await);
    let mut flash = new_flash(Layout::Ecowatt, &image("1.0.5", SIZE, false));
    let r1 = server.keys.release.clone();
    let r1_id = v2::key_id(&r1.verifying_key().to_bytes());

    // Before any rotation an R1 release installs, and another waits in the store.
    let first = upload_signed(&server, &server.keys, "1.0.6", 1).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    server
        .assign_devices(first.json()["id"].as_str().unwrap(), &["d02"])
        .await;
    let (r, _) = run_http(&mut flash, &opts, &server.url(), Until::Updated).await;
    assert_eq!(running_version(&r), "1.0.6", "{r:?}");
    let stored = upload_signed(&server, &server.keys, "1.0.7", 2).await;
    assert_eq!(stored.status, StatusCode::CREATED, "{}", stored.text());

    folder.apply(Change::RotateRelease, None, None).unwrap();
    folder.apply(Change::Revoke(r1_id), None, None).unwrap();
    let (_, r2) = folder.signing_key(Role::Release, None).unwrap();

    // The server takes the chain in order only, and a repeat changes nothing.
    let (s, v) = publish(&server, &folder, 3).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("root_gap")),
        "{v}"
    );
    let (s, v) = publish(&server, &folder, 2).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = publish(&server, &folder, 2).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = publish(&server, &folder, 3).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["newest"], 3, "{v}");
    assert_eq!(v["versions"].as_array().unwrap().len(), 3, "{v}");

    // R1 no longer signs uploads, and its stored release is no longer offered.
    let refused = upload_signed(&server, &server.keys, "1.0.8", 3).await;
    assert_eq!(
        refused.error(StatusCode::UNPROCESSABLE_ENTITY),
        "unknown_or_revoked_key"
    );
    server
        .assign_devices(stored.json()["id"].as_str().unwrap(), &["d02"])
        .await;
    let (r, _) = run_http(&mut flash, &opts, &server.url(), Until::Checkins(2)).await;
    assert_eq!(r.ended, Ended::Done, "{r:?}");
    assert_eq!(running_version(&r), "1.0.6");
    assert!(
        polls(&r)
            .iter()
            .all(|p| matches!(p, PollOutcome::Idle { .. })),
        "nothing is offered: {r:?}"
    );

    // An R2 release installs on the device that walked v1 → v2 → v3.
    let good = upload_signed(&server, &with_release(&server.keys, r2), "1.0.8", 3).await;
    assert_eq!(good.status, StatusCode::CREATED, "{}", good.text());
    server
        .assign_devices(good.json()["id"].as_str().unwrap(), &["d02"])
        .await;
    let (r, _) = run_http(&mut flash, &opts, &server.url(), Until::Updated).await;
    assert_eq!(running_version(&r), "1.0.8", "{r:?}");

    let (_, audit) = server.op(Method::GET, "/api/v2/audit", None).await;
    let published: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "root.publish")
        .filter_map(|a| a["target"].as_str())
        .collect();
    assert_eq!(published.len(), 2, "{audit}");
    server.stop().await;
}

/// The status-key switch-over: root v2 lists the old and the new status key; the server keeps
/// signing with the old one until it restarts with the new one; only then may v3 drop the old
/// key. A server asked to publish a root that drops its own key refuses, and one started with
/// a key the newest root no longer lists does not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_key_is_switched_over_through_a_transitional_root() {
    let (dir, mut folder, server) = folder_and_server().await;
    let opts = v2_options(&server.provision("sk").await);
    let mut flash = new_flash(Layout::Ecowatt, &image("1.0.5", SIZE, false));
    let s1 = server.keys.status.clone();
    let s1_id = v2::key_id(&s1.verifying_key().to_bytes());

    let applied = folder.apply(Change::RotateStatus, None, None).unwrap();
    let s2_path = applied.new_keys[0].2.clone();
    let s2 = fota_keys::read_signing_key(&s2_path, None).unwrap();
    assert_eq!(publish(&server, &folder, 2).await.0, StatusCode::CREATED);
    let (r, _) = run_http(&mut flash, &opts, &server.url(), Until::Checkins(1)).await;
    assert!(matches!(polls(&r)[..], [PollOutcome::Idle { .. }]), "{r:?}");

    folder.apply(Change::Revoke(s1_id), None, None).unwrap();
    let (s, v) = publish(&server, &folder, 3).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("status_key_not_listed")),
        "{v}"
    );

    // Restarted with the new status key and the transitional root (the store holds the chain
    // before it), the server signs with the new key; now v3 is accepted.
    let keys = KeySet {
        vendor_id: server.keys.vendor_id,
        root: server.keys.root.clone(),
        release: server.keys.release.clone(),
        status: s2.clone(),
    };
    let v1 = folder.chain()[0].as_bytes().to_vec();
    let transitional = folder.chain()[1].as_bytes().to_vec();
    let server = server.restarted_with(keys, transitional).await;
    let (s, v) = publish(&server, &folder, 3).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, chain) = server.op(Method::GET, "/api/v2/roots", None).await;
    assert_eq!(
        chain["status_key"],
        hex::encode(v2::key_id(&s2.verifying_key().to_bytes()))
    );

    // The device follows: statements by the new key, the old key gone, an update installs.
    let id = server
        .release("1.0.6", 1, &image("1.0.6", SIZE, false), CHUNK)
        .await;
    server.assign_devices(&id, &["sk"]).await;
    let (r, _) = run_http(&mut flash, &opts, &server.url(), Until::Updated).await;
    assert_eq!(running_version(&r), "1.0.6", "{r:?}");

    // The old status key cannot serve this data folder any more.
    let store = std::sync::Arc::clone(server.state.store());
    let blobs = std::sync::Arc::clone(server.state.blobs());
    let config = server.state.config().clone();
    server.stop().await;
    let stale = fota_server::AppState::from_parts(
        config,
        store,
        blobs,
        Some(Trust::new(v1, s1).unwrap()),
        None,
    );
    let err = stale.load_root_chain().await.unwrap_err().to_string();
    assert!(err.contains("status key"), "{err}");
    drop(dir);
}
