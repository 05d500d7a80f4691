//! Deployment approvals from the command line: approver keys
//! (`custody keygen --user`, `custody users set-key`), notification
//! addresses (`custody users set-email`), environment policies
//! (`custody env set-approval|clear-approval`), `custody approvals list`,
//! `custody approve`, `custody decline`, `custody deployments
//! start|cancel`, and the approvals part of `custody deployments show`.
//!
//! An approval is a statement signed here with the approver's own key
//! (`docs/FORMAT.md` §7); the coordinator only checks and counts it.

pub mod keys;
mod show;
mod statement;

pub use show::print_approvals;

use crate::commands::Ctx;
use crate::output;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use custody_envelope::approval::Decision;
use custody_proto::admin::User;
use custody_proto::approvals::{
    ApproveDeployment, CancelDeployment, DeclineDeployment, PendingApproval, SetApprovalKey,
    SetApprovalPolicy, SetEmail,
};
use custody_proto::apps::{Deployment, Environment};
use std::path::PathBuf;

/// Parses `24h`, `30m`, `90s`, `2d` or a number of seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 24h, 30m, 90s or 2d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    match n.checked_mul(mult) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(format!(
            "{s:?} must be more than zero and not absurdly long"
        )),
    }
}

/// `custody users set-key|set-email` (flattened into `custody users`).
#[derive(Subcommand)]
pub enum UserApprovalCmd {
    /// Register a user's approval public key (owner). The file holds the
    /// 64 hex digits `custody keygen --user` printed and wrote beside the key.
    SetKey {
        /// User name or id.
        user: String,
        /// File with the public key (64 hex digits).
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
    },
    /// Set or clear a user's notification address (owner, or yourself).
    SetEmail {
        /// User name or id.
        user: String,
        /// The address; omit with --clear to remove it.
        email: Option<String>,
        /// Remove the address.
        #[arg(long, conflicts_with = "email")]
        clear: bool,
    },
}

/// `custody env set-approval|clear-approval|remove-server` (flattened into `custody env`).
#[derive(Subcommand)]
pub enum EnvApprovalCmd {
    /// Require approval for deployments to an environment (owner).
    SetApproval {
        /// Application name.
        app: String,
        /// Environment name.
        env: String,
        /// Approver group (its members approve).
        #[arg(long)]
        group: String,
        /// Approvals needed.
        #[arg(long, default_value_t = 1)]
        quorum: u32,
        /// Let a deployer approve their own deployment.
        #[arg(long)]
        allow_self_approval: bool,
        /// Cancel a deployment not started within this long (24h, 30m, 2d).
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        window: u64,
    },
    /// Stop requiring approval for new deployments to an environment (owner).
    ClearApproval {
        /// Application name.
        app: String,
        /// Environment name.
        env: String,
    },
    /// Remove a target server from an environment (owner). Waiting
    /// deployments to it return to pending approval for the new set.
    RemoveServer {
        /// Application name.
        app: String,
        /// Environment name.
        env: String,
        /// Server id or name.
        server: String,
    },
}

/// `custody deployments start|cancel` (flattened into `custody deployments`).
#[derive(Subcommand)]
pub enum DeploymentActionCmd {
    /// Start an approved deployment (an approver of it, or an owner).
    Start {
        /// Deployment id.
        id: String,
    },
    /// Cancel a pending or approved deployment.
    Cancel {
        /// Deployment id.
        id: String,
        /// Why.
        #[arg(long)]
        message: Option<String>,
    },
}

/// `custody approvals …`.
#[derive(Subcommand)]
pub enum ApprovalsCmd {
    /// Deployments waiting for your approval.
    List,
}

/// `custody approve`.
#[derive(Args)]
pub struct ApproveArgs {
    /// Deployment id.
    id: String,
    /// Also start the deploy as soon as enough approvers have approved
    /// (at once if this approval completes the quorum).
    #[arg(long)]
    deploy: bool,
    /// How long this approval counts (24h, 30m, 2d).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    expires: u64,
    /// Your approval key (default: approver.key beside the login file).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
}

