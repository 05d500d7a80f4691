//! Deployments: create (deployer), list, show, log; the approval actions
//! (approve, decline, start, cancel) and the approval records.

use super::{ApiJson, OptionalJson, json};
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::deployments as dstore;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use custody_proto::admin::Role;
use custody_proto::approvals::{ApproveDeployment, CancelDeployment, DeclineDeployment};
use custody_proto::apps::CreateDeployment;
use serde::Deserialize;
use std::sync::Arc;

pub async fn create(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    ApiJson(req): ApiJson<CreateDeployment>,
) -> Result<Response> {
    u.require(&[Role::Owner, Role::Deployer])?;
    let mut tx = s.begin().await?;
    let id = crate::deployments::create(&mut tx, &u.id, &req.app, &req.release, &req.environment)
        .await?;
    let d = dstore::get(&mut tx.c, &id)
        .await?
        .ok_or_else(|| Error::not_found("deployment"))?;
    let v = crate::approvals::public(&mut tx.c, &s.account, &d).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

pub async fn list(State(s): State<Arc<AppState>>, AuthUser(_u): AuthUser) -> Result<Response> {
    let mut c = s.store.read.acquire().await.map_err(Error::db("acquire"))?;
    let mut out = Vec::new();
    for d in dstore::list(&mut c, 200).await? {
        out.push(crate::approvals::public(&mut c, &s.account, &d).await?);
    }
    Ok(json(out))
}

pub async fn show(
    State(s): State<Arc<AppState>>,
    AuthUser(_u): AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let mut c = s.store.read.acquire().await.map_err(Error::db("acquire"))?;
    let d = dstore::get(&mut c, &id)
        .await?
        .ok_or_else(|| Error::not_found("deployment"))?;
    Ok(json(
        crate::approvals::public(&mut c, &s.account, &d).await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct LogQuery {
    after: Option<i64>,
}

pub async fn log(
    State(s): State<Arc<AppState>>,
    AuthUser(_u): AuthUser,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response> {
    Ok(json(
        dstore::log(&s.store.read, &id, q.after.unwrap_or(0)).await?,
    ))
}

/// `GET /v1/deployments/{id}/approvals`.
pub async fn approvals(
    State(s): State<Arc<AppState>>,
    AuthUser(_u): AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let mut c = s.store.read.acquire().await.map_err(Error::db("acquire"))?;
    Ok(json(crate::approvals::view(&mut c, &s.account, &id).await?))
}

/// `POST /v1/deployments/{id}/approve`.
pub async fn approve(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ApproveDeployment>,
) -> Result<Response> {
    Ok(json(crate::approvals::approve(&s, &u, &id, &req).await?))
}

/// `POST /v1/deployments/{id}/decline`.
pub async fn decline(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<DeclineDeployment>,
) -> Result<Response> {
    Ok(json(crate::approvals::decline(&s, &u, &id, &req).await?))
}

/// `POST /v1/deployments/{id}/start`.
pub async fn start(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    Ok(json(crate::approvals::start(&s, &u, &id).await?))
}

/// `POST /v1/deployments/{id}/cancel` (body optional).
pub async fn cancel(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<CancelDeployment>,
) -> Result<Response> {
    Ok(json(crate::approvals::cancel(&s, &u, &id, &req).await?))
}

/// `GET /v1/approvals`: deployments waiting for the caller's approval.
pub async fn pending(State(s): State<Arc<AppState>>, AuthUser(u): AuthUser) -> Result<Response> {
    let mut c = s.store.read.acquire().await.map_err(Error::db("acquire"))?;
    Ok(json(
        crate::approvals::pending_for(&mut c, &s.account, &u).await?,
    ))
}
