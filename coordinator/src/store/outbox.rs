//! The notification outbox and the account's webhooks.

use super::{new_id, now_ms};
use crate::error::{Error, Result};
use custody_proto::notify::{Delivery, DeliveryState, Webhook};
use sqlx::{Row, SqliteConnection, sqlite::SqliteRow};

/// Delivery channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// SMTP.
    Email,
    /// HTTP POST.
    Webhook,
}

impl Channel {
    /// Column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }
}

/// One outbox row.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// Id (`ntf_…`).
    pub id: String,
    /// email | webhook.
    pub channel: String,
    /// Address or webhook id.
    pub recipient: String,
    /// Event name.
    pub event: String,
    /// Deployment.
    pub deployment_id: String,
    /// JSON payload.
    pub payload: String,
    /// pending | sent | failed.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Due, ms.
    pub next_attempt_at_ms: i64,
    /// Last HTTP status.
    pub last_status: Option<i64>,
    /// Last error.
    pub last_error: Option<String>,
    /// Created, ms.
    pub created_at_ms: i64,
    /// Delivered, ms.
    pub sent_at_ms: Option<i64>,
}

impl OutboxRow {
    /// The API view.
    pub fn public(&self) -> Delivery {
        let state = DeliveryState::parse(&self.state).unwrap_or(DeliveryState::Failed);
        Delivery {
            id: self.id.clone(),
            channel: self.channel.clone(),
            recipient: self.recipient.clone(),
            event: self.event.clone(),
            deployment_id: self.deployment_id.clone(),
            state,
            attempts: self.attempts,
            last_status: self.last_status.and_then(|s| u16::try_from(s).ok()),
            last_error: self.last_error.clone(),
            created_at_ms: self.created_at_ms,
            next_attempt_at_ms: (state == DeliveryState::Pending)
                .then_some(self.next_attempt_at_ms),
            sent_at_ms: self.sent_at_ms,
        }
    }
}

fn from_row(r: &SqliteRow) -> OutboxRow {
    OutboxRow {
        id: r.get("id"),
        channel: r.get("channel"),
        recipient: r.get("recipient"),
        event: r.get("event"),
        deployment_id: r.get("deployment_id"),
        payload: r.get("payload"),
        state: r.get("state"),
        attempts: r.get::<i64, _>("attempts").clamp(0, i64::from(u32::MAX)) as u32,
        next_attempt_at_ms: r.get("next_attempt_at_ms"),
        last_status: r.get("last_status"),
        last_error: r.get("last_error"),
        created_at_ms: r.get("created_at_ms"),
        sent_at_ms: r.get("sent_at_ms"),
    }
}

/// Queues a notification (in the caller's transaction); `id` is chosen by
/// the caller so a payload can carry it.
pub async fn enqueue(
    c: &mut SqliteConnection,
    id: &str,
    channel: Channel,
    recipient: &str,
    event: &str,
    deployment_id: &str,
    payload: &str,
) -> Result<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO outbox (id, channel, recipient, event, deployment_id, payload, state, attempts, next_attempt_at_ms, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
    )
    .bind(id)
    .bind(channel.as_str())
    .bind(recipient)
    .bind(event)
    .bind(deployment_id)
    .bind(payload)
    .bind(now)
    .execute(&mut *c)
    .await
    .map_err(Error::db("queue notification"))?;
    Ok(())
}

/// A new outbox id.
pub fn new_outbox_id() -> String {
    new_id("ntf")
}

/// Pending rows of a channel due at `now`, oldest first.
pub async fn due(
    pool: &sqlx::SqlitePool,
    channel: Channel,
    now: i64,
    limit: i64,
) -> Result<Vec<OutboxRow>> {
    Ok(sqlx::query(
        "SELECT * FROM outbox WHERE channel = $1 AND state = 'pending' AND next_attempt_at_ms <= $2 \
         ORDER BY next_attempt_at_ms, id LIMIT $3",
    )
    .bind(channel.as_str())
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(Error::db("read outbox"))?
    .iter()
    .map(from_row)
    .collect())
}

/// The earliest pending due time of a channel.
pub async fn next_due(pool: &sqlx::SqlitePool, channel: Channel) -> Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT MIN(next_attempt_at_ms) FROM outbox WHERE channel = $1 AND state = 'pending'",
    )
    .bind(channel.as_str())
    .fetch_one(pool)
    .await
    .map_err(Error::db("read outbox"))
}

