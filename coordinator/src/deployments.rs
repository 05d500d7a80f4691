//! Deployments: the state machine (in one place: [`transition`], applied
//! only through [`change_state`]) and the job chain prepare → wrap per
//! target → deploy per target. The approval actions are in
//! [`crate::approvals`].

use crate::error::{Error, Result};
use crate::jobspec::Spec;
use crate::routing;
use crate::state::Tx;
use crate::store::{approvals as astore, apps, deployments as dstore, envs, servers};
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
    /// An approval completed the quorum.
    Approve,
    /// An approval completed the quorum and an approver asked for the
    /// deploy to start (approve and deploy).
    ApproveAndDeploy,
    /// An approver declined.
    Decline,
    /// Started from `Approved` by an approver or the owner.
    Start,
    /// Canceled before it started (by a person, or its window ended).
    Cancel,
    /// The approvals no longer cover it (the environment's servers changed,
    /// or statements expired before the start): it needs approval again.
    Reapprove,
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
        (Some(S::PendingApproval | S::Approved), Event::Reapprove) => S::PendingApproval,
        (Some(S::InProgress), Event::Succeed) => S::Succeeded,
        (Some(S::InProgress), Event::Fail) => S::Failed,
        (from, ev) => return Err(refused(from, ev)),
    };
    Ok(to)
}

/// The 409 for an event the state does not allow: `details.state` is the
/// current state.
pub fn refused(from: Option<S>, ev: Event) -> Error {
    let cur = from.map(|s| s.as_str()).unwrap_or("none");
    let what = match ev {
        Event::Create { .. } => "be created",
        Event::Approve | Event::ApproveAndDeploy => "be approved",
        Event::Decline => "be declined",
        Event::Start => "be started",
        Event::Cancel => "be canceled",
        Event::Reapprove => "return to pending approval",
        Event::Succeed => "succeed",
        Event::Fail => "fail",
    };
    Error::api_with(
        ErrorCode::InvalidState,
        format!("a deployment in state {cur} cannot {what}"),
        json!({"state": cur}),
    )
}

/// Creates a deployment (checks release, master key, targets, variables).
/// With an approval policy on the environment it waits in
/// `pending_approval` (approvers are notified); otherwise it goes to
/// `in_progress` and "prepare deployment" is queued.
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
    let policy = astore::policy(&mut tx.c, &env.id).await?;
    let state = transition(
        None,
        Event::Create {
            approval: policy.is_some(),
        },
    )?;
    let id = dstore::insert(
        &mut tx.c,
        dstore::NewDeployment {
            app_id: &app.id,
            release_id,
            env_id: &env.id,
            state,
            created_by: actor_user,
            targets: &targets,
            approval: policy.as_ref().map(|p| dstore::DeploymentPolicy {
                group_id: p.group_id.clone(),
                quorum: p.quorum,
                allow_self_approval: p.allow_self_approval,
                window_seconds: p.window_seconds,
                deadline_ms: 0,
            }),
        },
    )
    .await?;
    tx.audit(
        &actor,
        "deployment.create",
        &format!("deployment:{id}"),
        "ok",
        json!({"app": app.name, "release": release_id, "environment": env.name, "targets": targets,
               "state": state.as_str(), "approval_required": policy.is_some(),
               "quorum": policy.as_ref().map(|p| p.quorum)}),
    )
    .await?;
    entered(tx, &id, None, state, &actor, None).await?;
    Ok(id)
}

/// What follows entering `to`: "prepare deployment" is queued on entering
/// `in_progress` (the only place it is, so no key-manager job exists for
/// a deployment before it is in progress) and the change is announced.
async fn entered(
    tx: &mut Tx<'_>,
    id: &str,
    from: Option<S>,
    to: S,
    actor: &str,
    message: Option<&str>,
) -> Result<()> {
    if to == S::InProgress {
        routing::enqueue(
            tx,
            Spec::PrepareDeployment {
                deployment_id: id.to_string(),
            },
            actor,
        )
        .await?;
    }
    crate::notify::deployment_changed(tx, id, from, to, actor, message).await
}

