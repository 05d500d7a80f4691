//! Checking signed statements, counting the quorum, and the approval
//! views of deployments.

use crate::auth::UserPrincipal;
use crate::error::{Error, Result};
use crate::state::Tx;
use crate::store::deployments::{DeploymentPolicy, DeploymentRow};
use crate::store::{approvals as astore, apps, deployments as dstore, now_ms, users};
use custody_envelope::approval::{ApprovalError, Decision, SignedApproval, parse_public_key};
use custody_proto::ErrorCode;
use custody_proto::approvals::{
    ApprovalPolicy, ApprovalRecord, DeploymentApprovals, MAX_STATEMENT_SECONDS, PendingApproval,
};
use custody_proto::apps::{ApprovalSummary, Deployment, DeploymentState as S};
use serde_json::json;
use sqlx::SqliteConnection;

/// The approval records of a deployment, evaluated now.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Approvals that count.
    pub counted: u32,
    /// A counting approval asked for the deploy to start.
    pub deploy_requested: bool,
    /// Every record with its verdict.
    pub records: Vec<ApprovalRecord>,
}

/// Users whose approval counts for `d`: the group's current members, less
/// the deployer while self-approval is prevented.
pub async fn eligible(
    c: &mut SqliteConnection,
    d: &DeploymentRow,
    p: &DeploymentPolicy,
) -> Result<Vec<String>> {
    Ok(astore::group_members(c, &p.group_id)
        .await?
        .into_iter()
        .filter(|u| p.allow_self_approval || u != &d.created_by)
        .collect())
}

/// The package digest of the deployment's release.
pub(super) async fn release_digest(c: &mut SqliteConnection, d: &DeploymentRow) -> Result<String> {
    Ok(apps::get_release(c, &d.release_id)
        .await?
        .and_then(|r| r.public.package_sha256)
        .unwrap_or_default())
}

/// The sorted target server ids of a deployment.
pub(super) async fn target_ids(c: &mut SqliteConnection, id: &str) -> Result<Vec<String>> {
    let mut t: Vec<String> = dstore::targets(c, id)
        .await?
        .into_iter()
        .map(|(t, _)| t.server_id)
        .collect();
    t.sort_unstable();
    Ok(t)
}

/// What a statement must say for this deployment, checked field by field
/// (`statement_mismatch` with `details.field` for the first difference).
struct Expected<'a> {
    account: &'a str,
    d: &'a DeploymentRow,
    package_sha256: &'a str,
    targets: &'a [String],
    approver: &'a str,
    decision: Decision,
}

fn mismatch(field: &str, why: &str) -> Error {
    Error::api_with(
        ErrorCode::StatementMismatch,
        format!("the approval statement's {field} {why}"),
        json!({"field": field}),
    )
}

impl Expected<'_> {
    fn check(&self, s: &custody_envelope::approval::ApprovalStatement) -> Result<()> {
        let same = |field: &str, got: &str, want: &str| {
            if got == want {
                Ok(())
            } else {
                Err(mismatch(field, "does not match the deployment"))
            }
        };
        same("account", &s.account, self.account)?;
        same("deployment", &s.deployment, &self.d.id)?;
        same("app", &s.app, &self.d.app)?;
        same("release", &s.release, &self.d.release_id)?;
        same("package_sha256", &s.package_sha256, self.package_sha256)?;
        same("environment", &s.environment, &self.d.environment)?;
        if s.targets != self.targets {
            return Err(mismatch(
                "targets",
                "do not name the deployment's target servers",
            ));
        }
        if s.approver != self.approver {
            return Err(mismatch("approver", "is not the caller"));
        }
        if s.decision != self.decision {
            return Err(mismatch("decision", "is not this action's"));
        }
        Ok(())
    }
}

fn signature_error(e: ApprovalError) -> Error {
    match e {
        ApprovalError::WrongKey | ApprovalError::Signature => Error::api(
            ErrorCode::InvalidSignature,
            format!("{e}: it must be signed with your registered approval key"),
        ),
        other => Error::invalid(other.to_string()),
    }
}

