//! `custody login`: check the URL, CA pin and token against the coordinator,
//! pin its audit key, and save everything 0600.

use super::Ctx;
use crate::config::{self, Login};
use anyhow::{Context, Result};
use custody_client::{Client, ClientConfig};
use custody_proto::Info;
use custody_proto::admin::WhoAmI;

/// `custody login` arguments.
#[derive(clap::Args)]
pub struct LoginArgs {
    /// Coordinator URL, e.g. https://coordinator:8443.
    #[arg(long)]
    url: String,
    /// SHA-256 fingerprint of the coordinator's CA (printed by `custody-coordinator init`).
    #[arg(long)]
    ca_fingerprint: String,
    /// API token (or set CUSTODY_TOKEN).
    #[arg(long, env = "CUSTODY_TOKEN", hide_env_values = true)]
    token: String,
}

/// Runs it.
pub async fn run(ctx: &Ctx, a: LoginArgs) -> Result<()> {
    let fp: String = a
        .ca_fingerprint
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_lowercase();
    let client = Client::new(ClientConfig::new(&a.url, Some(&fp), Some(&a.token)))?;
    let who: WhoAmI = client
        .get("/v1/whoami")
        .await
        .context("checking the token")?;
    let info: Info = client
        .get("/v1/info")
        .await
        .context("reading the coordinator's keys")?;
    let path = ctx.config_path()?;
    if let Ok(old) = config::load(&path)
        && old.account == info.account
        && old.audit_public_key != info.audit_public_key
    {
        anyhow::bail!(
            "the coordinator's audit key changed since the last login ({} → {}); refusing to re-pin it",
            old.audit_public_key,
            info.audit_public_key
        );
    }
    config::save(
        &path,
        &Login {
            url: a.url.trim_end_matches('/').to_string(),
            ca_fingerprint: fp,
            token: a.token,
            account: info.account.clone(),
            audit_public_key: info.audit_public_key,
        },
    )?;
    let roles: Vec<&str> = who.roles.iter().map(|r| r.as_str()).collect();
    println!(
        "logged in to {} as {} ({}); saved {}",
        info.account,
        who.name,
        roles.join(","),
        path.display()
    );
    Ok(())
}
