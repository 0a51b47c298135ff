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
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use crate::error::{AppError, ErrorCode};
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
mod roots;
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
            .merge(roots::routes())
            .merge(v2_device::routes())
            .merge(legacy::operator_routes())
            .merge(info::routes())
            .merge(openapi::routes()),
        Area::LegacyOnly => Router::new(),
    }
    .merge(
        // Both areas serve the seed's device routes, each with the limit on them.
        legacy::device_routes().layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_legacy,
        )),
    );
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
            )
            // Outermost of the upload layers: a refused upload reads no byte of its body.
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                limit_uploads,
            )),
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

/// How long a client told `uploads_busy` should wait: an upload of firmware size over a
/// slow link takes seconds, so sooner would mostly meet the same answer.
const UPLOADS_BUSY_RETRY_S: u64 = 5;

/// At most `limits.concurrent_uploads` uploads are received at once: each holds a body stream
/// and a temporary file, so this bounds what uploads take together. One more is answered 503
/// `uploads_busy` with `Retry-After`, before its body is read. The permit is held until the
/// handler has answered, that is until the body was read, checked and stored.
async fn limit_uploads(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Ok(permit) = state.upload_permits().clone().try_acquire_owned() else {
        ::metrics::counter!("fota_uploads_busy_total").increment(1);
        return AppError::UploadsBusy {
            limit: state.config().limits.concurrent_uploads,
            retry_after: UPLOADS_BUSY_RETRY_S,
        }
        .into_response();
    };
    let response = next.run(req).await;
    drop(permit);
    response
}

/// Whether a legacy device request's refusal counts against its client address: malformed
/// requests (400) and ids the legacy API must not touch (404 `unknown_device`, a v2 device's:
/// how someone would enumerate them). A 404 `not_found` does not: a fleet polls before the
/// first upload, and a device whose upload changed asks past the new last chunk.
fn counts_as_refusal(response: &Response) -> bool {
    let code = response.extensions().get::<ErrorCode>().map(|c| c.0);
    response.status() == StatusCode::BAD_REQUEST || code == Some("unknown_device")
}

/// The legacy device API's limit per client address: legacy devices present no credential
/// (one fleet key, no token), so the address is what can be limited. More than
/// `legacy.failures_per_minute` refused requests (see [`counts_as_refusal`]) in a minute, and
/// every legacy device request from that address is answered 429 with `Retry-After` until the
/// minute ends: a throttled address learns nothing, not even which of its ids exist.
/// Addresses whose requests are answered are never slowed.
async fn limit_legacy(
    State(state): State<AppState>,
    ip: auth::ClientIp,
    req: Request,
    next: Next,
) -> Response {
    let limit = state.config().legacy.failures_per_minute;
    let throttled = |wait: std::time::Duration| {
        ::metrics::counter!("fota_legacy_throttled_total").increment(1);
        AppError::Throttled {
            retry_after: wait.as_secs().max(1),
            message: format!(
                "more than {limit} refused legacy requests from this address in a minute \
                 (legacy.failures_per_minute)"
            ),
        }
        .into_response()
    };
    if let Some(wait) = state.legacy_failures().blocked(ip.0, limit) {
        return throttled(wait);
    }
    let response = next.run(req).await;
    if counts_as_refusal(&response)
        && let Some(wait) = state.legacy_failures().fail(ip.0, limit)
    {
        return throttled(wait);
    }
    response
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
