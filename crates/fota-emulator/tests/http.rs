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

/// Serves `/blob` with single ranges (206; `bytes=a-b` or open-ended `bytes=a-`) and anything
/// else as 200 + the whole blob, over keep-alive connections; `honour_range = false` models a
/// server that ignores `Range`.
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
                            let b = if b.trim().is_empty() {
                                SIZE - 1
                            } else {
                                b.parse::<usize>().ok()?
                            };
                            Some((a.parse::<usize>().ok()?, b))
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

fn requests(c: &HttpClient) -> u64 {
    c.counters()
        .requests
        .load(core::sync::atomic::Ordering::Relaxed)
}

/// Reads the whole resource in 4096-byte pieces from `c`, streamed; each piece's result.
async fn stream_all(c: &mut HttpClient) -> Vec<Result<Vec<u8>, HttpError>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    for k in 0..SIZE.div_ceil(4096) as u64 {
        out.push(
            c.get_range_stream("/blob", k * 4096, &mut buf)
                .await
                .map(|n| buf[..n].to_vec()),
        );
    }
    out
}

fn whole(pieces: &[Result<Vec<u8>, HttpError>]) -> Vec<u8> {
    pieces
        .iter()
        .flat_map(|p| p.as_ref().unwrap().iter().copied())
        .collect()
}

#[tokio::test]
async fn streamed_reads_share_one_request_and_end_with_the_resource() {
    let (_p, mut c) = through("", true).await;
    let pieces = stream_all(&mut c).await;
    assert_eq!(whole(&pieces), resource());
    assert_eq!(pieces.last().unwrap().as_ref().unwrap().len(), SIZE % 4096);
    assert_eq!(requests(&c), 1, "one open-ended range for every piece");
    // A read elsewhere drops the kept stream and asks again, on a connection of its own.
    let mut buf = vec![0u8; 4096];
    let n = c.get_range_stream("/blob", 8192, &mut buf).await.unwrap();
    assert_eq!(&buf[..n], &resource()[8192..12288]);
    let n = c.get_range_stream("/blob", 0, &mut buf).await.unwrap();
    assert_eq!(&buf[..n], &resource()[..4096]);
    assert_eq!(requests(&c), 3);
    // The pooled connection still serves other requests while a stream is kept.
    let n = c.get_range("/blob", 4096, &mut buf).await.unwrap();
    assert_eq!(&buf[..n], &resource()[4096..8192]);
    let n = c.get_range_stream("/blob", 4096, &mut buf).await.unwrap();
    assert_eq!(&buf[..n], &resource()[4096..8192]);
    assert_eq!(requests(&c), 4, "the kept stream went on");
}

/// A kept stream that breaks (reset, clean close short of its length, stall) costs one
/// fresh request, and the reader never sees it.
#[tokio::test]
async fn a_broken_stream_is_asked_for_once_more() {
    for spec in ["drop:50000@req:1", "truncate:40000@req:1", "stall:2s@req:1"] {
        let (proxy, mut c) = through(spec, true).await;
        let pieces = stream_all(&mut c).await;
        assert_eq!(whole(&pieces), resource(), "{spec}");
        assert_eq!(proxy.fired().len(), 1, "{spec}");
        assert_eq!(requests(&c), 2, "{spec}");
    }
}

/// A fresh request's failure is the reader's, whether it opens a stream or replaces a
/// broken one; the next read goes through.
#[tokio::test]
async fn a_failed_fresh_stream_is_a_typed_error() {
    let mut buf = vec![0u8; 4096];
    for (spec, check) in [
        (
            "5xx@req:1",
            (|e: &HttpError| matches!(e, HttpError::Status(503))) as fn(&HttpError) -> bool,
        ),
        ("reset@req:1", |e| matches!(e, HttpError::Connect(_))),
        ("delay:2s@req:1", |e| matches!(e, HttpError::Timeout)),
        ("overlong:10@req:1", |e| matches!(e, HttpError::BadRange(_))),
        ("drop:100@req:1", |e| {
            matches!(e, HttpError::Truncated { .. } | HttpError::Connect(_))
        }),
    ] {
        let (proxy, mut c) = through(spec, true).await;
        let e = c
            .get_range_stream("/blob", 4096, &mut buf)
            .await
            .unwrap_err();
        assert!(check(&e), "{spec}: {e:?}");
        assert_eq!(proxy.fired().len(), 1, "{spec}");
        let n = c.get_range_stream("/blob", 4096, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], &resource()[4096..8192], "{spec}");
    }
    // The stream breaks at byte 50000 of its body and its replacement fails.
    let (_proxy, mut c) = through("drop:50000@req:1,5xx@req:2", true).await;
    let pieces = stream_all(&mut c).await;
    let broken = 50_000 / 4096;
    assert!(pieces[..broken].iter().all(Result::is_ok));
    assert!(
        matches!(pieces[broken], Err(HttpError::Status(503))),
        "{:?}",
        pieces[broken]
    );
    assert!(pieces[broken + 1..].iter().all(Result::is_ok));
}

/// A stream that carries more than its `Content-Range` declared is refused at the read that
/// reaches the declared end (and again on the fresh request), never read past it.
#[tokio::test]
async fn a_stream_longer_than_declared_is_refused() {
    let (_p, mut c) = through("endless@any/*", true).await;
    let pieces = stream_all(&mut c).await;
    let (last, rest) = pieces.split_last().unwrap();
    assert!(rest.iter().all(Result::is_ok));
    assert_eq!(whole(rest), resource()[..rest.len() * 4096].to_vec());
    assert!(matches!(last, Err(HttpError::TooLarge { .. })), "{last:?}");
}

#[tokio::test]
async fn a_server_ignoring_range_fails_every_streamed_read_after_offset_zero() {
    let (_p, mut c) = through("", false).await;
    let mut buf = vec![0u8; 4096];
    let n = c.get_range_stream("/blob", 0, &mut buf).await.unwrap();
    assert_eq!(&buf[..n], &resource()[..4096]);
    // The 200 was not kept: the next read asks the server again and is refused.
    let e = c
        .get_range_stream("/blob", 4096, &mut buf)
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::BadRange(_)), "{e:?}");
    assert_eq!(requests(&c), 2);
}

#[tokio::test]
async fn flipped_bytes_in_a_stream_arrive_as_sent() {
    let (proxy, mut c) = through("flip:3@req:1", true).await;
    let pieces = stream_all(&mut c).await;
    assert_ne!(whole(&pieces), resource());
    assert_eq!(whole(&pieces).len(), SIZE);
    assert_eq!(proxy.fired().len(), 1);
    assert_eq!(requests(&c), 1);
}