/// Checks a submitted statement: parses it, verifies it with the caller's
/// registered key, compares every field and the expiry. Returns it with
/// its canonical text.
pub(super) async fn check_statement(
    tx: &mut Tx<'_>,
    d: &DeploymentRow,
    user: &UserPrincipal,
    value: &serde_json::Value,
    decision: Decision,
) -> Result<(SignedApproval, String)> {
    let Some((pk_hex, _)) = astore::user_key(&mut tx.c, &user.id).await? else {
        return Err(Error::api(
            ErrorCode::Forbidden,
            "no approval key is registered for you: make one with `custody keygen --user` and have an owner register it with `custody users set-key`",
        ));
    };
    let key = parse_public_key(&pk_hex).map_err(|e| Error::Internal(format!("stored key: {e}")))?;
    let signed = SignedApproval::from_value(value).map_err(signature_error)?;
    signed.verify(&key).map_err(signature_error)?;
    let package_sha256 = release_digest(&mut tx.c, d).await?;
    let targets = target_ids(&mut tx.c, &d.id).await?;
    let account = tx.state().account.clone();
    Expected {
        account: &account,
        d,
        package_sha256: &package_sha256,
        targets: &targets,
        approver: &user.id,
        decision,
    }
    .check(&signed.statement)?;
    let now_s = (now_ms() / 1000).max(0) as u64;
    if signed.statement.expired_at(now_s) {
        return Err(mismatch(
            "expires_at",
            "is in the past: the statement has expired",
        ));
    }
    if signed.statement.expires_at > now_s + MAX_STATEMENT_SECONDS {
        return Err(mismatch("expires_at", "is more than 30 days ahead"));
    }
    let text = String::from_utf8(signed.to_json().map_err(signature_error)?)
        .map_err(|_| Error::Internal("statement encoding".into()))?;
    Ok((signed, text))
}

/// Evaluates every approval record of `d` at `now_ms`: an approval counts
/// when it is its approver's latest, the approver is eligible now, it
/// names the current targets, it has not expired and its signature
/// verifies with the approver's current key.
pub async fn evaluate(
    c: &mut SqliteConnection,
    account: &str,
    d: &DeploymentRow,
    now_ms: i64,
) -> Result<Evaluation> {
    let rows = astore::of_deployment(c, &d.id).await?;
    let eligible = match &d.approval {
        Some(p) => eligible(c, d, p).await?,
        None => vec![],
    };
    let targets = target_ids(c, &d.id).await?;
    let package_sha256 = release_digest(c, d).await?;
    let mut out = Evaluation {
        counted: 0,
        deploy_requested: false,
        records: vec![],
    };
    for (i, r) in rows.iter().enumerate() {
        let user = users::find_user(&mut *c, &r.user_id).await?;
        let key = astore::user_key(c, &r.user_id).await?;
        let statement: Option<serde_json::Value> = r
            .statement
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok());
        let verified = match (&statement, &key) {
            (Some(v), Some((pk, _))) => SignedApproval::from_value(v).ok().and_then(|sa| {
                let k = parse_public_key(pk).ok()?;
                sa.verify(&k).ok().cloned()
            }),
            _ => None,
        };
        let superseded = rows[i + 1..]
            .iter()
            .any(|later| later.user_id == r.user_id && later.decision == "approve");
        let not_counted = if r.decision != "approve" {
            Some("a decline")
        } else if superseded {
            Some("superseded by a later approval from the same approver")
        } else if !eligible.contains(&r.user_id) {
            Some("the approver is not eligible now (not in the group, or the deployer)")
        } else if r.targets != targets {
            Some("it names other target servers: the environment's servers changed")
        } else if r.expires_at_ms.is_none_or(|e| e <= now_ms) {
            Some("the statement has expired")
        } else {
            match &verified {
                None => Some("the signature does not verify with the approver's current key"),
                Some(s) => Expected {
                    account,
                    d,
                    package_sha256: &package_sha256,
                    targets: &targets,
                    approver: &r.user_id,
                    decision: Decision::Approve,
                }
                .check(s)
                .err()
                .map(|_| "the statement does not match the deployment"),
            }
        };
        let counts = not_counted.is_none();
        if counts {
            out.counted += 1;
            out.deploy_requested |= r.deploy;
        }
        out.records.push(ApprovalRecord {
            id: r.id.clone(),
            user_id: r.user_id.clone(),
            user_name: user.map(|u| u.name).unwrap_or_else(|| r.user_id.clone()),
            decision: r.decision.clone(),
            deploy: r.deploy,
            at: r.created_at_ms / 1000,
            expires_at: r.expires_at_ms.map(|e| (e / 1000).max(0) as u64),
            message: r.message.clone(),
            key_id: r.key_id.clone(),
            public_key: key.map(|k| k.0),
            statement,
            signature_valid: verified.is_some(),
            counts,
            not_counted_because: if r.decision == "approve" {
                not_counted.map(str::to_string)
            } else {
                None
            },
        });
    }
    Ok(out)
}

