//! The audit log (`/api/v2/audit`): who changed what, when.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use fota_api::{AuditRecord, Duty};

use super::auth::Operator;
use super::doc;
use super::extract::{AppQuery, Page};
use crate::error::AppResult;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v2/audit", get(list_audit))
}

/// The audit log, newest first (viewer).
#[utoipa::path(get, path = "/api/v2/audit", tag = "audit", security(("bearer" = [])),
    params(Page),
    responses(
        (status = 200, description = "Audit records, newest first", body = [AuditRecord]),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures)))]
pub(crate) async fn list_audit(
    State(state): State<AppState>,
    op: Operator,
    AppQuery(page): AppQuery<Page>,
) -> AppResult<Json<Vec<AuditRecord>>> {
    op.require(Duty::Read)?;
    Ok(Json(
        state
            .store()
            .list_audit(page.before()?, page.limit()?)
            .await?,
    ))
}
