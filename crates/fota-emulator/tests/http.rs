//! The device HTTP client through the fault proxy, against a minimal ranged-file server:
//! every broken answer ends in the typed error the agent relies on.

use core::time::Duration;
use std::sync::Arc;

use fota_emulator::http::{HttpClient, HttpError, Timeouts, WireCounters};
use fota_emulator::netfault::NetFaultSpec;
use fota_emulator::proxy::FaultProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SIZE: usize = 100_000;

fn resource() -> Vec<u8> {
    (0..SIZE).map(|i| (i * 7 + i / 256) as u8).collect()
}

/// Serves `/blob` with single ranges (206) and anything else as 200 + the whole blob, over
/// keep-alive connections; `honour_range = false` models a server that ignores `Range`.
async fn origin(honour_range: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let data = resource();
                let mut buf = Vec::new();
                loop {
                    let mut piece = [0u8; 4096];
                    let Ok(n) = s.read(&mut piece).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&piece[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    buf.drain(..end + 4);
                    let range = head
                        .lines()
                        .find_map(|l| l.strip_prefix("range: bytes="))
                        .and_then(|r| {
                            let (a, b) = r.split_once('-')?;
                            Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?))
                        })
                        .filter(|_| honour_range);
                    let answer = match range {
                        Some((a, b)) => {
                            let b = b.min(SIZE - 1);
                            let mut h = format!(
                                "HTTP/1.1 206 Partial Content\r\ncontent-length: {}\r\ncontent-range: bytes {a}-{b}/{SIZE}\r\n\r\n",
                                b - a + 1
                            )
                            .into_bytes();
                            h.extend_from_slice(&data[a..=b]);
                            h
                        }
                        None => {
                            let mut h =
                                format!("HTTP/1.1 200 OK\r\ncontent-length: {SIZE}\r\n\r\n")
                                    .into_bytes();
                            h.extend_from_slice(&data);
                            h
                        }
                    };
                    if s.write_all(&answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn client(url: &str) -> HttpClient {
    let timeouts = Timeouts {
        connect: Duration::from_secs(2),
        read: Duration::from_millis(300),
        request: Duration::from_secs(5),
    };
    HttpClient::new(
        url,
        Some("device-token"),
        timeouts,
        Arc::new(WireCounters::default()),
    )
    .unwrap()
}

async fn through(spec: &str, honour_range: bool) -> (FaultProxy, HttpClient) {
    let proxy = FaultProxy::start(
        &origin(honour_range).await,
        NetFaultSpec::parse(spec).unwrap(),
    )
    .await
    .unwrap();
    let c = client(&proxy.url());
    (proxy, c)
}

#[tokio::test]
async fn clean_ranges_are_exact_and_reuse_the_connection() {
    let (_p, mut c) = through("", true).await;
    let data = resource();
    let mut buf = vec![0u8; 4096];
    for k in 0..5u64 {
        let n = c.get_range("/blob", k * 4096, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], &data[k as usize * 4096..(k as usize + 1) * 4096]);
    }
    // The last range is short: only at the end of the resource.
    let n = c.get_range("/blob", 98_304, &mut buf).await.unwrap();
    assert_eq!(n, SIZE - 98_304);
    assert_eq!(
        c.counters()
            .connections
            .load(core::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn each_fault_is_a_typed_error() {
    let mut buf = vec![0u8; 4096];
    for (spec, check) in [
        (
            "drop@req:1",
            (|e: &HttpError| matches!(e, HttpError::Truncated { .. } | HttpError::Connect(_)))
                as fn(&HttpError) -> bool,
        ),
        ("truncate@req:1", |e| {
            matches!(e, HttpError::Truncated { .. })
        }),
        ("overlong:10@req:1", |e| matches!(e, HttpError::BadRange(_))),
        ("stall:2s@req:1", |e| matches!(e, HttpError::Timeout)),
        ("delay:2s@req:1", |e| matches!(e, HttpError::Timeout)),
        ("5xx@req:1", |e| matches!(e, HttpError::Status(503))),
        ("reset@req:1", |e| matches!(e, HttpError::Connect(_))),
        ("endless@req:1", |e| matches!(e, HttpError::TooLarge { .. })),
    ] {
        let (proxy, mut c) = through(spec, true).await;
        let e = c.get_range("/blob", 4096, &mut buf).await.unwrap_err();
        assert!(check(&e), "{spec}: {e:?}");
        assert_eq!(proxy.fired().len(), 1, "{spec}");
        // The next request goes through on a fresh connection.
        let n = c.get_range("/blob", 4096, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], &resource()[4096..8192], "{spec}");
    }
}

#[tokio::test]
async fn flipped_bytes_arrive_as_sent() {
    let (proxy, mut c) = through("flip:3@req:1", true).await;
    let mut buf = vec![0u8; 4096];
    let n = c.get_range("/blob", 0, &mut buf).await.unwrap();
    assert_eq!(n, 4096);
    assert_ne!(
        &buf[..],
        &resource()[..4096],
        "the transport does not check content"
    );
    assert_eq!(proxy.fired().len(), 1);
}

#[tokio::test]
async fn a_server_ignoring_range_is_refused_after_offset_zero() {
    let (_p, mut c) = through("", false).await;
    let mut buf = vec![0u8; 4096];
    // Offset 0: the first buf.len() bytes of the 200 are taken.
    let n = c.get_range("/blob", 0, &mut buf).await.unwrap();
    assert_eq!(&buf[..n], &resource()[..4096]);
    let e = c.get_range("/blob", 4096, &mut buf).await.unwrap_err();
    assert!(matches!(e, HttpError::BadRange(_)), "{e:?}");
    // And the proxy's norange does the same to an honest server.
    let (_p, mut c) = through("norange@any/*", true).await;
    let e = c.get_range("/blob", 8192, &mut buf).await.unwrap_err();
    assert!(matches!(e, HttpError::BadRange(_)), "{e:?}");
}

#[tokio::test]
async fn bodies_longer_than_the_buffer_are_refused() {
    let (_p, mut c) = through("", false).await;
    let mut small = vec![0u8; 1000];
    let e = c
        .fetch(hyper::Method::GET, "/blob", None, b"", &mut small)
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::TooLarge { cap: 1000 }), "{e:?}");
}
