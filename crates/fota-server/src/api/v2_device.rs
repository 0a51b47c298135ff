//! v2 device API: check-in, blob downloads with `Range`, events.
//!
//! Bodies of check-in and events are the fixed-layout binary records of `fota-protocol`;
//! answers to those are binary too. Errors are JSON like everywhere else.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::auth::{ClientIp, DeviceAuth, denied};
use super::doc;
use crate::blobs::is_blob_name;
use crate::clock::now_ms;
use crate::domain::{checkin, events};
use crate::error::{AppError, AppResult};
use crate::state::{AppState, MAX_CACHED_BLOB};
use crate::store::Seen;
use crate::tokens::{TokenDigest, bearer};
use crate::trust::Trust;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/device/checkin", post(checkin))
        .route("/api/v2/device/blobs/{sha256}", get(blob))
        .route("/api/v2/device/events", post(events))
}

/// The v2 key material, or the device API's 503.
fn trust(state: &AppState) -> AppResult<&Trust> {
    state.trust().ok_or_else(|| AppError::Unavailable {
        code: "v2_not_configured",
        message: "this server has no root record and status key".into(),
    })
}

/// Check in: body = check-in record (`FCI1`), answer = check-in answer (`FCA1`), always 200
/// for an authenticated device.
#[utoipa::path(post, path = "/api/v2/device/checkin", tag = "device",
    security(("device" = [])),
    request_body(content = inline(doc::Binary), content_type = "application/octet-stream",
        description = "FCI1 check-in record (fota-protocol v2)"),
    responses(
        (status = 200, description = "FCA1 check-in answer: poll hint, signed status statement, \
            manifest and blob URLs when installing", content_type = "application/octet-stream",
            body = inline(doc::Binary)),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 403, description = "The record names another device than the credential's \
            (`forbidden`)", body = crate::error::ErrorBody),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 503, response = doc::V2Unavailable)))]
pub(crate) async fn checkin(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    const ROUTE: &str = "/api/v2/device/checkin";
    let trust = trust(&state)?;
    let Some(token) = bearer(&headers) else {
        return Err(denied(
            &state,
            ip,
            ROUTE,
            None,
            "missing",
            "missing device credential",
        )
        .await);
    };
    let digest = TokenDigest::of(token);
    let Some(view) = state
        .store()
        .checkin_view(&digest.0)
        .await?
        .filter(|v| digest.matches(&v.digest))
    else {
        let why = "unknown device credential";
        return Err(denied(&state, ip, ROUTE, Some(&digest), "unknown", why).await);
    };
    if view.revoked_at.is_some() {
        let why = "device credential revoked";
        return Err(denied(&state, ip, ROUTE, Some(&digest), "revoked", why).await);
    }
    let body = body?;
    let answer = checkin::answer(&state, trust, &view, &body).await?;
    ::metrics::counter!("fota_checkins_total").increment(1);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        answer,
    )
        .into_response())
}

/// Report an event: body = event record (`FEV1`). Stored in the device history; progress and
/// outcomes update the device's state.
#[utoipa::path(post, path = "/api/v2/device/events", tag = "device",
    security(("device" = [])),
    request_body(content = inline(doc::Binary), content_type = "application/octet-stream",
        description = "FEV1 event record (fota-protocol v2)"),
    responses(
        (status = 204, description = "Stored"),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 403, description = "The record names another device than the credential's \
            (`forbidden`)", body = crate::error::ErrorBody),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 503, response = doc::V2Unavailable)))]
pub(crate) async fn events(
    State(state): State<AppState>,
    device: DeviceAuth,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<StatusCode> {
    let trust = trust(&state)?;
    let body = body?;
    events::record(&state, trust, &device.device_id, &body).await?;
    ::metrics::counter!("fota_device_events_total").increment(1);
    Ok(StatusCode::NO_CONTENT)
}

/// A parsed single `Range: bytes=...` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteRange {
    /// `a-b` (inclusive) or `a-`.
    From(u64, Option<u64>),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

/// Parses a `Range` header. `None` = malformed, multiple ranges or another unit (a bytes range
/// the server cannot use is answered with 416: devices only ever send one range; see
/// [`is_other_unit`] for the other units).
pub(crate) fn parse_range(value: &str) -> Option<ByteRange> {
    let (unit, spec) = value.trim().split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let spec = spec.trim();
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.trim(), b.trim()) {
        ("", n) => Some(ByteRange::Suffix(num(n)?)),
        (a, "") => Some(ByteRange::From(num(a)?, None)),
        (a, b) => {
            let (a, b) = (num(a)?, num(b)?);
            (a <= b).then_some(ByteRange::From(a, Some(b)))
        }
    }
}

