//! Environments: create, list, add target servers, set variables (plain,
//! or secret: wrapped to key managers and sealed under MK by one of them).

use super::{ApiJson, json};
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::jobspec::Spec;
use crate::state::AppState;
use crate::store::{approvals as astore, apps, envs, servers, users};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use custody_proto::admin::Role;
use custody_proto::approvals::{ApprovalPolicy, MAX_WINDOW_SECONDS, SetApprovalPolicy};
use custody_proto::apps::{AddEnvironmentServer, CreateEnvironment, Environment, SetVariable};
use custody_proto::servers::AgentRole;
use serde_json::json as j;
use sqlx::SqliteConnection;
use std::sync::Arc;

async fn view(c: &mut SqliteConnection, app: &str, env: &envs::EnvRow) -> Result<Environment> {
    let approval = match astore::policy(c, &env.id).await? {
        Some(p) => Some(ApprovalPolicy {
            group: astore::group_name(c, &p.group_id).await?,
            group_id: p.group_id,
            quorum: p.quorum,
            allow_self_approval: p.allow_self_approval,
            window_seconds: p.window_seconds,
        }),
        None => None,
    };
    Ok(Environment {
        id: env.id.clone(),
        app: app.to_string(),
        name: env.name.clone(),
        servers: envs::env_servers(c, &env.id).await?,
        variables: envs::env_vars(c, &env.id)
            .await?
            .iter()
            .map(|v| v.public())
            .collect(),
        approval,
    })
}

