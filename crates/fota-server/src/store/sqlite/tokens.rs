//! [`TokenStore`] on SQLite.

use fota_api::{ApiToken, AuditEntry, Millis, Role};

use super::{SqliteStore, insert_audit};
use crate::clock::now_ms;
use crate::store::error::{StoreError, StoreResult};
use crate::store::rows::{TokenAuthRow, TokenRow};
use crate::store::tokens::{ApiTokenAuth, TokenStore};

#[async_trait::async_trait]
impl TokenStore for SqliteStore {
    async fn create_api_token(
        &self,
        token: &ApiToken,
        digest: &[u8; 32],
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, token_hash, created_at, created_by, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token.id.clone())
        .bind(token.name.clone())
        .bind(token.role.as_str())
        .bind(digest.to_vec())
        .bind(token.created_at)
        .bind(token.created_by.clone())
        .bind(token.expires_at)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit, token.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ensure_bootstrap_token(&self, digest: &[u8; 32], replace: bool) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let existing: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT token_hash FROM api_tokens WHERE id = 'bootstrap'")
                .fetch_optional(&mut *tx)
                .await?;
        let changed = match (existing, replace) {
            (Some(old), true) if old.as_slice() == digest.as_slice() => false,
            (Some(_), true) => {
                sqlx::query(
                    "UPDATE api_tokens SET token_hash = $1, revoked_at = NULL \
                     WHERE id = 'bootstrap'",
                )
                .bind(digest.to_vec())
                .execute(&mut *tx)
                .await?;
                true
            }
            (Some(_), false) => false,
            (None, _) => {
                let any: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
                    .fetch_one(&mut *tx)
                    .await?;
                if any > 0 && !replace {
                    false
                } else {
                    sqlx::query(
                        "INSERT INTO api_tokens (id, name, role, token_hash, created_at, \
                         created_by) VALUES ('bootstrap', 'bootstrap admin', 'admin', $1, $2, \
                         'server')",
                    )
                    .bind(digest.to_vec())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    true
                }
            }
        };
        if changed {
            let entry = AuditEntry {
                actor: "server".into(),
                action: "token.bootstrap".into(),
                target: "token:bootstrap".into(),
                detail: serde_json::json!({ "from_env": replace }),
            };
            insert_audit(&mut tx, &entry, now).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    async fn api_token_by_digest(&self, digest: &[u8; 32]) -> StoreResult<Option<ApiTokenAuth>> {
        let row = sqlx::query_as::<_, TokenAuthRow>(
            "SELECT id, name, role, token_hash, created_at, created_by, revoked_at, expires_at \
             FROM api_tokens WHERE token_hash = $1",
        )
        .bind(digest.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(ApiTokenAuth {
                token: row.token.into_api()?,
                digest: row.token_hash,
            })
        })
        .transpose()
    }

    async fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        sqlx::query_as::<_, TokenRow>(
            "SELECT id, name, role, created_at, created_by, revoked_at, expires_at \
             FROM api_tokens ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(TokenRow::into_api)
        .collect()
    }

    async fn revoke_api_token(&self, id: &str, at: Millis, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM api_tokens WHERE id = $1 AND revoked_at IS NULL")
                .bind(id.to_owned())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(role) = role else {
            return Err(StoreError::NotFound(format!(
                "no active token with id {id:?}"
            )));
        };
        if role == Role::Admin.as_str() {
            // Inside the write transaction, so two revocations racing cannot both pass.
            let others: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM api_tokens WHERE role = $1 AND revoked_at IS NULL \
                 AND id <> $2",
            )
            .bind(Role::Admin.as_str())
            .bind(id.to_owned())
            .fetch_one(&mut *tx)
            .await?;
            if others == 0 {
                return Err(StoreError::Refused {
                    code: "last_admin_token",
                    message: format!(
                        "token {id:?} is the last active admin token; create another admin \
                         token first (or recover with `fota server admin-token` on the \
                         server's machine)"
                    ),
                });
            }
        }
        sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1")
            .bind(id.to_owned())
            .bind(at)
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, audit, at).await?;
        tx.commit().await?;
        Ok(())
    }
}