/// `custody decline`.
#[derive(Args)]
pub struct DeclineArgs {
    /// Deployment id.
    id: String,
    /// Why (required; the deployer reads it).
    #[arg(long, short)]
    message: String,
    /// Sign the decline with this approval key (default: approver.key
    /// beside the login file, when it exists).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
}

fn print_deployment(ctx: &Ctx, d: &Deployment, verb: &str) -> Result<()> {
    if ctx.json {
        return output::json(d);
    }
    let progress = d
        .approval
        .as_ref()
        .map(|a| format!(", {} of {} approvals", a.counted, a.quorum))
        .unwrap_or_default();
    println!("{verb} {}: now {}{progress}", d.id, d.state.as_str());
    if let Some(r) = &d.reason {
        println!("reason: {r}");
    }
    Ok(())
}

/// `custody users set-key|set-email`.
pub async fn run_user(ctx: &Ctx, cmd: UserApprovalCmd) -> Result<()> {
    let c = ctx.client()?;
    let (u, what): (User, &str) = match cmd {
        UserApprovalCmd::SetKey { user, public_key } => {
            let text = std::fs::read_to_string(&public_key)
                .with_context(|| format!("reading {}", public_key.display()))?;
            let key = custody_envelope::approval::parse_public_key(&text)
                .with_context(|| format!("{}", public_key.display()))?;
            let body = SetApprovalKey {
                public_key: custody_envelope::approval::public_key_hex(&key),
            };
            (
                c.put(&format!("/v1/users/{user}/approval-key"), &body)
                    .await
                    .context("registering the approval key")?,
                "approval key set",
            )
        }
        UserApprovalCmd::SetEmail { user, email, clear } => {
            if email.is_none() && !clear {
                bail!("give an address, or --clear to remove it");
            }
            (
                c.put(&format!("/v1/users/{user}/email"), &SetEmail { email })
                    .await
                    .context("setting the email address")?,
                "email set",
            )
        }
    };
    if ctx.json {
        return output::json(&u);
    }
    println!(
        "{what} for {} ({}): email {}, approval key {}",
        u.name,
        u.id,
        u.email.as_deref().unwrap_or("none"),
        u.approval_key_id.as_deref().unwrap_or("none")
    );
    Ok(())
}

/// `custody env set-approval|clear-approval`.
pub async fn run_env(ctx: &Ctx, cmd: EnvApprovalCmd) -> Result<()> {
    let c = ctx.client()?;
    let e: Environment = match cmd {
        EnvApprovalCmd::SetApproval {
            app,
            env,
            group,
            quorum,
            allow_self_approval,
            window,
        } => c
            .put(
                &format!("/v1/apps/{app}/environments/{env}/approval"),
                &SetApprovalPolicy {
                    group,
                    quorum,
                    allow_self_approval,
                    window_seconds: window,
                },
            )
            .await
            .context("setting the approval policy")?,
        EnvApprovalCmd::ClearApproval { app, env } => {
            let path = format!("/v1/apps/{app}/environments/{env}/approval");
            c.delete(&path)
                .await
                .context("clearing the approval policy")?;
            c.get(&format!("/v1/apps/{app}/environments/{env}")).await?
        }
        EnvApprovalCmd::RemoveServer { app, env, server } => {
            c.delete(&format!(
                "/v1/apps/{app}/environments/{env}/servers/{server}"
            ))
            .await
            .context("removing the server")?;
            c.get(&format!("/v1/apps/{app}/environments/{env}")).await?
        }
    };
    if ctx.json {
        return output::json(&e);
    }
    println!("{} {}: servers {}", e.app, e.name, e.servers.join(", "));
    match &e.approval {
        Some(p) => println!(
            "{} {}: deployments need {} approval(s) from group {}{}, window {}",
            e.app,
            e.name,
            p.quorum,
            p.group,
            if p.allow_self_approval {
                " (self-approval allowed)"
            } else {
                ""
            },
            human(p.window_seconds)
        ),
        None => println!("{} {}: no approval required", e.app, e.name),
    }
    Ok(())
}

