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
        let Some(token) = bearer(&parts.headers) else {
            return Err(denied_in(state, parts, None, "missing", "missing bearer token").await);
        };
        let digest = TokenDigest::of(token);
        let found = state.store().api_token_by_digest(&digest.0).await?;
        let Some(found) = found.filter(|f| digest.matches(&f.digest)) else {
            return Err(denied_in(state, parts, Some(&digest), "unknown", "unknown token").await);
        };
        if found
            .token
            .expires_at
            .is_some_and(|e| e <= crate::clock::now_ms())
        {
            return Err(denied_in(state, parts, Some(&digest), "expired", "token expired").await);
        }
        if found.token.revoked_at.is_some() {
            return Err(denied_in(state, parts, Some(&digest), "revoked", "token revoked").await);
        }
        Ok(Self {
            token_id: found.token.id,
            role: found.token.role,
        })
    }
}

/// A failed authentication: counted against the client address and the presented credential,
/// audited (at most one entry per address a minute, with the count since the last), and
/// answered 401, or 429 with `Retry-After` once the address or the credential is over
/// `auth.failures_per_minute`. Never the secret: the audit names the credential by the first
/// bytes of its digest.
pub(crate) async fn denied(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    route: &str,
    presented: Option<&TokenDigest>,
    reason: &'static str,
    message: &str,
) -> AppError {
    let key = presented.map(|d| {
        let mut k = [0u8; 8];
        k.copy_from_slice(d.0.get(..8).unwrap_or(&[0; 8]));
        k
    });
    let verdict = state
        .auth_failures()
        .fail(ip, key, state.config().auth_failures_per_minute);
    if let Some(failures) = verdict.audit {
        let entry = AuditEntry {
            actor: ip.map_or_else(|| "client:unknown".to_owned(), |ip| format!("client:{ip}")),
            action: "auth.denied".into(),
            target: format!("route:{route}"),
            detail: serde_json::json!({
                "reason": reason,
                "client": ip.map(|ip| ip.to_string()),
                "credential": key.map(hex::encode),
                "failures": failures,
            }),
        };
        if let Err(e) = state.store().audit(&entry).await {
            tracing::warn!(error = %e, "writing an auth.denied audit entry failed");
        }
    }
    match verdict.retry_after {
        Some(wait) => {
            metrics::counter!("fota_auth_denied_total", "reason" => "throttled").increment(1);
            AppError::TooManyFailures {
                retry_after: wait.as_secs().max(1),
            }
        }
        None => unauthorized(reason, message),
    }
}

/// [`denied`] for the request of `parts` (its client address and route).
pub(crate) async fn denied_in(
    state: &AppState,
    parts: &Parts,
    presented: Option<&TokenDigest>,
    reason: &'static str,
    message: &str,
) -> AppError {
    let ip = client_ip(parts, &state.config().trusted_proxies);
    denied(state, ip, parts.uri.path(), presented, reason, message).await
}

/// The client's address: the peer's, or, when the peer is one of `trusted` (a load balancer),
/// the last address in `X-Forwarded-For` that is not itself a trusted proxy.
pub(crate) fn client_ip(parts: &Parts, trusted: &[std::net::IpAddr]) -> Option<std::net::IpAddr> {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|a| !trusted.contains(a))
            .unwrap_or(peer),
    )
}

/// The address of the client on the other end of the connection, when the server knows it
/// (`serve` records it on every request; a router driven without it, as in tests,
/// reports `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientIp(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(parts, &state.config().trusted_proxies)))
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
        let Some(token) = bearer(&parts.headers) else {
            return Err(
                denied_in(state, parts, None, "missing", "missing device credential").await,
            );
        };
        let digest = TokenDigest::of(token);
        let found = state.store().device_by_digest(&digest.0).await?;
        let Some((device_id, _, revoked)) = found.filter(|f| digest.matches(&f.1)) else {
            return Err(denied_in(
                state,
                parts,
                Some(&digest),
                "unknown",
                "unknown device credential",
            )
            .await);
        };
        if revoked.is_some() {
            return Err(denied_in(
                state,
                parts,
                Some(&digest),
                "revoked",
                "device credential revoked",
            )
            .await);
        }
        Ok(Self { device_id })
    }
}
