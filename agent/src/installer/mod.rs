//! The privilege-separated installer (`docs/HARDENING.md`, DESIGN Flow 6).
//!
//! The main process starts it once, at start-up and before sandboxing
//! itself ([`InstallerHandle::spawn`]): `custody-agent installer` (hidden
//! subcommand → [`child_main`]), with one end of a Unix socket pair as its
//! standard input. The child applies its own, narrower [`SandboxPlan`] as
//! its first act — staging read-write (to delete the plaintext), install
//! roots read-write, `/usr`, `/bin`, `/lib*` read-execute, `/etc` read, no
//! network, the `installer` seccomp profile — and then serves install requests one at a time: it unpacks the
//! verified package tar safely ([`unpack`](self) rules), runs the
//! manifest's hooks and moves the release into place (see `install.rs`).
//!
//! # Protocol
//!
//! Frames in both directions: a big-endian `u32` length (at most 4 MiB)
//! and that many bytes of JSON, one object with a `type` member.
//!
//! 1. main → child `{"type":"start","settings":{…}}`: the plan, install
//!    roots, staging dir, caps, default hook time limit, log level. Read
//!    before any restriction; the child has no thread yet.
//! 2. child → main `{"type":"ready","landlock_abi":N}` once the sandbox is
//!    applied, or `{"type":"start_failed","message":…}` and it exits.
//! 3. main → child `{"type":"install","deployment_id":…,"package_tar":…,
//!    "variables":[{"name":…,"value":…,"secret":bool}]}` (the frame is
//!    built in a zeroizing buffer; it carries secret values).
//! 4. child → main any number of `{"type":"log","line":{"stream":
//!    "stdout"|"stderr"|"installer","line":…}}` (already redacted), then
//!    `{"type":"done","result":{"Ok":{report}}|{"Err":{error}}}`.
//! 5. Repeat from 3. When the main process closes its end (drop of the
//!    handle, or its exit), the child reads end-of-file and exits. With
//!    Landlock ABI ≥ 6 the main process could not signal the child anyway
//!    (it was started before the main process restricted itself, so it is
//!    outside the main process's domain): closing the socket is how it is
//!    stopped.

mod child;
mod error;
mod handle;
mod hooks;
mod install;
mod protocol;
mod redact;
mod tree;
mod unpack;

use std::fmt;
use std::path::{Component, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use child::child_main;
pub use error::{HookKind, HookStatus, InstallerError};
pub use handle::InstallerHandle;
pub use redact::{MASK, MAX_LINE};

use crate::sandbox::{LandlockRequirement, SandboxPlan, SeccompProfile, system_exec_paths};

/// What the installer may touch and how much it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallerSettings {
    /// Directories releases may be installed below (absolute, plain).
    pub install_roots: Vec<PathBuf>,
    /// The private staging directory the verified package tars are in.
    pub staging_dir: PathBuf,
    /// Cap on the total size of a release's files.
    pub max_total_bytes: u64,
    /// Cap on a release's entries (files and directories).
    pub max_files: u64,
    /// Cap on one file's size.
    pub max_file_bytes: u64,
    /// A hook's time limit when its manifest gives none.
    pub hook_timeout: Duration,
    /// The service user the child runs as (never root).
    pub user: String,
    /// Its primary group, when not the user's own.
    pub group: Option<String>,
    /// How much Landlock the child's plan requires.
    pub landlock: LandlockRequirement,
    /// The child's log level.
    pub log_level: String,
}

/// The default service user (systemd/sysusers.d).
pub const DEFAULT_SERVICE_USER: &str = "custody-agent";

impl InstallerSettings {
    /// From the agent's configuration: `[target]` roots and caps, staging
    /// below `[state] dir`, `[sandbox] require`, `[log] level`. The service
    /// user is the one the agent was started as when that is not root (as
    /// systemd's `User=` does), else [`DEFAULT_SERVICE_USER`]; the runtime
    /// may set [`Self::user`], [`Self::group`] and [`Self::landlock`] from
    /// `[sandbox]` before spawning.
    pub fn from_config(cfg: &crate::config::AgentConfig) -> Result<Self, InstallerError> {
        let t = &cfg.target;
        if t.install_roots.is_empty() {
            return Err(InstallerError::Settings(
                "[target] install_roots is empty: this server is not a deploy target".into(),
            ));
        }
        let settings = InstallerSettings {
            install_roots: t.install_roots.iter().map(|r| plain(r)).collect(),
            staging_dir: plain(&cfg.state.dir.join("staging")),
            max_total_bytes: t.max_total_bytes,
            max_files: t.max_files,
            max_file_bytes: t.max_file_bytes,
            hook_timeout: Duration::from_secs(t.hook_timeout_secs),
            user: current_user_or_default(),
            group: None,
            landlock: LandlockRequirement {
                require: cfg.sandbox.require,
                min_abi: None,
            },
            log_level: cfg.log.level.clone(),
        };
        settings.check()?;
        Ok(settings)
    }

