//! Authentication: bearer tokens for users and agents, role checks, and the
//! failed-authentication rate limit.
//!
//! Tokens are `cst_` + 43 base64url characters (256 random bits). The
//! coordinator stores SHA-256 of the whole token and its first 12 characters
//! (the prefix, used to find candidates); the hash is compared in constant time.

use crate::error::{Error, Result};
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use base64::Engine;
use custody_proto::ErrorCode;
use custody_proto::admin::Role;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Length of a token's public prefix.
pub const PREFIX_LEN: usize = 12;

/// A freshly made secret token. Not `Debug`, zeroized on drop.
pub struct TokenSecret(Zeroizing<String>);

impl TokenSecret {
    /// 256 random bits with a kind tag (`cst` for credentials, `cjt` for join tokens).
    pub fn generate(tag: &str) -> Result<Self> {
        let mut raw = Zeroizing::new([0u8; 32]);
        getrandom::fill(raw.as_mut_slice())
            .map_err(|e| Error::Internal(format!("random token: {e}")))?;
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_slice());
        Ok(TokenSecret(Zeroizing::new(format!("{tag}_{body}"))))
    }

    /// Wraps a presented token.
    pub fn from_presented(s: &str) -> Self {
        TokenSecret(Zeroizing::new(s.to_string()))
    }

    /// The token text (to print once).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Public prefix.
    pub fn prefix(&self) -> String {
        self.0.chars().take(PREFIX_LEN).collect()
    }

    /// Hex SHA-256 of the whole token.
    pub fn hash_hex(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A person or CI.
    User(UserPrincipal),
    /// An enrolled agent.
    Agent(AgentPrincipal),
}

/// An authenticated user.
#[derive(Debug, Clone)]
pub struct UserPrincipal {
    /// User id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Roles.
    pub roles: Vec<Role>,
}

impl UserPrincipal {
    /// Refuses with 403 unless the user holds one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<()> {
        if self.roles.iter().any(|r| roles.contains(r)) {
            Ok(())
        } else {
            let need: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(Error::api(
                ErrorCode::Forbidden,
                format!("this needs the role {}", need.join(" or ")),
            ))
        }
    }

    /// The audit actor string.
    pub fn actor(&self) -> String {
        format!("user:{}", self.id)
    }
}

/// An authenticated agent.
#[derive(Debug, Clone)]
pub struct AgentPrincipal {
    /// Server id.
    pub server_id: String,
}

impl AgentPrincipal {
    /// The audit actor string.
    pub fn actor(&self) -> String {
        format!("server:{}", self.server_id)
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?;
    let t = t.trim();
    (!t.is_empty() && t.len() <= 128).then_some(t)
}

fn source_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Resolves a presented token to a principal, counting failures.
pub async fn authenticate(state: &AppState, parts: &Parts) -> Result<Principal> {
    let ip = source_ip(parts);
    let token = bearer(parts);
    let prefix = token.map(|t| t.chars().take(PREFIX_LEN).collect::<String>());
    state.limiter.check(ip, prefix.as_deref())?;
    let unauth = |msg: &str| Error::api(ErrorCode::Unauthenticated, msg.to_string());
    let Some(token) = token else {
        state.limiter.fail(ip, None);
        state.metrics.auth_failure();
        return Err(unauth("missing bearer token"));
    };
    let secret = TokenSecret::from_presented(token);
    let hash = secret.hash_hex();
    let candidates =
        crate::store::users::tokens_by_prefix(&state.store.read, &secret.prefix()).await?;
    let mut found = None;
    for (_id, stored, user_id, server_id) in candidates {
        if bool::from(stored.as_bytes().ct_eq(hash.as_bytes())) {
            found = Some((user_id, server_id));
        }
    }
    let principal = match found {
        Some((Some(user_id), _)) => crate::store::users::find_user(&state.store.read, &user_id)
            .await?
            .map(|u| {
                Principal::User(UserPrincipal {
                    id: u.id,
                    name: u.name,
                    roles: u.roles,
                })
            }),
        Some((None, Some(server_id))) => {
            if crate::store::servers::is_enrolled(&state.store.read, &server_id).await? {
                state.presence.seen(&server_id);
                Some(Principal::Agent(AgentPrincipal { server_id }))
            } else {
                None
            }
        }
        _ => None,
    };
    match principal {
        Some(p) => Ok(p),
        None => {
            state.limiter.fail(ip, prefix.as_deref());
            state.metrics.auth_failure();
            Err(unauth("unknown, revoked or expired token"))
        }
    }
}

/// Extractor: any authenticated user.
#[derive(Debug, Clone)]
pub struct AuthUser(pub UserPrincipal);

impl FromRequestParts<Arc<AppState>> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self> {
        match authenticate(state, parts).await? {
            Principal::User(u) => Ok(AuthUser(u)),
            Principal::Agent(_) => Err(Error::api(
                ErrorCode::Forbidden,
                "agent credentials cannot use the user API",
            )),
        }
    }
}

/// Extractor: an enrolled, not removed agent.
#[derive(Debug, Clone)]
pub struct AuthAgent(pub AgentPrincipal);

impl FromRequestParts<Arc<AppState>> for AuthAgent {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self> {
        match authenticate(state, parts).await? {
            Principal::Agent(a) => Ok(AuthAgent(a)),
            Principal::User(_) => Err(Error::api(
                ErrorCode::Forbidden,
                "user tokens cannot use the agent API",
            )),
        }
    }
}

/// Extractor: a user or an agent.
#[derive(Debug, Clone)]
pub struct AuthAny(pub Principal);

impl FromRequestParts<Arc<AppState>> for AuthAny {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self> {
        Ok(AuthAny(authenticate(state, parts).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_prefixed() {
        let a = TokenSecret::generate("cst").unwrap();
        let b = TokenSecret::generate("cst").unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 4 + 43);
        assert_eq!(a.prefix().len(), PREFIX_LEN);
        assert_eq!(a.hash_hex().len(), 64);
        assert_eq!(
            TokenSecret::from_presented(a.expose()).hash_hex(),
            a.hash_hex()
        );
    }
}
