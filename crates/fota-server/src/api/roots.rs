//! The chain of root records (`/api/v2/roots`): list it (viewer), publish the next version
//! (admin).
//!
//! A published version is stored, then served: uploads and stored releases are checked
//! against it from then on, and devices walk to it at their next check-ins. It is accepted
//! only as the next version of the newest held, signed by that version's root threshold and
//! its own (what devices check), unexpired, and listing the status key this server signs with
//! (otherwise every device would refuse the server's statements).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use fota_api::{Duty, RootChainInfo, RootVersion};
use fota_protocol::v2::{Role, RootRecord};

use super::auth::Operator;
use super::doc;
use super::extract::v2_trust;
use crate::clock::{now_ms, unix_s};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::StoredRoot;
use crate::trust::AdoptError;

/// Longest body `POST /api/v2/roots` reads: one root record envelope.
pub(crate) const MAX_ROOT_BODY: usize = fota_protocol::v2::root::MAX_LEN;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v2/roots", get(list_roots).post(publish_root))
}

fn ids(record: &RootRecord, role: Role) -> Vec<String> {
    record
        .keys(role)
        .key_ids()
        .iter()
        .map(hex::encode)
        .collect()
}

fn version_info(record: &RootRecord, stored: Option<&StoredRoot>) -> RootVersion {
    let body = record.body();
    RootVersion {
        version: record.version(),
        issued_at: body.issued_at,
        expires_at: body.expires_at,
        published_at: stored.map_or(0, |s| s.published_at),
        published_by: stored.map_or_else(|| "server".into(), |s| s.published_by.clone()),
        root_keys: ids(record, Role::Root),
        release_keys: ids(record, Role::Release),
        status_keys: ids(record, Role::Status),
    }
}

async fn chain_info(state: &AppState) -> AppResult<RootChainInfo> {
    let trust = v2_trust(state)?;
    let chain = trust.chain();
    let stored = state.store().root_records().await?;
    Ok(RootChainInfo {
        newest: chain.newest().version(),
        status_key: trust.status_key_id(),
        versions: chain
            .records()
            .iter()
            .map(|r| version_info(r, stored.iter().find(|s| s.version == r.version())))
            .collect(),
    })
}

/// The root records this server holds (viewer).
#[utoipa::path(get, path = "/api/v2/roots", tag = "server", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every version held, oldest first", body = RootChainInfo),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 503, response = doc::V2Unavailable)))]
pub(crate) async fn list_roots(
    State(state): State<AppState>,
    op: Operator,
) -> AppResult<Json<RootChainInfo>> {
    op.require(Duty::Read)?;
    Ok(Json(chain_info(&state).await?))
}

/// Publish the next root record (admin): body = the signed record (`root-vN.bin`).
#[utoipa::path(post, path = "/api/v2/roots", tag = "server", security(("bearer" = [])),
    request_body(content = inline(doc::Binary), content_type = "application/octet-stream",
        description = "FOTR root record envelope, the next version of the newest held"),
    responses(
        (status = 201, description = "Stored and served from now on", body = RootChainInfo),
        (status = 200, description = "This record was held already", body = RootChainInfo),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 403, response = doc::Forbidden),
        (status = 409, description = "Another record is held under this version \
            (`root_conflict`), versions are missing before it (`root_gap`), or it does not list \
            the server's status key (`status_key_not_listed`)", body = crate::error::ErrorBody),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 422, description = "Not the next version, or not signed by the old and new \
            root thresholds (`invalid_root`), or expired (`root_expired`)",
            body = crate::error::ErrorBody),
        (status = 503, response = doc::V2Unavailable)))]
pub(crate) async fn publish_root(
    State(state): State<AppState>,
    op: Operator,
    body: Bytes,
) -> AppResult<(StatusCode, Json<RootChainInfo>)> {
    op.require(Duty::Administer)?;
    let trust = v2_trust(&state)?;
    if body.len() > MAX_ROOT_BODY {
        return Err(AppError::PayloadTooLarge(format!(
            "a root record is at most {MAX_ROOT_BODY} bytes"
        )));
    }
    let next = match trust.check_next(&body, unix_s()) {
        Ok(Some(next)) => next,
        Ok(None) => return Ok((StatusCode::OK, Json(chain_info(&state).await?))),
        Err(e) => {
            let message = e.to_string();
            return Err(match e {
                AdoptError::Invalid { .. } => AppError::unprocessable("invalid_root", message),
                AdoptError::Expired { .. } => AppError::unprocessable("root_expired", message),
                AdoptError::Conflict { .. } => AppError::conflict("root_conflict", message),
                AdoptError::Gap { .. } => AppError::conflict("root_gap", message),
                AdoptError::StatusKeyNotListed { .. } => {
                    AppError::conflict("status_key_not_listed", message)
                }
            });
        }
    };
    let version = next.version();
    let audit = op.audit(
        "root.publish",
        format!("root:v{version}"),
        serde_json::json!({
            "version": version,
            "root_keys": ids(&next, Role::Root),
            "release_keys": ids(&next, Role::Release),
            "status_keys": ids(&next, Role::Status),
            "expires_at": next.body().expires_at,
        }),
    );
    let stored = state
        .store()
        .add_root_record(
            &StoredRoot {
                version,
                record: next.as_bytes().to_vec(),
                published_at: now_ms(),
                published_by: op.actor(),
            },
            Some(&audit),
        )
        .await?;
    if !stored {
        // Another request stored this version first; serve whatever the store holds.
        let records: Vec<Vec<u8>> = state
            .store()
            .root_records()
            .await?
            .into_iter()
            .map(|r| r.record)
            .collect();
        trust.replace_chain(&records).map_err(AppError::internal)?;
        let held = trust
            .chain()
            .records()
            .iter()
            .any(|r| r.as_bytes() == next.as_bytes());
        if !held {
            return Err(AppError::conflict(
                "root_conflict",
                format!("root version {version} was published with other contents meanwhile"),
            ));
        }
        return Ok((StatusCode::OK, Json(chain_info(&state).await?)));
    }
    tracing::info!(version, actor = %op.actor(), "root record published");
    trust.push(next);
    Ok((StatusCode::CREATED, Json(chain_info(&state).await?)))
}