    /// Checks what the config validation may not have (settings built by
    /// hand, in tests or by the runtime).
    pub fn check(&self) -> Result<(), InstallerError> {
        let bad = |m: String| Err(InstallerError::Settings(m));
        if self.install_roots.is_empty() {
            return bad("no install root".into());
        }
        for p in self.install_roots.iter().chain([&self.staging_dir]) {
            let plain = p.is_absolute()
                && p.components()
                    .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
                && p.components().count() > 1;
            if !plain {
                return bad(format!(
                    "{} must be an absolute path other than / without . or ..",
                    p.display()
                ));
            }
        }
        if self.max_total_bytes == 0 || self.max_files == 0 || self.max_file_bytes == 0 {
            return bad("size and file caps must be at least 1".into());
        }
        if self.hook_timeout.is_zero() {
            return bad("the hook time limit must be at least 1 s".into());
        }
        Ok(())
    }

    /// The child's sandbox plan.
    pub fn plan(&self) -> SandboxPlan {
        let mut plan = SandboxPlan::new(self.user.clone(), SeccompProfile::Installer)
            .read("/etc")
            .read_write(&self.staging_dir)
            .read_write("/dev/null")
            .landlock(self.landlock.clone());
        for root in &self.install_roots {
            plan = plan.read_write(root);
        }
        for p in system_exec_paths() {
            plan = plan.read_exec(p);
        }
        plan.group = self.group.clone();
        // No RLIMIT_FSIZE: the caps are enforced from the tar headers
        // before a byte is written, and the limit would also apply to an
        // inherited stderr that is a file (SIGXFSZ kills the child; ignoring
        // the signal needs unsafe code) and to everything hooks write.
        plan
    }
}

/// Drops `.` components and trailing slashes (validated configs have no
/// `..`).
fn plain(p: &std::path::Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

fn current_user_or_default() -> String {
    let uid = rustix::process::geteuid();
    if !uid.is_root()
        && let Ok(Some(user)) =
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid.as_raw()))
    {
        return user.name;
    }
    DEFAULT_SERVICE_USER.to_owned()
}

/// One environment variable for the hooks.
pub struct Variable {
    /// Its name (`[A-Za-z_][A-Za-z0-9_]*`).
    pub name: String,
    /// Its value; zeroized on drop, never printed.
    pub value: Zeroizing<String>,
    /// Secret values are replaced by `***` in all output.
    pub secret: bool,
}

impl fmt::Debug for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Variable")
            .field("name", &self.name)
            .field("value", &if self.secret { "<secret>" } else { "<value>" })
            .field("secret", &self.secret)
            .finish()
    }
}

/// One install to do.
#[derive(Debug)]
pub struct InstallRequest {
    /// The deployment's id (for logs and `CUSTODY_DEPLOYMENT_ID`).
    pub deployment_id: String,
    /// The decrypted, verified package tar, inside the staging directory.
    /// The installer deletes it when done.
    pub package_tar: PathBuf,
    /// The environment's variables, plain and secret. Hooks see those the
    /// manifest's `env` names.
    pub variables: Vec<Variable>,
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// A hook's standard output.
    Stdout,
    /// A hook's standard error.
    Stderr,
    /// The installer's own progress lines.
    Installer,
}

/// One line of output, every secret value already replaced by `***`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLine {
    /// Where it came from.
    pub stream: LogStream,
    /// The line, without its newline, at most [`MAX_LINE`] bytes of the
    /// original (plus a truncation note).
    pub line: String,
}

/// How a hook ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookReport {
    /// Which hook.
    pub hook: HookKind,
    /// How it ended.
    pub status: HookStatus,
    /// How long it ran.
    pub duration: Duration,
}

/// The end state of an install that moved files into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallOutcome {
    /// Installed, and `post_install` (if any) succeeded.
    Installed,
    /// The files are installed but `post_install` failed, timed out or
    /// could not start: the deployment is failed.
    PostInstallFailed,
}

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallReport {
    /// The deployment.
    pub deployment_id: String,
    /// Where the release now is.
    pub destination: PathBuf,
    /// Regular files installed.
    pub files: u64,
    /// Directories created in the release.
    pub directories: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// A previous version was at the destination and was replaced
    /// atomically (then removed).
    pub replaced_previous: bool,
    /// The hooks that ran, in order.
    pub hooks: Vec<HookReport>,
    /// Whether the deployment succeeded.
    pub outcome: InstallOutcome,
    /// From request to report.
    pub duration: Duration,
}

impl InstallReport {
    /// Installed and every hook succeeded.
    pub fn succeeded(&self) -> bool {
        self.outcome == InstallOutcome::Installed
    }
}
