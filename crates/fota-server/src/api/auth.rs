//! Who is calling: operator tokens (with roles) and device credentials.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use fota_api::{AuditEntry, Duty, Role};

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::tokens::{TokenDigest, bearer};

/// An authenticated operator (any role). Handlers call [`Operator::require`] for more.
#[derive(Debug, Clone)]
pub(crate) struct Operator {
    /// Token id.
    pub(crate) token_id: String,
    /// Role.
    pub(crate) role: Role,
}

impl Operator {
    /// The audit actor string.
    pub(crate) fn actor(&self) -> String {
        format!("token:{}", self.token_id)
    }

    /// An audit entry of this operator doing `action` to `target`.
    pub(crate) fn audit(
        &self,
        action: &str,
        target: String,
        detail: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            actor: self.actor(),
            action: action.to_owned(),
            target,
            detail,
        }
    }

    /// Fails with 403 unless the token's role may do `duty`.
    pub(crate) fn require(&self, duty: Duty) -> AppResult<()> {
        if self.role.may(duty) {
            Ok(())
        } else {
            metrics::counter!("fota_auth_denied_total", "reason" => "role").increment(1);
            Err(AppError::Forbidden(format!(
                "this needs the {} role; the token has {}",
                Role::names_for(duty),
                self.role.as_str()
            )))
        }
    }
}

/// A 401, counted by `reason` in `fota_auth_denied_total`.
pub(crate) fn unauthorized(reason: &'static str, message: &str) -> AppError {
    metrics::counter!("fota_auth_denied_total", "reason" => reason).increment(1);
    AppError::Unauthorized(message.to_owned())
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let token = bearer(&parts.headers)
            .ok_or_else(|| unauthorized("missing", "missing bearer token"))?;
        let digest = TokenDigest::of(token);
        let found = state.store().api_token_by_digest(&digest.0).await?;
        let Some(found) = found.filter(|f| digest.matches(&f.digest)) else {
            return Err(unauthorized("unknown", "unknown token"));
        };
        if found.token.revoked_at.is_some() {
            return Err(unauthorized("revoked", "token revoked"));
        }
        Ok(Self {
            token_id: found.token.id,
            role: found.token.role,
        })
    }
}

/// The address of the client on the other end of the connection, when the server knows it
/// (`serve` records it on every request; a router driven without it, as in tests,
/// reports `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// An authenticated v2 device.
#[derive(Debug, Clone)]
pub(crate) struct DeviceAuth {
    /// The device's name.
    pub(crate) device_id: String,
}

impl FromRequestParts<AppState> for DeviceAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let token = bearer(&parts.headers)
            .ok_or_else(|| unauthorized("missing", "missing device credential"))?;
        let digest = TokenDigest::of(token);
        let found = state.store().device_by_digest(&digest.0).await?;
        let Some((device_id, stored, revoked)) = found.filter(|f| digest.matches(&f.1)) else {
            return Err(unauthorized("unknown", "unknown device credential"));
        };
        let _ = stored;
        if revoked.is_some() {
            return Err(unauthorized("revoked", "device credential revoked"));
        }
        Ok(Self { device_id })
    }
}
