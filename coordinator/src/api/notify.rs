//! Webhooks (owner) and the delivery log of the notification outbox.

use super::{ApiJson, json};
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::outbox;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use custody_proto::admin::Role;
use custody_proto::notify::{CreateWebhook, Delivery, WebhookCreated};
use serde::Deserialize;
use serde_json::json as j;
use std::sync::Arc;

/// `POST /v1/webhooks` → 201 with the secret (shown once).
pub async fn create_webhook(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    ApiJson(req): ApiJson<CreateWebhook>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    crate::notify::webhook::check_url(&req.url)?;
    if req
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 200)
    {
        return Err(Error::invalid("description is longer than 200 characters"));
    }
    let mut tx = s.begin().await?;
    let w = outbox::add_webhook(&mut tx.c, &req.url, req.description.as_deref(), &u.id).await?;
    tx.audit(
        &u.actor(),
        "webhook.create",
        &format!("webhook:{}", w.id),
        "ok",
        j!({"url": w.url}),
    )
    .await?;
    let secret = s.notifier.webhook_key.secret(&w.id)?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(WebhookCreated {
            webhook: w,
            secret: secret.to_string(),
        }),
    )
        .into_response())
}

/// `GET /v1/webhooks`.
pub async fn list_webhooks(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    Ok(json(outbox::webhooks(&s.store.read).await?))
}

/// `DELETE /v1/webhooks/{id}`: pending deliveries are given up.
pub async fn remove_webhook(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    let mut tx = s.begin().await?;
    if !outbox::remove_webhook(&mut tx.c, &id).await? {
        return Err(Error::not_found("webhook"));
    }
    tx.audit(
        &u.actor(),
        "webhook.remove",
        &format!("webhook:{id}"),
        "ok",
        j!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/webhooks/{id}/deliveries`: newest first (at most 500).
pub async fn deliveries(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    let rows = outbox::list(&s.store.read, None, Some(&id), 500).await?;
    Ok(json(
        rows.iter().map(|r| r.public()).collect::<Vec<Delivery>>(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsQuery {
    deployment: Option<String>,
}

/// `GET /v1/notifications?deployment=ID`: every email and webhook
/// delivery, newest first (at most 500).
pub async fn notifications(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Query(q): Query<NotificationsQuery>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    let rows = outbox::list(&s.store.read, q.deployment.as_deref(), None, 500).await?;
    Ok(json(
        rows.iter().map(|r| r.public()).collect::<Vec<Delivery>>(),
    ))
}
