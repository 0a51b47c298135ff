//! Bearer tokens for operators and devices.
//!
//! A token is 256 random bits, shown once when it is made. The server keeps only its SHA-256:
//! the tokens are high-entropy, so a slow password hash would add nothing but latency on the
//! device hot path. Look-ups go by the digest, and the found digest is compared again in
//! constant time, so timing does not tell how much of a guessed token matched.

use std::fmt;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token is for; the prefix makes leaked tokens easy to recognise and route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An operator API token (`fota_op_…`).
    Operator,
    /// A device credential (`fota_dev_…`).
    Device,
}

/// A token in clear text. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a token given by a user (e.g. `FOTA_ADMIN_TOKEN`).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear text, to show it once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest the server stores.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Secret")
            .field(&format_args!("[redacted]"))
            .finish()
    }
}

/// Makes a fresh admin token directly in `store`, for an operator locked out of the API
/// (`fota server admin-token`, run on the server's machine): the recovery path that needs no
/// HTTP and no other token. Audited as `token.recover`.
pub async fn recover_admin(
    store: &dyn crate::store::Store,
    name: &str,
) -> crate::store::StoreResult<(fota_api::ApiToken, Secret)> {
    let secret = generate(TokenKind::Operator);
    let token = fota_api::ApiToken {
        id: uuid::Uuid::new_v4().simple().to_string(),
        name: name.to_owned(),
        role: fota_api::Role::Admin,
        created_at: crate::clock::now_ms(),
        created_by: "server:admin-token".into(),
        revoked_at: None,
        expires_at: None,
    };
    let entry = fota_api::AuditEntry {
        actor: "server:admin-token".into(),
        action: "token.recover".into(),
        target: format!("token:{}", token.id),
        detail: serde_json::json!({ "name": token.name, "role": token.role }),
    };
    store
        .create_api_token(&token, &secret.digest().0, &entry)
        .await?;
    Ok((token, secret))
}

/// Generates a fresh token of the given kind.
pub fn generate(kind: TokenKind) -> Secret {
    let mut raw = [0u8; 32];
    rand::fill(&mut raw);
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let prefix = match kind {
        TokenKind::Operator => "fota_op_",
        TokenKind::Device => "fota_dev_",
    };
    Secret(format!("{prefix}{body}"))
}

/// SHA-256 of a token: what the store keeps and indexes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest(pub [u8; 32]);

impl TokenDigest {
    /// Digest of a clear-text token.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Constant-time comparison with stored digest bytes.
    pub fn matches(&self, stored: &[u8]) -> bool {
        stored.len() == 32 && bool::from(self.0.ct_eq(stored))
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({}…)", hex::encode(&self.0[..4]))
    }
}

/// The token of an `Authorization: Bearer …` header, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_prefixed() {
        let a = generate(TokenKind::Operator);
        let b = generate(TokenKind::Operator);
        assert_ne!(a, b);
        assert!(a.expose().starts_with("fota_op_"));
        assert_eq!(a.expose().len(), "fota_op_".len() + 43);
        assert!(
            generate(TokenKind::Device)
                .expose()
                .starts_with("fota_dev_")
        );
    }

    #[test]
    fn debug_of_a_secret_hides_the_token() {
        let secret = generate(TokenKind::Operator);
        let debug = format!("{secret:?}");
        assert_eq!(debug, "Secret([redacted])");
        assert!(!debug.contains(secret.expose()));
        let chosen = Secret::new("FOTA_ADMIN_TOKEN-value");
        assert!(!format!("{chosen:?}").contains("value"));
    }

    #[test]
    fn digest_matching() {
        let t = generate(TokenKind::Device);
        let d = t.digest();
        assert!(d.matches(&d.0));
        assert!(!d.matches(&[0; 32]));
        assert!(!d.matches(&d.0[..31]));
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(AUTHORIZATION, "bearer  abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
