//! Operator API tokens: stored by digest, never in clear.

use fota_api::{ApiToken, AuditEntry, Millis};

use super::error::StoreResult;

/// A token found by its digest, with the stored digest for the constant-time check.
#[derive(Debug, Clone)]
pub struct ApiTokenAuth {
    /// The token.
    pub token: ApiToken,
    /// Stored SHA-256.
    pub digest: Vec<u8>,
}

/// Operator tokens.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new token.
    async fn create_api_token(
        &self,
        token: &ApiToken,
        digest: &[u8; 32],
        audit: &AuditEntry,
    ) -> StoreResult<()>;

    /// Makes the bootstrap admin token: with `replace`, the digest of the `bootstrap` token is
    /// set to `digest` (FOTA_ADMIN_TOKEN); without, it is only created when no token exists.
    /// Returns whether a token was created or changed.
    async fn ensure_bootstrap_token(&self, digest: &[u8; 32], replace: bool) -> StoreResult<bool>;

    /// Finds a token by digest.
    async fn api_token_by_digest(&self, digest: &[u8; 32]) -> StoreResult<Option<ApiTokenAuth>>;

    /// All tokens.
    async fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>>;

    /// Revokes a token. Refused (`last_admin_token`) when it is the last active admin token:
    /// nobody could then manage tokens through the API.
    async fn revoke_api_token(&self, id: &str, at: Millis, audit: &AuditEntry) -> StoreResult<()>;
}