/// Applies `ev` to deployment `id` (refused with 409 and the current state
/// when the state machine does not allow it), records it in the audit log
/// with the actor and reason, and runs what follows ([`entered`]).
pub async fn change_state(
    tx: &mut Tx<'_>,
    id: &str,
    ev: Event,
    actor: &str,
    reason: Option<&str>,
) -> Result<S> {
    let d = dstore::get(&mut tx.c, id)
        .await?
        .ok_or_else(|| Error::not_found("deployment"))?;
    let to = transition(Some(d.state), ev)?;
    dstore::set_state(&mut tx.c, id, to, reason).await?;
    tx.audit(
        actor,
        "deployment.state",
        &format!("deployment:{id}"),
        to.as_str(),
        json!({"from": d.state.as_str(), "to": to.as_str(), "event": format!("{ev:?}"), "reason": reason}),
    )
    .await?;
    entered(tx, id, Some(d.state), to, actor, reason).await?;
    Ok(to)
}

async fn set_state(tx: &mut Tx<'_>, id: &str, ev: Event, reason: Option<&str>) -> Result<()> {
    change_state(tx, id, ev, "coordinator", reason).await?;
    Ok(())
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

    const STATES: [S; 7] = [
        S::PendingApproval,
        S::Approved,
        S::InProgress,
        S::Succeeded,
        S::Failed,
        S::Declined,
        S::Canceled,
    ];
    const EVENTS: [Event; 10] = [
        Event::Create { approval: true },
        Event::Create { approval: false },
        Event::Approve,
        Event::ApproveAndDeploy,
        Event::Decline,
        Event::Start,
        Event::Cancel,
        Event::Reapprove,
        Event::Succeed,
        Event::Fail,
    ];

    /// The whole table: every (state, event) pair not listed is refused
    /// with invalid_state naming the current state.
    #[test]
    fn state_machine_allows_exactly_the_listed_edges() {
        let allowed: &[(Option<S>, Event, S)] = &[
            (None, Event::Create { approval: true }, S::PendingApproval),
            (None, Event::Create { approval: false }, S::InProgress),
            (Some(S::PendingApproval), Event::Approve, S::Approved),
            (
                Some(S::PendingApproval),
                Event::ApproveAndDeploy,
                S::InProgress,
            ),
            (Some(S::PendingApproval), Event::Decline, S::Declined),
            (Some(S::PendingApproval), Event::Cancel, S::Canceled),
            (
                Some(S::PendingApproval),
                Event::Reapprove,
                S::PendingApproval,
            ),
            (Some(S::Approved), Event::Start, S::InProgress),
            (Some(S::Approved), Event::Cancel, S::Canceled),
            (Some(S::Approved), Event::Reapprove, S::PendingApproval),
            (Some(S::InProgress), Event::Succeed, S::Succeeded),
            (Some(S::InProgress), Event::Fail, S::Failed),
        ];
        let froms = std::iter::once(None).chain(STATES.iter().copied().map(Some));
        let mut seen = 0;
        for from in froms {
            for ev in EVENTS {
                let want = allowed
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == ev)
                    .map(|x| x.2);
                match (transition(from, ev), want) {
                    (Ok(to), Some(w)) => {
                        assert_eq!(to, w, "{from:?} {ev:?}");
                        seen += 1;
                    }
                    (Err(Error::Api { code, details, .. }), None) => {
                        assert_eq!(code, ErrorCode::InvalidState, "{from:?} {ev:?}");
                        let cur = from.map_or("none", |s| s.as_str());
                        assert_eq!(details, Some(json!({"state": cur})));
                    }
                    (got, want) => panic!("{from:?} {ev:?}: got {got:?}, want {want:?}"),
                }
            }
        }
        assert_eq!(seen, allowed.len());
        // Terminal states take nothing.
        for s in STATES.iter().filter(|s| s.is_terminal()) {
            assert!(EVENTS.iter().all(|e| transition(Some(*s), *e).is_err()));
        }
    }
}
