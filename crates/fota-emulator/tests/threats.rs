//! Threat rows against the real server on 127.0.0.1:0 and the real agent on the emulated
//! device: rollbacks against the security counter (D05).

use axum::http::{Method, StatusCode};
use fota_emulator::device::{DeviceOptions, Ended, RunResult, Until};
use fota_emulator::flash_file::Layout;
use fota_flash_sim::SimFlash;
use fota_protocol::esp::otadata::OtaState;
use serde_json::json;

use crate::common::*;

const SIZE: u32 = 0x4000;
const CHUNK: u32 = 1024;

fn confirmed(r: &RunResult, flash: &SimFlash) -> bool {
    r.last_boot.as_ref().unwrap().running_state_now(flash) == Some(OtaState::Valid)
}

/// A release signed (offline) with security counter `counter`, uploaded; its id.
async fn release_with_counter(
    server: &Server,
    version: &str,
    sequence: u64,
    image: &[u8],
    counter: u32,
) -> String {
    let (s, v) = server
        .try_release(version, sequence, image, CHUNK, |b| {
            b.security_counter = counter
        })
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// A device of `server` that went from 1.0.5 to `release`, confirmed.
async fn updated_to(server: &Server, id: &str, release: &str) -> (DeviceOptions, SimFlash) {
    let opts = v2_options(&server.provision(id).await);
    let mut flash = new_flash(Layout::Ecowatt, &image("1.0.5", SIZE, false));
    server.assign_devices(release, &[id]).await;
    let (r, _) = run_http(&mut flash, &opts, &server.url(), Until::Updated).await;
    assert_eq!(r.ended, Ended::Done, "{r:?}");
    (opts, flash)
}

/// D05: once a release with security counter 5 is confirmed, an operator's rollback order
/// cannot take the device back to the counter-0 image in the other slot. The device refuses
/// with `rollback_below_counter`, stays on 1.0.7, and the order says why it was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_order_below_the_committed_security_counter_is_refused() {
    let server = Server::start().await;
    let r0 = release_with_counter(&server, "1.0.6", 1, &image("1.0.6", SIZE, false), 0).await;
    let r5 = release_with_counter(&server, "1.0.7", 2, &image("1.0.7", SIZE, false), 5).await;
    let (opts, mut flash) = updated_to(&server, "d05", &r0).await;
    server.assign_devices(&r5, &["d05"]).await;
    let (r, _) = run_http(&mut flash, &opts, &server.url(), Until::Updated).await;
    assert_eq!(running_version(&r), "1.0.7", "{r:?}");
    assert_eq!(journal_of(&mut flash).committed_security_counter, 5);

    let (s, order) = server
        .op(
            Method::POST,
            "/api/v2/devices/d05/rollback",
            Some(json!({"reason": "back to 1.0.6"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{order}");
    let (r, _) = run_http(&mut flash, &opts, &server.url(), Until::Checkins(3)).await;
    assert_eq!(r.ended, Ended::Done, "{r:?}");
    assert_eq!(r.boots.len(), 1, "no reset into the old image: {r:?}");
    assert_eq!(running_version(&r), "1.0.7");
    assert!(confirmed(&r, &flash));

    let (_, orders) = server
        .op(Method::GET, "/api/v2/devices/d05/rollback", None)
        .await;
    assert_eq!(orders[0]["id"], order["id"], "{orders}");
    assert_eq!(
        orders[0]["outcome"], "refused: rollback_below_counter",
        "{orders}"
    );
    assert!(!orders[0]["closed_at"].is_null(), "{orders}");
    assert_eq!(server.device("d05").await["state"], "rollback_refused");
    server.stop().await;
}

/// The counter only binds what was confirmed: a release with counter 5 that fails its trial
/// still goes back to the counter-0 image, whether the bootloader or the agent marks it, and
/// the committed counter stays 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_trial_of_a_higher_counter_release_still_rolls_back() {
    let server = Server::start().await;
    let r0 = release_with_counter(&server, "1.0.6", 1, &image("1.0.6", SIZE, false), 0).await;
    let r5 = release_with_counter(&server, "1.0.7", 2, &image("1.0.7", SIZE, true), 5).await;
    for (n, bootloader_rollback) in [true, false].into_iter().enumerate() {
        let id = format!("d21-{n}");
        let (mut opts, mut flash) = updated_to(&server, &id, &r0).await;
        opts.bootloader.rollback = bootloader_rollback;
        server.assign_devices(&r5, &[&id]).await;
        let (r, _) = run_http(&mut flash, &opts, &server.url(), Until::Idle).await;
        let what = format!("bootloader rollback {bootloader_rollback}");
        assert_eq!(r.ended, Ended::Done, "{what}: {r:?}");
        assert!(
            r.boots.iter().any(|b| b.version == "1.0.7"),
            "{what}: the trial ran: {r:?}"
        );
        assert_eq!(running_version(&r), "1.0.6", "{what}: {r:?}");
        assert!(confirmed(&r, &flash), "{what}");
        let journal = journal_of(&mut flash);
        assert_eq!(journal.committed_security_counter, 0, "{what}");
        assert_eq!(journal.installed.fw_version.as_str(), "1.0.6", "{what}");
        assert_eq!(server.device(&id).await["state"], "rolled_back", "{what}");
    }
    server.stop().await;
}
