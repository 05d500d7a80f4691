//! Step 6: the seccomp filters, compiled from `seccomp_policy` with
//! `seccompiler` before any restriction and installed last.
//!
//! Several filters are stacked; the kernel runs all of them and takes the
//! strictest answer (kill > errno > allow). The allowlist kills the process
//! on any unlisted call. Small "errno" filters in front refuse some arguments
//! of allowed calls with an error code instead (see `seccomp_policy`).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::error::SandboxError;
use super::plan::SeccompProfile;
use super::seccomp_policy as policy;

/// BPF programs ready to install, in installation order (allowlist last).
pub(crate) struct CompiledPolicy {
    profile: SeccompProfile,
    programs: Vec<BpfProgram>,
}

fn target_arch() -> Result<TargetArch, SandboxError> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| SandboxError::UnsupportedArch(std::env::consts::ARCH))
}

/// Every system call the profile allows (some only with certain arguments),
/// by name. For documentation and tests.
pub fn allowed_syscalls(profile: SeccompProfile) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = unconditional(profile)
        .map(|(name, _)| name.trim_start_matches("SYS_"))
        .collect();
    if profile == SeccompProfile::Main {
        names.push("clone");
    }
    names.sort_unstable();
    names.dedup();
    names
}

fn unconditional(profile: SeccompProfile) -> impl Iterator<Item = policy::Syscall> {
    let extra: &[&[policy::Syscall]] = match profile {
        SeccompProfile::Main => &[],
        SeccompProfile::Installer => &[policy::INSTALLER, policy::INSTALLER_ARCH],
    };
    [policy::COMMON, policy::COMMON_ARCH]
        .into_iter()
        .chain(extra.iter().copied())
        .flatten()
        .copied()
}

fn cond(
    arg: u8,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, seccompiler::BackendError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
}

/// One rule matching when argument `arg` is none of `allowed`.
fn none_of(arg: u8, allowed: &[u64]) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    let conditions = allowed
        .iter()
        .map(|&v| cond(arg, SeccompCmpOp::Ne, v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(vec![SeccompRule::new(conditions)?])
}

fn build(profile: SeccompProfile) -> Result<Vec<BpfProgram>, seccompiler::BackendError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)?;
    let errno_filters: [(u32, i64, Vec<SeccompRule>); 4] = [
        (libc::ENOSYS as u32, libc::SYS_clone3, Vec::new()),
        (
            libc::EAFNOSUPPORT as u32,
            libc::SYS_socket,
            none_of(0, policy::SOCKET_DOMAINS)?,
        ),
        (
            libc::ENOTTY as u32,
            libc::SYS_ioctl,
            none_of(1, policy::IOCTL_REQUESTS)?,
        ),
        (
            libc::EPERM as u32,
            libc::SYS_prctl,
            none_of(0, policy::PRCTL_OPTIONS)?,
        ),
    ];
    let mut programs = Vec::new();
    for (errno, nr, rules) in errno_filters {
        let filter = SeccompFilter::new(
            BTreeMap::from([(nr, rules)]),
            SeccompAction::Allow,
            SeccompAction::Errno(errno),
            arch,
        )?;
        programs.push(BpfProgram::try_from(filter)?);
    }

    let mut allow: BTreeMap<i64, Vec<SeccompRule>> = unconditional(profile)
        .map(|(_, nr)| (nr, Vec::new()))
        .collect();
    if profile == SeccompProfile::Main {
        let threads_only = cond(
            0,
            SeccompCmpOp::MaskedEq(policy::MAIN_CLONE_REQUIRES),
            policy::MAIN_CLONE_REQUIRES,
        )?;
        allow.insert(libc::SYS_clone, vec![SeccompRule::new(vec![threads_only])?]);
    }
    let filter = SeccompFilter::new(
        allow,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch,
    )?;
    programs.push(BpfProgram::try_from(filter)?);
    Ok(programs)
}

/// Compiles the profile's filters (no system call is made).
pub(crate) fn compile(profile: SeccompProfile) -> Result<CompiledPolicy, SandboxError> {
    target_arch()?;
    let programs = build(profile).map_err(|source| SandboxError::SeccompCompile {
        profile: profile.name(),
        source,
    })?;
    Ok(CompiledPolicy { profile, programs })
}

/// Installs the filters on the calling thread (inherited by threads and
/// processes it starts later). Needs `PR_SET_NO_NEW_PRIVS` first.
pub(crate) fn install(policy: CompiledPolicy) -> Result<(), SandboxError> {
    for program in &policy.programs {
        seccompiler::apply_filter(program).map_err(|source| SandboxError::SeccompInstall {
            profile: policy.profile.name(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_profiles_compile() {
        for profile in [SeccompProfile::Main, SeccompProfile::Installer] {
            let compiled = compile(profile).unwrap();
            assert_eq!(compiled.programs.len(), 5);
            assert!(compiled.programs.iter().all(|p| !p.is_empty()));
        }
    }

    #[test]
    fn main_cannot_exec_bind_listen_or_trace_and_installer_can_only_exec() {
        let main = allowed_syscalls(SeccompProfile::Main);
        let installer = allowed_syscalls(SeccompProfile::Installer);
        for forbidden in [
            "bind",
            "listen",
            "accept",
            "accept4",
            "ptrace",
            "setuid",
            "setresuid",
            "setgroups",
            "capset",
            "mount",
            "unshare",
            "setns",
            "bpf",
            "perf_event_open",
            "io_uring_setup",
            "keyctl",
            "add_key",
            "init_module",
            "kexec_load",
            "process_vm_readv",
            "mknodat",
            "chroot",
            "pivot_root",
            "seccomp",
            "landlock_restrict_self",
            "userfaultfd",
        ] {
            assert!(!main.contains(&forbidden), "main allows {forbidden}");
            assert!(
                !installer.contains(&forbidden),
                "installer allows {forbidden}"
            );
        }
        for exec in ["execve", "execveat", "fork", "vfork"] {
            assert!(!main.contains(&exec), "main allows {exec}");
        }
        assert!(installer.contains(&"execve"));
        assert!(main.iter().all(|s| installer.contains(s)));
    }
}
