//! The FOTA update server, as a library: [`router`] builds the HTTP application, [`serve`] runs
//! it on a listener until a shutdown signal, [`AppState::open`] opens a data folder.
//!
//! It serves three audiences:
//!
//! - **v2 devices** (`/api/v2/device/...`): binary check-in records answered with a signed
//!   status statement and, when a release is assigned, the signed manifest; ranged downloads
//!   of content-addressed blobs; event reports. Each device has its own bearer credential.
//! - **legacy devices** (`/api/inverter/fota/...`, `/api/cloud/fota/...`): the seed's Flask API,
//!   byte-compatible, when a legacy PSK is configured.
//! - **operators** (`/api/v2/...`): tokens with roles, device provisioning, release upload
//!   (verified against the root record), assignments, rollback orders, device history, audit
//!   log; OpenAPI at `/api/v2/openapi.json`, Prometheus metrics at `/metrics`.
//!
//! Storage is behind [`store::Store`] (SQLite now) and [`blobs::BlobStore`] (a local folder);
//! all state lives there, so several server processes over one data folder answer alike.
//!
//! The operator API's JSON types are `fota-api`'s, shared with the client and the emulator;
//! the store keeps its own rows and turns them into those types in one place. Settings come in
//! as values ([`Config`], and the key passphrase to [`AppState::open`]): the library never reads
//! the environment.
//!
//! # What this crate must never do
//!
//! - **Hold a release signing key.** Releases are signed offline; the server only verifies
//!   them. The one private key it holds, the status key, can say "nothing to do" or "roll back"
//!   but never make a device install anything. It reads that key with `fota-keys`, built
//!   without its `sign` feature, so no key generation or signing code can be called from here
//!   (`cargo check -p fota-server` would fail).
//! - **Panic or answer 500 on bad input.** Every malformed body, parameter, header or record
//!   is a 4xx with `{ "error": { "code", "message" } }`; 500 is reserved for the server's own
//!   faults (storage, I/O), and those are logged, never echoed.
//! - **Keep state only in memory.** Caches hold derived, immutable data; last-seen times are
//!   batched by design and flushed periodically and at shutdown.

// The workspace lints steer the no_std crates to `core`/`alloc`; this crate is std-only by
// nature (sockets, files, a database), where the std paths are the idiomatic ones.
#![allow(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

pub mod api;
pub mod auth;
pub mod blobs;
pub mod config;
pub mod error;
pub mod housekeeping;
mod legacy_guard;
mod legacy_proto;
mod metrics;
mod server;
pub mod state;
pub mod store;
pub mod tokens;
pub mod trust;
pub mod v2;

pub use config::Config;
pub use error::{AppError, AppResult};
pub use server::serve;
pub use state::{AppState, StartError};

/// The whole HTTP application for `state`.
///
/// Layers, inside out: per-area body limits; request timeout (not on uploads, which are bounded
/// by the body timeout instead); body-read timeout; metrics; error-shape normalisation, so even
/// answers made by layers (413, 408, 404, 405) carry the JSON error body.
pub fn router(state: AppState) -> Router {
    let cfg = state.config().clone();
    let json_limit = usize::try_from(cfg.limits.max_json_bytes).unwrap_or(usize::MAX);
    let upload_limit = usize::try_from(cfg.limits.max_release_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    // base64 grows 4/3, and JSON framing adds a little.
    let legacy_upload_limit = upload_limit.saturating_mul(4) / 3 + 64 * 1024;

    let timed = Router::new()
        .merge(api::operator::routes())
        .merge(api::device::routes())
        .merge(api::legacy::routes())
        .merge(api::misc::routes())
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(RequestBodyLimitLayer::new(json_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            cfg.timeouts.request,
        ));
    let uploads = Router::new()
        .merge(api::operator::upload_routes())
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(upload_limit))
        .merge(
            api::legacy::upload_routes()
                .layer(DefaultBodyLimit::max(legacy_upload_limit))
                .layer(RequestBodyLimitLayer::new(legacy_upload_limit)),
        );
    Router::new()
        .merge(timed)
        .merge(uploads)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(RequestBodyTimeoutLayer::new(cfg.timeouts.body))
        .layer(axum::middleware::from_fn(count_requests))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

async fn not_found() -> AppError {
    AppError::NotFound("no such endpoint".into())
}

async fn method_not_allowed() -> Response {
    let mut r = AppError::bad_request("method_not_allowed", "method not allowed").into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}

async fn count_requests(
    matched: Option<axum::extract::MatchedPath>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let start = std::time::Instant::now();
    // Every label value comes from a small fixed set (route templates, standard methods, the
    // statuses the server answers), never from the request's own text: each distinct value is
    // a new series held for the process's lifetime.
    let path = matched.map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = metrics::method_label(req.method());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    ::metrics::counter!("fota_http_requests_total", "path" => path.clone(), "method" => method, "status" => status)
        .increment(1);
    ::metrics::histogram!("fota_http_request_seconds", "path" => path)
        .record(start.elapsed().as_secs_f64());
    response
}

/// Rewrites error answers made outside our handlers (limit and timeout layers, axum's own
/// rejections) into the JSON error shape.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body too large"),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "request took too long"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed"),
        StatusCode::NOT_FOUND => ("not_found", "not found"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "unsupported media type"),
        s if s.is_server_error() => ("internal", "internal server error"),
        _ => ("bad_request", "bad request"),
    };
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    let mut out = (status, axum::Json(body)).into_response();
    if let Some(v) = response.headers().get(header::CONTENT_RANGE) {
        out.headers_mut().insert(header::CONTENT_RANGE, v.clone());
    }
    out.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    out
}

/// Poll hint with jitter: `interval` ± `jitter` fraction, uniformly, so a fleet that booted
/// together spreads out.
pub(crate) fn jittered(interval: Duration, jitter: f64) -> Duration {
    let f: f64 = rand::random::<f64>() * 2.0 - 1.0;
    interval.mul_f64((1.0 + f * jitter).max(0.0))
}
