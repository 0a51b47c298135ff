//! The seed's Testing Guide, Tests 1–5, end to end against the real server on 127.0.0.1:0,
//! in legacy mode and in v2 mode. Devices run the real agent on the emulated bootloader and
//! flash, over real HTTP.

use axum::http::{Method, StatusCode};
use fota_emulator::device::{Ended, Until};
use fota_emulator::flash_file::Layout;
use fota_emulator::netfault::NetFaultSpec;
use fota_emulator::proxy::FaultProxy;
use fota_flash_sim::{FaultPlan, Tear};
use fota_protocol::esp::otadata::{BootIndex, OtaState};
use serde_json::json;

use crate::common::*;

/// Test 1 (legacy): the seed's quick_upload with 1 KiB chunks, the device downloads every
/// chunk, verifies, reboots into the new image and confirms it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test1_basic_update_legacy() {
    let server = Server::start().await;
    let old = image("1.0.5", 0x4000, false);
    let new = image("1.0.6", 0x4000, false);
    let (s, v) = server.legacy_upload("1.0.6", &new, 1024).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["total_chunks"], 16);
    let mut flash = new_flash(Layout::Ecowatt, &old);
    let (r, _) = run_http(
        &mut flash,
        &legacy_options("EcoWatt001"),
        &server.url(),
        Until::Updated,
    )
    .await;
    assert_eq!(r.ended, Ended::Done, "{r:?}");
    assert_eq!(running_version(&r), "1.0.6");
    let boot = r.last_boot.as_ref().unwrap();
    assert_eq!(boot.running, BootIndex::Ota(1));
    assert_eq!(boot.running_state_now(&flash), Some(OtaState::Valid));
    assert_eq!(boot.image_sha256, sha256(&new));
    server.stop().await;
}

/// Test 1 (v2): a signed release assigned to the class; ranged downloads checked against the
/// hash list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test1_basic_update_v2() {
    let server = Server::start().await;
    let p = server.provision("EcoWatt001").await;
    let old = image("1.0.5", 0x4000, false);
    let new = image("1.0.6", 0x4000, false);
    let rid = server.release("1.0.6", 1, &new, 1024).await;
    server.assign_class(&rid).await;
    let mut flash = new_flash(Layout::Ecowatt, &old);
    let (r, _) = run_http(&mut flash, &v2_options(&p), &server.url(), Until::Updated).await;
    assert_eq!(r.ended, Ended::Done, "{r:?}");
    assert_eq!(running_version(&r), "1.0.6");
    let boot = r.last_boot.as_ref().unwrap();
    assert_eq!(boot.running_state_now(&flash), Some(OtaState::Valid));
    assert_eq!(boot.image_sha256, sha256(&new));
    server.stop().await;
}
