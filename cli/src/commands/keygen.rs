//! `custody keygen`: make the publisher signing key `custody push` signs
//! release descriptors with, and print the public half targets pin.

use super::Ctx;
use crate::{output, publisher_key};
use anyhow::{Result, bail};
use std::path::PathBuf;

/// `custody keygen` arguments.
#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Where to write the private key (0600, PKCS#8 PEM). Default:
    /// publisher.key next to the login file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace an existing key file (releases signed with the old key stop
    /// deploying on targets that pin only the old public key).
    #[arg(long)]
    force: bool,
    /// Make your approval key instead (approver.key beside the login file;
    /// an owner registers its public half with `custody users set-key`).
    #[arg(long)]
    user: bool,
}

/// The default publisher key path: `publisher.key` beside the login file.
pub fn default_path(ctx: &Ctx) -> Result<PathBuf> {
    Ok(ctx.config_path()?.with_file_name("publisher.key"))
}

/// Runs it.
pub fn run(ctx: &Ctx, a: KeygenArgs) -> Result<()> {
    if a.user {
        return crate::approvals::keys::keygen_user(ctx, a.out, a.force);
    }
    let path = match a.out {
        Some(p) => p,
        None => default_path(ctx)?,
    };
    if !a.force && std::fs::symlink_metadata(&path).is_ok() {
        bail!(
            "{} already exists; pass --force to replace it",
            path.display()
        );
    }
    let key = publisher_key::generate()?;
    crate::config::write_private(&path, publisher_key::to_pem(&key).as_bytes())?;
    let public = publisher_key::public_hex(&key);
    if ctx.json {
        return output::json(&serde_json::json!({
            "file": path,
            "public_key": public,
            "key_id": publisher_key::key_id(&key),
        }));
    }
    println!("{public}");
    eprintln!(
        "publisher key written to {} (0600). Pin the public key above on every target, \
         in the agent config: [target] publisher_keys = [\"{public}\"]",
        path.display()
    );
    Ok(())
}
