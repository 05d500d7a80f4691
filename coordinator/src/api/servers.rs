//! Servers: join tokens, listing, key-manager flag, removal; master-key
//! status; the job list (so waiting work is visible).

use super::{ApiJson, json};
use crate::auth::{AuthUser, TokenSecret};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{now_ms, servers, users};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use custody_proto::ErrorCode;
use custody_proto::admin::Role;
use custody_proto::servers::{AgentRole, CreateJoinToken, JoinToken, Server};
use serde::{Deserialize, Serialize};
use serde_json::json as j;
use std::sync::Arc;

async fn view(s: &AppState, row: servers::ServerRow, holders: &[String]) -> Server {
    Server {
        live: s.presence.is_live(&row.id),
        last_seen_at: s
            .presence
            .last_seen(&row.id)
            .or(row.last_seen_at_ms)
            .map(|t| t / 1000),
        holds_master_key: holders.contains(&row.id),
        id: row.id,
        name: row.name,
        roles: row.roles,
        key_manager: row.key_manager,
        key_fingerprint: row.fingerprint,
        oaep_hashes: row.oaep_hashes,
        enrolled_at: row.enrolled_at_ms / 1000,
    }
}

async fn current_holders(s: &AppState) -> Result<Vec<String>> {
    let mut c = s.store.read.acquire().await.map_err(Error::db("acquire"))?;
    Ok(match servers::current_master_key(&mut c).await? {
        Some(m) => servers::holders(&mut c, &m.id).await?,
        None => vec![],
    })
}

pub async fn list(State(s): State<Arc<AppState>>, AuthUser(_u): AuthUser) -> Result<Response> {
    let holders = current_holders(&s).await?;
    let mut out = Vec::new();
    for row in servers::list(&s.store.read).await? {
        out.push(view(&s, row, &holders).await);
    }
    Ok(json(out))
}

pub async fn show(
    State(s): State<Arc<AppState>>,
    AuthUser(_u): AuthUser,
    Path(server): Path<String>,
) -> Result<Response> {
    let row = servers::find(&s.store.read, &server)
        .await?
        .ok_or_else(|| Error::not_found("server"))?;
    let holders = current_holders(&s).await?;
    Ok(json(view(&s, row, &holders).await))
}

pub async fn join_token(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    ApiJson(req): ApiJson<CreateJoinToken>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    let ttl = req.ttl_seconds.unwrap_or(3600);
    if ttl == 0 || ttl > 7 * 24 * 3600 {
        return Err(Error::invalid("ttl_seconds must be between 1 and 604800"));
    }
    let secret = TokenSecret::generate("cjt")?;
    let expires = now_ms() + (ttl * 1000) as i64;
    let mut tx = s.begin().await?;
    users::insert_join_token(&mut tx.c, &secret.hash_hex(), &u.id, expires).await?;
    tx.audit(
        &u.actor(),
        "server.join_token",
        "join_token",
        "ok",
        j!({"expires_at_ms": expires}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(JoinToken {
            token: secret.expose().to_string(),
            expires_at: expires / 1000,
        }),
    )
        .into_response())
}

/// `PUT /v1/servers/{server}/key-manager`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyManagerFlag {
    enabled: bool,
}

pub async fn set_key_manager(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(server): Path<String>,
    ApiJson(req): ApiJson<KeyManagerFlag>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    let mut tx = s.begin().await?;
    let row = servers::find(&mut *tx.c, &server)
        .await?
        .ok_or_else(|| Error::not_found("server"))?;
    if req.enabled && !row.roles.contains(&AgentRole::KeyManager) {
        return Err(Error::api(
            ErrorCode::InvalidState,
            "this agent did not offer the key_manager role at enrollment",
        ));
    }
    if row.key_manager != req.enabled {
        servers::set_key_manager(&mut tx.c, &row.id, req.enabled).await?;
        tx.audit(
            &u.actor(),
            if req.enabled {
                "server.enable_key_manager"
            } else {
                "server.disable_key_manager"
            },
            &format!("server:{}", row.id),
            "ok",
            j!({}),
        )
        .await?;
        if req.enabled {
            crate::masterkey::reconcile(&mut tx, &u.actor()).await?;
        } else {
            crate::routing::release_server_jobs(&mut tx, &row.id, false).await?;
        }
    }
    let row = servers::find(&mut *tx.c, &row.id)
        .await?
        .ok_or_else(|| Error::not_found("server"))?;
    tx.commit().await?;
    let holders = current_holders(&s).await?;
    Ok(json(view(&s, row, &holders).await))
}

pub async fn remove(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(server): Path<String>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    let mut tx = s.begin().await?;
    let row = servers::find(&mut *tx.c, &server)
        .await?
        .ok_or_else(|| Error::not_found("server"))?;
    let envs_of = crate::store::approvals::envs_with_server(&mut tx.c, &row.id).await?;
    servers::remove(&mut tx.c, &row.id).await?;
    tx.audit(
        &u.actor(),
        "server.remove",
        &format!("server:{}", row.id),
        "ok",
        j!({"name": row.name}),
    )
    .await?;
    for env in envs_of {
        crate::approvals::on_environment_servers_changed(&mut tx, &env, &u.actor()).await?;
    }
    crate::routing::release_server_jobs(&mut tx, &row.id, true).await?;
    crate::masterkey::on_server_removed(&mut tx, &u.actor()).await?;
    tx.commit().await?;
    s.presence.forget(&row.id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn master_key(
    State(s): State<Arc<AppState>>,
    AuthUser(_u): AuthUser,
) -> Result<Response> {
    let mut tx = s.begin().await?;
    let st = crate::masterkey::status(&mut tx).await?;
    tx.commit().await?;
    Ok(json(st))
}

/// `GET /v1/master-key/holders`: the current holders' public keys.
pub async fn master_key_holders(
    State(s): State<Arc<AppState>>,
    AuthUser(_u): AuthUser,
) -> Result<Response> {
    let mut c = s.store.read.acquire().await.map_err(Error::db("acquire"))?;
    let (master_key_id, holders) = crate::releases::current_holders(&mut c).await?;
    Ok(json(custody_proto::servers::MasterKeyHolders {
        master_key_id,
        key_managers: holders.iter().map(|h| h.key()).collect(),
    }))
}

/// A job as listed (no payload).
#[derive(Debug, Serialize, Deserialize)]
pub struct JobInfo {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    /// The object the job works on (master key, release, variable or deployment id).
    subject: String,
    state: String,
    assigned_server: Option<String>,
    attempts: u32,
    tried: Vec<String>,
    done_by: Option<String>,
    error: Option<String>,
    created_at_ms: i64,
}

pub async fn jobs(State(s): State<Arc<AppState>>, AuthUser(u): AuthUser) -> Result<Response> {
    u.require(&[Role::Owner, Role::Deployer])?;
    let rows = crate::store::jobs::list(&s.store.read, 500).await?;
    Ok(json(
        rows.into_iter()
            .map(|(r, done_by, error)| JobInfo {
                id: r.id,
                kind: r.kind.as_str().into(),
                subject: crate::jobspec::Spec::from_json(&r.spec)
                    .map(|s| s.subject().to_string())
                    .unwrap_or_default(),
                state: if r.state == "queued" && r.assigned_server.is_none() {
                    "waiting".into()
                } else {
                    r.state
                },
                assigned_server: r.assigned_server,
                attempts: r.attempts,
                tried: r.tried,
                done_by,
                error,
                created_at_ms: r.created_at_ms,
            })
            .collect::<Vec<_>>(),
    ))
}
