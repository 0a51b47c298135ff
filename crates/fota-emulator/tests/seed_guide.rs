//! The seed's Testing Guide, Tests 1–5, end to end against the real server on 127.0.0.1:0,
//! in legacy mode and in v2 mode. Devices run the real agent on the emulated bootloader and
//! flash, over real HTTP.

use core::time::Duration;

use axum::http::{Method, StatusCode};
use fota_agent::{PollOutcome, Transport, TransportError};
use fota_api::DeviceState;
use fota_emulator::bootloader::Efuse;
use fota_emulator::device::{self, DeviceOptions, Ended, RunResult, Until};
use fota_emulator::flash_file::Layout;
use fota_emulator::http::HttpClient;
use fota_emulator::netfault::NetFaultSpec;
use fota_emulator::proxy::FaultProxy;
use fota_emulator::transport::HttpTransport;
use fota_flash_sim::{FaultPlan, SimFlash, Tear};
use fota_protocol::esp::otadata::{BootIndex, OtaState};
use fota_protocol::legacy::ChunkAnswer;
use fota_protocol::v2::ReasonCode;
use serde_json::json;

use fota_testkit::emulated::*;
use fota_testkit::seeds::PSK;
use fota_testkit::server::*;
use fota_testkit::{image, sha256};

const SIZE: u32 = 0x4000;
const CHUNK: u32 = 1024;

