//! What happens to waiting deployments without an approver: their
//! environment's servers change, or their approval window ends.

use super::target_ids;
use crate::deployments::{Event, change_state};
use crate::error::{Error, Result};
use crate::state::{AppState, Tx};
use crate::store::{approvals as astore, deployments as dstore, envs, now_ms};
use custody_proto::apps::DeploymentState as S;
use serde_json::json;

/// After an environment's target servers changed: every pending or
/// approved deployment to it takes the new set and returns to
/// `pending_approval` (earlier approvals named the old set and stop
/// counting); with no server left it is canceled.
pub async fn on_environment_servers_changed(
    tx: &mut Tx<'_>,
    env_id: &str,
    actor: &str,
) -> Result<()> {
    let now = envs::env_servers(&mut tx.c, env_id).await?;
    let waiting = astore::deployments_in(
        &mut tx.c,
        &[S::PendingApproval.as_str(), S::Approved.as_str()],
        Some(env_id),
    )
    .await?;
    for id in waiting {
        let before = target_ids(&mut tx.c, &id).await?;
        if before == now {
            continue;
        }
        if now.is_empty() {
            change_state(
                tx,
                &id,
                Event::Cancel,
                actor,
                Some("the environment has no target servers left"),
            )
            .await?;
            continue;
        }
        astore::replace_targets(&mut tx.c, &id, &now).await?;
        tx.audit(
            actor,
            "deployment.targets",
            &format!("deployment:{id}"),
            "changed",
            json!({"from": before, "to": now}),
        )
        .await?;
        change_state(
            tx,
            &id,
            Event::Reapprove,
            actor,
            Some("the environment's servers changed: approvals must name the new set"),
        )
        .await?;
    }
    Ok(())
}

/// "24h", "90m", "45s" for a number of seconds.
pub fn human_duration(secs: u64) -> String {
    if secs > 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs > 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// Cancels pending or approved deployments whose window ended (`only`:
/// just that one). Each in its own transaction.
pub async fn expire_overdue(state: &AppState, only: Option<&str>) -> Result<usize> {
    let now = now_ms();
    let due = {
        let mut c = state
            .store
            .read
            .acquire()
            .await
            .map_err(Error::db("acquire"))?;
        astore::overdue(&mut c, now).await?
    };
    let mut n = 0;
    for id in due.iter().filter(|d| only.is_none_or(|o| o == d.as_str())) {
        let mut tx = state.begin().await?;
        let Some(d) = dstore::get(&mut tx.c, id).await? else {
            continue;
        };
        let Some(p) = &d.approval else { continue };
        if !matches!(d.state, S::PendingApproval | S::Approved) || p.deadline_ms > now {
            continue;
        }
        let reason = format!(
            "not started within the environment's approval window ({})",
            human_duration(p.window_seconds)
        );
        change_state(&mut tx, id, Event::Cancel, "coordinator", Some(&reason)).await?;
        tx.commit().await?;
        n += 1;
    }
    Ok(n)
}

/// Runs [`expire_overdue`] every `jobs.sweep_interval_ms` until shutdown.
pub async fn window_sweeper(state: std::sync::Arc<AppState>) {
    let mut shutdown = state.shutdown.clone();
    let every = std::time::Duration::from_millis(state.config.jobs.sweep_interval_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = expire_overdue(&state, None).await {
            tracing::warn!(error = %e, "approval window sweep failed");
        }
    }
}
