//! Servers: join tokens, enrollment, key-manager flags (`/v1/servers`, `/v1/agent/enroll`).

use custody_envelope::OaepHash;
use serde::{Deserialize, Serialize};

/// What an agent offers to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentRole {
    /// Can hold the master key once an owner enables it.
    KeyManager,
    /// Can receive deployments.
    Target,
}

/// `POST /v1/servers/join-tokens` (owner).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJoinToken {
    /// Lifetime in seconds; default 3600, at most 7 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// A one-time join token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    /// The secret, shown once.
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/agent/enroll` (authenticated by the join token in the body).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The one-time join token.
    pub join_token: String,
    /// Host name, for people.
    pub name: String,
    /// The server key `P_i`, PEM SubjectPublicKeyInfo (RSA).
    pub public_key_pem: String,
    /// OAEP hashes the keystore can unwrap, strongest first.
    pub oaep_hashes: Vec<OaepHash>,
    /// Roles the agent offers.
    pub roles: Vec<AgentRole>,
    /// The agent's version string.
    #[serde(default)]
    pub agent_version: String,
}

impl std::fmt::Debug for EnrollRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("protocol", &self.protocol)
            .field("name", &self.name)
            .field("oaep_hashes", &self.oaep_hashes)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// The answer to [`EnrollRequest`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The new server's id (`srv_…`).
    pub server_id: String,
    /// The agent's bearer credential. Store it 0600; shown once.
    pub credential: String,
    /// The account the server joined.
    pub account: String,
    /// How often to heartbeat, seconds.
    pub heartbeat_interval_seconds: u64,
}

impl std::fmt::Debug for EnrollResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollResponse")
            .field("server_id", &self.server_id)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/agent/heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The agent's version string.
    #[serde(default)]
    pub agent_version: String,
}

/// The answer to [`Heartbeat`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    /// Coordinator time, Unix milliseconds.
    pub server_time_ms: i64,
}

/// A server as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    /// Opaque id.
    pub id: String,
    /// Host name.
    pub name: String,
    /// Roles the agent offered.
    pub roles: Vec<AgentRole>,
    /// Enabled as key manager by an owner.
    pub key_manager: bool,
    /// Seen within the liveness window.
    pub live: bool,
    /// Unix seconds of the last request, if any.
    #[serde(default)]
    pub last_seen_at: Option<i64>,
    /// Holds `wrap(P_i, MK)` for the current master key.
    pub holds_master_key: bool,
    /// The key's fingerprint (see [`KeyManagerKey::fingerprint`]).
    pub key_fingerprint: String,
    /// OAEP hashes the keystore supports.
    pub oaep_hashes: Vec<OaepHash>,
    /// Unix seconds.
    pub enrolled_at: i64,
}

/// A key manager's public key, as handed to clients that wrap keys to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyManagerKey {
    /// Server id.
    pub server_id: String,
    /// Host name.
    pub name: String,
    /// PEM SubjectPublicKeyInfo.
    pub public_key_pem: String,
    /// OAEP hashes it can unwrap.
    pub oaep_hashes: Vec<OaepHash>,
    /// RFC 7638 JWK thumbprint (SHA-256, base64url) of the key.
    pub fingerprint: String,
}

/// `GET /v1/master-key/holders`: the public keys of every key manager that
/// holds the current master key — what a client wraps a release key or a
/// secret variable to. The same list `POST /v1/apps/{app}/releases` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterKeyHolders {
    /// The current master key's id.
    pub master_key_id: String,
    /// Every holder, live or not (a wrap to a holder that is down now is still useful later).
    pub key_managers: Vec<KeyManagerKey>,
}

/// `GET /v1/master-key`: the bookkeeping, never a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterKeyStatus {
    /// Current master key id, if one exists.
    #[serde(default)]
    pub master_key_id: Option<String>,
    /// `none`, `creating`, `active`.
    pub state: String,
    /// Servers holding `wrap(P_i, MK)` for it.
    pub holders: Vec<String>,
    /// Enabled key managers still waiting to learn it.
    pub waiting: Vec<String>,
    /// Master key ids that were lost (every holder removed).
    pub lost: Vec<String>,
}
