//! Operator API tokens and their roles.

use serde::{Deserialize, Serialize};

use crate::Millis;

/// Operator roles. They separate duties rather than rank: an operator ships firmware, a
/// provisioner manages device credentials, and neither can do the other's work (a credential
/// lets its holder speak as the device, so whoever can mint one can impersonate any device).
/// [`Role::may`] says what each may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Uploads releases, assigns them, orders rollbacks (v2 and legacy).
    Operator,
    /// Creates, rotates, revokes and deletes devices and their credentials.
    Provisioner,
    /// Everything, including API tokens.
    Admin,
}

/// What a request needs of its token's role.
///
/// | duty | viewer | operator | provisioner | admin |
/// |---|---|---|---|---|
/// | [`Duty::Read`]: any read of the operator API | ✓ | ✓ | ✓ | ✓ |
/// | [`Duty::Release`]: uploads, assignments, rollback orders, legacy uploads | | ✓ | | ✓ |
/// | [`Duty::Provision`]: device create, rotate, revoke, delete | | | ✓ | ✓ |
/// | [`Duty::Administer`]: API tokens | | | | ✓ |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Duty {
    /// Read the operator API.
    Read,
    /// Ship firmware: releases, assignments, rollback orders.
    Release,
    /// Manage devices and their credentials.
    Provision,
    /// Manage API tokens.
    Administer,
}

impl Duty {
    /// The duty's name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Release => "release",
            Self::Provision => "provision",
            Self::Administer => "administer",
        }
    }
}

impl Role {
    /// Every role, least power first.
    pub const ALL: [Self; 4] = [Self::Viewer, Self::Operator, Self::Provisioner, Self::Admin];

    /// The name on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Provisioner => "provisioner",
            Self::Admin => "admin",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role may do `duty` (the table on [`Duty`]).
    pub fn may(self, duty: Duty) -> bool {
        matches!(
            (self, duty),
            (_, Duty::Read)
                | (Self::Admin, _)
                | (Self::Operator, Duty::Release)
                | (Self::Provisioner, Duty::Provision)
        )
    }

    /// The roles that may do `duty`, as a list for messages ("operator or admin").
    pub fn names_for(duty: Duty) -> String {
        let names: Vec<&str> = Self::ALL
            .into_iter()
            .filter(|r| r.may(duty))
            .map(Self::as_str)
            .collect();
        names.join(" or ")
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
    /// When it stops working, unix ms; `None`: never.
    #[serde(default)]
    pub expires_at: Option<Millis>,
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
    /// When it stops working, unix ms (in the future); absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Millis>,
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
    /// When it stops working, unix ms; `None`: never.
    #[serde(default)]
    pub expires_at: Option<Millis>,
}

// By hand: the secret is shown once, on purpose, in the answer; never by a `{:?}` in a log.
impl core::fmt::Debug for NewTokenResponse {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Self {
            id,
            name,
            role,
            token: _,
            expires_at,
        } = self;
        f.debug_struct("NewTokenResponse")
            .field("id", id)
            .field("name", name)
            .field("role", role)
            .field("token", &format_args!("[redacted]"))
            .field("expires_at", expires_at)
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
            expires_at: None,
        };
        let debug = format!("{answer:?}");
        assert!(debug.contains("token: [redacted]"), "{debug}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(
            debug.contains("4f1c") && debug.contains("Operator"),
            "{debug}"
        );
    }

    #[test]
    fn operators_ship_firmware_and_provisioners_manage_credentials_but_not_each_other() {
        assert!(Role::Operator.may(Duty::Release));
        assert!(!Role::Operator.may(Duty::Provision));
        assert!(Role::Provisioner.may(Duty::Provision));
        assert!(!Role::Provisioner.may(Duty::Release));
        for duty in [Duty::Release, Duty::Provision, Duty::Administer] {
            assert!(!Role::Viewer.may(duty), "{duty:?}");
            assert!(Role::Admin.may(duty), "{duty:?}");
        }
        assert!(Role::ALL.into_iter().all(|r| r.may(Duty::Read)));
        assert!(!Role::Operator.may(Duty::Administer));
        assert!(!Role::Provisioner.may(Duty::Administer));
    }

    #[test]
    fn names_round_trip_and_say_who_may() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(Role::names_for(Duty::Provision), "provisioner or admin");
        assert_eq!(Role::names_for(Duty::Release), "operator or admin");
    }
}
