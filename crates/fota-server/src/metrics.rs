//! Prometheus metrics, rendered at `/metrics` by the router (no listener of the exporter's own).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Request-duration buckets, in seconds: from a cached blob slice to a slow upload.
const BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0,
];

/// The process-wide recorder's handle; installed on first use.
///
/// The recorder has no exporter thread of its own, so [`upkeep`] must run periodically (the
/// housekeeping loop does it) or histogram samples accumulate between scrapes.
pub(crate) fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Explicit buckets make every histogram a fixed set of counters. Without them the
            // exporter keeps raw samples for summaries, which pile up between upkeeps.
            let builder = PrometheusBuilder::new();
            let builder = builder
                .set_buckets(BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding program's); then ours
            // renders an empty page rather than failing the server.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

/// The `# HELP` text of every family the server records. A family recorded without being
/// described here renders without `# HELP` (the metrics test catches that).
fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        "fota_http_requests_total",
        "HTTP requests answered, by route template (or unmatched), method (or other) and status"
    );
    describe_histogram!(
        "fota_http_request_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request (headers of the answer ready), by route template"
    );
    describe_counter!(
        "fota_auth_denied_total",
        "Requests refused for their credential, by reason (missing, unknown, revoked, role, blob_not_offered)"
    );
    describe_counter!("fota_checkins_total", "v2 device check-ins answered");
    describe_counter!("fota_device_events_total", "v2 device event records stored");
    describe_counter!(
        "fota_blob_bytes_total",
        Unit::Bytes,
        "Blob bytes sent to v2 devices (images and hash lists)"
    );
    describe_counter!("fota_releases_created_total", "Signed releases accepted");
    describe_counter!(
        "fota_uploads_busy_total",
        "Uploads answered 503 uploads_busy (limits.concurrent_uploads were running)"
    );
    describe_counter!(
        "fota_legacy_throttled_total",
        "Legacy device requests answered 429 (legacy.failures_per_minute exceeded)"
    );
    describe_counter!(
        "fota_legacy_chunks_total",
        "Legacy (seed) firmware chunks served"
    );
    describe_counter!(
        "fota_legacy_devices_not_recorded_total",
        "Unknown legacy device ids answered but not recorded, by reason (new_devices_per_minute, max_devices)"
    );
    describe_counter!(
        "fota_legacy_v2_device_requests_total",
        "Legacy requests naming a device provisioned for v2 (answered 404 unknown_device)"
    );
}

/// The `method` label of a request: the standard methods by name, anything else as `other`,
/// so a client cannot add label values (and series) by inventing methods.
pub(crate) fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Drains recorded histogram samples into their buckets; bounded memory however rarely
/// `/metrics` is scraped.
pub(crate) fn upkeep() {
    handle().run_upkeep();
}
