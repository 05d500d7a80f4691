//! `custody audit export|verify`.
//!
//! `verify` checks a full export: every entry's hash and link from the
//! genesis, consecutive sequence numbers, and the final checkpoint's
//! Ed25519 signature against the key pinned at `custody login`, which must
//! cover exactly the exported entries. It remembers the last head it
//! verified (next to the login file) so a later export that drops or
//! rewrites entries it had already seen is caught. Errors name the first
//! broken entry.

use super::Ctx;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use custody_proto::audit::{
    AuditEntry, ChainError, CheckpointLine, GENESIS_HASH, checkpoint_message, verify_chain,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Subcommands.
#[derive(Subcommand)]
pub enum AuditCmd {
    /// Download the whole audit log (JSON lines ending with a signed checkpoint).
    Export {
        /// Write here instead of standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Verify an export against the coordinator key pinned at login.
    Verify {
        /// The export file.
        file: PathBuf,
    },
}

/// The head seen by the last successful verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenHead {
    /// Account.
    pub account: String,
    /// Entries.
    pub count: u64,
    /// Head hash.
    pub head_hash: String,
}

/// Why an export does not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A line is neither an entry nor the checkpoint.
    #[error("line {0} is not an audit entry")]
    Garbled(usize),
    /// No checkpoint at the end.
    #[error("the export has no signed checkpoint at its end (truncated?)")]
    NoCheckpoint,
    /// The chain is broken.
    #[error("{0}")]
    Chain(ChainError),
    /// The checkpoint does not cover exactly these entries.
    #[error(
        "the export ends at entry {entries} but the signed checkpoint covers {count} entries (entries were cut or added)"
    )]
    CountMismatch {
        /// Exported entries.
        entries: u64,
        /// Checkpoint count.
        count: u64,
    },
    /// The head does not match the checkpoint.
    #[error("entry {0}: its hash is not the head the checkpoint signs")]
    HeadMismatch(u64),
    /// Signed by a key other than the pinned one.
    #[error("the checkpoint is signed by {0}, not by the coordinator key pinned at login")]
    UnknownKey(String),
    /// Bad signature.
    #[error("the checkpoint signature does not verify")]
    BadSignature,
    /// Shorter than before.
    #[error(
        "the log has {now} entries but {before} were seen before: entries {from}.. were removed"
    )]
    Shrunk {
        /// Now.
        now: u64,
        /// Before.
        before: u64,
        /// First missing.
        from: u64,
    },
    /// An entry seen before changed.
    #[error("entry {0} differs from the head verified before: history was rewritten")]
    Rewritten(u64),
}

fn parse(text: &str) -> Result<(Vec<AuditEntry>, CheckpointLine), VerifyError> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
        .collect();
    let Some(((_, last), body)) = lines.split_last() else {
        return Err(VerifyError::NoCheckpoint);
    };
    let cp: CheckpointLine = serde_json::from_str(last).map_err(|_| VerifyError::NoCheckpoint)?;
    let mut entries = Vec::with_capacity(body.len());
    for (n, l) in body {
        entries.push(serde_json::from_str::<AuditEntry>(l).map_err(|_| VerifyError::Garbled(*n))?);
    }
    Ok((entries, cp))
}

/// Verifies an export against the pinned key and the head seen before.
pub fn verify(
    text: &str,
    pinned_key_hex: &str,
    seen: Option<&SeenHead>,
) -> Result<(u64, String), VerifyError> {
    let (entries, cp) = parse(text)?;
    let cp = cp.checkpoint;
    let head = verify_chain(&entries, 1, GENESIS_HASH).map_err(VerifyError::Chain)?;
    let n = entries.len() as u64;
    if cp.count != n {
        return Err(VerifyError::CountMismatch {
            entries: n,
            count: cp.count,
        });
    }
    if cp.head_hash != head {
        return Err(VerifyError::HeadMismatch(n));
    }
    if !cp.public_key.eq_ignore_ascii_case(pinned_key_hex) {
        return Err(VerifyError::UnknownKey(cp.public_key));
    }
    let key_bytes: [u8; 32] = hex::decode(pinned_key_hex)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| VerifyError::UnknownKey(pinned_key_hex.to_string()))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key_bytes)
        .map_err(|_| VerifyError::UnknownKey(pinned_key_hex.to_string()))?;
    let sig_bytes: [u8; 64] = hex::decode(&cp.signature)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or(VerifyError::BadSignature)?;
    let sig = ed25519_dalek::Signature::from_bytes(&sig_bytes);
    key.verify_strict(&checkpoint_message(cp.count, &cp.head_hash, cp.at_ms), &sig)
        .map_err(|_| VerifyError::BadSignature)?;
    if let Some(s) = seen {
        if s.count > n {
            return Err(VerifyError::Shrunk {
                now: n,
                before: s.count,
                from: n + 1,
            });
        }
        if s.count > 0 && entries[(s.count - 1) as usize].hash != s.head_hash {
            return Err(VerifyError::Rewritten(s.count));
        }
    }
    Ok((n, head))
}

fn seen_path(login_file: &Path) -> PathBuf {
    login_file.with_file_name("audit-head.json")
}

/// Runs it.
pub async fn run(ctx: &Ctx, cmd: AuditCmd) -> Result<()> {
    match cmd {
        AuditCmd::Export { out } => {
            let text = ctx.client()?.get_text("/v1/audit").await?;
            match out {
                Some(p) => {
                    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?
                }
                None => print!("{text}"),
            }
        }
        AuditCmd::Verify { file } => {
            let login = ctx.login()?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let sp = seen_path(&ctx.config_path()?);
            let seen: Option<SeenHead> = std::fs::read(&sp)
                .ok()
                .and_then(|b| serde_json::from_slice::<SeenHead>(&b).ok())
                .filter(|s| s.account == login.account);
            let (count, head) = match verify(&text, &login.audit_public_key, seen.as_ref()) {
                Ok(x) => x,
                Err(e) => bail!("audit log does NOT verify: {e}"),
            };
            if seen.as_ref().is_none_or(|s| s.count <= count) {
                let s = SeenHead {
                    account: login.account.clone(),
                    count,
                    head_hash: head.clone(),
                };
                crate::config::write_private(&sp, &serde_json::to_vec(&s)?)?;
            }
            if ctx.json {
                crate::output::json(
                    &serde_json::json!({"verified": true, "entries": count, "head_hash": head}),
                )?;
            } else {
                println!(
                    "audit log verified: {count} entries, head {head}, checkpoint signed by the pinned coordinator key"
                );
            }
        }
    }
    Ok(())
}
