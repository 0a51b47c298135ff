//! Per-device legacy keys (`legacy.per_device_keys`, security research W1 and §B.8) end to
//! end: the real server on 127.0.0.1:0 derives each device's key from the master PSK per
//! request; emulated devices run the real agent as firmware built with their own key.

use axum::http::StatusCode;
use fota_agent::PollOutcome;
use fota_emulator::device::{Ended, RunResult, Until};
use fota_emulator::flash_file::Layout;
use fota_flash_sim::SimFlash;
use fota_protocol::legacy::DeviceKey;
use fota_protocol::v2::ReasonCode;

use fota_testkit::emulated::*;
use fota_testkit::seeds::PSK;
use fota_testkit::server::*;
use fota_testkit::{image, sha256};

const SIZE: u32 = 0x4000;
const CHUNK: u32 = 1024;

/// A server with per-device keys (master: the seed's PSK) offering legacy upload 1.0.6.
async fn per_device_server() -> (TestServer, Vec<u8>) {
    let k = keys();
    let t = trust(&k);
    let server = TestServer::open(
        |c| {
            c.legacy.per_device_keys = true;
            c.seen_flush = core::time::Duration::from_millis(50);
        },
        k,
        Some(t),
        Some(PSK),
    )
    .await
    .listen()
    .await;
    let new = image("1.0.6", SIZE, false);
    let (s, v) = server.legacy_upload("1.0.6", &new, u64::from(CHUNK)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (server, new)
}

fn old_flash() -> SimFlash {
    new_flash(Layout::Ecowatt, &image("1.0.5", SIZE, false))
}

fn polls(r: &RunResult) -> Vec<PollOutcome> {
    r.boots.iter().flat_map(|b| b.polls.clone()).collect()
}

#[tokio::test]
async fn a_device_with_its_own_key_updates_through_a_per_device_key_server() {
    let (server, new) = per_device_server().await;
    // Two devices, each deriving its own key from the master, as their firmware was built.
    for name in ["EcoWatt001", "EcoWatt002"] {
        let opts = legacy_options_with(name, PSK, true);
        let mut flash = old_flash();
        let (r, _) = run_http(&mut flash, &opts, &server.url(), Until::Updated).await;
        assert_eq!(r.ended, Ended::Done, "{name}: {r:?}");
        assert_eq!(running_version(&r), "1.0.6", "{name}");
        assert_eq!(
            r.last_boot.as_ref().unwrap().image_sha256,
            sha256(&new),
            "{name}"
        );
        // The server saw the device through its named requests.
        let d = server.device(name).await;
        assert_eq!(d["protocol"], "legacy", "{d}");
    }
    // The same device given its derived key directly (what `fota legacy device-key` prints)
    // is the same firmware.
    let key = DeviceKey::derive(PSK, "EcoWatt003");
    let opts = legacy_options_with("EcoWatt003", key.as_bytes(), false);
    let mut flash = old_flash();
    let (r, _) = run_http(&mut flash, &opts, &server.url(), Until::Updated).await;
    assert_eq!(r.ended, Ended::Done, "{r:?}");
    assert_eq!(running_version(&r), "1.0.6");
}

#[tokio::test]
async fn a_key_read_out_of_device_a_gets_no_valid_answer_for_device_b() {
    let (server, _) = per_device_server().await;
    let a_key = DeviceKey::derive(PSK, "EcoWatt001");
    // The attacker's device holds A's key and names itself B: every answer the server makes
    // for B is MACed with B's key, so the device refuses it before anything is written.
    let opts = legacy_options_with("EcoWatt002", a_key.as_bytes(), false);
    let mut flash = old_flash();
    let before = journal_of(&mut flash);
    let (r, _) = run_http(&mut flash, &opts, &server.url(), Until::Checkins(2)).await;
    let seen = polls(&r);
    assert!(!seen.is_empty(), "{r:?}");
    assert!(
        seen.iter().all(|o| matches!(
            o,
            PollOutcome::Failed {
                reason: ReasonCode::SignatureInvalid,
                ..
            }
        )),
        "B's answers do not verify under A's key: {seen:?}"
    );
    assert_eq!(running_version(&r), "1.0.5");
    let after = journal_of(&mut flash);
    assert_eq!(
        after.legacy_nonce, before.legacy_nonce,
        "no unauthenticated nonce persisted"
    );
    // Fleet firmware (the master itself as its key) is refused by such a server as well:
    // no answer carries a MAC under the master.
    let opts = legacy_options_with("EcoWatt002", PSK, false);
    let (r, _) = run_http(&mut old_flash(), &opts, &server.url(), Until::Checkins(1)).await;
    assert!(
        polls(&r).iter().all(|o| matches!(
            o,
            PollOutcome::Failed {
                reason: ReasonCode::SignatureInvalid,
                ..
            }
        )),
        "{r:?}"
    );
    // And A's key still works for A itself: the refusal above is the key, not the server.
    let opts = legacy_options_with("EcoWatt001", a_key.as_bytes(), false);
    let (r, _) = run_http(&mut old_flash(), &opts, &server.url(), Until::Updated).await;
    assert_eq!(r.ended, Ended::Done, "{r:?}");
    assert_eq!(running_version(&r), "1.0.6");
}
