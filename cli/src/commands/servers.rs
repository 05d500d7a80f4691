//! `custody servers list|join-token|enable-km|disable-km|remove`.

use super::Ctx;
use crate::output;
use anyhow::Result;
use clap::Subcommand;
use custody_proto::servers::{CreateJoinToken, JoinToken, Server};

/// Subcommands.
#[derive(Subcommand)]
pub enum ServersCmd {
    /// List enrolled servers.
    List,
    /// Make a one-time join token for a new agent.
    JoinToken {
        /// Lifetime in seconds (default 3600).
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Enable a server as key manager.
    EnableKm {
        /// Server id or name.
        server: String,
    },
    /// Stop using a server as key manager (it keeps what it holds).
    DisableKm {
        /// Server id or name.
        server: String,
    },
    /// Remove a server: its credential stops working at once. Removing the
    /// last key manager that holds the master key loses it.
    Remove {
        /// Server id or name.
        server: String,
    },
}

async fn set_km(ctx: &Ctx, server: &str, enabled: bool) -> Result<()> {
    let s: Server = ctx
        .client()?
        .put(
            &format!("/v1/servers/{server}/key-manager"),
            &serde_json::json!({"enabled": enabled}),
        )
        .await?;
    if ctx.json {
        return output::json(&s);
    }
    println!(
        "{} ({}) key manager: {}",
        s.name,
        s.id,
        if s.key_manager { "enabled" } else { "disabled" }
    );
    Ok(())
}

/// Runs it.
pub async fn run(ctx: &Ctx, cmd: ServersCmd) -> Result<()> {
    match cmd {
        ServersCmd::List => {
            let ss: Vec<Server> = ctx.client()?.get("/v1/servers").await?;
            if ctx.json {
                return output::json(&ss);
            }
            let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
            let rows = ss
                .iter()
                .map(|s| {
                    vec![
                        s.id.clone(),
                        s.name.clone(),
                        yes(s.live),
                        yes(s.key_manager),
                        yes(s.holds_master_key),
                        s.key_fingerprint.clone(),
                    ]
                })
                .collect::<Vec<_>>();
            output::table(
                &[
                    "ID",
                    "NAME",
                    "LIVE",
                    "KEY MANAGER",
                    "HOLDS MK",
                    "KEY FINGERPRINT",
                ],
                &rows,
            );
        }
        ServersCmd::JoinToken { ttl } => {
            let t: JoinToken = ctx
                .client()?
                .post(
                    "/v1/servers/join-tokens",
                    &CreateJoinToken { ttl_seconds: ttl },
                )
                .await?;
            if ctx.json {
                output::json(&t)?;
            } else {
                println!("{}", t.token);
                eprintln!(
                    "one-time join token, expires at {} (Unix time)",
                    t.expires_at
                );
            }
        }
        ServersCmd::EnableKm { server } => set_km(ctx, &server, true).await?,
        ServersCmd::DisableKm { server } => set_km(ctx, &server, false).await?,
        ServersCmd::Remove { server } => {
            ctx.client()?
                .delete(&format!("/v1/servers/{server}"))
                .await?;
            println!("removed server {server}");
        }
    }
    Ok(())
}
