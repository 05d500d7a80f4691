//! Why the sandbox could not be applied.

use std::io;
use std::path::PathBuf;

/// A failure of [`super::apply`]. Each variant says which step failed. When
/// `apply` returns an error the process must not go on to run: some steps may
/// already be in force, others not.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The plan is not usable as written (root as service user, a relative
    /// path, port 0).
    #[error("the sandbox plan is invalid: {0}")]
    InvalidPlan(String),
    /// Counting the process's threads (`/proc/self/task`) failed.
    #[error("counting this process's threads in /proc/self/task failed")]
    ThreadCount(#[source] io::Error),
    /// Other threads already run: Landlock, credentials and seccomp bind only
    /// the calling thread, so the others would stay unrestricted.
    #[error("{threads} threads are running; the sandbox must be applied before any thread starts")]
    ThreadsRunning {
        /// How many threads the process has.
        threads: usize,
    },
    /// Looking up the service user or group through NSS failed.
    #[error("looking up {kind} {name:?} failed")]
    Lookup {
        /// `user` or `group`.
        kind: &'static str,
        /// The name looked up.
        name: String,
        /// The C library's error.
        #[source]
        source: io::Error,
    },
    /// The service user or group does not exist.
    #[error("the service {kind} {name:?} does not exist")]
    NoSuchIdentity {
        /// `user` or `group`.
        kind: &'static str,
        /// The name looked up.
        name: String,
    },
    /// The service user or group resolves to id 0.
    #[error("the service {kind} {name:?} has id 0; the agent does not run as root")]
    RootIdentity {
        /// `user` or `group`.
        kind: &'static str,
        /// The name looked up.
        name: String,
    },
    /// A path of the plan could not be opened to make a Landlock rule.
    #[error("opening {path} for a Landlock rule failed")]
    PathUnavailable {
        /// The plan's path.
        path: PathBuf,
        /// Why it could not be opened.
        #[source]
        source: io::Error,
    },
    /// Setting a resource limit failed.
    #[error("setting {resource} failed")]
    Rlimit {
        /// The limit, e.g. `RLIMIT_CORE`.
        resource: &'static str,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// The kernel has no usable Landlock and the plan requires it.
    #[error(
        "Landlock is not available on this kernel (not built in, or disabled at boot) and the \
         sandbox requires it (set sandbox.require = false to run without it, knowing that file \
         and network rules are then not enforced)"
    )]
    LandlockUnavailable,
    /// The kernel's Landlock ABI is older than the plan requires.
    #[error(
        "the sandbox requires Landlock ABI {required} but this kernel provides ABI {available} \
         (lower sandbox.landlock_min_abi or set sandbox.require = false, knowing what is then \
         not enforced)"
    )]
    LandlockAbiTooOld {
        /// The ABI the plan requires.
        required: u32,
        /// The running kernel's ABI.
        available: u32,
    },
    /// Building or enforcing the Landlock ruleset failed.
    #[error("Landlock: {operation} failed")]
    Landlock {
        /// Which operation (`handle access rights`, `add rule for PATH`, …).
        operation: String,
        /// The landlock crate's error.
        #[source]
        source: landlock::RulesetError,
    },
    /// The kernel enforced less of the ruleset than was asked.
    #[error("Landlock enforced the ruleset only partially or not at all")]
    LandlockNotEnforced,
    /// A credential or capability change failed.
    #[error("{operation} failed")]
    Credentials {
        /// The call, e.g. `setresuid` or `capset`.
        operation: &'static str,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// The process runs as some other unprivileged user and cannot become the
    /// service user.
    #[error("running as uid {current}, which cannot switch to the service user (uid {target})")]
    WrongUser {
        /// The current effective uid.
        current: u32,
        /// The service user's uid.
        target: u32,
    },
    /// The capability bounding set is not empty and this process may not
    /// clear it (started as the service user without `CapabilityBoundingSet=`
    /// empty).
    #[error(
        "the capability bounding set is not empty and cannot be cleared without CAP_SETPCAP \
         (start as root, or set CapabilityBoundingSet= empty in the unit)"
    )]
    BoundingSetNotEmpty,
    /// A check after dropping privileges found some left.
    #[error("privileges remain after dropping them: {what}")]
    PrivilegesRemain {
        /// What was found, e.g. `permitted capabilities`.
        what: &'static str,
    },
    /// A `prctl` step (`PR_SET_NO_NEW_PRIVS`, `PR_SET_DUMPABLE`) failed.
    #[error("prctl({operation}) failed")]
    Prctl {
        /// The option.
        operation: &'static str,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// This CPU architecture has no seccomp policy.
    #[error("there is no seccomp policy for the {0} architecture")]
    UnsupportedArch(&'static str),
    /// Compiling the seccomp policy to BPF failed.
    #[error("compiling the {profile} seccomp policy failed")]
    SeccompCompile {
        /// The profile name.
        profile: &'static str,
        /// seccompiler's error.
        #[source]
        source: seccompiler::BackendError,
    },
    /// Installing a seccomp filter failed.
    #[error("installing the {profile} seccomp filter failed")]
    SeccompInstall {
        /// The profile name.
        profile: &'static str,
        /// seccompiler's error.
        #[source]
        source: seccompiler::Error,
    },
}

impl SandboxError {
    pub(crate) fn credentials(operation: &'static str, errno: rustix::io::Errno) -> Self {
        SandboxError::Credentials {
            operation,
            source: errno.into(),
        }
    }

    pub(crate) fn prctl(operation: &'static str, errno: rustix::io::Errno) -> Self {
        SandboxError::Prctl {
            operation,
            source: errno.into(),
        }
    }
}
