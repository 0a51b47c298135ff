//! Operator API tokens (`/api/v2/tokens`, admin): make, list, revoke.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use fota_api::{ApiToken, Duty, NewTokenRequest, NewTokenResponse};

use super::auth::Operator;
use super::doc;
use super::extract::AppJson;
use crate::clock::now_ms;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::tokens::{self, TokenKind};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/tokens", post(create_token).get(list_tokens))
        .route("/api/v2/tokens/{id}", delete(revoke_token))
}

/// Create an operator token (admin).
#[utoipa::path(post, path = "/api/v2/tokens", tag = "tokens", security(("bearer" = [])),
    request_body = NewTokenRequest,
    responses(
        (status = 201, description = "Token made; its secret is shown only in this answer",
            body = NewTokenResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 403, response = doc::Forbidden),
        (status = 413, response = doc::PayloadTooLarge)))]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    op: Operator,
    AppJson(req): AppJson<NewTokenRequest>,
) -> AppResult<(StatusCode, Json<NewTokenResponse>)> {
    op.require(Duty::Administer)?;
    // Characters, not bytes: the document's maxLength counts characters.
    if req.name.trim().is_empty() || req.name.chars().count() > 128 {
        return Err(AppError::bad_request(
            "invalid_name",
            "name must be 1-128 characters",
        ));
    }
    let now = now_ms();
    if req.expires_at.is_some_and(|e| e <= now) {
        return Err(AppError::bad_request(
            "invalid_field",
            "expires_at must be in the future (unix ms)",
        ));
    }
    let secret = tokens::generate(TokenKind::Operator);
    let token = ApiToken {
        id: uuid::Uuid::new_v4().simple().to_string(),
        name: req.name,
        role: req.role,
        created_at: now,
        created_by: op.actor(),
        revoked_at: None,
        expires_at: req.expires_at,
    };
    let entry = op.audit(
        "token.create",
        format!("token:{}", token.id),
        serde_json::json!({ "name": token.name, "role": token.role, "expires_at": token.expires_at }),
    );
    state
        .store()
        .create_api_token(&token, &secret.digest().0, &entry)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewTokenResponse {
            id: token.id,
            name: token.name,
            role: token.role,
            token: secret.expose().to_owned(),
            expires_at: token.expires_at,
        }),
    ))
}

/// List operator tokens (admin). Secrets are never listed.
#[utoipa::path(get, path = "/api/v2/tokens", tag = "tokens", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every token, revoked ones included (never a secret)",
            body = [ApiToken]),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 403, response = doc::Forbidden)))]
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    op: Operator,
) -> AppResult<Json<Vec<ApiToken>>> {
    op.require(Duty::Administer)?;
    Ok(Json(state.store().list_api_tokens().await?))
}

/// Revoke an operator token (admin). The last active admin token cannot be revoked (409
/// `last_admin_token`): make another admin token first.
#[utoipa::path(delete, path = "/api/v2/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "Token id (`bootstrap` or 32 hex digits)",
        pattern = r"^(bootstrap|[0-9a-f]{32})$")),
    responses(
        (status = 204, description = "Revoked; requests with it now get 401"),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 403, response = doc::Forbidden),
        (status = 404, description = "No active token of this id (`not_found`)",
            body = crate::error::ErrorBody),
        (status = 409, description = "The last active admin token (`last_admin_token`): make \
            another admin token first", body = crate::error::ErrorBody)))]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    op.require(Duty::Administer)?;
    let entry = op.audit("token.revoke", format!("token:{id}"), serde_json::json!({}));
    state
        .store()
        .revoke_api_token(&id, now_ms(), &entry)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
