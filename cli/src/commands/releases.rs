//! `custody releases list|show|delete`.

use super::Ctx;
use crate::output;
use anyhow::Result;
use clap::Subcommand;
use custody_proto::apps::{Release, ReleaseState};

/// Subcommands.
#[derive(Subcommand)]
pub enum ReleasesCmd {
    /// List an application's releases.
    List {
        /// Application name.
        app: String,
    },
    /// Show one release.
    Show {
        /// Release id.
        id: String,
    },
    /// Delete a release that has no deployments (owner).
    Delete {
        /// Release id.
        id: String,
    },
}

/// A release state's wire name.
pub fn state_name(s: ReleaseState) -> &'static str {
    match s {
        ReleaseState::Created => "created",
        ReleaseState::Uploaded => "uploaded",
        ReleaseState::Sealing => "sealing",
        ReleaseState::Deployable => "deployable",
        ReleaseState::Undeployable => "undeployable",
    }
}

/// Runs it.
pub async fn run(ctx: &Ctx, cmd: ReleasesCmd) -> Result<()> {
    let c = ctx.client()?;
    match cmd {
        ReleasesCmd::List { app } => {
            let rs: Vec<Release> = c.get(&format!("/v1/apps/{app}/releases")).await?;
            if ctx.json {
                return output::json(&rs);
            }
            let rows = rs
                .iter()
                .map(|r| {
                    vec![
                        r.id.clone(),
                        state_name(r.state).to_string(),
                        r.package_size.map(|s| s.to_string()).unwrap_or_default(),
                        output::time(r.created_at),
                    ]
                })
                .collect::<Vec<_>>();
            output::table(&["ID", "STATE", "SIZE", "CREATED"], &rows);
        }
        ReleasesCmd::Show { id } => {
            let r: Release = c.get(&format!("/v1/releases/{id}")).await?;
            if ctx.json {
                return output::json(&r);
            }
            println!("release {} of {}", r.id, r.app);
            println!("state:        {}", state_name(r.state));
            if let Some(why) = &r.undeployable_reason {
                println!("reason:       {why}");
            }
            if let Some(sha) = &r.package_sha256 {
                println!(
                    "package:      {} bytes, sha256 {sha}",
                    r.package_size.unwrap_or(0)
                );
            }
            if let Some(mk) = &r.master_key_id {
                println!("master key:   {mk}");
            }
            for fp in &r.key_manager_fingerprints {
                println!("key manager:  {fp}");
            }
            println!("created:      {}", output::time(r.created_at));
        }
        ReleasesCmd::Delete { id } => {
            c.delete(&format!("/v1/releases/{id}")).await?;
            println!("deleted release {id}");
        }
    }
    Ok(())
}
