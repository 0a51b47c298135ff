//! The operator client's unit tests, in a file of their own so that `client.rs` stays under 900 lines.

use super::*;

#[test]
fn debug_of_a_client_hides_its_token() {
    let client = Client::new("http://127.0.0.1:8080", Some("fota_op_do-not-print".into()));
    let debug = format!("{:?}", client.unwrap());
    assert!(debug.contains("token: Some([redacted])"), "{debug}");
    assert!(!debug.contains("do-not-print"), "{debug}");
    assert!(debug.contains("127.0.0.1:8080"), "{debug}");
}

#[test]
fn urls() {
    assert!(Client::new("http://127.0.0.1:8080/", None).is_ok());
    assert_eq!(
        Client::new("http://h:1/", None).unwrap().server(),
        "http://h:1"
    );
    assert_eq!(
        Client::new("https://h:8443/", None).unwrap().server(),
        "https://h:8443"
    );
    assert!(matches!(
        Client::new("https://", None),
        Err(Error::Url { .. })
    ));
    assert!(matches!(
        Client::with_ca_file(
            "https://h",
            None,
            Some(std::path::Path::new("/nonexistent"))
        ),
        Err(Error::CaFile { .. })
    ));
    // a CA file is only read for https
    assert!(
        Client::with_ca_file("http://h", None, Some(std::path::Path::new("/nonexistent"))).is_ok()
    );
    assert!(matches!(
        Client::new("127.0.0.1:8080", None),
        Err(Error::Url { .. })
    ));
    assert!(matches!(
        Client::new("http://", None),
        Err(Error::Url { .. })
    ));
}

#[test]
fn segments_cannot_escape() {
    assert_eq!(segment("1.0.6"), "1.0.6");
    assert_eq!(segment("../x y"), "..%2Fx%20y");
    assert_eq!(segment("a?b#c"), "a%3Fb%23c");
}

#[test]
fn error_bodies() {
    let e = error_answer(
        409,
        "u",
        br#"{"error":{"code":"conflict","message":"sequence 3 is not above 5"}}"#,
    );
    assert_eq!(e.status(), Some(409));
    assert_eq!(e.code(), Some("conflict"));
    assert_eq!(
        e.to_string(),
        "sequence 3 is not above 5 (HTTP 409, conflict)"
    );
    let e = error_answer(502, "http://x/y", b"<html>bad gateway</html>");
    assert!(matches!(e, Error::Http { status: 502, .. }));
    assert_eq!(e.code(), None);
}

#[test]
fn exact_reader_counts_and_refuses_short_input() {
    let data = [7u8; 10];
    let mut src: &[u8] = &data;
    let mut seen = 0;
    let mut failed = None;
    let mut out = Vec::new();
    let mut r = Exact {
        inner: &mut src,
        left: 10,
        on_read: &mut |n| seen += n,
        failed: &mut failed,
    };
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out.len(), 10);
    assert_eq!(seen, 10);

    let mut src: &[u8] = &data[..4];
    let mut r = Exact {
        inner: &mut src,
        left: 10,
        on_read: &mut |_| {},
        failed: &mut failed,
    };
    assert!(r.read_to_end(&mut Vec::new()).is_err());
    assert_eq!(failed.unwrap().kind(), io::ErrorKind::UnexpectedEof);
}
