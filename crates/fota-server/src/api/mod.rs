//! The HTTP layer: [`router`] (and [`legacy_router`], the legacy API alone) and one module per
//! resource, as the axum examples lay it out.
//! A handler parses the request, checks who is asking (`auth`), calls the domain layer or
//! the store, and shapes the answer; every error it or a layer gives is an
//! [`AppError`].
//!
//! | module | audience | paths |
//! |---|---|---|
//! | `tokens` | operators (admin) | `/api/v2/tokens` |
//! | `devices` | operators | `/api/v2/devices`, `…/{id}/revoke`, `…/rotate`, `…/events` |
//! | `rollbacks` | operators | `/api/v2/devices/{id}/rollback` |
//! | `releases` | operators | `/api/v2/releases`, `…/{id}/manifest`, `…/assign` |
//! | `audit` | operators | `/api/v2/audit` |
//! | `v2_device` | v2 devices | `/api/v2/device/checkin`, `…/blobs/{sha256}`, `…/events` |
//! | `legacy` | seed devices and scripts | `/api/inverter/fota/…`, `/api/cloud/fota/…` |
//! | `info` | anyone, operators | `/healthz`, `/metrics`, `/api/v2/server` |
//! | `openapi` | anyone | `/api/v2/openapi.json` |

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use crate::error::AppError;
use crate::state::AppState;

mod audit;
mod auth;
mod devices;
mod doc;
mod extract;
mod info;
mod legacy;
mod openapi;
mod releases;
mod rollbacks;
mod tokens;
mod v2_device;

pub use openapi::ApiDoc;

/// The whole HTTP application for `state`.
///
/// Layers, inside out: per-area body limits; request timeout (not on uploads, which are bounded
/// by the body timeout instead); body-read timeout; metrics; error-shape normalisation, so even
/// answers made by layers (413, 408, 404, 405) carry the JSON error body.
pub fn router(state: AppState) -> Router {
    build(state, Area::All)
}

/// The legacy (seed) device API alone (`/api/inverter/fota/…`), with the same layers: what
/// `--legacy-http-listen` serves over plain HTTP to devices that cannot speak TLS. Every other
/// path is 404 there, the seed's operator endpoints (`/api/cloud/fota/…`) included, so no
/// operator or v2 token is ever accepted over that listener.
pub fn legacy_router(state: AppState) -> Router {
    build(state, Area::LegacyOnly)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Area {
    All,
    LegacyOnly,
}

fn build(state: AppState, area: Area) -> Router {
    let cfg = state.config().clone();
    let json_limit = usize::try_from(cfg.limits.max_json_bytes).unwrap_or(usize::MAX);
    let upload_limit = usize::try_from(cfg.limits.max_release_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    // base64 grows 4/3, and JSON framing adds a little.
    let legacy_upload_limit = upload_limit.saturating_mul(4) / 3 + 64 * 1024;

    let routes = match area {
        Area::All => Router::new()
            .merge(tokens::routes())
            .merge(devices::routes())
            .merge(rollbacks::routes())
            .merge(releases::routes())
            .merge(audit::routes())
            .merge(v2_device::routes())
            .merge(legacy::routes())
            .merge(info::routes())
            .merge(openapi::routes()),
        Area::LegacyOnly => legacy::device_routes(),
    };
    let timed = routes
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(RequestBodyLimitLayer::new(json_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            cfg.timeouts.request,
        ));
    let uploads = match area {
        Area::All => releases::upload_routes()
            .layer(DefaultBodyLimit::disable())
            .layer(RequestBodyLimitLayer::new(upload_limit))
            .merge(
                legacy::upload_routes()
                    .layer(DefaultBodyLimit::max(legacy_upload_limit))
                    .layer(RequestBodyLimitLayer::new(legacy_upload_limit)),
            ),
        Area::LegacyOnly => Router::new(),
    };
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

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

async fn count_requests(matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let start = std::time::Instant::now();
    // Every label value comes from a small fixed set (route templates, standard methods, the
    // statuses the server answers), never from the request's own text: each distinct value is
    // a new series held for the process's lifetime.
    let path = matched.map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = crate::metrics::method_label(req.method());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    ::metrics::counter!("fota_http_requests_total", "path" => path.clone(), "method" => method, "status" => status)
        .increment(1);
    ::metrics::histogram!("fota_http_request_seconds", "path" => path)
        .record(start.elapsed().as_secs_f64());
    response
}

/// Gives error answers made outside our handlers (limit and timeout layers, axum's own
/// rejections) the body our handlers give, through [`AppError::from_status`].
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
    let mut out = AppError::from_status(status).into_response();
    if let Some(v) = response.headers().get(header::CONTENT_RANGE) {
        out.headers_mut().insert(header::CONTENT_RANGE, v.clone());
    }
    out.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    out
}

#[cfg(test)]
mod tests;