/// Whether a `Range` header names a unit other than bytes. RFC 9110 §14.2: a server MUST
/// ignore a range unit it does not understand, so such a request gets the whole blob. Unit
/// names are case-insensitive tokens; a value without one is malformed, not another unit.
pub(crate) fn is_other_unit(value: &str) -> bool {
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    value.trim().split_once('=').is_some_and(|(unit, _)| {
        !unit.is_empty() && unit.bytes().all(is_tchar) && !unit.eq_ignore_ascii_case("bytes")
    })
}

/// Resolves a range against a size: (offset, length), or `None` if unsatisfiable.
pub(crate) fn resolve_range(range: ByteRange, size: u64) -> Option<(u64, u64)> {
    if size == 0 {
        return None;
    }
    match range {
        ByteRange::From(a, _) if a >= size => None,
        ByteRange::From(a, b) => {
            let end = b.map_or(size - 1, |b| b.min(size - 1));
            Some((a, end - a + 1))
        }
        ByteRange::Suffix(0) => None,
        ByteRange::Suffix(n) => {
            let n = n.min(size);
            Some((size - n, n))
        }
    }
}

/// Download a blob (image or hash list) of the release offered to this device. Supports one
/// byte `Range` (206 + `Content-Range`; 416 for malformed, multiple or unsatisfiable byte
/// ranges; ranges in other units are ignored),
/// `If-Range`, `If-None-Match`; `ETag` is the SHA-256; the content is immutable.
#[utoipa::path(get, path = "/api/v2/device/blobs/{sha256}", tag = "device",
    security(("device" = [])),
    params(
        ("sha256" = String, Path, description = "Lowercase hex SHA-256 of the blob",
            pattern = r"^[0-9a-f]{64}$"),
        ("Range" = Option<String>, Header, description = "One byte range: `bytes=a-b`, \
            `bytes=a-` or `bytes=-n`. Other units are ignored (the whole blob is sent)"),
        ("If-Range" = Option<String>, Header, description = "The blob's ETag: the range \
            applies only if it matches, else the whole blob is sent"),
        ("If-None-Match" = Option<String>, Header, description = "The blob's ETag or `*`: \
            304 if it matches")),
    responses(
        (status = 200, description = "The whole blob", content_type = "application/octet-stream",
            body = inline(doc::Binary)),
        (status = 206, description = "The requested range (`Content-Range` says which)",
            content_type = "application/octet-stream", body = inline(doc::Binary)),
        (status = 304, description = "Not modified (the ETag matched)"),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 403, description = "The blob is not part of the release offered to this \
            device (`forbidden`)", body = crate::error::ErrorBody),
        (status = 404, response = doc::NotFound),
        (status = 416, description = "A malformed, multiple or unsatisfiable byte range \
            (`range_not_satisfiable`; `Content-Range: bytes */size`)",
            body = crate::error::ErrorBody),
        (status = 503, response = doc::V2Unavailable)))]
