//! The approver's own Ed25519 key: `custody keygen --user` writes it in
//! the publisher key's file format (unencrypted PKCS#8 PEM, 0600; see
//! `crate::publisher_key`) as `approver.key` beside the login file, and the
//! public half as 64 hex digits in `approver.key.pub` for an owner to
//! register with `custody users set-key`.

use crate::commands::Ctx;
use crate::{output, publisher_key};
use anyhow::{Context, Result, bail};
use ed25519_dalek::SigningKey;
use std::path::{Path, PathBuf};

/// `approver.key` beside the login file.
pub fn default_path(ctx: &Ctx) -> Result<PathBuf> {
    Ok(ctx.config_path()?.with_file_name("approver.key"))
}

fn pub_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// `custody keygen --user [--out FILE] [--force]`: makes the key, registers
/// nothing (an owner registers the public half).
pub fn keygen_user(ctx: &Ctx, out: Option<PathBuf>, force: bool) -> Result<()> {
    let path = match out {
        Some(p) => p,
        None => default_path(ctx)?,
    };
    if !force && std::fs::symlink_metadata(&path).is_ok() {
        bail!(
            "{} already exists; pass --force to replace it (approvals signed with the old key stop counting once the new one is registered)",
            path.display()
        );
    }
    let key = publisher_key::generate()?;
    crate::config::write_private(&path, publisher_key::to_pem(&key).as_bytes())?;
    let public = custody_envelope::approval::public_key_hex(&key.verifying_key());
    let pub_file = pub_path(&path);
    std::fs::write(&pub_file, format!("{public}\n"))
        .with_context(|| format!("writing {}", pub_file.display()))?;
    let key_id = custody_envelope::approval::key_id(&key.verifying_key());
    if ctx.json {
        return output::json(&serde_json::json!({
            "file": path,
            "public_key_file": pub_file,
            "public_key": public,
            "key_id": key_id,
        }));
    }
    println!("{public}");
    eprintln!(
        "approval key written to {} (0600), public half to {}. An owner registers it with:\n  custody users set-key YOUR_NAME --public-key {}",
        path.display(),
        pub_file.display(),
        pub_file.display()
    );
    Ok(())
}

/// The approval key at `path`, or the default one.
pub fn load_approver_key(ctx: &Ctx, path: Option<&Path>) -> Result<SigningKey> {
    let p = match path {
        Some(p) => p.to_path_buf(),
        None => default_path(ctx)?,
    };
    if std::fs::symlink_metadata(&p).is_err() {
        bail!(
            "no approval key at {}: make one with `custody keygen --user` and have an owner register it",
            p.display()
        );
    }
    publisher_key::load(&p).with_context(|| format!("approval key {}", p.display()))
}

/// The default approval key, if there is one.
pub fn default_approver_key(ctx: &Ctx) -> Result<Option<SigningKey>> {
    let p = default_path(ctx)?;
    if std::fs::symlink_metadata(&p).is_err() {
        return Ok(None);
    }
    load_approver_key(ctx, Some(&p)).map(Some)
}