fn human(secs: u64) -> String {
    if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// `custody deployments start|cancel`.
pub async fn run_deployment(ctx: &Ctx, cmd: DeploymentActionCmd) -> Result<()> {
    let c = ctx.client()?;
    match cmd {
        DeploymentActionCmd::Start { id } => {
            let d: Deployment = c
                .post(
                    &format!("/v1/deployments/{id}/start"),
                    &serde_json::json!({}),
                )
                .await
                .context("starting the deployment")?;
            print_deployment(ctx, &d, "started")
        }
        DeploymentActionCmd::Cancel { id, message } => {
            let d: Deployment = c
                .post(
                    &format!("/v1/deployments/{id}/cancel"),
                    &CancelDeployment { message },
                )
                .await
                .context("canceling the deployment")?;
            print_deployment(ctx, &d, "canceled")
        }
    }
}

/// `custody approvals list`.
pub async fn run_approvals(ctx: &Ctx, cmd: ApprovalsCmd) -> Result<()> {
    let c = ctx.client()?;
    match cmd {
        ApprovalsCmd::List => {
            let list: Vec<PendingApproval> = c.get("/v1/approvals").await?;
            if ctx.json {
                return output::json(&list);
            }
            let rows = list
                .iter()
                .map(|p| {
                    vec![
                        p.deployment.id.clone(),
                        p.deployment.app.clone(),
                        p.deployment.release_id.clone(),
                        p.deployment.environment.clone(),
                        format!("{}/{}", p.counted, p.quorum),
                        if p.approved_by_me { "yes" } else { "no" }.to_string(),
                        output::time(p.deadline_at),
                    ]
                })
                .collect::<Vec<_>>();
            output::table(
                &[
                    "ID",
                    "APP",
                    "RELEASE",
                    "ENV",
                    "APPROVALS",
                    "MINE",
                    "DEADLINE",
                ],
                &rows,
            );
            if !list.is_empty() {
                eprintln!("approve with: custody approve ID [--deploy]");
            }
            Ok(())
        }
    }
}

/// `custody approve`.
pub async fn run_approve(ctx: &Ctx, a: ApproveArgs) -> Result<()> {
    let key = keys::load_approver_key(ctx, a.key.as_deref())?;
    let c = ctx.client()?;
    let signed = statement::build(ctx, &c, &a.id, Decision::Approve, a.expires, &key).await?;
    if !ctx.json {
        statement::describe(&signed.statement);
    }
    let d: Deployment = c
        .post(
            &format!("/v1/deployments/{}/approve", a.id),
            &ApproveDeployment {
                statement: statement::to_value(&signed)?,
                deploy: a.deploy,
            },
        )
        .await
        .context("approving")?;
    print_deployment(
        ctx,
        &d,
        if a.deploy {
            "approved (and deploy)"
        } else {
            "approved"
        },
    )
}

/// `custody decline`.
pub async fn run_decline(ctx: &Ctx, a: DeclineArgs) -> Result<()> {
    let c = ctx.client()?;
    let key = match &a.key {
        Some(p) => Some(keys::load_approver_key(ctx, Some(p))?),
        None => keys::default_approver_key(ctx)?,
    };
    let statement = match &key {
        Some(k) => {
            let s = statement::build(ctx, &c, &a.id, Decision::Decline, 24 * 3600, k).await?;
            Some(statement::to_value(&s)?)
        }
        None => None,
    };
    let d: Deployment = c
        .post(
            &format!("/v1/deployments/{}/decline", a.id),
            &DeclineDeployment {
                message: a.message,
                statement,
            },
        )
        .await
        .context("declining")?;
    print_deployment(ctx, &d, "declined")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h"), Ok(86_400));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("5s"), Ok(5));
        for bad in ["", "0h", "h", "1w", "-1h", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(human(86_400), "24h");
        assert_eq!(human(90), "90s");
    }
}
