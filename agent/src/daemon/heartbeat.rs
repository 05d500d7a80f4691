//! Heartbeats: `POST /v1/agent/heartbeat` every `heartbeat_interval_seconds`.
//! Long polls count as contact too, but a busy agent (all pollers running
//! jobs) still heartbeats so it stays live.

use std::sync::Arc;

use tokio::sync::watch;

use super::Context;
use crate::link::AGENT_VERSION;

/// Heartbeats until draining starts.
pub async fn run(ctx: Arc<Context>, mut drain: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(ctx.heartbeat_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = drain.changed() => return,
        }
        match ctx.client.heartbeat(AGENT_VERSION).await {
            Ok(_) => ctx.set_online(true, ""),
            Err(e) => {
                let detail = crate::link::describe_plain(&e);
                tracing::debug!(error = %detail, "heartbeat failed");
                ctx.set_online(false, &detail);
            }
        }
    }
}
