//! Requests the server refuses (HTTP 401, 403): such polls are no check-ins, and a refused
//! credential ends the run with its own outcome instead of being retried for ever.

use core::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use fota_agent::{Transport, TransportError};
use fota_emulator::bootloader::Efuse;
use fota_emulator::device::{self, Ended, Until};
use fota_emulator::flash_file::Layout;
use fota_emulator::report;

use fota_testkit::emulated::*;
use fota_testkit::image;
use fota_testkit::server::*;

const SIZE: u32 = 0x4000;
const CHUNK: u32 = 1024;

#[tokio::test]
async fn a_rotated_credential_ends_the_run_as_refused_without_a_checkin() {
    let s = TestServer::in_process().await;
    let p = s.provision("EcoWatt001").await;
    let (status, v) = s
        .op(Method::POST, "/api/v2/devices/EcoWatt001/rotate", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let mut flash = new_flash(Layout::Ecowatt, &image("1.0.5", SIZE, false));
    let r = run_local(&mut flash, &v2_options(&p), &s.app, Until::Checkins(1)).await;
    assert!(
        matches!(&r.ended, Ended::Refused(e) if e.contains("401")),
        "{r:?}"
    );
    assert_eq!((r.checkins, r.refused), (0, 1), "{r:?}");
    assert_eq!(report::exit_code(&r.ended), report::exit::REFUSED);
    let rep = report::build("EcoWatt001", "v2", &r, &flash, None, &[], 0);
    assert_eq!((rep.outcome.as_str(), rep.exit_code), ("refused", 6));
}

/// The router transport, with the first `forbidden` image reads answered 403 (as the server
/// does for a blob no longer offered to the device).
#[derive(Clone)]
struct ForbiddenReads {
    inner: RouterTransport,
    forbidden: Arc<AtomicU32>,
}

impl Transport for ForbiddenReads {
    async fn checkin(&mut self, body: &[u8], resp: &mut [u8]) -> Result<usize, TransportError> {
        self.inner.checkin(body, resp).await
    }

    async fn get_range(
        &mut self,
        url: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, TransportError> {
        let left = self.forbidden.load(Ordering::Relaxed);
        if left > 0 {
            self.forbidden.store(left - 1, Ordering::Relaxed);
            return Err(TransportError::Status(403));
        }
        self.inner.get_range(url, offset, buf).await
    }

    async fn event(&mut self, body: &[u8]) -> Result<(), TransportError> {
        self.inner.event(body).await
    }

    async fn legacy_get(&mut self, pq: &str, resp: &mut [u8]) -> Result<usize, TransportError> {
        self.inner.legacy_get(pq, resp).await
    }

    async fn legacy_post(&mut self, path: &str, body: &[u8]) -> Result<(), TransportError> {
        self.inner.legacy_post(path, body).await
    }
}

#[tokio::test]
async fn a_forbidden_download_is_no_checkin_but_the_device_carries_on() {
    let s = TestServer::in_process().await;
    let p = s.provision("EcoWatt001").await;
    let rid = s
        .release("1.0.6", 1, &image("1.0.6", SIZE, false), CHUNK)
        .await;
    s.assign_class(&rid).await;
    let mut flash = new_flash(Layout::Ecowatt, &image("1.0.5", SIZE, false));
    let mut opts = v2_options(&p);
    opts.until = Until::Checkins(1);
    // Every attempt of the first poll's first read is refused; later reads go through.
    let forbidden = Arc::new(AtomicU32::new(u32::from(opts.max_retries)));
    let t = ForbiddenReads {
        inner: RouterTransport {
            app: s.app.clone(),
            token: Some(p.token.clone()),
        },
        forbidden: Arc::clone(&forbidden),
    };
    let r = device::run(&mut flash, &opts, &mut Efuse::default(), || t.clone()).await;
    assert_eq!(
        forbidden.load(Ordering::Relaxed),
        0,
        "every refusal was used"
    );
    assert_eq!(r.ended, Ended::Done, "{r:?}");
    assert_eq!((r.checkins, r.refused), (1, 1), "{r:?}");
}
