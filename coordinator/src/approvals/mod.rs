//! Deployment approvals: who may approve, decline, start and cancel;
//! signed statements checked before they count; the quorum; deployments
//! whose environment's servers changed; approval windows that ended.
//!
//! Every state change goes through [`crate::deployments::change_state`]
//! (the one state machine). A deployment waiting here has no key-manager
//! job: "prepare deployment" is queued only on entering `in_progress`.
//!
//! - [`evaluate`](mod@evaluate): statement checks, quorum counting, views;
//! - this module: the actions (approve, decline, start, cancel);
//! - [`lifecycle`]: environment changes and approval windows.

mod evaluate;
mod lifecycle;

pub use evaluate::{Evaluation, eligible, evaluate, pending_for, public, view};
pub use lifecycle::{
    expire_overdue, human_duration, on_environment_servers_changed, window_sweeper,
};

use crate::auth::UserPrincipal;
use crate::deployments::{Event, change_state, refused};
use crate::error::{Error, Result};
use crate::state::{AppState, Tx};
use crate::store::deployments::DeploymentRow;
use crate::store::{approvals as astore, deployments as dstore, now_ms};
use custody_envelope::approval::Decision;
use custody_proto::ErrorCode;
use custody_proto::admin::Role;
use custody_proto::approvals::{
    ApproveDeployment, CancelDeployment, DeclineDeployment, MAX_MESSAGE_CHARS,
};
use custody_proto::apps::{Deployment, DeploymentState as S};
use evaluate::{check_statement, target_ids};
use serde_json::json;

async fn load(tx: &mut Tx<'_>, id: &str) -> Result<DeploymentRow> {
    dstore::get(&mut tx.c, id)
        .await?
        .ok_or_else(|| Error::not_found("deployment"))
}

fn forbidden(msg: impl Into<String>) -> Error {
    Error::api(ErrorCode::Forbidden, msg)
}

/// Refuses (403) unless `user` may approve or decline `d`.
async fn require_eligible(tx: &mut Tx<'_>, d: &DeploymentRow, user: &UserPrincipal) -> Result<()> {
    let Some(p) = &d.approval else {
        return Err(refused(Some(d.state), Event::Approve));
    };
    let members = astore::group_members(&mut tx.c, &p.group_id).await?;
    if !members.contains(&user.id) {
        let g = astore::group_name(&mut tx.c, &p.group_id).await?;
        return Err(forbidden(format!(
            "you are not in the approver group {g} of this environment"
        )));
    }
    if !p.allow_self_approval && d.created_by == user.id {
        return Err(forbidden(
            "self-approval is not allowed in this environment: another approver must decide",
        ));
    }
    Ok(())
}

fn check_message(m: &str) -> Result<String> {
    let m = m.trim();
    if m.is_empty() {
        return Err(Error::invalid("a message is required"));
    }
    if m.chars().count() > MAX_MESSAGE_CHARS {
        return Err(Error::invalid("the message is longer than 2000 characters"));
    }
    if m.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::invalid("the message contains control characters"));
    }
    Ok(m.to_string())
}

/// Approve, or approve and deploy. Counts toward the quorum; when it is
/// met the deployment becomes `approved`, or `in_progress` (prepare job
/// queued at once) when this or another counting approval asked to deploy.
pub async fn approve(
    state: &AppState,
    user: &UserPrincipal,
    id: &str,
    req: &ApproveDeployment,
) -> Result<Deployment> {
    user.require(&[Role::Approver, Role::Owner])?;
    expire_overdue(state, Some(id)).await?;
    let mut tx = state.begin().await?;
    let d = load(&mut tx, id).await?;
    if d.state != S::PendingApproval {
        return Err(refused(Some(d.state), Event::Approve));
    }
    require_eligible(&mut tx, &d, user).await?;
    let (signed, text) =
        check_statement(&mut tx, &d, user, &req.statement, Decision::Approve).await?;
    let s = &signed.statement;
    astore::insert(
        &mut tx.c,
        astore::NewApproval {
            deployment_id: id,
            user_id: &user.id,
            decision: "approve",
            deploy: req.deploy,
            statement: Some(&text),
            key_id: Some(&signed.key_id),
            targets: &s.targets,
            expires_at_ms: Some((s.expires_at as i64).saturating_mul(1000)),
            message: None,
        },
    )
    .await?;
    let account = state.account.clone();
    let e = evaluate(&mut tx.c, &account, &d, now_ms()).await?;
    let quorum = d.approval.as_ref().map_or(1, |p| p.quorum);
    tx.audit(
        &user.actor(),
        "deployment.approve",
        &format!("deployment:{id}"),
        "ok",
        json!({"key_id": signed.key_id, "expires_at": s.expires_at, "deploy": req.deploy,
               "release": s.release, "package_sha256": s.package_sha256, "targets": s.targets,
               "counted": e.counted, "quorum": quorum}),
    )
    .await?;
    if e.counted >= quorum {
        let ev = if e.deploy_requested {
            Event::ApproveAndDeploy
        } else {
            Event::Approve
        };
        change_state(&mut tx, id, ev, &user.actor(), None).await?;
    }
    let d = load(&mut tx, id).await?;
    let v = public(&mut tx.c, &account, &d).await?;
    tx.commit().await?;
    Ok(v)
}

