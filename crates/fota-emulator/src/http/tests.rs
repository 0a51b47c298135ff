//! The HTTP client's unit tests, in a file of their own so that `http.rs` stays under 900 lines.

use super::*;

#[test]
fn content_ranges() {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_RANGE,
        HeaderValue::from_static("bytes 0-9/100"),
    );
    assert_eq!(content_range(&h), Some((0, 9, 100)));
    h.insert(
        header::CONTENT_RANGE,
        HeaderValue::from_static("bytes 9-0/100"),
    );
    assert_eq!(content_range(&h), None);
    h.insert(
        header::CONTENT_RANGE,
        HeaderValue::from_static("bytes 0-100/100"),
    );
    assert_eq!(content_range(&h), None);
    h.insert(
        header::CONTENT_RANGE,
        HeaderValue::from_static("bytes */100"),
    );
    assert_eq!(content_range(&h), None);
}

#[test]
fn debug_of_a_client_hides_its_bearer_token() {
    let counters = Arc::new(WireCounters::default());
    let client = HttpClient::new(
        "http://127.0.0.1:9",
        Some("fota_dev_do-not-print"),
        Timeouts::default(),
        Arc::clone(&counters),
    )
    .unwrap();
    let debug = format!("{client:?}");
    assert!(debug.contains("bearer: Some([redacted])"), "{debug}");
    assert!(!debug.contains("do-not-print"), "{debug}");
    let anonymous =
        HttpClient::new("http://127.0.0.1:9", None, Timeouts::default(), counters).unwrap();
    assert!(format!("{anonymous:?}").contains("bearer: None"));
}

#[test]
fn base_urls() {
    let (o, p) = parse_base("http://127.0.0.1:8080").unwrap();
    assert_eq!(
        (o.host.as_str(), o.port, p.as_str()),
        ("127.0.0.1", 8080, "/")
    );
    let (o, p) = parse_base("http://[::1]:9/x?y=1").unwrap();
    assert_eq!((o.host.as_str(), o.port, p.as_str()), ("::1", 9, "/x?y=1"));
    assert!(!o.tls);
    let (o, _) = parse_base("https://example.com").unwrap();
    assert!(o.tls);
    assert_eq!(o.port, 443);
    assert!(parse_base("ftp://example.com").is_err());
    assert!(parse_base("/relative").is_err());
}
