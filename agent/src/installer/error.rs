//! Why an install was refused or failed.
//!
//! The error crosses the socket between the installer child and the main
//! process, so it is plain data (strings, numbers) and serialisable; the
//! few variants that only the main process produces (it could not start or
//! reach the child) are never sent. Messages name the offending entry,
//! path or hook, never a variable's value.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    /// Runs on the unpacked release before it moves into place; failing
    /// aborts the install.
    PreInstall,
    /// Runs in the destination after the move; failing leaves the files and
    /// marks the report failed.
    PostInstall,
}

impl HookKind {
    /// The manifest's name for it.
    pub fn name(self) -> &'static str {
        match self {
            HookKind::PreInstall => "pre_install",
            HookKind::PostInstall => "post_install",
        }
    }
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a hook ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookStatus {
    /// It exited with this code.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
    /// It ran past its time limit; its process group was killed.
    TimedOut,
    /// It could not be started (no such program, bad working dir); the
    /// installer's log says why.
    NotStarted,
}

impl HookStatus {
    /// Exit code 0.
    pub fn success(self) -> bool {
        self == HookStatus::Exited(0)
    }
}

impl std::fmt::Display for HookStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookStatus::Exited(c) => write!(f, "exit code {c}"),
            HookStatus::Signaled(s) => write!(f, "signal {s}"),
            HookStatus::TimedOut => f.write_str("timed out"),
            HookStatus::NotStarted => f.write_str("could not be started"),
        }
    }
}

/// A refused or failed install, or an installer that cannot be reached.
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InstallerError {
    /// The settings cannot work (no install root, a root that is not a
    /// plain absolute path …).
    #[error("installer settings: {0}")]
    Settings(String),
    /// The package tar is not inside the staging directory, or is not a
    /// regular file.
    #[error("the package {path} is not a regular file inside the staging directory")]
    PackageNotStaged {
        /// The path given.
        path: PathBuf,
    },
    /// The tar does not start with `custody.toml`, or it is not a regular
    /// file of at most 64 KiB.
    #[error("the package does not start with a custody.toml manifest")]
    ManifestMissing,
    /// The manifest was refused (its message names the field).
    #[error("{0}")]
    Manifest(String),
    /// The tar is malformed (bad header checksum, truncated data, an
    /// extension header with no entry after it …).
    #[error("malformed package tar: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// An entry's path is absolute.
    #[error("entry {entry:?}: absolute path")]
    AbsolutePath {
        /// The entry's path.
        entry: String,
    },
    /// An entry's path has a `..` component.
    #[error("entry {entry:?}: `..` in the path")]
    ParentDir {
        /// The entry's path.
        entry: String,
    },
    /// An entry's path is empty, not UTF-8, has control characters or is
    /// too long.
    #[error("entry {entry:?}: {reason}")]
    BadPath {
        /// The entry's path (lossily converted).
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// A symbolic or hard link. All links are refused: containment of a
    /// link target cannot be proven at unpack time for what hooks do later,
    /// and a release has no need of them (a hook may create links).
    #[error("entry {entry:?}: links are not allowed ({kind})")]
    Link {
        /// The entry's path.
        entry: String,
        /// `symlink` or `hard link`.
        kind: String,
    },
    /// A character or block device, or a FIFO.
    #[error("entry {entry:?}: device and FIFO files are not allowed ({kind})")]
    DeviceFile {
        /// The entry's path.
        entry: String,
        /// `character device`, `block device` or `fifo`.
        kind: String,
    },
    /// Set-user-id, set-group-id or sticky bits in the entry's mode.
    #[error("entry {entry:?}: set-user-id, set-group-id or sticky bit in mode {mode:o}")]
    SetIdBit {
        /// The entry's path.
        entry: String,
        /// Its mode.
        mode: u32,
    },
    /// An entry type this installer does not unpack (sparse files, PAX
    /// global headers, PAX keys other than path/size/times/owner …).
    #[error("entry {entry:?}: unsupported ({reason})")]
    UnsupportedEntry {
        /// The entry's path, or the entry type when it has none yet.
        entry: String,
        /// What is unsupported.
        reason: String,
    },
    /// One file, or all of them together, would exceed a size cap.
    #[error("entry {entry:?}: {what} of {size} bytes is over the limit of {max}")]
    TooLarge {
        /// The entry that crossed the cap.
        entry: String,
        /// `file size` or `total size`.
        what: String,
        /// The size it would reach.
        size: u64,
        /// The cap.
        max: u64,
    },
    /// More entries than the cap.
    #[error("the package has more than {max} entries")]
    TooManyFiles {
        /// The cap.
        max: u64,
    },
    /// The same path twice, or a file where a directory is (or the other way
    /// round).
    #[error("entry {entry:?}: duplicate or conflicting path")]
    Duplicate {
        /// The entry's path.
        entry: String,
    },
    /// A file the manifest's `include`/`exclude` do not select.
    #[error("entry {entry:?}: not selected by the manifest's include/exclude")]
    NotInManifest {
        /// The entry's path.
        entry: String,
    },
    /// The destination is not strictly below a configured install root, or a
    /// component below the root is a symlink or not a directory.
    #[error("destination {destination}: {reason}")]
    DestinationNotAllowed {
        /// The manifest's destination.
        destination: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// A hook could not be started (no such program, bad working dir).
    #[error("{hook} hook could not be started: {reason}")]
    HookSpawn {
        /// Which hook.
        hook: HookKind,
        /// Why.
        reason: String,
    },
    /// A hook exited unsuccessfully (for `pre_install`: nothing was moved).
    #[error("{hook} hook failed: {status}")]
    HookFailed {
        /// Which hook.
        hook: HookKind,
        /// How it ended.
        status: HookStatus,
    },
    /// A hook ran past its time limit; its process group was killed.
    #[error("{hook} hook timed out after {seconds} s and was killed")]
    HookTimedOut {
        /// Which hook.
        hook: HookKind,
        /// The limit.
        seconds: u64,
    },
    /// A file-system operation failed.
    #[error("{operation} {path}: {message}")]
    Io {
        /// What was being done.
        operation: String,
        /// On which path.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },
    /// The installer child refused to start: its sandbox could not be
    /// applied (the message says which step).
    #[error("the installer process could not sandbox itself: {0}")]
    ChildSandbox(String),
    /// The protocol between the processes was violated (a frame too large,
    /// bad JSON, an unexpected message).
    #[error("installer protocol: {0}")]
    Protocol(String),
    /// Starting the installer child failed.
    #[serde(skip)]
    #[error("starting the installer process failed")]
    Spawn(#[source] std::io::Error),
    /// The installer child is gone (it exited, or its socket closed).
    #[serde(skip)]
    #[error("the installer process is gone: {0}")]
    ChildGone(String),
}

impl InstallerError {
    /// An I/O failure of `operation` on `path`.
    pub(crate) fn io(
        operation: impl Into<String>,
        path: impl Into<PathBuf>,
        e: impl std::fmt::Display,
    ) -> Self {
        InstallerError::Io {
            operation: operation.into(),
            path: path.into(),
            message: e.to_string(),
        }
    }
}