/// A device on 1.0.5 and a server offering 1.0.6 in `mode`; returns (server, options, new).
async fn offered(legacy: bool) -> (TestServer, DeviceOptions, Vec<u8>) {
    let server = TestServer::start().await;
    let new = image("1.0.6", SIZE, false);
    let opts = if legacy {
        let (s, v) = server.legacy_upload("1.0.6", &new, u64::from(CHUNK)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        legacy_options("EcoWatt001")
    } else {
        let p = server.provision("EcoWatt001").await;
        let rid = server.release("1.0.6", 1, &new, CHUNK).await;
        server.assign_class(&rid).await;
        v2_options(&p)
    };
    (server, opts, new)
}

fn old_flash() -> SimFlash {
    new_flash(Layout::Ecowatt, &image("1.0.5", SIZE, false))
}

/// Test 2: power lost in the middle of the download (a torn page program); the next power-on
/// resumes from the journal and fetches at most the interrupted chunk again.
async fn test2(legacy: bool) {
    let (server, opts, new) = offered(legacy).await;
    let mut clean = old_flash();
    let (full, _) = run_http(&mut clean, &opts, &server.url(), Until::Updated).await;
    assert_eq!(full.ended, Ended::Done);
    let full_bytes = full.status().unwrap().bytes_downloaded;
    let bytes_of = |r: &RunResult| -> u64 {
        r.boots
            .iter()
            .filter_map(|b| b.status)
            .map(|s| s.bytes_downloaded)
            .sum()
    };
    let full_bytes = full_bytes.max(bytes_of(&full));

    let mut flash = old_flash();
    // Ops 1..=40 complete (otadata invalidation, journal commits, about half the slot), 41 tears.
    flash.arm(FaultPlan::new(41).tear(41, Tear::Random));
    let (cut, _) = run_http(&mut flash, &opts, &server.url(), Until::Updated).await;
    assert_eq!(cut.ended, Ended::PowerCut, "{cut:?}");
    assert_eq!(running_version(&cut), "1.0.5");
    let done = cut.status().unwrap().pending_bytes_done;
    assert!(
        done > 0 && done < u64::from(SIZE),
        "cut mid-download: {done}"
    );

    flash.power_on();
    flash.arm(FaultPlan::none());
    let (resumed, _) = run_http(&mut flash, &opts, &server.url(), Until::Updated).await;
    assert_eq!(resumed.ended, Ended::Done, "{resumed:?}");
    assert_eq!(running_version(&resumed), "1.0.6");
    assert_eq!(
        resumed.last_boot.as_ref().unwrap().image_sha256,
        sha256(&new)
    );
    let status = resumed.status().unwrap();
    assert!(status.resumes >= 1, "{status:?}");
    // Re-downloaded at most one chunk beyond what was journaled.
    let again = bytes_of(&resumed);
    let per_byte = full_bytes as f64 / f64::from(SIZE);
    let allowed = ((u64::from(SIZE) - done + u64::from(CHUNK)) as f64 * per_byte) as u64 + 64;
    assert!(
        again <= allowed,
        "resumed download took {again} bytes, allowed {allowed}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test2_resume_after_power_loss_legacy() {
    test2(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test2_resume_after_power_loss_v2() {
    test2(false).await;
}

/// An attacker holding the PSK: alters chunk `evil` and signs it with a valid MAC.
struct PskAttacker {
    inner: HttpTransport,
    evil: u64,
}

impl Transport for PskAttacker {
    async fn checkin(&mut self, body: &[u8], resp: &mut [u8]) -> Result<usize, TransportError> {
        self.inner.checkin(body, resp).await
    }
    async fn get_range(
        &mut self,
        url: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, TransportError> {
        self.inner.get_range(url, offset, buf).await
    }
    async fn event(&mut self, body: &[u8]) -> Result<(), TransportError> {
        self.inner.event(body).await
    }
    async fn legacy_get(&mut self, pq: &str, resp: &mut [u8]) -> Result<usize, TransportError> {
        let n = self.inner.legacy_get(pq, resp).await?;
        if !pq.starts_with("/api/inverter/fota/chunk") {
            return Ok(n);
        }
        let answer: ChunkAnswer<String> = serde_json::from_slice(&resp[..n]).unwrap();
        if answer.chunk_number != self.evil {
            return Ok(n);
        }
        use base64::Engine as _;
        let mut data = base64::engine::general_purpose::STANDARD
            .decode(&answer.data)
            .unwrap();
        data[7] ^= 0x20;
        let forged = serde_json::to_vec(&ChunkAnswer::new_signed(PSK, self.evil, &data)).unwrap();
        resp[..forged.len()].copy_from_slice(&forged);
        Ok(forged.len())
    }
    async fn legacy_post(&mut self, path: &str, body: &[u8]) -> Result<(), TransportError> {
        self.inner.legacy_post(path, body).await
    }
}

/// Test 3 (legacy): the seed's "invalid hash" upload is refused by the server now; the
/// device-side failure comes from an attacker holding the PSK, whose altered chunk carries a
/// valid MAC: the whole-image SHA-256 check refuses to activate it and the old image keeps
/// running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test3_verification_failure_legacy() {
    let server = TestServer::start().await;
    let new = image("1.0.6", SIZE, false);
    let (s, v) = server
        .legacy_upload_with_hash("1.0.6", &new, u64::from(CHUNK), "invalid_hash_here")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = server.legacy_upload("1.0.6", &new, u64::from(CHUNK)).await;
    assert_eq!(s, StatusCode::OK);

    let mut flash = old_flash();
    let mut opts = legacy_options("EcoWatt001");
    opts.until = Until::Checkins(3);
    let url = server.url();
    let template = HttpClient::new(&url, None, http_timeouts(), Default::default()).unwrap();
    let r = device::run(&mut flash, &opts, &mut Efuse::default(), || PskAttacker {
        inner: HttpTransport::new(template.fresh()),
        evil: 5,
    })
    .await;
    assert_eq!(r.ended, Ended::Done, "{r:?}");
    assert_eq!(r.boots.len(), 1, "never rebooted into the forged image");
    assert_eq!(running_version(&r), "1.0.5");
    let refused = r.boots[0].polls.iter().any(|p| {
        matches!(
            p,
            PollOutcome::Failed {
                reason: ReasonCode::ImageHashMismatch,
                ..
            }
        )
    });
    assert!(refused, "{:?}", r.boots[0].polls);
    // otadata still selects the old image only.
    let boot = r.last_boot.as_ref().unwrap();
    assert_eq!(boot.running_state_now(&flash), Some(OtaState::Valid));
    let [_, other] = fota_emulator::bootloader::otadata_now(&flash, &boot.table.boot_layout());
    assert!(!other.is_valid(), "{other:?}");
    server.stop().await;
}

/// Test 3 (v2): a manifest whose image hash does not match the image is refused at upload;
/// on the wire, a flipped byte fails the chunk's hash-list check before it touches flash, the
/// chunk is fetched again, and the update completes with the right image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test3_verification_failure_v2() {
    let server = TestServer::start().await;
    let p = server.provision("EcoWatt001").await;
    let new = image("1.0.6", SIZE, false);
    let (s, v) = server
        .try_release("1.0.6", 1, &new, CHUNK, |m| m.image_sha256 = [0x42; 32])
        .await;
    assert!(s.is_client_error(), "{s} {v}");
    let rid = server.release("1.0.6", 1, &new, CHUNK).await;
    server.assign_class(&rid).await;
    let proxy = FaultProxy::start(
        &server.url(),
        NetFaultSpec::parse("flip:3@chunk:4").unwrap(),
    )
    .await
    .unwrap();
    let mut flash = old_flash();
    let (r, _) = run_http(&mut flash, &v2_options(&p), &proxy.url(), Until::Updated).await;
    assert_eq!(r.ended, Ended::Done, "{r:?}");
    assert_eq!(proxy.fired().len(), 1);
    assert_eq!(r.last_boot.as_ref().unwrap().image_sha256, sha256(&new));
    assert_eq!(r.boots[0].status.unwrap().chunks_redownloaded, 1);
    server.stop().await;
}

/// Test 4: after a successful update the operator orders a rollback; the device returns to
/// the previous image, reports it, and does not install the release it left again.
async fn test4(legacy: bool) {
    let (server, opts, _) = offered(legacy).await;
    let mut flash = old_flash();
    let (r, _) = run_http(&mut flash, &opts, &server.url(), Until::Updated).await;
    assert_eq!(running_version(&r), "1.0.6");
    let (s, v) = if legacy {
        server
            .op(
                Method::POST,
                "/api/cloud/fota/rollback",
                Some(json!({"device_id": "EcoWatt001", "reason": "Testing rollback"})),
            )
            .await
    } else {
        server
            .op(
                Method::POST,
                "/api/v2/devices/EcoWatt001/rollback",
                Some(json!({"reason": "Testing rollback"})),
            )
            .await
    };
    assert!(s.is_success(), "{s} {v}");
    let (r, _) = run_http(&mut flash, &opts, &server.url(), Until::Checkins(4)).await;
    assert_eq!(r.ended, Ended::Done, "{r:?}");
    assert_eq!(running_version(&r), "1.0.5");
    assert_eq!(
        r.boots.len(),
        2,
        "one reboot into the old image, no reinstall: {r:?}"
    );
    let downloaded: u64 = r
        .boots
        .iter()
        .filter_map(|b| b.status)
        .map(|s| s.bytes_downloaded)
        .sum();
    assert_eq!(
        downloaded, 0,
        "the release rolled back from is not fetched again"
    );
    let dev = server.device("EcoWatt001").await;
    assert!(
        dev["rollback_order"].is_null(),
        "the report closed the order: {dev}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test4_manual_rollback_legacy() {
    test4(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test4_manual_rollback_v2() {
    test4(false).await;
}

/// Test 5: the complete workflow: upload, assign, and wait until the operator sees the device
/// `confirmed`, through `fota_client::Client::wait_for_device`, the code behind
/// `fota devices show --json`.
async fn test5(legacy: bool) {
    let (server, mut opts, new) = offered(legacy).await;
    opts.until = Until::Updated;
    let url = server.url();
    let device_url = url.clone();
    let device = tokio::spawn(async move {
        let mut flash = old_flash();
        run_http(&mut flash, &opts, &device_url, Until::Updated)
            .await
            .0
    });
    let operator = fota_client::Client::new(&url, Some(ADMIN.to_owned())).unwrap();
    let dev = tokio::task::spawn_blocking(move || {
        // A legacy device is in the registry only from its first contact on.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while operator.device("EcoWatt001").is_err() {
            assert!(std::time::Instant::now() < deadline, "never seen");
            std::thread::sleep(Duration::from_millis(20));
        }
        operator.wait_for_device(
            "EcoWatt001",
            Duration::from_secs(60),
            Duration::from_millis(50),
            |d| d.state == DeviceState::Confirmed,
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(dev.state, DeviceState::Confirmed);
    assert_eq!(dev.fw_version.as_deref(), Some("1.0.6"), "{dev:?}");
    if !legacy {
        assert_eq!(dev.fw_sha256, Some(hex::encode(sha256(&new))), "{dev:?}");
    }
    let r = device.await.unwrap();
    assert_eq!(r.ended, Ended::Done);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test5_complete_workflow_legacy() {
    test5(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test5_complete_workflow_v2() {
    test5(false).await;
}

/// Test 1 (legacy): the seed's quick_upload with 1 KiB chunks, the device downloads every
/// chunk, verifies, reboots into the new image and confirms it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test1_basic_update_legacy() {
    let server = TestServer::start().await;
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
    let server = TestServer::start().await;
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
