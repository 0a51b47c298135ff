//! Threat rows against the real server on 127.0.0.1:0 and the real agent on the emulated
//! device: a leaked status key that pushed the device's clock a century ahead (D16b), and
//! rollbacks against the security counter (D05).

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use fota_agent::PollOutcome;
use fota_emulator::device::{DeviceOptions, Ended, RunResult, Until};
use fota_emulator::flash_file::Layout;
use fota_emulator::netfault::{Kind, NetFaultSpec};
use fota_emulator::proxy::FaultProxy;
use fota_flash_sim::SimFlash;
use fota_keys::{KeySet, ROOT_THRESHOLD, generate_signing_key};
use fota_protocol::esp::otadata::OtaState;
use fota_protocol::v2::{
    self, CheckInAnswer, ReasonCode, Role, RootBody, RootRecord, StatusStatement,
};
use serde_json::json;

use fota_testkit::emulated::*;
use fota_testkit::image;
use fota_testkit::server::*;

const SIZE: u32 = 0x4000;
const CHUNK: u32 = 1024;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Root record `version` naming `keys`, signed by all of `keys.root` (the same root keys sign
/// as the old and as the new root, so both thresholds are met).
fn root_record(keys: &KeySet, version: u32) -> Vec<u8> {
    let roots: Vec<[u8; 32]> = keys
        .root
        .iter()
        .map(|k| k.verifying_key().to_bytes())
        .collect();
    let body = RootBody {
        version,
        vendor_id: *keys.vendor_id.as_bytes(),
        issued_at: unix_now(),
        expires_at: 0,
        root: v2::KeySet::new(Role::Root, ROOT_THRESHOLD, &roots).unwrap(),
        release: v2::KeySet::new(Role::Release, 1, &[keys.release.verifying_key().to_bytes()])
            .unwrap(),
        status: v2::KeySet::new(Role::Status, 1, &[keys.status.verifying_key().to_bytes()])
            .unwrap(),
    };
    let signers: Vec<_> = keys.root.iter().collect();
    body.sign(&signers).unwrap()
}

fn polls(r: &RunResult) -> Vec<PollOutcome> {
    r.boots.iter().flat_map(|b| b.polls.clone()).collect()
}

fn confirmed(r: &RunResult, flash: &SimFlash) -> bool {
    r.last_boot.as_ref().unwrap().running_state_now(flash) == Some(OtaState::Valid)
}

/// D16b: the status key leaks and signs statements whose server time lies a century ahead.
/// The device believes them (they verify), and from then on every honest statement looks
/// expired. Rotating the root record to a new status key must bring it back: the rotation is
/// verified by the root keys alone, and it resets what the old status key taught the device
/// about time. Then a genuine release, one that itself expires tomorrow, installs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_status_key_cannot_freeze_a_device_past_a_root_rotation() {
    let server = TestServer::start().await;
    let provisioning = server.provision("d16b").await;
    let opts = v2_options(&provisioning);
    let mut flash = new_flash(Layout::Ecowatt, &image("1.0.5", SIZE, false));

    let proxy = FaultProxy::start(&server.url(), NetFaultSpec::default())
        .await
        .unwrap();
    let trusted = RootRecord::verify_initial(&provisioning.root).unwrap();
    let leaked = server.keys.status.clone();
    let century = unix_now() + 100 * 365 * 86_400;
    proxy.set_rewrite(Some(Arc::new(move |info, body| {
        if info.kind != Kind::Checkin {
            return None;
        }
        let answer = CheckInAnswer::decode(body).ok()?;
        let honest = StatusStatement::verify(&trusted, answer.status).ok()?;
        let mut forged = honest.body().clone();
        forged.server_time = century;
        forged.expires_at = century + 600;
        let status = forged.sign(&[&leaked]).ok()?;
        CheckInAnswer {
            status: &status,
            ..answer
        }
        .to_vec()
        .ok()
    })));
    let (r, _) = run_http(&mut flash, &opts, &proxy.url(), Until::Checkins(2)).await;
    assert_eq!(r.ended, Ended::Done, "{r:?}");
    assert!(
        polls(&r)
            .iter()
            .all(|o| matches!(o, PollOutcome::Idle { .. })),
        "statements signed with the leaked key verify: {r:?}"
    );
    assert_eq!(
        journal_of(&mut flash).status_floor,
        century,
        "and it is kept"
    );

    // The server's own statements now expire before the time the device believes in.
    proxy.set_rewrite(None);
    let (r, _) = run_http(&mut flash, &opts, &proxy.url(), Until::Checkins(3)).await;
    let reasons: Vec<ReasonCode> = polls(&r)
        .iter()
        .filter_map(|o| match o {
            PollOutcome::Failed { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    // The third stale statement in a row is a freshness alarm (the run is journaled).
    assert_eq!(
        reasons,
        [
            ReasonCode::Expired,
            ReasonCode::Expired,
            ReasonCode::FreshnessUnavailable
        ],
        "honest statements look expired until the root rotates: {r:?}"
    );
    assert_eq!(journal_of(&mut flash).bad_statements, 3);
    drop(proxy);

    // The operator rotates the status key through root record v2, signed by the root keys,
    // and restarts the server with both.
    let rotated = KeySet {
        vendor_id: server.keys.vendor_id,
        root: server.keys.root.clone(),
        release: server.keys.release.clone(),
        status: generate_signing_key(),
    };
    let root_v2 = root_record(&rotated, 2);
    let server = server.restarted_with(rotated, root_v2).await;
    let new = image("1.0.6", SIZE, false);
    let tomorrow = unix_now() + 86_400;
    let (s, v) = server
        .try_release("1.0.6", 1, &new, CHUNK, |b| b.expires_at = tomorrow)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    server.assign_class(v["id"].as_str().unwrap()).await;

    let (r, _) = run_http(&mut flash, &opts, &server.url(), Until::Updated).await;
    assert_eq!(r.ended, Ended::Done, "the device recovers: {r:?}");
    assert_eq!(running_version(&r), "1.0.6");
    assert!(confirmed(&r, &flash));
    let journal = journal_of(&mut flash);
    assert!(
        journal.status_floor < century,
        "what the leaked key said about time is gone: {}",
        journal.status_floor
    );
    assert!(
        journal.offline_floor + 120 >= unix_now(),
        "root v2 and the release vouch for the time: {}",
        journal.offline_floor
    );
    server.stop().await;
}

/// A release signed (offline) with security counter `counter`, uploaded; its id.
async fn release_with_counter(
    server: &TestServer,
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
async fn updated_to(server: &TestServer, id: &str, release: &str) -> (DeviceOptions, SimFlash) {
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
    let server = TestServer::start().await;
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
    let server = TestServer::start().await;
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
