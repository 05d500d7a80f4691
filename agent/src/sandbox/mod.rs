//! The agent's in-process sandbox: one ordered [`apply`] per process.
//!
//! The agent acquires what it needs first — keystore opened, config and
//! credential read, coordinator address resolved, installer child forked —
//! without starting any thread, and then calls [`apply`] with that process's
//! [`SandboxPlan`]. `apply` does, in this order (see `docs/HARDENING.md`):
//!
//! 0. prepare, while nothing is restricted yet: check that this is the only
//!    thread, resolve the service user through NSS, open every path of the
//!    plan for Landlock, compile the seccomp filters;
//! 1. resource limits: `RLIMIT_CORE` 0, and the plan's others;
//! 2. Landlock with every right of the kernel's ABI, refusing when the kernel
//!    is older than the plan requires (unless `require = false`); this sets
//!    `PR_SET_NO_NEW_PRIVS` already, as Landlock needs it without
//!    `CAP_SYS_ADMIN`;
//! 3. `setgroups`/`setresgid`/`setresuid` to the service user, ambient and
//!    bounding sets cleared, every capability set zero — and checked;
//! 4. `PR_SET_NO_NEW_PRIVS` (checked);
//! 5. `PR_SET_DUMPABLE` 0 (after the uid change, which resets it; checked);
//! 6. the seccomp filters, last.
//!
//! Only then may the async runtime and worker threads start: Landlock,
//! credentials and seccomp bind the calling thread and what it starts later,
//! never threads that already exist.

pub mod check;
mod error;
mod identity;
mod plan;
pub mod proc_status;
mod rlimits;
mod ruleset;
mod seccomp;
mod seccomp_policy;
pub mod secure_mem;
mod sys;

pub use error::SandboxError;
pub use identity::Identity;
pub use plan::{
    LANDLOCK_ABI_NETWORK, LandlockRequirement, ResourceLimits, SandboxPlan, SeccompProfile,
    name_resolution_paths, system_exec_paths, tpm_tcti_library_paths,
};
pub use ruleset::{LandlockReport, kernel_abi};
pub use seccomp::allowed_syscalls;

use rustix::process::{DumpableBehavior, dumpable_behavior, set_dumpable_behavior};
use rustix::thread::{no_new_privs, set_no_new_privs};

/// What [`apply`] put in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxReport {
    /// The identity the process now runs as.
    pub identity: Identity,
    /// What Landlock enforces and what this kernel cannot.
    pub landlock: LandlockReport,
    /// The seccomp profile installed.
    pub seccomp: SeccompProfile,
}

fn thread_count() -> Result<usize, SandboxError> {
    let entries = std::fs::read_dir("/proc/self/task").map_err(SandboxError::ThreadCount)?;
    let mut n = 0;
    for entry in entries {
        entry.map_err(SandboxError::ThreadCount)?;
        n += 1;
    }
    Ok(n)
}

/// Applies `plan` to the calling process, in the documented order. Must be
/// called while the process has a single thread. On error the process must
/// exit: some steps may already be in force.
pub fn apply(plan: &SandboxPlan) -> Result<SandboxReport, SandboxError> {
    // 0. Prepare everything that needs the unrestricted process.
    plan.validate().map_err(SandboxError::InvalidPlan)?;
    let threads = thread_count()?;
    if threads != 1 {
        return Err(SandboxError::ThreadsRunning { threads });
    }
    let identity = identity::resolve(plan)?;
    let landlock = ruleset::prepare(plan)?;
    let filters = seccomp::compile(plan.seccomp)?;

    // 1. Resource limits.
    rlimits::apply(&plan.limits)?;

    // 2. Landlock.
    let landlock = ruleset::enforce(landlock)?;

    // 3. Service user, no capabilities.
    identity::drop_to(&identity)?;

    // 4. No new privileges.
    set_no_new_privs(true).map_err(|e| SandboxError::prctl("PR_SET_NO_NEW_PRIVS", e))?;
    if no_new_privs() != Ok(true) {
        return Err(SandboxError::PrivilegesRemain {
            what: "no_new_privs is not set",
        });
    }

    // 5. Not dumpable: no core, no ptrace by the same user, /proc/PID owned by root.
    set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .map_err(|e| SandboxError::prctl("PR_SET_DUMPABLE", e))?;
    if dumpable_behavior() != Ok(DumpableBehavior::NotDumpable) {
        return Err(SandboxError::PrivilegesRemain {
            what: "the process is still dumpable",
        });
    }

    // 6. seccomp, last.
    seccomp::install(filters)?;

    let report = SandboxReport {
        identity,
        landlock,
        seccomp: plan.seccomp,
    };
    log(&report);
    Ok(report)
}

fn log(report: &SandboxReport) {
    let l = &report.landlock;
    tracing::info!(
        user = %report.identity.user,
        uid = report.identity.uid,
        gid = report.identity.gid,
        seccomp = report.seccomp.name(),
        landlock_kernel_abi = l.kernel_abi.unwrap_or(0),
        landlock_enforced_abi = l.enforced_abi,
        landlock_enforced = %l.enforced.join(","),
        "sandbox applied: rlimits, Landlock, service user without capabilities, \
         no_new_privs, not dumpable, seccomp"
    );
    if !l.not_enforceable.is_empty() {
        tracing::warn!(
            not_enforceable = %l.not_enforceable.join(","),
            "this kernel's Landlock cannot enforce these rights"
        );
    }
}
