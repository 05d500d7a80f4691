//! Users, roles, API tokens and approver groups (`/v1/users`, `/v1/tokens`, `/v1/groups`).

use serde::{Deserialize, Serialize};

/// What a user may do. One user may hold several roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages users, tokens, servers, apps and environments; may deploy and approve.
    Owner,
    /// Pushes releases and creates deployments.
    Deployer,
    /// Approves deployments (as a member of an environment's approver group).
    Approver,
}

impl Role {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Deployer => "deployer",
            Role::Approver => "approver",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Role::Owner),
            "deployer" => Some(Role::Deployer),
            "approver" => Some(Role::Approver),
            _ => None,
        }
    }
}

/// `POST /v1/users` (owner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Unique user name.
    pub name: String,
    /// Roles; at least one.
    pub roles: Vec<Role>,
    /// Where notifications go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A user as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Opaque id (`usr_…`).
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Roles.
    pub roles: Vec<Role>,
    /// Notification address.
    #[serde(default)]
    pub email: Option<String>,
    /// Key id (base64url SHA-256) of the user's registered Ed25519
    /// approval key, if any.
    #[serde(default)]
    pub approval_key_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// `POST /v1/tokens`: a token for yourself, or (owner) for `user`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// User id or name; default: the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Free text to recognise the token by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// The answer to [`CreateToken`]: the only time the secret is shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreated {
    /// Token id (`tok_…`), to revoke it.
    pub id: String,
    /// The bearer token. Shown once; the coordinator keeps only its SHA-256.
    pub token: String,
    /// The token's public prefix (the first 12 characters).
    pub prefix: String,
    /// The user it belongs to.
    pub user_id: String,
}

impl std::fmt::Debug for TokenCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCreated")
            .field("id", &self.id)
            .field("prefix", &self.prefix)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// A token as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Token id.
    pub id: String,
    /// Owner of the token.
    pub user_id: String,
    /// Label.
    #[serde(default)]
    pub label: Option<String>,
    /// Public prefix.
    pub prefix: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, when revoked.
    #[serde(default)]
    pub revoked_at: Option<i64>,
}

/// `POST /v1/groups` (owner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// Unique group name.
    pub name: String,
}

/// `POST /v1/groups/{group}/members` (owner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// User id or name.
    pub user: String,
}

/// An approver group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Opaque id (`grp_…`).
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Member user ids.
    pub members: Vec<String>,
}

/// `GET /v1/whoami`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// User id.
    pub user_id: String,
    /// User name.
    pub name: String,
    /// Roles.
    pub roles: Vec<Role>,
}
