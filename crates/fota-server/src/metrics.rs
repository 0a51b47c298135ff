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
            handle
        })
        .clone()
}

/// Drains recorded histogram samples into their buckets; bounded memory however rarely
/// `/metrics` is scraped.
pub(crate) fn upkeep() {
    handle().run_upkeep();
}
