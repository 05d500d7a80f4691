//! `custody tokens create|list|revoke`.

use super::Ctx;
use crate::output;
use anyhow::Result;
use clap::Subcommand;
use custody_proto::admin::{CreateToken, TokenCreated, TokenInfo};

/// Subcommands.
#[derive(Subcommand)]
pub enum TokensCmd {
    /// Create a token (for yourself, or as owner for --user). Printed once.
    Create {
        /// User name or id (owner only).
        #[arg(long)]
        user: Option<String>,
        /// A label to recognise it by.
        #[arg(long)]
        label: Option<String>,
    },
    /// List tokens (yours; all for an owner).
    List,
    /// Revoke a token by id.
    Revoke {
        /// Token id (tok_…).
        id: String,
    },
}

/// Runs it.
pub async fn run(ctx: &Ctx, cmd: TokensCmd) -> Result<()> {
    let c = ctx.client()?;
    match cmd {
        TokensCmd::Create { user, label } => {
            let t: TokenCreated = c.post("/v1/tokens", &CreateToken { user, label }).await?;
            if ctx.json {
                output::json(&t)?;
            } else {
                println!("{}", t.token);
                eprintln!("token {} for {}: shown once, store it now", t.id, t.user_id);
            }
        }
        TokensCmd::List => {
            let ts: Vec<TokenInfo> = c.get("/v1/tokens").await?;
            if ctx.json {
                return output::json(&ts);
            }
            let rows = ts
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.prefix.clone(),
                        t.user_id.clone(),
                        t.label.clone().unwrap_or_default(),
                        if t.revoked_at.is_some() {
                            "revoked".into()
                        } else {
                            "active".into()
                        },
                    ]
                })
                .collect::<Vec<_>>();
            output::table(&["ID", "PREFIX", "USER", "LABEL", "STATE"], &rows);
        }
        TokensCmd::Revoke { id } => {
            c.delete(&format!("/v1/tokens/{id}")).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
