//! Notifications: webhooks (`/v1/webhooks`), their signed payloads, and
//! the delivery log of the coordinator's outbox (`/v1/notifications`).

use crate::apps::{Deployment, DeploymentState};
use serde::{Deserialize, Serialize};

/// Header carrying a webhook payload's signature:
/// `t=UNIX_SECONDS,v1=HEX(HMAC-SHA256(secret, "UNIX_SECONDS." ‖ body))`.
pub const WEBHOOK_SIGNATURE_HEADER: &str = "custody-signature";
/// Header carrying the event name.
pub const WEBHOOK_EVENT_HEADER: &str = "custody-event";
/// Header carrying the delivery id (the same on every retry).
pub const WEBHOOK_DELIVERY_HEADER: &str = "custody-delivery";

/// The one event sent today.
pub const EVENT_DEPLOYMENT_STATE: &str = "deployment.state_changed";

/// `POST /v1/webhooks` (owner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `https://…`, or `http://` to a loopback address.
    pub url: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A webhook as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Opaque id (`whk_…`).
    pub id: String,
    /// Where payloads are POSTed.
    pub url: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// The answer to [`CreateWebhook`]: the only time the secret is shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookCreated {
    /// The webhook.
    pub webhook: Webhook,
    /// The HMAC-SHA256 key for [`WEBHOOK_SIGNATURE_HEADER`] (base64url text;
    /// the HMAC key is these ASCII bytes).
    pub secret: String,
}

impl std::fmt::Debug for WebhookCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookCreated")
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

/// The JSON body POSTed to a webhook for every deployment state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookPayload {
    /// Delivery id (`ntf_…`), also in [`WEBHOOK_DELIVERY_HEADER`].
    pub id: String,
    /// [`EVENT_DEPLOYMENT_STATE`].
    pub event: String,
    /// Account id.
    pub account: String,
    /// When the change happened, Unix milliseconds.
    pub at_ms: i64,
    /// State before (absent for a new deployment).
    #[serde(default)]
    pub from: Option<DeploymentState>,
    /// State after.
    pub to: DeploymentState,
    /// Who caused it: `user:ID` or `coordinator`.
    pub actor: String,
    /// Decline / cancel message or failure reason.
    #[serde(default)]
    pub message: Option<String>,
    /// The deployment after the change.
    pub deployment: Deployment,
    /// The deployment's page on the coordinator.
    pub url: String,
}

/// `pending` (to be tried), `sent`, `failed` (gave up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Queued or waiting for a retry.
    Pending,
    /// Accepted by the mail server / answered 2xx.
    Sent,
    /// Gave up after the last attempt or a permanent refusal.
    Failed,
}

impl DeliveryState {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryState::Pending),
            "sent" => Some(DeliveryState::Sent),
            "failed" => Some(DeliveryState::Failed),
            _ => None,
        }
    }
}

/// One notification in the outbox and what became of it
/// (`GET /v1/notifications`, `GET /v1/webhooks/{id}/deliveries`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Id (`ntf_…`).
    pub id: String,
    /// `email` or `webhook`.
    pub channel: String,
    /// The address (email) or webhook id.
    pub recipient: String,
    /// Event name.
    pub event: String,
    /// The deployment it is about.
    pub deployment_id: String,
    /// State.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// HTTP status of the last webhook attempt.
    #[serde(default)]
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// Next attempt, Unix milliseconds (pending only).
    #[serde(default)]
    pub next_attempt_at_ms: Option<i64>,
    /// Unix milliseconds.
    #[serde(default)]
    pub sent_at_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let w = WebhookCreated {
            webhook: Webhook {
                id: "whk_1".into(),
                url: "https://x".into(),
                description: None,
                created_at: 0,
            },
            secret: "s3cr3t".into(),
        };
        assert!(!format!("{w:?}").contains("s3cr3t"));
        assert_eq!(DeliveryState::parse("sent"), Some(DeliveryState::Sent));
    }
}