pub(crate) async fn blob(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(sha256): Path<String>,
) -> AppResult<Response> {
    const ROUTE: &str = "/api/v2/device/blobs/{sha256}";
    trust(&state)?;
    let Some(token) = bearer(&headers) else {
        return Err(denied(
            &state,
            ip,
            ROUTE,
            None,
            "missing",
            "missing device credential",
        )
        .await);
    };
    if !is_blob_name(&sha256) {
        return Err(AppError::NotFound("no such blob".into()));
    }
    let digest = TokenDigest::of(token);
    // Ranged reads come in bursts (one per chunk); the access decision is reused for up to a
    // second (see `HotCache`), so a burst costs one database read.
    let grant = match state.hot().grant(&digest.0, &sha256) {
        Some(g) => Some(g),
        None => {
            let g = state.store().blob_access(&digest.0, &sha256).await?;
            if let Some(g) = &g {
                state.hot().set_grant(&digest.0, &sha256, g.clone());
            }
            g
        }
    };
    let Some((device_id, stored, revoked, offered)) = grant.filter(|a| digest.matches(&a.1)) else {
        let why = "unknown device credential";
        return Err(denied(&state, ip, ROUTE, Some(&digest), "unknown", why).await);
    };
    let _ = stored;
    if revoked.is_some() {
        let why = "device credential revoked";
        return Err(denied(&state, ip, ROUTE, Some(&digest), "revoked", why).await);
    }
    if !offered {
        ::metrics::counter!("fota_auth_denied_total", "reason" => "blob_not_offered").increment(1);
        return Err(AppError::Forbidden(
            "this blob is not part of a release offered to this device".into(),
        ));
    }
    let size = match state.hot().size(&sha256) {
        Some(size) => size,
        None => {
            let size = state
                .blobs()
                .size(&sha256)
                .await
                .map_err(AppError::internal)?
                .ok_or_else(|| {
                    AppError::internal(format!("blob {sha256} of an offered release missing"))
                })?;
            state.hot().set_size(&sha256, size);
            size
        }
    };
    state.seen().note(Seen {
        device_id,
        at: now_ms(),
        protocol: fota_api::Protocol::V2,
        progress: None,
        create: false,
        telemetry: None,
    });
    let etag = format!("\"{sha256}\"");
    let etag_value = HeaderValue::from_str(&etag).map_err(AppError::internal)?;
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes() || v.as_bytes() == b"*")
    {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    // If-Range with another validator: the client's partial copy is stale, send it whole.
    let range_applies = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.as_bytes() == etag.as_bytes());
    let range = match headers.get(header::RANGE) {
        Some(v) if v.to_str().is_ok_and(is_other_unit) => None,
        Some(v) if range_applies => {
            let parsed = v.to_str().ok().and_then(parse_range);
            match parsed.and_then(|r| resolve_range(r, size)) {
                Some(r) => Some(r),
                None => return Err(AppError::RangeNotSatisfiable { size }),
            }
        }
        _ => None,
    };
    let (status, offset, len) = match range {
        Some((offset, len)) => (StatusCode::PARTIAL_CONTENT, offset, len),
        None => (StatusCode::OK, 0, size),
    };
    // Blobs of firmware size are kept in memory once read (immutable, so never stale): a
    // ranged read is then a slice. Larger ones stream from disk.
    let body = if size <= MAX_CACHED_BLOB {
        let whole = match state.hot().blob(&sha256) {
            Some(b) => b,
            None => {
                let len = usize::try_from(size).map_err(AppError::internal)?;
                let bytes = state
                    .blobs()
                    .read_at(&sha256, 0, len)
                    .await
                    .map_err(AppError::internal)?;
                let bytes = Bytes::from(bytes);
                state.hot().set_blob(&sha256, bytes.clone());
                bytes
            }
        };
        let start = usize::try_from(offset).map_err(AppError::internal)?;
        let end = usize::try_from(offset + len).map_err(AppError::internal)?;
        Body::from(whole.slice(start..end))
    } else {
        let stream = state
            .blobs()
            .read_range(&sha256, offset, len)
            .await
            .map_err(AppError::internal)?;
        Body::from_stream(stream)
    };
    ::metrics::counter!("fota_blob_bytes_total").increment(len);
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, etag_value);
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        let cr = format!("bytes {}-{}/{}", offset, offset + len - 1, size);
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&cr).map_err(AppError::internal)?,
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9"), Some(ByteRange::From(0, Some(9))));
        assert_eq!(parse_range("bytes=10-"), Some(ByteRange::From(10, None)));
        assert_eq!(parse_range("bytes=-5"), Some(ByteRange::Suffix(5)));
        for bad in [
            "bytes=9-0",
            "bytes=a-b",
            "bytes=0-1,2-3",
            "items=0-1",
            "bytes=-",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
            "0-1",
            "bytes= - ",
        ] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
        assert_eq!(resolve_range(ByteRange::From(0, Some(9)), 5), Some((0, 5)));
        assert_eq!(resolve_range(ByteRange::From(5, None), 5), None);
        assert_eq!(resolve_range(ByteRange::From(4, None), 5), Some((4, 1)));
        assert_eq!(resolve_range(ByteRange::Suffix(10), 5), Some((0, 5)));
        assert_eq!(resolve_range(ByteRange::Suffix(0), 5), None);
        assert_eq!(resolve_range(ByteRange::From(0, None), 0), None);
    }
}
