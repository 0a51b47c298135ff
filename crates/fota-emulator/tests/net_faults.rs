//! Network faults through the loopback fault proxy, between a device and the real server on
//! 127.0.0.1:0: each broken answer ends with the update completed (re-fetching only the chunk
//! that broke) or stopped safely on the old image; a bad image is never activated.

use fota_emulator::device::{DeviceOptions, Ended, RunResult, Until};
use fota_emulator::flash_file::Layout;
use fota_emulator::netfault::NetFaultSpec;
use fota_emulator::proxy::FaultProxy;
use fota_protocol::esp::otadata::OtaState;

use fota_testkit::emulated::*;
use fota_testkit::server::*;
use fota_testkit::{image, sha256};

const SIZE: u32 = 0x8000;
const CHUNK: u32 = 4096;

struct Bench {
    server: TestServer,
    new: Vec<u8>,
    old: Vec<u8>,
    n: u32,
}

impl Bench {
    async fn new() -> Self {
        let server = TestServer::start().await;
        let new = image("1.0.6", SIZE, false);
        let old = image("1.0.5", SIZE, false);
        let (s, v) = server.legacy_upload("1.0.6", &new, u64::from(CHUNK)).await;
        assert!(s.is_success(), "{v}");
        let rid = server.release("1.0.6", 1, &new, CHUNK).await;
        server.assign_class(&rid).await;
        Self {
            server,
            new,
            old,
            n: 0,
        }
    }

    async fn device(&mut self, legacy: bool) -> DeviceOptions {
        self.n += 1;
        let name = format!("net-{:03}", self.n);
        if legacy {
            legacy_options(&name)
        } else {
            v2_options(&self.server.provision(&name).await)
        }
    }

    /// Runs a fresh device on 1.0.5 through a proxy with `spec`.
    async fn run(&mut self, legacy: bool, spec: &str, until: Until) -> (RunResult, usize, bool) {
        let proxy = FaultProxy::start(&self.server.url(), NetFaultSpec::parse(spec).unwrap())
            .await
            .unwrap();
        let opts = self.device(legacy).await;
        let mut flash = new_flash(Layout::Ecowatt, &self.old);
        let (r, _) = run_http(&mut flash, &opts, &proxy.url(), until).await;
        let boot = r.last_boot.as_ref().unwrap();
        // Never a bad image: whatever runs is the old or the new release, verified.
        let sha = boot.image_sha256;
        assert!(
            sha == sha256(&self.new) || sha == sha256(&self.old),
            "{spec}: unknown image runs"
        );
        let confirmed = boot.running_state_now(&flash) == Some(OtaState::Valid);
        (r, proxy.fired().len(), confirmed)
    }

    /// The update completes despite `spec`, fetching at most `extra` chunks again.
    async fn completes(&mut self, spec: &str, extra: u32) {
        for legacy in [false, true] {
            let what = format!("{spec} ({})", if legacy { "legacy" } else { "v2" });
            let (r, fired, confirmed) = self.run(legacy, spec, Until::Updated).await;
            assert_eq!(r.ended, Ended::Done, "{what}: {r:?}");
            assert!(fired >= 1, "{what}: the fault never fired");
            assert!(confirmed, "{what}");
            assert_eq!(
                r.last_boot.as_ref().unwrap().image_sha256,
                sha256(&self.new),
                "{what}"
            );
            let rechunks: u32 = r
                .boots
                .iter()
                .filter_map(|b| b.status)
                .map(|s| s.chunks_redownloaded)
                .sum();
            assert!(rechunks <= extra, "{what}: {rechunks} chunks fetched again");
            if !legacy {
                let bytes: u64 = r
                    .boots
                    .iter()
                    .filter_map(|b| b.status)
                    .map(|s| s.bytes_downloaded)
                    .sum();
                let allowed = u64::from(SIZE) + u64::from(extra * CHUNK);
                assert!(bytes <= allowed, "{what}: {bytes} bytes, allowed {allowed}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_dropped_mid_body() {
    let mut b = Bench::new().await;
    b.completes("drop@chunk:3", 1).await;
    b.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_body() {
    let mut b = Bench::new().await;
    b.completes("truncate:100@chunk:2", 1).await;
    b.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_and_endless_bodies() {
    let mut b = Bench::new().await;
    b.completes("overlong:700@chunk:4", 1).await;
    b.completes("endless@chunk:1", 1).await;
    b.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bytes_are_refused_before_flash() {
    let mut b = Bench::new().await;
    b.completes("flip:2@chunk:5", 1).await;
    b.completes("flip@chunk:*/3", 3).await;
    b.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_answer_times_out_and_is_retried() {
    let mut b = Bench::new().await;
    b.completes("stall:3s@chunk:2", 1).await;
    b.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried() {
    let mut b = Bench::new().await;
    b.completes("5xx@chunk:6/2", 0).await;
    b.completes("status:500@checkin:1,reset@chunk:0", 0).await;
    b.completes("5xx%30,seed=11", 0).await;
    b.server.stop().await;
}

/// A server (or a cache in front of it) that ignores `Range`: chunk 0 can be read from the
/// start of a 200, every later chunk is refused, so the update stops safely on the old image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_ignoring_range_stops_safely() {
    let mut b = Bench::new().await;
    let (r, fired, confirmed) = b.run(false, "norange@chunk:*/*", Until::Checkins(4)).await;
    assert_eq!(r.ended, Ended::Done, "{r:?}");
    assert!(fired >= 2);
    assert_eq!(r.boots.len(), 1, "never switched: {r:?}");
    assert_eq!(running_version(&r), "1.0.5");
    assert!(confirmed);
    let status = r.status().unwrap();
    assert!(
        status.pending_bytes_done <= u64::from(CHUNK),
        "only chunk 0 was accepted: {status:?}"
    );
    b.server.stop().await;
}

/// v2 streams the image from one open-ended range request; a fault aimed at a later chunk
/// still lands on that chunk (the proxy ends the stream where the chunk starts, and the
/// device's next request starts there), and the download loses nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_on_a_later_chunk_of_a_stream_lands_on_that_chunk() {
    let mut b = Bench::new().await;
    for spec in ["truncate:100@chunk:5", "drop@chunk:6", "5xx@chunk:3"] {
        let proxy = FaultProxy::start(&b.server.url(), NetFaultSpec::parse(spec).unwrap())
            .await
            .unwrap();
        let opts = b.device(false).await;
        let mut flash = new_flash(Layout::Ecowatt, &b.old);
        let (r, _) = run_http(&mut flash, &opts, &proxy.url(), Until::Updated).await;
        assert_eq!(r.ended, Ended::Done, "{spec}: {r:?}");
        assert_eq!(
            r.last_boot.as_ref().unwrap().image_sha256,
            sha256(&b.new),
            "{spec}"
        );
        let fired = proxy.fired();
        let want = spec.rsplit(':').next().and_then(|k| k.parse::<u64>().ok());
        assert_eq!(fired.len(), 1, "{spec}: {fired:?}");
        assert_eq!(fired[0].request.index, want, "{spec}: {fired:?}");
        let bytes: u64 = r
            .boots
            .iter()
            .filter_map(|b| b.status)
            .map(|s| s.bytes_downloaded)
            .sum();
        assert_eq!(bytes, u64::from(SIZE), "{spec}: nothing fetched twice");
    }
    b.server.stop().await;
}
