//! `/v1/info`, `/v1/whoami`, users, tokens, groups.

use super::{ApiJson, json};
use crate::auth::{AuthAny, AuthUser, TokenSecret};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{approvals as astore, users};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use custody_proto::admin::{
    AddMember, CreateGroup, CreateToken, CreateUser, Role, TokenCreated, WhoAmI,
};
use custody_proto::approvals::{SetApprovalKey, SetEmail};
use custody_proto::{ErrorCode, Info, ids};
use serde_json::json as j;
use std::sync::Arc;

pub async fn info(State(s): State<Arc<AppState>>, _a: AuthAny) -> Response {
    json(Info {
        account: s.account.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        protocol: custody_proto::PROTOCOL_VERSION,
        audit_public_key: hex::encode(s.audit_key.verifying_key().to_bytes()),
    })
}

pub async fn whoami(AuthUser(u): AuthUser) -> Response {
    json(WhoAmI {
        user_id: u.id,
        name: u.name,
        roles: u.roles,
    })
}

pub async fn create_user(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    ApiJson(req): ApiJson<CreateUser>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    ids::validate("user name", &req.name)?;
    if req.roles.is_empty() {
        return Err(Error::invalid("a user needs at least one role"));
    }
    if req.email.as_deref().is_some_and(|e| !valid_email(e)) {
        return Err(Error::invalid("email is not an address"));
    }
    let mut tx = s.begin().await?;
    let user = users::create_user(&mut tx.c, &req.name, &req.roles, req.email.as_deref()).await?;
    tx.audit(
        &u.actor(),
        "user.create",
        &format!("user:{}", user.id),
        "ok",
        j!({"name": user.name, "roles": user.roles}),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(user)).into_response())
}

pub async fn list_users(State(s): State<Arc<AppState>>, AuthUser(u): AuthUser) -> Result<Response> {
    u.require(&[Role::Owner])?;
    Ok(json(users::list_users(&s.store.read).await?))
}

