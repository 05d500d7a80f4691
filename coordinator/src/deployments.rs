//! Deployments: the state machine (in one place: [`transition`]) and the
//! job chain prepare → wrap per target → deploy per target.

use crate::error::{Error, Result};
use crate::jobspec::Spec;
use crate::routing;
use crate::state::Tx;
use crate::store::{apps, deployments as dstore, envs, servers};
use custody_proto::ErrorCode;
use custody_proto::apps::{DeploymentState as S, ReleaseState};
use serde_json::json;

/// What happens to a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Created; `approval` says whether the environment requires approval.
    Create {
        /// Approval policy on.
        approval: bool,
    },
    /// Approved, quorum met (approvals issue).
    Approve,
    /// Approved and asked to start (approvals issue).
    ApproveAndDeploy,
    /// Declined (approvals issue).
    Decline,
    /// Started from `Approved` (approvals issue).
    Start,
    /// Canceled before it started.
    Cancel,
    /// Every target succeeded.
    Succeed,
    /// A step or a target failed.
    Fail,
}

/// The allowed transitions. `None` is the state before creation.
pub fn transition(from: Option<S>, ev: Event) -> Result<S> {
    let to = match (from, ev) {
        (None, Event::Create { approval: true }) => S::PendingApproval,
        (None, Event::Create { approval: false }) => S::InProgress,
        (Some(S::PendingApproval), Event::Approve) => S::Approved,
        (Some(S::PendingApproval), Event::ApproveAndDeploy) => S::InProgress,
        (Some(S::PendingApproval), Event::Decline) => S::Declined,
        (Some(S::Approved), Event::Start) => S::InProgress,
        (Some(S::PendingApproval | S::Approved), Event::Cancel) => S::Canceled,
        (Some(S::InProgress), Event::Succeed) => S::Succeeded,
        (Some(S::InProgress), Event::Fail) => S::Failed,
        (from, ev) => {
            let cur = from.map(|s| s.as_str()).unwrap_or("none");
            return Err(Error::api_with(
                ErrorCode::InvalidState,
                format!("a deployment in state {cur} cannot take {ev:?}"),
                json!({"state": cur}),
            ));
        }
    };
    Ok(to)
}

/// Creates a deployment (checks release, master key, targets, variables)
/// and, when no approval is needed, queues "prepare deployment".
pub async fn create(
    tx: &mut Tx<'_>,
    actor_user: &str,
    app: &str,
    release_id: &str,
    env: &str,
) -> Result<String> {
    let actor = format!("user:{actor_user}");
    let app = apps::find_app(&mut *tx.c, app)
        .await?
        .ok_or_else(|| Error::not_found("app"))?;
    let rel = apps::get_release(&mut tx.c, release_id)
        .await?
        .filter(|r| r.app_id == app.id)
        .ok_or_else(|| Error::not_found("release"))?;
    let env = envs::find_env(&mut tx.c, &app.id, env)
        .await?
        .ok_or_else(|| Error::not_found("environment"))?;
    let current = servers::current_master_key(&mut tx.c).await?;
    let lost = servers::lost_master_keys(&mut tx.c).await?;
    let rel_mk = rel.public.master_key_id.clone().unwrap_or_default();
    if lost.contains(&rel_mk) {
        return Err(Error::api_with(
            ErrorCode::MasterKeyLost,
            format!(
                "release {release_id} cannot be deployed: master key {rel_mk} was lost (every key manager that held it was removed); push a new release"
            ),
            json!({"master_key_id": rel_mk}),
        ));
    }
    if rel.public.state != ReleaseState::Deployable {
        let why = rel
            .public
            .undeployable_reason
            .clone()
            .unwrap_or_else(|| format!("{:?}", rel.public.state).to_lowercase());
        return Err(Error::state(format!(
            "release {release_id} is not deployable: {why}"
        )));
    }
    if current.is_none_or(|m| m.id != rel_mk) {
        return Err(Error::api(
            ErrorCode::MasterKeyLost,
            "the release's master key is not the current one",
        ));
    }
    let targets = envs::env_servers(&mut tx.c, &env.id).await?;
    if targets.is_empty() {
        return Err(Error::state(format!(
            "environment {} has no servers",
            env.name
        )));
    }
    for v in envs::env_vars(&mut tx.c, &env.id).await? {
        if v.secret && (v.state != "sealed" || v.master_key_id.as_deref() != Some(rel_mk.as_str()))
        {
            return Err(Error::state(format!(
                "secret variable {} is not sealed under the current master key ({})",
                v.name, v.state
            )));
        }
    }
    let state = transition(None, Event::Create { approval: false })?;
    let id = dstore::insert(
        &mut tx.c, &app.id, release_id, &env.id, state, actor_user, &targets,
    )
    .await?;
    tx.audit(
        &actor,
        "deployment.create",
        &format!("deployment:{id}"),
        "ok",
        json!({"app": app.name, "release": release_id, "environment": env.name, "targets": targets, "state": state.as_str()}),
    )
    .await?;
    if state == S::InProgress {
        routing::enqueue(
            tx,
            Spec::PrepareDeployment {
                deployment_id: id.clone(),
            },
            &actor,
        )
        .await?;
    }
    Ok(id)
}