/// The public view of a deployment, with its approval summary.
pub async fn public(
    c: &mut SqliteConnection,
    account: &str,
    d: &DeploymentRow,
) -> Result<Deployment> {
    let mut v = dstore::public(c, d).await?;
    if let Some(p) = &d.approval {
        let e = evaluate(c, account, d, now_ms()).await?;
        v.approval = Some(ApprovalSummary {
            quorum: p.quorum,
            counted: e.counted,
            deadline_at: p.deadline_ms / 1000,
            deploy_requested: e.deploy_requested,
        });
    }
    Ok(v)
}

/// `GET /v1/deployments/{id}/approvals`.
pub async fn view(
    c: &mut SqliteConnection,
    account: &str,
    id: &str,
) -> Result<DeploymentApprovals> {
    let d = dstore::get(c, id)
        .await?
        .ok_or_else(|| Error::not_found("deployment"))?;
    let e = evaluate(c, account, &d, now_ms()).await?;
    let policy = match &d.approval {
        Some(p) => Some(ApprovalPolicy {
            group_id: p.group_id.clone(),
            group: astore::group_name(c, &p.group_id).await?,
            quorum: p.quorum,
            allow_self_approval: p.allow_self_approval,
            window_seconds: p.window_seconds,
        }),
        None => None,
    };
    Ok(DeploymentApprovals {
        deployment_id: d.id.clone(),
        state: d.state,
        required: d.approval.is_some(),
        deadline_at: d.approval.as_ref().map(|p| p.deadline_ms / 1000),
        policy,
        counted: e.counted,
        targets: target_ids(c, &d.id).await?,
        approvals: e.records,
    })
}

/// `GET /v1/approvals`: deployments waiting for the caller's approval.
pub async fn pending_for(
    c: &mut SqliteConnection,
    account: &str,
    user: &UserPrincipal,
) -> Result<Vec<PendingApproval>> {
    let mut out = vec![];
    for id in astore::deployments_in(c, &[S::PendingApproval.as_str()], None).await? {
        let Some(d) = dstore::get(c, &id).await? else {
            continue;
        };
        let Some(p) = d.approval.clone() else {
            continue;
        };
        if !eligible(c, &d, &p).await?.contains(&user.id) {
            continue;
        }
        let e = evaluate(c, account, &d, now_ms()).await?;
        let approved_by_me = e.records.iter().any(|r| r.counts && r.user_id == user.id);
        out.push(PendingApproval {
            package_sha256: release_digest(c, &d).await?,
            deployment: public(c, account, &d).await?,
            quorum: p.quorum,
            counted: e.counted,
            deadline_at: p.deadline_ms / 1000,
            approved_by_me,
        });
    }
    Ok(out)
}