pub async fn remove_user(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(user): Path<String>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    let mut tx = s.begin().await?;
    let target = users::find_user(&mut *tx.c, &user)
        .await?
        .ok_or_else(|| Error::not_found("user"))?;
    users::remove_user(&mut tx.c, &target).await?;
    tx.audit(
        &u.actor(),
        "user.remove",
        &format!("user:{}", target.id),
        "ok",
        j!({"name": target.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn create_token(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    ApiJson(req): ApiJson<CreateToken>,
) -> Result<Response> {
    let mut tx = s.begin().await?;
    let owner = match &req.user {
        Some(name) if name != &u.id && name != &u.name => {
            u.require(&[Role::Owner])?;
            users::find_user(&mut *tx.c, name)
                .await?
                .ok_or_else(|| Error::not_found("user"))?
                .id
        }
        _ => u.id.clone(),
    };
    if req.label.as_ref().is_some_and(|l| l.len() > 200) {
        return Err(Error::invalid("label is longer than 200 characters"));
    }
    let secret = TokenSecret::generate("cst")?;
    let id =
        users::insert_token(&mut tx.c, &secret, Some(&owner), None, req.label.as_deref()).await?;
    tx.audit(
        &u.actor(),
        "token.create",
        &format!("token:{id}"),
        "ok",
        j!({"user": owner, "prefix": secret.prefix()}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(TokenCreated {
            id,
            token: secret.expose().to_string(),
            prefix: secret.prefix(),
            user_id: owner,
        }),
    )
        .into_response())
}

pub async fn list_tokens(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
) -> Result<Response> {
    let all = u.roles.contains(&Role::Owner);
    Ok(json(
        users::list_tokens(&s.store.read, if all { None } else { Some(&u.id) }).await?,
    ))
}

pub async fn revoke_token(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let mut tx = s.begin().await?;
    let owner = users::token_owner(&mut tx.c, &id)
        .await?
        .ok_or_else(|| Error::not_found("token"))?;
    if owner != u.id {
        u.require(&[Role::Owner])?;
    }
    users::revoke_token(&mut tx.c, &id).await?;
    tx.audit(
        &u.actor(),
        "token.revoke",
        &format!("token:{id}"),
        "ok",
        j!({"user": owner}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn create_group(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    ApiJson(req): ApiJson<CreateGroup>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    ids::validate("group name", &req.name)?;
    let mut tx = s.begin().await?;
    let g = users::create_group(&mut tx.c, &req.name).await?;
    tx.audit(
        &u.actor(),
        "group.create",
        &format!("group:{}", g.id),
        "ok",
        j!({"name": g.name}),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(g)).into_response())
}

pub async fn list_groups(
    State(s): State<Arc<AppState>>,
    AuthUser(_u): AuthUser,
) -> Result<Response> {
    let mut c = s.store.read.acquire().await.map_err(Error::db("acquire"))?;
    Ok(json(users::list_groups(&mut c).await?))
}

pub async fn add_member(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(group): Path<String>,
    ApiJson(req): ApiJson<AddMember>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    let mut tx = s.begin().await?;
    let g = users::find_group(&mut tx.c, &group)
        .await?
        .ok_or_else(|| Error::not_found("group"))?;
    let member = users::find_user(&mut *tx.c, &req.user)
        .await?
        .ok_or_else(|| Error::not_found("user"))?;
    if !member.roles.contains(&Role::Approver) && !member.roles.contains(&Role::Owner) {
        return Err(Error::api(
            ErrorCode::InvalidInput,
            "group members must hold the approver or owner role",
        ));
    }
    users::add_member(&mut tx.c, &g.id, &member.id).await?;
    tx.audit(
        &u.actor(),
        "group.add_member",
        &format!("group:{}", g.id),
        "ok",
        j!({"user": member.id}),
    )
    .await?;
    let g = users::find_group(&mut tx.c, &g.id)
        .await?
        .ok_or_else(|| Error::not_found("group"))?;
    tx.commit().await?;
    Ok(json(g))
}

/// `PUT /v1/users/{user}/approval-key` (owner): registers the user's
/// Ed25519 approval public key (replacing any earlier one: approvals
/// signed with the old key stop counting).
pub async fn set_approval_key(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(user): Path<String>,
    ApiJson(req): ApiJson<SetApprovalKey>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    let key = custody_envelope::approval::parse_public_key(&req.public_key)
        .map_err(|e| Error::invalid(e.to_string()))?;
    let key_id = custody_envelope::approval::key_id(&key);
    let mut tx = s.begin().await?;
    let target = users::find_user(&mut *tx.c, &user)
        .await?
        .ok_or_else(|| Error::not_found("user"))?;
    if let Some(other) = astore::key_holder(&mut tx.c, &key_id, &target.id).await? {
        return Err(Error::api(
            ErrorCode::AlreadyExists,
            format!(
                "this key is already registered for user {other}: every approver needs their own key"
            ),
        ));
    }
    astore::set_user_key(
        &mut tx.c,
        &target.id,
        &custody_envelope::approval::public_key_hex(&key),
        &key_id,
    )
    .await?;
    tx.audit(
        &u.actor(),
        "user.set_approval_key",
        &format!("user:{}", target.id),
        "ok",
        j!({"key_id": key_id}),
    )
    .await?;
    let out = users::find_user(&mut *tx.c, &target.id)
        .await?
        .ok_or_else(|| Error::not_found("user"))?;
    tx.commit().await?;
    Ok(json(out))
}

/// `PUT /v1/users/{user}/email` (owner, or the user for themself).
pub async fn set_email(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(user): Path<String>,
    ApiJson(req): ApiJson<SetEmail>,
) -> Result<Response> {
    let mut tx = s.begin().await?;
    let target = users::find_user(&mut *tx.c, &user)
        .await?
        .ok_or_else(|| Error::not_found("user"))?;
    if target.id != u.id {
        u.require(&[Role::Owner])?;
    }
    let email = req
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    if let Some(e) = email
        && !valid_email(e)
    {
        return Err(Error::invalid("email is not an address"));
    }
    astore::set_email(&mut tx.c, &target.id, email).await?;
    tx.audit(
        &u.actor(),
        "user.set_email",
        &format!("user:{}", target.id),
        "ok",
        j!({"email": email}),
    )
    .await?;
    let out = users::find_user(&mut *tx.c, &target.id)
        .await?
        .ok_or_else(|| Error::not_found("user"))?;
    tx.commit().await?;
    Ok(json(out))
}

/// A plausible single address: `local@domain`, no spaces, no controls,
/// no angle brackets or commas (one recipient, no display name).
fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.rsplit_once('@') else {
        return false;
    };
    e.len() <= 254
        && !local.is_empty()
        && !domain.is_empty()
        && !e
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"()[]\\".contains(c))
        && e.parse::<lettre::Address>().is_ok()
}