/// Decline with a message: `declined`, nothing is released.
pub async fn decline(
    state: &AppState,
    user: &UserPrincipal,
    id: &str,
    req: &DeclineDeployment,
) -> Result<Deployment> {
    user.require(&[Role::Approver, Role::Owner])?;
    let message = check_message(&req.message)?;
    expire_overdue(state, Some(id)).await?;
    let mut tx = state.begin().await?;
    let d = load(&mut tx, id).await?;
    if d.state != S::PendingApproval {
        return Err(refused(Some(d.state), Event::Decline));
    }
    require_eligible(&mut tx, &d, user).await?;
    let checked = match &req.statement {
        Some(v) => Some(check_statement(&mut tx, &d, user, v, Decision::Decline).await?),
        None => None,
    };
    let targets = target_ids(&mut tx.c, id).await?;
    astore::insert(
        &mut tx.c,
        astore::NewApproval {
            deployment_id: id,
            user_id: &user.id,
            decision: "decline",
            deploy: false,
            statement: checked.as_ref().map(|c| c.1.as_str()),
            key_id: checked.as_ref().map(|c| c.0.key_id.as_str()),
            targets: &targets,
            expires_at_ms: checked
                .as_ref()
                .map(|c| (c.0.statement.expires_at as i64).saturating_mul(1000)),
            message: Some(&message),
        },
    )
    .await?;
    tx.audit(
        &user.actor(),
        "deployment.decline",
        &format!("deployment:{id}"),
        "ok",
        json!({"message": message, "signed": checked.is_some()}),
    )
    .await?;
    change_state(&mut tx, id, Event::Decline, &user.actor(), Some(&message)).await?;
    let d = load(&mut tx, id).await?;
    let v = public(&mut tx.c, &state.account, &d).await?;
    tx.commit().await?;
    Ok(v)
}

/// Deploy an approved deployment (an approver of its group, or an owner).
/// The approvals are counted again first: if statements expired since the
/// quorum was met, it returns to `pending_approval` (409).
pub async fn start(state: &AppState, user: &UserPrincipal, id: &str) -> Result<Deployment> {
    expire_overdue(state, Some(id)).await?;
    let mut tx = state.begin().await?;
    let d = load(&mut tx, id).await?;
    let is_owner = user.roles.contains(&Role::Owner);
    let in_group = match &d.approval {
        Some(p) => astore::group_members(&mut tx.c, &p.group_id)
            .await?
            .contains(&user.id),
        None => false,
    };
    if !is_owner && !in_group {
        return Err(forbidden(
            "starting an approved deployment needs the owner role or membership of its approver group",
        ));
    }
    if d.state != S::Approved {
        return Err(refused(Some(d.state), Event::Start));
    }
    let e = evaluate(&mut tx.c, &state.account, &d, now_ms()).await?;
    let quorum = d.approval.as_ref().map_or(1, |p| p.quorum);
    if e.counted < quorum {
        let reason = format!(
            "only {} of {} approvals still count (statements expired or no longer match): approve again",
            e.counted, quorum
        );
        change_state(&mut tx, id, Event::Reapprove, "coordinator", Some(&reason)).await?;
        tx.commit().await?;
        return Err(Error::api_with(
            ErrorCode::InvalidState,
            reason,
            json!({"state": S::PendingApproval.as_str()}),
        ));
    }
    tx.audit(
        &user.actor(),
        "deployment.start",
        &format!("deployment:{id}"),
        "ok",
        json!({"counted": e.counted, "quorum": quorum}),
    )
    .await?;
    change_state(&mut tx, id, Event::Start, &user.actor(), None).await?;
    let d = load(&mut tx, id).await?;
    let v = public(&mut tx.c, &state.account, &d).await?;
    tx.commit().await?;
    Ok(v)
}

/// Cancel a pending or approved deployment: its deployer or an owner; an
/// approved one also an approver of its group.
pub async fn cancel(
    state: &AppState,
    user: &UserPrincipal,
    id: &str,
    req: &CancelDeployment,
) -> Result<Deployment> {
    let message = match &req.message {
        Some(m) => Some(check_message(m)?),
        None => None,
    };
    expire_overdue(state, Some(id)).await?;
    let mut tx = state.begin().await?;
    let d = load(&mut tx, id).await?;
    let is_owner = user.roles.contains(&Role::Owner);
    let approver_of_approved = match (&d.approval, d.state) {
        (Some(p), S::Approved) => astore::group_members(&mut tx.c, &p.group_id)
            .await?
            .contains(&user.id),
        _ => false,
    };
    if !is_owner && d.created_by != user.id && !approver_of_approved {
        return Err(forbidden(
            "only the deployer, an owner, or (once approved) an approver of its group may cancel this deployment",
        ));
    }
    let reason = message.unwrap_or_else(|| format!("canceled by {}", user.name));
    transition_or_refuse(d.state, Event::Cancel)?;
    tx.audit(
        &user.actor(),
        "deployment.cancel",
        &format!("deployment:{id}"),
        "ok",
        json!({"message": reason}),
    )
    .await?;
    change_state(&mut tx, id, Event::Cancel, &user.actor(), Some(&reason)).await?;
    let d = load(&mut tx, id).await?;
    let v = public(&mut tx.c, &state.account, &d).await?;
    tx.commit().await?;
    Ok(v)
}

fn transition_or_refuse(from: S, ev: Event) -> Result<()> {
    crate::deployments::transition(Some(from), ev).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_cli_writes_them() {
        assert_eq!(human_duration(86_400), "24h");
        assert_eq!(human_duration(24 * 3600 * 2), "48h");
        assert_eq!(human_duration(7200), "2h");
        assert_eq!(human_duration(90 * 60), "90m");
        assert_eq!(human_duration(1), "1s");
        assert_eq!(human_duration(0), "0s");
    }

    #[test]
    fn messages_are_required_and_bounded() {
        assert!(check_message("  ").is_err());
        assert_eq!(check_message(" no \n").unwrap(), "no");
        assert!(check_message(&"x".repeat(2001)).is_err());
        assert!(check_message("a\u{1b}[31m").is_err());
    }
}
