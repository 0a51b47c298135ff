//! HTTPS on the real listener: operator and device calls over TLS with the CA and refused
//! without it, a certificate reload that new connections see while old ones stay up, a bad
//! new pair that leaves the old one serving, and the plain-HTTP listener that serves the
//! legacy API alone.

use axum::http::{Method, StatusCode};
use fota_protocol::v2;
use fota_server::tls::{TlsError, TlsReloader};
use fota_testkit::records::checkin_record;
use fota_testkit::server::TestServer;
use fota_testkit::tls::{HttpsConn, TlsSet, client_config};

async fn tls_server(set: &TlsSet, legacy_http: bool) -> (TestServer, TlsReloader) {
    let tls = TlsReloader::open(set.files()).expect("the pair loads");
    let s = TestServer::in_process()
        .await
        .listen_tls(tls.clone(), legacy_http)
        .await;
    (s, tls)
}

#[tokio::test]
async fn https_operator_and_device_calls_work_with_the_ca_and_fail_without_it() {
    let set = TlsSet::new();
    let (s, _tls) = tls_server(&set, false).await;
    assert!(s.url().starts_with("https://localhost:"), "{}", s.url());
    let trusted = client_config(&[&set.ca()]);

    // operator call, by name and by address (both in the certificate)
    for host in ["localhost", "127.0.0.1"] {
        let mut conn = HttpsConn::connect(s.addr(), host, trusted.clone())
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(conn.server_cert, set.cert_der());
        let auth = format!("Bearer {}", s.admin);
        let a = conn
            .request(
                Method::GET,
                "/api/v2/server",
                &[("authorization", &auth)],
                b"",
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    }

    // a device check-in over the same kind of connection
    let p = s.provision("tls-dev").await;
    let nonce = uuid::Uuid::new_v4().into_bytes();
    let body = checkin_record(&s.keys.vendor_id, "tls-dev", nonce, [0; 32], 0, 0);
    let mut conn = HttpsConn::connect(s.addr(), "localhost", trusted.clone())
        .await
        .unwrap();
    let auth = format!("Bearer {}", p.token);
    let a = conn
        .request(
            Method::POST,
            "/api/v2/device/checkin",
            &[("authorization", &auth)],
            &body,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    v2::CheckInAnswer::decode(&a.body).expect("a check-in answer");

    // without the CA: the handshake fails, so no token is ever sent
    let err = HttpsConn::connect(s.addr(), "localhost", client_config(&[]))
        .await
        .err()
        .expect("an untrusted server is refused");
    assert!(err.to_string().contains("certificate"), "{err}");
    // a CA of another set does not vouch for this server either
    let other = TlsSet::new();
    assert!(
        HttpsConn::connect(s.addr(), "localhost", client_config(&[&other.ca()]))
            .await
            .is_err()
    );
    // a name the certificate does not carry
    assert!(
        HttpsConn::connect(s.addr(), "fota.example", trusted)
            .await
            .is_err()
    );
    // plain HTTP on the TLS port gets no HTTP answer: the handshake fails and it is closed
    let raw = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut tcp = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut raw = Vec::new();
        let _ = tcp.read_to_end(&mut raw).await;
        raw
    })
    .await
    .expect("the server closes a plain-HTTP connection");
    assert!(
        !raw.starts_with(b"HTTP/"),
        "plain HTTP was answered on the TLS port"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_reload_serves_the_new_pair_to_new_connections_while_old_ones_stay_up() {
    let set = TlsSet::new();
    let (s, tls) = tls_server(&set, false).await;
    let old_cert = set.cert_der();
    let mut old = HttpsConn::connect(s.addr(), "localhost", client_config(&[&set.ca()]))
        .await
        .unwrap();
    assert_eq!(
        old.request(Method::GET, "/healthz", &[], b"").await.status,
        StatusCode::OK
    );

    let next = TlsSet::new();
    set.replace_pair_with(&next);
    tls.reload().expect("the new pair loads");

    // a new handshake gets the new certificate (and only the new CA vouches for it)
    let mut new = HttpsConn::connect(s.addr(), "localhost", client_config(&[&next.ca()]))
        .await
        .expect("new connection on the new pair");
    assert_eq!(new.server_cert, next.cert_der());
    assert_ne!(new.server_cert, old_cert);
    assert_eq!(
        new.request(Method::GET, "/healthz", &[], b"").await.status,
        StatusCode::OK
    );
    assert!(
        HttpsConn::connect(s.addr(), "localhost", client_config(&[&set.ca()]))
            .await
            .is_err(),
        "the old CA no longer vouches for new connections"
    );
    // the connection made before the reload is still up, on its old session
    assert_eq!(old.server_cert, old_cert);
    for _ in 0..3 {
        assert_eq!(
            old.request(Method::GET, "/healthz", &[], b"").await.status,
            StatusCode::OK
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn a_bad_new_pair_is_refused_and_the_old_one_keeps_serving() {
    let set = TlsSet::new();
    let (s, tls) = tls_server(&set, false).await;
    let files = set.files();
    let good_key = std::fs::read(&files.key).unwrap();

    // a key that is not PEM
    std::fs::write(&files.key, b"not a key\n").unwrap();
    assert!(matches!(tls.reload(), Err(TlsError::Pem { .. })));
    // a key of another certificate
    let other = TlsSet::new();
    std::fs::copy(other.files().key, &files.key).unwrap();
    assert!(matches!(tls.reload(), Err(TlsError::Unusable { .. })));
    // a missing certificate
    std::fs::remove_file(&files.cert).unwrap();
    assert!(matches!(tls.reload(), Err(TlsError::Read { .. })));

    let mut conn = HttpsConn::connect(s.addr(), "localhost", client_config(&[&set.ca()]))
        .await
        .expect("the old pair still serves");
    assert_eq!(
        conn.request(Method::GET, "/healthz", &[], b"").await.status,
        StatusCode::OK
    );
    std::fs::write(&files.key, good_key).unwrap();
    assert!(TlsReloader::open(set.files()).is_err(), "cert.pem is gone");
    s.stop().await;
}

#[tokio::test]
async fn the_legacy_http_listener_serves_the_legacy_api_alone() {
    let set = TlsSet::new();
    let (s, _tls) = tls_server(&set, true).await;
    let fw = vec![0x5a; 3000];
    let (status, _) = s.legacy_upload("1.0.1", &fw, 1000).await;
    assert_eq!(status, StatusCode::OK);
    let legacy = s.legacy_addr();
    let m = fota_testkit::server::http(
        legacy,
        "GET",
        "/api/inverter/fota/manifest?device_id=Eco1",
        &[],
        b"",
    )
    .await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.text());
    assert_eq!(m.json()["version"], "1.0.1", "{}", m.text());
    let c = fota_testkit::server::http(
        legacy,
        "GET",
        "/api/inverter/fota/chunk?chunk_number=0&device_id=Eco1",
        &[],
        b"",
    )
    .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text());
    let r = fota_testkit::server::http(
        legacy,
        "GET",
        "/api/inverter/fota/rollback-status?device_id=Eco1",
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // nothing else is there: not the seed's operator endpoints, not the operator API, not the
    // v2 device API, not the metrics
    let auth = format!("Bearer {}", s.admin);
    for (method, path) in [
        ("POST", "/api/cloud/fota/upload"),
        ("POST", "/api/cloud/fota/rollback"),
        ("GET", "/api/v2/server"),
        ("GET", "/api/v2/devices"),
        ("POST", "/api/v2/device/checkin"),
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/api/v2/openapi.json"),
    ] {
        let a = fota_testkit::server::http(legacy, method, path, &[("Authorization", &auth)], b"")
            .await;
        assert_eq!(
            a.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            a.text()
        );
    }
    // the same legacy path over the TLS listener answers too
    let mut conn = HttpsConn::connect(s.addr(), "localhost", client_config(&[&set.ca()]))
        .await
        .unwrap();
    let a = conn
        .request(
            Method::GET,
            "/api/inverter/fota/manifest?device_id=Eco1",
            &[],
            b"",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    s.stop().await;
}

#[tokio::test]
async fn the_operator_client_speaks_https_with_the_ca_file_and_refuses_without_it() {
    let set = TlsSet::new();
    let (s, _tls) = tls_server(&set, false).await;
    let (url, admin, ca) = (s.url(), s.admin.clone(), set.ca());
    let bad_ca = set.files().key;
    tokio::task::spawn_blocking(move || {
        let client = fota_client::Client::with_ca_file(&url, Some(admin.clone()), Some(&ca))
            .expect("client");
        let tokens = client.list_tokens().expect("tokens over https");
        assert!(tokens.iter().any(|t| t.id == "bootstrap"), "{tokens:?}");
        let provisioning = client.add_device("tls-op", "ecowatt").expect("a device");
        assert_eq!(provisioning.device_id, "tls-op");

        // the platform's roots alone do not know this CA: refused before any request is sent
        let untrusted = fota_client::Client::new(&url, Some(admin.clone())).expect("client");
        match untrusted.list_tokens() {
            Err(e @ fota_client::Error::Transport { .. }) => {
                let chain = format!("{:?}", anyhow_free_chain(&e));
                assert!(chain.contains("UnknownIssuer"), "{chain}");
            }
            other => panic!("expected a certificate error, got {other:?}"),
        }
        // a file without a certificate is an error at once
        assert!(matches!(
            fota_client::Client::with_ca_file(&url, Some(admin), Some(&bad_ca)),
            Err(fota_client::Error::CaFile { .. })
        ));
    })
    .await
    .unwrap();
    s.stop().await;
}

/// Every message of `e`'s source chain.
fn anyhow_free_chain(e: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut next = e.source();
    while let Some(s) = next {
        out.push(s.to_string());
        next = s.source();
    }
    out
}

#[tokio::test]
async fn a_client_that_never_says_hello_is_dropped_after_the_header_timeout() {
    use tokio::io::AsyncReadExt as _;
    let set = TlsSet::new();
    let keys = fota_testkit::server::keys();
    let trust = fota_testkit::server::trust(&keys);
    let s = TestServer::open(
        |c| c.timeouts.header = std::time::Duration::from_millis(300),
        keys,
        Some(trust),
        None,
    )
    .await
    .listen_tls(TlsReloader::open(set.files()).unwrap(), false)
    .await;
    let started = std::time::Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    // the idle timeout (60 s) would close it much later: this is the handshake's own bound
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("closed by the server")
        .unwrap_or(0);
    assert_eq!(n, 0, "no bytes, just the close");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    s.stop().await;
}
