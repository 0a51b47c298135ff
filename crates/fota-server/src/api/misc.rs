//! Health, metrics, server information and the OpenAPI document.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine as _;
use fota_api::{Role, ServerInfo};
use utoipa::OpenApi as _;

use crate::auth::Operator;
use crate::error::AppResult;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v2/server", get(server_info))
        .route("/api/v2/openapi.json", get(openapi))
}

/// Liveness: 200 `ok` once the server answers.
#[utoipa::path(get, path = "/healthz", tag = "server",
    responses((status = 200, description = "`ok`", body = String)))]
pub(crate) async fn health() -> &'static str {
    "ok"
}

/// Prometheus metrics (text format).
#[utoipa::path(get, path = "/metrics", tag = "server",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4",
        content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.0.metrics.render(),
    )
}

/// Server information (viewer).
#[utoipa::path(get, path = "/api/v2/server", tag = "server", security(("bearer" = [])),
    responses(
        (status = 200, description = "What this server is configured for", body = ServerInfo),
        (status = 401, response = crate::error::doc::Unauthorized)))]
pub(crate) async fn server_info(
    State(state): State<AppState>,
    op: Operator,
) -> AppResult<Json<ServerInfo>> {
    op.require(Role::Viewer)?;
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

/// This document.
#[utoipa::path(get, path = "/api/v2/openapi.json", tag = "server",
    responses((status = 200, description = "This document (OpenAPI 3.1)",
        content_type = "application/json", body = Object)))]
pub(crate) async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Operator API token (fota_op_…); roles viewer < operator < admin",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "device",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Device credential (fota_dev_…) from provisioning"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI description of every endpoint.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "FOTA update server", description = "Operator API (JSON), v2 device API \
        (fota-protocol binary records) and the seed's legacy API. Errors are always \
        `{\"error\": {\"code\", \"message\"}}`. Timestamps are unix milliseconds. \
        Besides the answers listed per operation, any request may get 405 \
        (`method_not_allowed`) for a method the path does not serve and 408 (`timeout`) when \
        it takes longer than the configured request timeout."),
    modifiers(&SecurityAddon),
    components(responses(
        crate::error::doc::BadRequest, crate::error::doc::Unauthorized,
        crate::error::doc::Forbidden, crate::error::doc::NotFound,
        crate::error::doc::PayloadTooLarge, crate::error::doc::V2Unavailable,
        crate::error::doc::LegacyUnavailable,
    )),
    paths(
        crate::api::operator::create_token, crate::api::operator::list_tokens,
        crate::api::operator::revoke_token, crate::api::operator::create_device,
        crate::api::operator::list_devices, crate::api::operator::show_device,
        crate::api::operator::delete_device,
        crate::api::operator::revoke_device, crate::api::operator::rotate_device,
        crate::api::operator::device_events, crate::api::operator::order_rollback,
        crate::api::operator::list_rollbacks, crate::api::operator::create_release,
        crate::api::operator::list_releases, crate::api::operator::show_release,
        crate::api::operator::release_manifest, crate::api::operator::assign_release,
        crate::api::operator::list_audit,
        crate::api::device::checkin, crate::api::device::blob, crate::api::device::events,
        crate::api::legacy::upload, crate::api::legacy::manifest, crate::api::legacy::chunk,
        crate::api::legacy::status, crate::api::legacy::rollback,
        crate::api::legacy::rollback_status,
        health, metrics, server_info, openapi,
    ),
    tags(
        (name = "tokens", description = "Operator API tokens (admin)"),
        (name = "devices", description = "Provisioning, history, rollback orders"),
        (name = "releases", description = "Signed releases and assignments"),
        (name = "audit", description = "Who changed what, when"),
        (name = "device", description = "v2 device API (binary records)"),
        (name = "legacy", description = "The seed's API (insecure: one fleet-wide key)"),
        (name = "server", description = "Health, metrics, info"),
    )
)]
pub struct ApiDoc;
