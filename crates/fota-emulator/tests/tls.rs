//! The emulator's HTTP client over TLS against the real server's HTTPS listener: a whole
//! update with the CA, no contact at all without it, and a fault proxy that speaks TLS to the
//! server while it flips a bit on the plain hop to the device.

use fota_agent::{PollOutcome, TransportError};
use fota_emulator::device::{Ended, Until};
use fota_emulator::flash_file::Layout;
use fota_emulator::http::{HttpError, tls_config};
use fota_emulator::netfault::NetFaultSpec;
use fota_emulator::proxy::FaultProxy;
use fota_protocol::esp::otadata::OtaState;
use fota_server::tls::TlsReloader;
use fota_testkit::emulated::*;
use fota_testkit::server::TestServer;
use fota_testkit::tls::TlsSet;
use fota_testkit::{image, sha256};

const SIZE: u32 = 48 * 1024;
const CHUNK: u32 = 4096;

async fn https_server(set: &TlsSet) -> TestServer {
    let tls = TlsReloader::open(set.files()).unwrap();
    TestServer::in_process().await.listen_tls(tls, false).await
}

#[tokio::test]
async fn a_device_updates_over_https_when_it_trusts_the_ca() {
    let set = TlsSet::new();
    let server = https_server(&set).await;
    assert!(server.url().starts_with("https://"));
    let new = image("1.0.6", SIZE, false);
    let release = server.release("1.0.6", 1, &new, CHUNK).await;
    server.assign_class(&release).await;
    let opts = v2_options(&server.provision("tls-dev").await);
    let mut flash = new_flash(Layout::Ecowatt, &image("1.0.5", SIZE, false));
    let tls = tls_config(Some(&set.ca())).unwrap();
    let (r, wire) = run_https(&mut flash, &opts, &server.url(), Until::Updated, tls).await;
    assert_eq!(r.ended, Ended::Done, "{r:?}");
    assert_eq!(running_version(&r), "1.0.6");
    let boot = r.last_boot.as_ref().unwrap();
    assert_eq!(boot.image_sha256, sha256(&new));
    assert_eq!(boot.running_state_now(&flash), Some(OtaState::Valid));
    // the image crossed the wire inside TLS records: more bytes than the image itself
    assert!(wire.rx() > u64::from(SIZE), "{} bytes received", wire.rx());
    assert_eq!(server.device("tls-dev").await["state"], "confirmed");
    server.stop().await;
}

#[tokio::test]
async fn without_the_ca_a_device_never_reaches_the_server() {
    let set = TlsSet::new();
    let server = https_server(&set).await;
    let release = server
        .release("1.0.6", 1, &image("1.0.6", SIZE, false), CHUNK)
        .await;
    server.assign_class(&release).await;
    let mut opts = v2_options(&server.provision("untrusting").await);
    opts.max_checkins = 3;
    let old = image("1.0.5", SIZE, false);
    let mut flash = new_flash(Layout::Ecowatt, &old);
    // the platform's roots alone: they do not know the server's private CA
    let (r, wire) = run_https(
        &mut flash,
        &opts,
        &server.url(),
        Until::Updated,
        tls_config(None).unwrap(),
    )
    .await;
    assert!(matches!(r.ended, Ended::Error(_)), "{r:?}");
    let polls: Vec<_> = r.boots.iter().flat_map(|b| b.polls.clone()).collect();
    assert!(!polls.is_empty());
    assert!(
        polls.iter().all(|p| matches!(
            p,
            PollOutcome::Retry {
                error: TransportError::Connect,
                ..
            }
        )),
        "{polls:?}"
    );
    assert_eq!(running_version(&r), "1.0.5");
    assert_eq!(r.last_boot.as_ref().unwrap().image_sha256, sha256(&old));
    // connections opened (the agent retries within a poll), no request sent on any: the
    // token never left the device
    let load = |c: &core::sync::atomic::AtomicU64| c.load(core::sync::atomic::Ordering::Relaxed);
    assert!(load(&wire.connections) >= 3);
    assert_eq!(load(&wire.requests), 0);
    // nothing reached a handler: the device was never seen
    let device = server.device("untrusting").await;
    assert!(device["last_seen_at"].is_null(), "{device}");
    assert!(device["fw_version"].is_null(), "{device}");
    server.stop().await;
}

#[test]
fn a_ca_file_without_a_certificate_is_refused() {
    let set = TlsSet::new();
    assert!(matches!(
        tls_config(Some(&set.files().key)),
        Err(HttpError::Tls(_))
    ));
    assert!(matches!(
        tls_config(Some(std::path::Path::new("/nonexistent/ca.pem"))),
        Err(HttpError::Tls(_))
    ));
}

#[tokio::test]
async fn a_tls_terminating_hop_that_flips_a_bit_is_caught_by_the_device() {
    let set = TlsSet::new();
    let server = https_server(&set).await;
    let new = image("1.0.6", SIZE, false);
    let release = server.release("1.0.6", 1, &new, CHUNK).await;
    server.assign_class(&release).await;
    let proxy = FaultProxy::start_with(
        &server.url(),
        NetFaultSpec::parse("flip@chunk:3").unwrap(),
        Some(tls_config(Some(&set.ca())).unwrap()),
    )
    .await
    .unwrap();
    let opts = v2_options(&server.provision("hop").await);
    let mut flash = new_flash(Layout::Ecowatt, &image("1.0.5", SIZE, false));
    let (r, _) = run_http(&mut flash, &opts, &proxy.url(), Until::Updated).await;
    assert_eq!(proxy.fired().len(), 1, "{:?}", proxy.fired());
    // the flipped chunk was refused and fetched again; the genuine image runs
    assert_eq!(r.ended, Ended::Done, "{r:?}");
    assert_eq!(
        r.last_boot.as_ref().unwrap().image_sha256,
        sha256(&new),
        "{r:?}"
    );
    server.stop().await;
}
