//! One error type for every handler and layer, and the one place it becomes an answer.
//!
//! Every failure a client can cause maps to a 4xx with the body
//! `{ "error": { "code": "...", "message": "..." } }`. Only faults of the server itself
//! (storage, I/O) become a 500, and those never carry details to the client: they are logged.
//! Answers that axum or a layer makes without that body (413 from a length limit, 408 from the
//! request timeout) are turned into an [`AppError`] with [`AppError::from_status`] and answered
//! the same way.

use axum::Json;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::store::StoreError;

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// `400`: the request is malformed (syntax, types, missing fields, bad parameters).
    #[error("{message}")]
    BadRequest {
        /// Stable machine-readable reason.
        code: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// `401`: no credential, an unknown one or a revoked one.
    #[error("{0}")]
    Unauthorized(String),
    /// `429`: too many failed authentications from this client lately; retry after `retry_after`
    /// seconds.
    #[error("too many failed authentications; retry in {retry_after} s")]
    TooManyFailures {
        /// Seconds until the window ends.
        retry_after: u64,
    },
    /// `429`: too many refused requests from this client address lately (the legacy device
    /// API's limit); retry after `retry_after` seconds.
    #[error("{message}; retry in {retry_after} s")]
    Throttled {
        /// Seconds until the window ends.
        retry_after: u64,
        /// What was exceeded.
        message: String,
    },
    /// `503` with code `uploads_busy`: `limits.concurrent_uploads` uploads are being received;
    /// retry after `retry_after` seconds.
    #[error(
        "{limit} uploads are being received, the most this server takes at once; retry in {retry_after} s"
    )]
    UploadsBusy {
        /// The limit.
        limit: u32,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// `403`: a valid credential that may not do this (role, or another device's data).
    #[error("{0}")]
    Forbidden(String),
    /// `404`: the named thing does not exist (or is not visible to this caller).
    #[error("{0}")]
    NotFound(String),
    /// `404` with code `unknown_device`: the legacy API does not know this device id (or must
    /// not show it: ids provisioned for v2).
    #[error("{0}")]
    UnknownDevice(String),
    /// `409`: the request conflicts with stored state (duplicate id, sequence not increasing).
    #[error("{message}")]
    Conflict {
        /// Stable machine-readable reason.
        code: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// `405`: the path does not serve this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// `408`: the request took longer than the configured request timeout.
    #[error("request took too long")]
    Timeout,
    /// `413`: the body is larger than the limit for this route.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// `416`: the `Range` header cannot be satisfied for a resource of `size` bytes.
    #[error("range not satisfiable for a resource of {size} bytes")]
    RangeNotSatisfiable {
        /// Size of the resource.
        size: u64,
    },
    /// `415`: a body of a media type the route does not take.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// `422`: well-formed input that fails validation (a release whose signature, hash or image
    /// does not check out).
    #[error("{message}")]
    Unprocessable {
        /// Stable machine-readable reason.
        code: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// `503`: the feature needs configuration this server was started without.
    #[error("{message}")]
    Unavailable {
        /// Stable machine-readable reason.
        code: &'static str,
        /// What to configure.
        message: String,
    },
    /// `500`: a fault of the server. The detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
    /// Any other error status axum or a layer answered, kept: `bad_request` for a 4xx,
    /// `internal` for a 5xx.
    #[error("{}", if .0.is_server_error() { "internal server error" } else { "bad request" })]
    Other(StatusCode),
}

impl AppError {
    /// A `400` with a code and message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A `409` with a code and message.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    /// A `422` with a code and message.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unprocessable {
            code,
            message: message.into(),
        }
    }

    /// A `500` for a server-side fault; `detail` is logged only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }

    /// The error that an answer with `status` (4xx or 5xx) made outside the handlers stands
    /// for, so that it gets the same body as the handlers' own.
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge("request body too large".into()),
            StatusCode::REQUEST_TIMEOUT => Self::Timeout,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::NOT_FOUND => Self::NotFound("not found".into()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            other => Self::Other(other),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::TooManyFailures { .. } | Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::UploadsBusy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::UnknownDevice(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Other(status) => *status,
        }
    }

    /// The stable machine-readable code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::Unavailable { code, .. } => code,
            Self::Unauthorized(_) => "unauthorized",
            Self::TooManyFailures { .. } | Self::Throttled { .. } => "too_many_requests",
            Self::UploadsBusy { .. } => "uploads_busy",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::UnknownDevice(_) => "unknown_device",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Timeout => "timeout",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            Self::Internal(_) => "internal",
            Self::Other(status) if status.is_server_error() => "internal",
            Self::Other(_) => "bad_request",
        }
    }
}

pub use fota_api::{ErrorBody, ErrorDetail};

/// The code of an error answer, kept in the response's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ErrorCode(pub(crate) &'static str);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(detail) => {
                tracing::error!(%detail, "request failed");
                "internal server error".to_owned()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        // For layers that act on why a request was refused (the legacy limit counts some
        // refusals and not others); never sent.
        response.extensions_mut().insert(ErrorCode(self.code()));
        match self {
            Self::RangeNotSatisfiable { size } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, v);
                }
            }
            Self::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::TooManyFailures { retry_after }
            | Self::Throttled { retry_after, .. }
            | Self::UploadsBusy { retry_after, .. } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Conflict(what) => Self::conflict("conflict", what),
            StoreError::Refused { code, message } => Self::conflict(code, message),
            other => Self::internal(other),
        }
    }
}

impl From<BytesRejection> for AppError {
    fn from(rejection: BytesRejection) -> Self {
        body_rejection(rejection.status(), rejection.body_text())
    }
}

/// Maps a failure to read a body: the length limit becomes our 413, a client that stopped
/// sending a 400; nothing here is the server's fault.
pub(crate) fn body_rejection(status: StatusCode, text: String) -> AppError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge(text)
    } else {
        AppError::bad_request("bad_body", text)
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request("invalid_query", rejection.body_text())
    }
}

/// Parses JSON bytes, turning every serde failure into a `400 invalid_json` whose message names
/// the field and position.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let code = match e.classify() {
            serde_json::error::Category::Data => "invalid_field",
            _ => "invalid_json",
        };
        AppError::bad_request(code, e.to_string())
    })
}

/// Result alias for handlers.
pub type AppResult<T> = Result<T, AppError>;
