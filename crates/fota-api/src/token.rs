//! Operator API tokens and their roles.

use serde::{Deserialize, Serialize};

use crate::Millis;

/// Operator roles, ordered by power: each role may do everything the lower ones may.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Uploads releases, assigns them, orders rollbacks, provisions devices.
    Operator,
    /// Everything, including API tokens.
    Admin,
}

impl Role {
    /// The name on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "operator" => Some(Self::Operator),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

impl core::fmt::Display for Role {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operator API token (never its secret or digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiToken {
    /// Token id.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// When it was made, unix ms.
    pub created_at: Millis,
    /// Who made it.
    pub created_by: String,
    /// When it was revoked, unix ms.
    pub revoked_at: Option<Millis>,
}

/// A new operator token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    /// Human name (who or what uses it): 1-128 characters, not only white space.
    #[schema(min_length = 1, max_length = 128, pattern = r"\S")]
    pub name: String,
    /// Role.
    pub role: Role,
}

/// A token just made: the only time its secret is shown (`Debug` shows it as `[redacted]`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewTokenResponse {
    /// Token id (for revocation).
    pub id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The bearer token. Store it now: the server keeps only its SHA-256.
    pub token: String,
}

// By hand: the secret is shown once, on purpose, in the answer; never by a `{:?}` in a log.
impl core::fmt::Debug for NewTokenResponse {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Self {
            id,
            name,
            role,
            token: _,
        } = self;
        f.debug_struct("NewTokenResponse")
            .field("id", id)
            .field("name", name)
            .field("role", role)
            .field("token", &format_args!("[redacted]"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_new_token_hides_its_secret() {
        let answer = NewTokenResponse {
            id: "4f1c".into(),
            name: "ci".into(),
            role: Role::Operator,
            token: "fota_op_s3cr3t-value".into(),
        };
        let debug = format!("{answer:?}");
        assert!(debug.contains("token: [redacted]"), "{debug}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(
            debug.contains("4f1c") && debug.contains("Operator"),
            "{debug}"
        );
    }
}
