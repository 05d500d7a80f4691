//! The unprivileged user sandboxed agents switch to.
//!
//! The tests run as root here; the agent's sandbox then drops to a service
//! user, as it does in production. That user is `custody-test`, the one the
//! agent's own tests create (`agent/tests/common/test_user.rs`), made
//! the same way when it is missing. The agent's state dir and a SoftHSM2
//! token dir must belong to it (SoftHSM2 rewrites `token.lock` on login).

use std::path::Path;
use std::process::Command;

use crate::error::{E2eError, Result, io};

/// The service user's name.
pub const SERVICE_USER: &str = "custody-test";
/// Serialises creating the service user across test threads and binaries
/// (the agent tests take the same lock).
pub const USERADD_LOCK: &str = "/tmp/custody-test-useradd.lock";

/// Whether this process runs as root (the sandbox then switches user).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The uid and gid the sandboxed agents run as: `custody-test` (created
/// when missing) when running as root, else the current user.
pub fn service_ids() -> Result<(u32, u32)> {
    if !running_as_root() {
        return Ok((
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
        ));
    }
    let lookup = || {
        nix::unistd::User::from_name(SERVICE_USER).map_err(|e| E2eError::Io {
            action: "look up",
            what: format!("user {SERVICE_USER}"),
            source: e.into(),
        })
    };
    // Concurrent `useradd`s (test threads, test binaries) can each write
    // /etc/passwd and leave the user with another uid than one of them
    // looked up: check and create under one lock.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(USERADD_LOCK)
        .map_err(io("open", USERADD_LOCK))?;
    lock.lock().map_err(io("lock", USERADD_LOCK))?;
    if lookup()?.is_none() {
        let status = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ])
            .status()
            .map_err(io("run", "useradd"))?;
        // 9: created meanwhile by a concurrent test.
        if !status.success() && status.code() != Some(9) {
            return Err(E2eError::Command {
                command: format!("useradd {SERVICE_USER}"),
                status: status.to_string(),
                stderr: String::new(),
            });
        }
    }
    let user = lookup()?.ok_or_else(|| E2eError::Setup(format!("no user {SERVICE_USER}")))?;
    drop(lock);
    Ok((user.uid.as_raw(), user.gid.as_raw()))
}

/// Gives `path` and everything below it to `uid:gid` (symlinks themselves,
/// not their targets).
pub fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io("chown", path.display()))?;
    let meta = std::fs::symlink_metadata(path).map_err(io("stat", path.display()))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io("list", path.display()))? {
            let entry = entry.map_err(io("list", path.display()))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}