/// The outcome of one attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// New state.
    pub state: DeliveryState,
    /// Next try, ms (pending only).
    pub next_attempt_at_ms: i64,
    /// HTTP status, webhooks.
    pub status: Option<u16>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Records an attempt.
pub async fn record(c: &mut SqliteConnection, id: &str, a: &Attempt) -> Result<()> {
    let now = now_ms();
    sqlx::query(
        "UPDATE outbox SET state = $1, attempts = attempts + 1, next_attempt_at_ms = $2, \
         last_status = COALESCE($3, last_status), last_error = $4, \
         sent_at_ms = CASE WHEN $1 = 'sent' THEN $5 ELSE sent_at_ms END WHERE id = $6",
    )
    .bind(a.state.as_str())
    .bind(a.next_attempt_at_ms)
    .bind(a.status.map(i64::from))
    .bind(a.error.as_deref())
    .bind(now)
    .bind(id)
    .execute(&mut *c)
    .await
    .map_err(Error::db("record delivery attempt"))?;
    Ok(())
}

/// Newest rows first, optionally of one deployment or one recipient.
pub async fn list(
    pool: &sqlx::SqlitePool,
    deployment: Option<&str>,
    recipient: Option<&str>,
    limit: i64,
) -> Result<Vec<OutboxRow>> {
    Ok(sqlx::query(
        "SELECT * FROM outbox WHERE ($1 IS NULL OR deployment_id = $1) AND ($2 IS NULL OR recipient = $2) \
         ORDER BY created_at_ms DESC, id DESC LIMIT $3",
    )
    .bind(deployment)
    .bind(recipient)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(Error::db("list notifications"))?
    .iter()
    .map(from_row)
    .collect())
}

fn webhook_from_row(r: &SqliteRow) -> Webhook {
    Webhook {
        id: r.get("id"),
        url: r.get("url"),
        description: r.get("description"),
        created_at: r.get::<i64, _>("created_at_ms") / 1000,
    }
}

/// Adds a webhook.
pub async fn add_webhook(
    c: &mut SqliteConnection,
    url: &str,
    description: Option<&str>,
    created_by: &str,
) -> Result<Webhook> {
    let id = new_id("whk");
    let now = now_ms();
    sqlx::query(
        "INSERT INTO webhooks (id, url, description, created_by, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(url)
    .bind(description)
    .bind(created_by)
    .bind(now)
    .execute(&mut *c)
    .await
    .map_err(Error::db("add webhook"))?;
    Ok(Webhook {
        id,
        url: url.into(),
        description: description.map(str::to_string),
        created_at: now / 1000,
    })
}

/// Live webhooks.
pub async fn webhooks<'e, E>(c: E) -> Result<Vec<Webhook>>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    Ok(
        sqlx::query(
            "SELECT * FROM webhooks WHERE removed_at_ms IS NULL ORDER BY created_at_ms, id",
        )
        .fetch_all(c)
        .await
        .map_err(Error::db("list webhooks"))?
        .iter()
        .map(webhook_from_row)
        .collect(),
    )
}

/// A live webhook.
pub async fn webhook<'e, E>(c: E, id: &str) -> Result<Option<Webhook>>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    Ok(
        sqlx::query("SELECT * FROM webhooks WHERE id = $1 AND removed_at_ms IS NULL")
            .bind(id)
            .fetch_optional(c)
            .await
            .map_err(Error::db("read webhook"))?
            .as_ref()
            .map(webhook_from_row),
    )
}

/// Removes a webhook; its pending deliveries are given up.
pub async fn remove_webhook(c: &mut SqliteConnection, id: &str) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE webhooks SET removed_at_ms = $1 WHERE id = $2 AND removed_at_ms IS NULL",
    )
    .bind(now_ms())
    .bind(id)
    .execute(&mut *c)
    .await
    .map_err(Error::db("remove webhook"))?
    .rows_affected();
    sqlx::query(
        "UPDATE outbox SET state = 'failed', last_error = 'the webhook was removed' \
         WHERE channel = 'webhook' AND recipient = $1 AND state = 'pending'",
    )
    .bind(id)
    .execute(&mut *c)
    .await
    .map_err(Error::db("give up removed webhook's deliveries"))?;
    Ok(n > 0)
}
