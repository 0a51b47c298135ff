//! The OpenAPI document of every endpoint, served at `/api/v2/openapi.json`.

use axum::Json;
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::OpenApi as _;

use super::{audit, devices, doc, info, legacy, releases, rollbacks, roots, tokens, v2_device};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v2/openapi.json", get(openapi))
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
                        "Operator API token (fota_op_…); roles viewer (reads), operator (releases, assignments, rollback orders), provisioner (device credentials), admin (everything, tokens included)",
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
        doc::BadRequest, doc::Unauthorized, doc::TooManyFailures,
        doc::Forbidden, doc::NotFound,
        doc::PayloadTooLarge, doc::V2Unavailable,
        doc::LegacyUnavailable, doc::V2UploadUnavailable, doc::LegacyUploadUnavailable,
        doc::LegacyThrottled,
    )),
    paths(
        tokens::create_token, tokens::list_tokens, tokens::revoke_token,
        devices::create_device, devices::list_devices, devices::show_device,
        devices::delete_device, devices::revoke_device, devices::rotate_device,
        devices::device_events, rollbacks::order_rollback, rollbacks::list_rollbacks,
        releases::create_release, releases::list_releases, releases::show_release,
        releases::release_manifest, releases::assign_release,
        audit::list_audit,
        v2_device::checkin, v2_device::blob, v2_device::events,
        legacy::upload, legacy::manifest, legacy::chunk, legacy::status, legacy::rollback,
        legacy::rollback_status,
        info::health, info::metrics, info::server_info, roots::list_roots,
        roots::publish_root, openapi,
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
