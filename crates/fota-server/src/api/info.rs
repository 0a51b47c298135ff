//! What the server says about itself: liveness, Prometheus metrics, configuration.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine as _;
use fota_api::{Duty, ServerInfo};

use super::auth::{self, Operator};
use super::doc;
use crate::error::AppResult;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v2/server", get(server_info))
}

/// Liveness: 200 `ok` once the server answers.
#[utoipa::path(get, path = "/healthz", tag = "server",
    responses((status = 200, description = "`ok`", body = String)))]
pub(crate) async fn health() -> &'static str {
    "ok"
}

/// Prometheus metrics (text format); with `metrics.token` set, only for that bearer token.
#[utoipa::path(get, path = "/metrics", tag = "server",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4",
        content_type = "text/plain", body = String),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures)))]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
) -> AppResult<impl IntoResponse> {
    if let Some(want) = &state.config().metrics_token {
        let presented = crate::tokens::bearer(&parts.headers).map(crate::tokens::TokenDigest::of);
        if !presented.is_some_and(|p| p.matches(&want.digest().0)) {
            return Err(auth::denied_in(
                &state,
                &parts,
                presented.as_ref(),
                "metrics_token",
                "this server's metrics need its metrics token",
            )
            .await);
        }
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    ))
}

/// Server information (viewer).
#[utoipa::path(get, path = "/api/v2/server", tag = "server", security(("bearer" = [])),
    responses(
        (status = 200, description = "What this server is configured for", body = ServerInfo),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures)))]
pub(crate) async fn server_info(
    State(state): State<AppState>,
    op: Operator,
) -> AppResult<Json<ServerInfo>> {
    op.require(Duty::Read)?;
    let trust = state.trust();
    Ok(Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        v2: trust.is_some(),
        legacy: state.legacy_enabled(),
        vendor_id: trust.map(|t| t.vendor_id().to_string()),
        root: trust.map(|t| base64::engine::general_purpose::STANDARD.encode(t.root_bytes())),
        max_release_bytes: state.config().limits.max_release_bytes,
        classes: state.store().list_classes().await?,
    }))
}