pub async fn create(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(app): Path<String>,
    ApiJson(req): ApiJson<CreateEnvironment>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    custody_proto::ids::validate("environment name", &req.name)?;
    let mut tx = s.begin().await?;
    let a = apps::find_app(&mut *tx.c, &app)
        .await?
        .ok_or_else(|| Error::not_found("app"))?;
    let env = envs::create_env(&mut tx.c, &a.id, &req.name).await?;
    tx.audit(
        &u.actor(),
        "environment.create",
        &format!("environment:{}", env.id),
        "ok",
        j!({"app": a.name, "name": env.name}),
    )
    .await?;
    let v = view(&mut tx.c, &a.name, &env).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

pub async fn list(
    State(s): State<Arc<AppState>>,
    AuthUser(_u): AuthUser,
    Path(app): Path<String>,
) -> Result<Response> {
    let mut c = s.store.read.acquire().await.map_err(Error::db("acquire"))?;
    let a = apps::find_app(&mut *c, &app)
        .await?
        .ok_or_else(|| Error::not_found("app"))?;
    let mut out = Vec::new();
    for e in envs::list_envs(&mut c, &a.id).await? {
        out.push(view(&mut c, &a.name, &e).await?);
    }
    Ok(json(out))
}

pub async fn show(
    State(s): State<Arc<AppState>>,
    AuthUser(_u): AuthUser,
    Path((app, env)): Path<(String, String)>,
) -> Result<Response> {
    let mut c = s.store.read.acquire().await.map_err(Error::db("acquire"))?;
    let a = apps::find_app(&mut *c, &app)
        .await?
        .ok_or_else(|| Error::not_found("app"))?;
    let e = envs::find_env(&mut c, &a.id, &env)
        .await?
        .ok_or_else(|| Error::not_found("environment"))?;
    Ok(json(view(&mut c, &a.name, &e).await?))
}

pub async fn add_server(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path((app, env)): Path<(String, String)>,
    ApiJson(req): ApiJson<AddEnvironmentServer>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    let mut tx = s.begin().await?;
    let a = apps::find_app(&mut *tx.c, &app)
        .await?
        .ok_or_else(|| Error::not_found("app"))?;
    let e = envs::find_env(&mut tx.c, &a.id, &env)
        .await?
        .ok_or_else(|| Error::not_found("environment"))?;
    let srv = servers::find(&mut *tx.c, &req.server)
        .await?
        .ok_or_else(|| Error::not_found("server"))?;
    if !srv.roles.contains(&AgentRole::Target) {
        return Err(Error::state(
            "this agent did not offer the target role at enrollment",
        ));
    }
    envs::add_env_server(&mut tx.c, &e.id, &srv.id).await?;
    tx.audit(
        &u.actor(),
        "environment.add_server",
        &format!("environment:{}", e.id),
        "ok",
        j!({"server": srv.id}),
    )
    .await?;
    crate::approvals::on_environment_servers_changed(&mut tx, &e.id, &u.actor()).await?;
    let v = view(&mut tx.c, &a.name, &e).await?;
    tx.commit().await?;
    Ok(json(v))
}

fn valid_var_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && !n.as_bytes()[0].is_ascii_digit()
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub async fn set_variable(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path((app, env, name)): Path<(String, String, String)>,
    ApiJson(req): ApiJson<SetVariable>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    if !valid_var_name(&name) {
        return Err(Error::invalid(
            "variable names are letters, digits and '_', not starting with a digit",
        ));
    }
    let mut tx = s.begin().await?;
    let a = apps::find_app(&mut *tx.c, &app)
        .await?
        .ok_or_else(|| Error::not_found("app"))?;
    let e = envs::find_env(&mut tx.c, &a.id, &env)
        .await?
        .ok_or_else(|| Error::not_found("environment"))?;
    let object = format!("environment:{}", e.id);
    match (req.value, req.wrapped) {
        (Some(v), None) => {
            if v.len() > 64 * 1024 {
                return Err(Error::invalid("value is longer than 64 KiB"));
            }
            envs::put_var(&mut tx.c, &e.id, &name, Some(&v), None).await?;
            tx.audit(
                &u.actor(),
                "variable.set",
                &object,
                "ok",
                j!({"name": name, "secret": false}),
            )
            .await?;
        }
        (None, Some(wraps)) => {
            let (mk, holders) = crate::releases::current_holders(&mut tx.c).await?;
            if wraps.is_empty() {
                return Err(Error::invalid("wrapped must hold at least one wrap"));
            }
            for w in &wraps {
                let Some(km) = holders.iter().find(|h| h.id == w.server_id) else {
                    return Err(Error::invalid(format!(
                        "{} is not a key manager holding the master key",
                        w.server_id
                    )));
                };
                crate::envelopes::check(
                    &w.jwe,
                    &s.account,
                    crate::envelopes::Expect::new(
                        "wrapped value",
                        custody_envelope::jwe::Purpose::SecretVar,
                        crate::envelopes::Kind::WrapTo,
                    )
                    .kid(&km.fingerprint)
                    .app(&a.name)
                    .environment(&e.name)
                    .name(&name),
                )?;
            }
            let var = envs::put_var(&mut tx.c, &e.id, &name, None, Some(&mk)).await?;
            for w in &wraps {
                envs::put_var_wrap(&mut tx.c, &var, &w.server_id, &w.jwe).await?;
            }
            tx.audit(
                &u.actor(),
                "variable.set",
                &object,
                "ok",
                j!({"name": name, "secret": true}),
            )
            .await?;
            crate::routing::enqueue(
                &mut tx,
                Spec::SealSecretVariable { variable_id: var },
                &u.actor(),
            )
            .await?;
        }
        _ => {
            return Err(Error::invalid(
                "give exactly one of value (plain) and wrapped (secret)",
            ));
        }
    }
    let v = view(&mut tx.c, &a.name, &e).await?;
    tx.commit().await?;
    Ok(json(v))
}

async fn app_env(
    tx: &mut crate::state::Tx<'_>,
    app: &str,
    env: &str,
) -> Result<(custody_proto::apps::App, envs::EnvRow)> {
    let a = apps::find_app(&mut *tx.c, app)
        .await?
        .ok_or_else(|| Error::not_found("app"))?;
    let e = envs::find_env(&mut tx.c, &a.id, env)
        .await?
        .ok_or_else(|| Error::not_found("environment"))?;
    Ok((a, e))
}

/// `DELETE /v1/apps/{app}/environments/{env}/servers/{server}` (owner).
pub async fn remove_server(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path((app, env, server)): Path<(String, String, String)>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    let mut tx = s.begin().await?;
    let (a, e) = app_env(&mut tx, &app, &env).await?;
    let srv = servers::find(&mut *tx.c, &server)
        .await?
        .ok_or_else(|| Error::not_found("server"))?;
    if !astore::remove_env_server(&mut tx.c, &e.id, &srv.id).await? {
        return Err(Error::not_found("server in this environment"));
    }
    tx.audit(
        &u.actor(),
        "environment.remove_server",
        &format!("environment:{}", e.id),
        "ok",
        j!({"server": srv.id}),
    )
    .await?;
    crate::approvals::on_environment_servers_changed(&mut tx, &e.id, &u.actor()).await?;
    let v = view(&mut tx.c, &a.name, &e).await?;
    tx.commit().await?;
    Ok(json(v))
}

/// `PUT /v1/apps/{app}/environments/{env}/approval` (owner).
pub async fn set_approval(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path((app, env)): Path<(String, String)>,
    ApiJson(req): ApiJson<SetApprovalPolicy>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    if req.quorum == 0 {
        return Err(Error::invalid("quorum must be at least 1"));
    }
    if req.window_seconds == 0 || req.window_seconds > MAX_WINDOW_SECONDS {
        return Err(Error::invalid(
            "window_seconds must be between 1 and 2592000 (30 days)",
        ));
    }
    let mut tx = s.begin().await?;
    let (a, e) = app_env(&mut tx, &app, &env).await?;
    let g = users::find_group(&mut tx.c, &req.group)
        .await?
        .ok_or_else(|| Error::not_found("group"))?;
    if (g.members.len() as u64) < u64::from(req.quorum) {
        return Err(Error::invalid(format!(
            "quorum {} is more than the {} member(s) of group {}: add approvers first",
            req.quorum,
            g.members.len(),
            g.name
        )));
    }
    let p = astore::PolicyRow {
        group_id: g.id.clone(),
        quorum: req.quorum,
        allow_self_approval: req.allow_self_approval,
        window_seconds: req.window_seconds,
    };
    astore::set_policy(&mut tx.c, &e.id, &p).await?;
    tx.audit(
        &u.actor(),
        "environment.set_approval",
        &format!("environment:{}", e.id),
        "ok",
        j!({"group": g.id, "quorum": p.quorum, "allow_self_approval": p.allow_self_approval,
            "window_seconds": p.window_seconds}),
    )
    .await?;
    let v = view(&mut tx.c, &a.name, &e).await?;
    tx.commit().await?;
    Ok(json(v))
}

/// `DELETE /v1/apps/{app}/environments/{env}/approval` (owner): new
/// deployments start at once; ones already waiting keep their policy.
pub async fn clear_approval(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path((app, env)): Path<(String, String)>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    let mut tx = s.begin().await?;
    let (a, e) = app_env(&mut tx, &app, &env).await?;
    let had = astore::clear_policy(&mut tx.c, &e.id).await?;
    tx.audit(
        &u.actor(),
        "environment.clear_approval",
        &format!("environment:{}", e.id),
        if had { "ok" } else { "unchanged" },
        j!({}),
    )
    .await?;
    let v = view(&mut tx.c, &a.name, &e).await?;
    tx.commit().await?;
    Ok(json(v))
}
