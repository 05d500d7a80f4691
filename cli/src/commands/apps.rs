//! `custody app create|secure|list|show`.

use super::Ctx;
use crate::output;
use anyhow::{Context, Result};
use clap::Subcommand;
use custody_proto::apps::{App, CreateApp};

/// Subcommands.
#[derive(Subcommand)]
pub enum AppCmd {
    /// Create an application (owner).
    Create {
        /// Application name: letters, digits, '_', '-', '.'.
        name: String,
        /// Make it secure at once: its releases are encrypted and their keys
        /// go through your key managers (needs two live key managers).
        #[arg(long)]
        secure: bool,
    },
    /// Make an existing application secure (owner; needs two live key
    /// managers). There is no way back.
    Secure {
        /// Application name.
        name: String,
    },
    /// List applications.
    List,
    /// Show one application.
    Show {
        /// Application name.
        name: String,
    },
}

fn print_app(ctx: &Ctx, a: &App, verb: &str) -> Result<()> {
    if ctx.json {
        return output::json(a);
    }
    let what = format!(
        "app {} ({}), {}",
        a.name,
        a.id,
        if a.secure { "secure" } else { "not secure" }
    );
    if verb.is_empty() {
        println!("{what}, created {}", output::time(a.created_at));
    } else {
        println!("{verb} {what}");
    }
    Ok(())
}

/// Runs it.
pub async fn run(ctx: &Ctx, cmd: AppCmd) -> Result<()> {
    let c = ctx.client()?;
    match cmd {
        AppCmd::Create { name, secure } => {
            let a: App = c
                .post("/v1/apps", &CreateApp { name, secure })
                .await
                .context("creating the app")?;
            print_app(ctx, &a, "created")
        }
        AppCmd::Secure { name } => {
            let a: App = c
                .post(&format!("/v1/apps/{name}/secure"), &serde_json::json!({}))
                .await
                .context("making the app secure")?;
            print_app(ctx, &a, "secured")
        }
        AppCmd::Show { name } => {
            let a: App = c.get(&format!("/v1/apps/{name}")).await?;
            print_app(ctx, &a, "")
        }
        AppCmd::List => {
            let apps: Vec<App> = c.get("/v1/apps").await?;
            if ctx.json {
                return output::json(&apps);
            }
            let rows = apps
                .iter()
                .map(|a| {
                    vec![
                        a.name.clone(),
                        a.id.clone(),
                        if a.secure { "yes" } else { "no" }.to_string(),
                        output::time(a.created_at),
                    ]
                })
                .collect::<Vec<_>>();
            output::table(&["NAME", "ID", "SECURE", "CREATED"], &rows);
            Ok(())
        }
    }
}
