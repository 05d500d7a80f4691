//! Notifications of deployment state changes: approval requests by email
//! to the eligible approvers, a mail to the deployer on every later change,
//! and a signed JSON payload to every webhook.
//!
//! Durable and asynchronous: [`deployment_changed`] only writes outbox rows
//! in the transaction of the state change (so a change and its
//! notifications commit together, and a restart loses none); one
//! background task per channel ([`drain`]) sends them, retrying with
//! exponential backoff. A mail server or webhook that fails never blocks
//! or fails a state change. Delivery is at least once: an attempt cut off
//! by a shutdown is made again after the restart.

pub mod email;
pub mod render;
pub mod webhook;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::state::{AppState, Tx};
use crate::store::outbox::{self, Attempt, Channel, OutboxRow};
use crate::store::{apps, deployments as dstore, now_ms, servers, users};
use custody_proto::apps::DeploymentState as S;
use custody_proto::notify::{
    DeliveryState, EVENT_DEPLOYMENT_STATE, WEBHOOK_DELIVERY_HEADER, WEBHOOK_EVENT_HEADER,
    WEBHOOK_SIGNATURE_HEADER, WebhookPayload,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The sending side: mailer, webhook client and key, wake-ups.
pub struct Notifier {
    mailer: Option<email::Mailer>,
    http: reqwest::Client,
    /// Derives webhook secrets.
    pub webhook_key: webhook::WebhookKey,
    console_url: String,
    wake_email: Notify,
    wake_webhook: Notify,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("email", &self.mailer.is_some())
            .field("console_url", &self.console_url)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Sets up from the config (reads credentials, CA files and the
    /// webhook key now, so a bad setup fails at start).
    pub fn new(config: &Config, public_url: &str) -> Result<Self> {
        let n = &config.notifications;
        let mailer = match &config.email {
            Some(e) => Some(email::Mailer::new(e, &n.ca_file)?),
            None => None,
        };
        Ok(Notifier {
            mailer,
            http: webhook::http_client(&n.ca_file, Duration::from_secs(n.webhook_timeout_seconds))?,
            webhook_key: webhook::WebhookKey::load_or_create(
                &config.state_dir.join("webhook.key"),
            )?,
            console_url: n
                .console_url
                .clone()
                .unwrap_or_else(|| public_url.to_string())
                .trim_end_matches('/')
                .to_string(),
            wake_email: Notify::new(),
            wake_webhook: Notify::new(),
        })
    }

    /// Whether email is configured.
    pub fn email_enabled(&self) -> bool {
        self.mailer.is_some()
    }

    /// The link to a deployment.
    pub fn deployment_url(&self, id: &str) -> String {
        format!("{}/deployments/{id}", self.console_url)
    }

    /// Wakes the senders (after a commit that queued notifications).
    pub fn wake(&self) {
        self.wake_email.notify_one();
        self.wake_webhook.notify_one();
    }
}

async fn user_label(tx: &mut Tx<'_>, id: &str) -> Result<String> {
    Ok(match users::find_user(&mut *tx.c, id).await? {
        Some(u) => format!("{} ({})", u.name, u.id),
        None => id.to_string(),
    })
}

/// Queues the notifications of one state change (in `tx`): webhooks
/// always; with email configured, approval requests to the eligible
/// approvers on entering `pending_approval`, and a mail to the deployer on
/// every change after creation.
pub async fn deployment_changed(
    tx: &mut Tx<'_>,
    id: &str,
    from: Option<S>,
    to: S,
    actor: &str,
    message: Option<&str>,
) -> Result<()> {
    let d = dstore::get(&mut tx.c, id)
        .await?
        .ok_or_else(|| Error::not_found("deployment"))?;
    let account = tx.state().account.clone();
    let notifier = tx.state().notifier.clone();
    let url = notifier.deployment_url(id);
    let mut queued = false;

    let hooks = outbox::webhooks(&mut *tx.c).await?;
    if !hooks.is_empty() {
        let view = crate::approvals::public(&mut tx.c, &account, &d).await?;
        for h in hooks {
            let nid = outbox::new_outbox_id();
            let payload = WebhookPayload {
                id: nid.clone(),
                event: EVENT_DEPLOYMENT_STATE.into(),
                account: account.clone(),
                at_ms: now_ms(),
                from,
                to,
                actor: actor.to_string(),
                message: message.map(str::to_string),
                deployment: view.clone(),
                url: url.clone(),
            };
            let body = serde_json::to_string(&payload)
                .map_err(|e| Error::Internal(format!("webhook payload: {e}")))?;
            outbox::enqueue(
                &mut tx.c,
                &nid,
                Channel::Webhook,
                &h.id,
                EVENT_DEPLOYMENT_STATE,
                id,
                &body,
            )
            .await?;
            queued = true;
        }
    }

    if notifier.email_enabled() {
        let mut mails = vec![];
        let wants_approvers = to == S::PendingApproval;
        let wants_deployer = from.is_some();
        if wants_approvers || wants_deployer {
            let facts = facts(tx, &d, url.clone()).await?;
            if wants_approvers && let Some(p) = d.approval.clone() {
                for uid in crate::approvals::eligible(&mut tx.c, &d, &p).await? {
                    if let Some(addr) = users::find_user(&mut *tx.c, &uid)
                        .await?
                        .and_then(|u| u.email)
                    {
                        mails.push(render::approval_request(&addr, &facts));
                    }
                }
            }
            if wants_deployer
                && let Some(addr) = users::find_user(&mut *tx.c, &d.created_by)
                    .await?
                    .and_then(|u| u.email)
            {
                let who = match actor.strip_prefix("user:") {
                    Some(uid) => user_label(tx, uid).await?,
                    None => actor.to_string(),
                };
                mails.push(render::state_change(&addr, &facts, from, to, &who, message));
            }
        }
        for m in mails {
            let body = serde_json::to_string(&m)
                .map_err(|e| Error::Internal(format!("mail payload: {e}")))?;
            outbox::enqueue(
                &mut tx.c,
                &outbox::new_outbox_id(),
                Channel::Email,
                &m.to,
                EVENT_DEPLOYMENT_STATE,
                id,
                &body,
            )
            .await?;
            queued = true;
        }
    }
    if queued {
        tx.wake_outbox();
    }
    Ok(())
}

async fn facts(tx: &mut Tx<'_>, d: &dstore::DeploymentRow, url: String) -> Result<render::Facts> {
    let rel = apps::get_release(&mut tx.c, &d.release_id).await?;
    let mut targets = vec![];
    for (t, _) in dstore::targets(&mut tx.c, &d.id).await? {
        let name = servers::find(&mut *tx.c, &t.server_id)
            .await?
            .map(|s| s.name)
            .unwrap_or_else(|| "removed".into());
        targets.push(format!("{name} ({})", t.server_id));
    }
    let account = tx.state().account.clone();
    let approvals = match &d.approval {
        Some(p) => Some((
            crate::approvals::evaluate(&mut tx.c, &account, d, now_ms())
                .await?
                .counted,
            p.quorum,
        )),
        None => None,
    };
    Ok(render::Facts {
        deployment_id: d.id.clone(),
        app: d.app.clone(),
        release: d.release_id.clone(),
        package_sha256: rel
            .and_then(|r| r.public.package_sha256)
            .unwrap_or_default(),
        environment: d.environment.clone(),
        deployer: user_label(tx, &d.created_by).await?,
        targets,
        approvals,
        deadline_at: d
            .approval
            .as_ref()
            .filter(|_| matches!(d.state, S::PendingApproval | S::Approved))
            .map(|p| p.deadline_ms / 1000),
        url,
    })
}

/// Delay before retry number `attempt` (1-based): initial × 2^(attempt−1),
/// at most `max`.
pub fn backoff_ms(initial: u64, max: u64, attempt: u32) -> u64 {
    let shift = attempt.saturating_sub(1).min(40);
    initial.saturating_mul(1u64 << shift).min(max)
}

/// What one attempt returned.
struct Outcome {
    ok: bool,
    permanent: bool,
    status: Option<u16>,
    error: Option<String>,
}

async fn deliver_email(state: &AppState, row: &OutboxRow) -> Outcome {
    let Some(mailer) = &state.notifier.mailer else {
        return Outcome {
            ok: false,
            permanent: true,
            status: None,
            error: Some("email is not configured".into()),
        };
    };
    let mail: render::Mail = match serde_json::from_str(&row.payload) {
        Ok(m) => m,
        Err(e) => {
            return Outcome {
                ok: false,
                permanent: true,
                status: None,
                error: Some(format!("stored mail: {e}")),
            };
        }
    };
    match mailer.send(&mail).await {
        Ok(()) => Outcome {
            ok: true,
            permanent: false,
            status: None,
            error: None,
        },
        Err(e) => Outcome {
            ok: false,
            permanent: e.permanent,
            status: None,
            error: Some(e.message),
        },
    }
}

async fn deliver_webhook(state: &AppState, row: &OutboxRow) -> Outcome {
    let fail = |permanent: bool, status: Option<u16>, error: String| Outcome {
        ok: false,
        permanent,
        status,
        error: Some(error),
    };
    let hook = match outbox::webhook(&state.store.read, &row.recipient).await {
        Ok(Some(h)) => h,
        Ok(None) => return fail(true, None, "the webhook was removed".into()),
        Err(e) => return fail(false, None, format!("reading the webhook: {e}")),
    };
    let secret = match state.notifier.webhook_key.secret(&hook.id) {
        Ok(s) => s,
        Err(e) => return fail(false, None, e.to_string()),
    };
    let t = now_ms() / 1000;
    let sig = match webhook::signature_header(&secret, t, row.payload.as_bytes()) {
        Ok(s) => s,
        Err(e) => return fail(false, None, e.to_string()),
    };
    let resp = state
        .notifier
        .http
        .post(&hook.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(WEBHOOK_SIGNATURE_HEADER, sig)
        .header(WEBHOOK_EVENT_HEADER, &row.event)
        .header(WEBHOOK_DELIVERY_HEADER, &row.id)
        .body(row.payload.clone())
        .send()
        .await;
    match resp {
        Ok(r) if r.status().is_success() => Outcome {
            ok: true,
            permanent: false,
            status: Some(r.status().as_u16()),
            error: None,
        },
        Ok(r) => {
            let s = r.status().as_u16();
            fail(false, Some(s), format!("the receiver answered HTTP {s}"))
        }
        Err(e) => {
            let why = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "request failed"
            };
            fail(false, None, why.to_string())
        }
    }
}

async fn attempt(state: &AppState, channel: Channel, row: &OutboxRow) -> Result<()> {
    let out = match channel {
        Channel::Email => deliver_email(state, row).await,
        Channel::Webhook => deliver_webhook(state, row).await,
    };
    let n = &state.config.notifications;
    let attempts = row.attempts + 1;
    let a = if out.ok {
        Attempt {
            state: DeliveryState::Sent,
            next_attempt_at_ms: row.next_attempt_at_ms,
            status: out.status,
            error: None,
        }
    } else {
        let give_up = out.permanent || attempts >= n.max_attempts;
        if let Some(e) = &out.error {
            tracing::info!(id = %row.id, channel = channel.as_str(), attempts, give_up, error = %e, "notification not delivered");
        }
        Attempt {
            state: if give_up {
                DeliveryState::Failed
            } else {
                DeliveryState::Pending
            },
            next_attempt_at_ms: now_ms()
                + backoff_ms(n.retry_initial_ms, n.retry_max_ms, attempts) as i64,
            status: out.status,
            error: out.error.map(|e| e.chars().take(500).collect()),
        }
    };
    let mut tx = state.begin().await?;
    outbox::record(&mut tx.c, &row.id, &a).await?;
    tx.commit().await
}

/// Sends due notifications of one channel until shutdown.
pub async fn drain(state: Arc<AppState>, channel: Channel) {
    let mut shutdown = state.shutdown.clone();
    let poll = state.config.notifications.poll_interval_ms;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let wake = match channel {
            Channel::Email => &state.notifier.wake_email,
            Channel::Webhook => &state.notifier.wake_webhook,
        };
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = now_ms();
        match outbox::due(&state.store.read, channel, now, 20).await {
            Ok(rows) => {
                for row in &rows {
                    if *shutdown.borrow() {
                        return;
                    }
                    if let Err(e) = attempt(&state, channel, row).await {
                        tracing::warn!(error = %e, "recording a delivery attempt failed");
                    }
                }
                if !rows.is_empty() {
                    continue;
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the outbox failed"),
        }
        let wait = match outbox::next_due(&state.store.read, channel).await {
            Ok(Some(t)) => (t - now_ms()).clamp(1, poll as i64) as u64,
            _ => poll,
        };
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff_ms(100, 1000, 1), 100);
        assert_eq!(backoff_ms(100, 1000, 2), 200);
        assert_eq!(backoff_ms(100, 1000, 4), 800);
        assert_eq!(backoff_ms(100, 1000, 5), 1000);
        assert_eq!(backoff_ms(100, 1000, 200), 1000);
    }
}