async fn set_state(tx: &mut Tx<'_>, id: &str, ev: Event, reason: Option<&str>) -> Result<()> {
    let d = dstore::get(&mut tx.c, id)
        .await?
        .ok_or_else(|| Error::not_found("deployment"))?;
    let to = transition(Some(d.state), ev)?;
    dstore::set_state(&mut tx.c, id, to, reason).await?;
    tx.audit(
        "coordinator",
        "deployment.state",
        &format!("deployment:{id}"),
        to.as_str(),
        json!({"from": d.state.as_str(), "to": to.as_str(), "reason": reason}),
    )
    .await
}

/// Fails the whole deployment (and its unfinished targets).
pub async fn fail(tx: &mut Tx<'_>, id: &str, reason: &str) -> Result<()> {
    let Some(d) = dstore::get(&mut tx.c, id).await? else {
        return Ok(());
    };
    if d.state != S::InProgress {
        return Ok(());
    }
    for (t, _) in dstore::targets(&mut tx.c, id).await? {
        if t.state != "succeeded" && t.state != "failed" {
            dstore::set_target(&mut tx.c, id, &t.server_id, "failed", Some(reason), None).await?;
        }
    }
    set_state(tx, id, Event::Fail, Some(reason)).await
}

/// "prepare deployment" done: queue one "wrap deploy key" per target.
pub async fn on_prepared(tx: &mut Tx<'_>, id: &str, keylist: &str, dk: &str) -> Result<()> {
    let d = dstore::get(&mut tx.c, id)
        .await?
        .ok_or_else(|| Error::not_found("deployment"))?;
    if d.state != S::InProgress {
        return Ok(());
    }
    dstore::set_prepared(&mut tx.c, id, keylist, dk).await?;
    for (t, _) in dstore::targets(&mut tx.c, id).await? {
        dstore::set_target(&mut tx.c, id, &t.server_id, "wrapping", None, None).await?;
        routing::enqueue(
            tx,
            Spec::WrapDeployKey {
                deployment_id: id.into(),
                target: t.server_id.clone(),
            },
            "coordinator",
        )
        .await?;
    }
    Ok(())
}

/// `wrap(P_t, DK)` made: queue the deploy for that target.
pub async fn on_wrapped(tx: &mut Tx<'_>, id: &str, target: &str, wrapped: &str) -> Result<()> {
    let d = dstore::get(&mut tx.c, id)
        .await?
        .ok_or_else(|| Error::not_found("deployment"))?;
    if d.state != S::InProgress {
        return Ok(());
    }
    dstore::set_target(&mut tx.c, id, target, "deploying", None, Some(wrapped)).await?;
    routing::enqueue(
        tx,
        Spec::Deploy {
            deployment_id: id.into(),
            target: target.into(),
        },
        "coordinator",
    )
    .await?;
    Ok(())
}

/// A target finished (`failure` None = installed). When every target has
/// finished, the deployment succeeds or fails with the per-target reasons.
pub async fn on_target_done(
    tx: &mut Tx<'_>,
    id: &str,
    target: &str,
    failure: Option<&str>,
) -> Result<()> {
    let Some(d) = dstore::get(&mut tx.c, id).await? else {
        return Ok(());
    };
    if d.state != S::InProgress {
        return Ok(());
    }
    let st = if failure.is_some() {
        "failed"
    } else {
        "succeeded"
    };
    dstore::set_target(&mut tx.c, id, target, st, failure, None).await?;
    tx.audit(
        "coordinator",
        "deployment.target",
        &format!("deployment:{id}"),
        st,
        json!({"server": target, "reason": failure}),
    )
    .await?;
    let targets = dstore::targets(&mut tx.c, id).await?;
    if targets
        .iter()
        .all(|(t, _)| t.state == "succeeded" || t.state == "failed")
    {
        let failed: Vec<String> = targets
            .iter()
            .filter(|(t, _)| t.state == "failed")
            .map(|(t, _)| format!("{}: {}", t.server_id, t.reason.clone().unwrap_or_default()))
            .collect();
        if failed.is_empty() {
            set_state(tx, id, Event::Succeed, None).await?;
        } else {
            let reason = format!(
                "{} of {} targets failed: {}",
                failed.len(),
                targets.len(),
                failed.join("; ")
            );
            set_state(tx, id, Event::Fail, Some(&reason)).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_machine_allows_only_listed_edges() {
        assert_eq!(
            transition(None, Event::Create { approval: false }).unwrap(),
            S::InProgress
        );
        assert_eq!(
            transition(None, Event::Create { approval: true }).unwrap(),
            S::PendingApproval
        );
        assert_eq!(
            transition(Some(S::InProgress), Event::Succeed).unwrap(),
            S::Succeeded
        );
        assert_eq!(
            transition(Some(S::Approved), Event::Start).unwrap(),
            S::InProgress
        );
        for (from, ev) in [
            (Some(S::Succeeded), Event::Fail),
            (Some(S::Failed), Event::Succeed),
            (Some(S::InProgress), Event::Approve),
            (Some(S::Declined), Event::Start),
            (Some(S::Canceled), Event::Cancel),
        ] {
            assert!(matches!(
                transition(from, ev),
                Err(Error::Api {
                    code: ErrorCode::InvalidState,
                    ..
                })
            ));
        }
    }
}
