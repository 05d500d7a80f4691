//! Building the approval statement for a deployment from what the
//! coordinator says about it, and signing it locally.

use crate::commands::Ctx;
use anyhow::{Context, Result, bail};
use custody_client::Client;
use custody_envelope::approval::{ApprovalStatement, Decision, SignedApproval};
use custody_proto::admin::WhoAmI;
use custody_proto::apps::{Deployment, Release};
use ed25519_dalek::SigningKey;

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Fetches deployment `id`, its release and who we are, and signs the
/// statement (expiring `valid_for` seconds from now).
pub async fn build(
    ctx: &Ctx,
    c: &Client,
    id: &str,
    decision: Decision,
    valid_for: u64,
    key: &SigningKey,
) -> Result<SignedApproval> {
    let login = ctx.login()?;
    let d: Deployment = c
        .get(&format!("/v1/deployments/{id}"))
        .await
        .context("reading the deployment")?;
    if d.id != id {
        bail!("the coordinator answered with another deployment");
    }
    let rel: Release = c
        .get(&format!("/v1/releases/{}", d.release_id))
        .await
        .context("reading the release")?;
    let who: WhoAmI = c.get("/v1/whoami").await?;
    let mut targets: Vec<String> = d.targets.iter().map(|t| t.server_id.clone()).collect();
    ApprovalStatement::normalize_targets(&mut targets);
    let s = ApprovalStatement {
        account: login.account,
        deployment: d.id,
        app: d.app,
        release: d.release_id,
        package_sha256: rel.package_sha256.context("the release has no package")?,
        environment: d.environment,
        targets,
        expires_at: now_s().saturating_add(valid_for),
        decision,
        approver: who.user_id,
    };
    s.sign(key).context("signing the approval statement")
}

/// The signed statement as the JSON value the API takes.
pub fn to_value(s: &SignedApproval) -> Result<serde_json::Value> {
    let bytes = s.to_json().context("encoding the approval statement")?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// Prints what is being signed (stdout: stderr is for the one-line error).
pub fn describe(s: &ApprovalStatement) {
    println!(
        "signing: {} {} of {} release {} (sha256 {}) to {} on {} server(s): {}; valid until {}",
        s.decision.as_str(),
        s.deployment,
        s.app,
        s.release,
        s.package_sha256,
        s.environment,
        s.targets.len(),
        s.targets.join(", "),
        crate::output::time(i64::try_from(s.expires_at).unwrap_or(i64::MAX))
    );
}
