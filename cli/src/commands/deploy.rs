//! `custody deploy APP --release R --env E [--follow]`.

use super::Ctx;
use super::deployments::{self, Names, Out};
use crate::output;
use anyhow::{Context, Result};
use custody_proto::apps::{CreateDeployment, Deployment, DeploymentState};

/// `custody deploy` arguments.
#[derive(clap::Args)]
pub struct DeployArgs {
    /// Application name.
    app: String,
    /// Release id (from `custody push` or `custody releases list APP`).
    #[arg(long)]
    release: String,
    /// Environment name.
    #[arg(long = "env")]
    env: String,
    /// Follow the deployment live: state, every target's progress and the
    /// install hooks' output (secret values shown as ***). Exits non-zero
    /// unless every target succeeded.
    #[arg(long)]
    follow: bool,
}

/// Runs it.
pub async fn run(ctx: &Ctx, a: DeployArgs) -> Result<()> {
    let c = ctx.client()?;
    let d: Deployment = c
        .post(
            "/v1/deployments",
            &CreateDeployment {
                app: a.app.clone(),
                release: a.release.clone(),
                environment: a.env.clone(),
            },
        )
        .await
        .with_context(|| format!("deploying {} {} to {}", a.app, a.release, a.env))?;
    if !a.follow {
        if ctx.json {
            return output::json(&d);
        }
        eprintln!(
            "deployment {} of {} {} to {}: {}{}",
            d.id,
            d.app,
            d.release_id,
            d.environment,
            d.state.as_str(),
            if d.state == DeploymentState::PendingApproval {
                " (waiting for approvers)"
            } else {
                ""
            }
        );
        println!("{}", d.id);
        return Ok(());
    }
    let out = Out::new(ctx.json);
    let done = deployments::follow(&c, &d.id, out).await?;
    let names = Names::fetch(&c).await;
    deployments::conclude(ctx, out, &names, &done)
}
