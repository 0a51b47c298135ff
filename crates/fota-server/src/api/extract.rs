//! What handlers take from a request besides credentials: JSON bodies and query strings with
//! our error shape, the shared query parameters (paging, class filter), names, and the v2 key
//! material an operator endpoint needs.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{AppError, AppResult, parse_json};
use crate::state::AppState;
use crate::trust::Trust;

/// A JSON body parsed with our error shape. Unlike `axum::Json` it does not insist on a
/// `Content-Type` header: the seed's devices and scripts are not consistent about sending one.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AppJson<T>(pub(crate) T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await?;
        parse_json(&bytes).map(AppJson)
    }
}

impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

/// Query parameters parsed with our error shape.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AppQuery<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(v))
    }
}

/// The v2 key material, or the operator API's 503 saying how to configure it.
pub(crate) fn v2_trust(state: &AppState) -> AppResult<&Trust> {
    state.trust().ok_or_else(|| AppError::Unavailable {
        code: "v2_not_configured",
        message: "this server has no root record and status key; start it with --root \
                  K/root.bin --status-key K/status.key (see `fota keys init`)"
            .into(),
    })
}

/// A device id or class name as the operator API takes it, or a 400 naming `what`.
pub(crate) fn check_name(what: &str, s: &str) -> AppResult<()> {
    if fota_api::name::is_valid(s) {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "invalid_name",
            format!("{what} must be {}, not {s:?}", fota_api::name::RULE),
        ))
    }
}

/// Filter of device and release listings.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClassFilter {
    /// Only this class (a name no device or release has lists nothing).
    pub(crate) class: Option<String>,
}

/// Paging of histories: newest first, `before` = the smallest id already seen.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct Page {
    /// Only records with a smaller id (ids start at 1).
    #[param(minimum = 1)]
    pub(crate) before: Option<i64>,
    /// At most this many (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub(crate) limit: Option<i64>,
}

impl Page {
    pub(crate) fn before(&self) -> AppResult<Option<i64>> {
        match self.before {
            Some(n) if n < 1 => Err(AppError::bad_request(
                "invalid_query",
                format!("before must be at least 1, not {n}"),
            )),
            other => Ok(other),
        }
    }

    pub(crate) fn limit(&self) -> AppResult<i64> {
        match self.limit {
            None => Ok(100),
            Some(n @ 1..=1000) => Ok(n),
            Some(n) => Err(AppError::bad_request(
                "invalid_query",
                format!("limit must be 1-1000, not {n}"),
            )),
        }
    }
}
