//! Step 2: Landlock. Every access right the running kernel's ABI has is
//! handled (denied unless a rule grants it); the plan's paths and ports are
//! the only grants.
//!
//! The `landlock` crate's own compatibility modes are not used to decide what
//! is enforced: `BestEffort` and `SoftRequirement` silently enforce less (or
//! nothing) on an older kernel. Instead the kernel's ABI is read first, the
//! plan's requirement is checked against it (refusing unless the plan says
//! `require = false`), exactly that ABI's rights are requested with
//! `HardRequirement`, and the result must be `FullyEnforced`. What the kernel
//! cannot enforce is listed in the report and logged.

use std::collections::BTreeSet;
use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};

use super::error::SandboxError;
use super::plan::SandboxPlan;
use super::sys;

/// The newest ABI this build knows the rights of.
const NEWEST_KNOWN: ABI = ABI::V9;

/// What Landlock enforces in this process, for logs and `sandbox-check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandlockReport {
    /// The kernel's Landlock ABI as far as this build knows (up to 9);
    /// `None` when the kernel has no usable Landlock.
    pub kernel_abi: Option<u32>,
    /// The ABI whose rights are enforced (0: Landlock not applied).
    pub enforced_abi: u32,
    /// The access rights and scopes enforced, e.g. `fs.write_file`,
    /// `net.connect_tcp`, `scope.signal`.
    pub enforced: Vec<&'static str>,
    /// Rights this build knows but this kernel cannot enforce.
    pub not_enforceable: Vec<&'static str>,
}

impl LandlockReport {
    /// Whether TCP bind/connect are restricted.
    pub fn restricts_network(&self) -> bool {
        self.enforced.contains(&"net.connect_tcp")
    }
}

/// The kernel's Landlock ABI as far as this build knows (up to 9), `None`
/// when the kernel has no usable Landlock. For callers that only need to
/// know what could be enforced (`sandbox-check`).
pub fn kernel_abi() -> Option<u32> {
    sys::landlock_abi().map(|a| a as u32)
}

/// Paths opened and rights computed before any restriction, so that nothing
/// needs NSS, allocation-heavy work or root's view of the file system later.
pub(crate) struct PreparedLandlock {
    kernel_abi: Option<u32>,
    abi: Option<ABI>,
    rules: Vec<(PathBuf, PathFd, BitFlags<AccessFs>)>,
    ports: BTreeSet<u16>,
}

fn fs_name(a: AccessFs) -> &'static str {
    match a {
        AccessFs::Execute => "fs.execute",
        AccessFs::WriteFile => "fs.write_file",
        AccessFs::ReadFile => "fs.read_file",
        AccessFs::ReadDir => "fs.read_dir",
        AccessFs::RemoveDir => "fs.remove_dir",
        AccessFs::RemoveFile => "fs.remove_file",
        AccessFs::MakeChar => "fs.make_char",
        AccessFs::MakeDir => "fs.make_dir",
        AccessFs::MakeReg => "fs.make_reg",
        AccessFs::MakeSock => "fs.make_sock",
        AccessFs::MakeFifo => "fs.make_fifo",
        AccessFs::MakeBlock => "fs.make_block",
        AccessFs::MakeSym => "fs.make_sym",
        AccessFs::Refer => "fs.refer",
        AccessFs::Truncate => "fs.truncate",
        AccessFs::IoctlDev => "fs.ioctl_dev",
        AccessFs::ResolveUnix => "fs.resolve_unix",
        _ => "fs.(newer right)",
    }
}

fn net_name(a: AccessNet) -> &'static str {
    match a {
        AccessNet::BindTcp => "net.bind_tcp",
        AccessNet::ConnectTcp => "net.connect_tcp",
        _ => "net.(newer right)",
    }
}

fn scope_name(s: Scope) -> &'static str {
    match s {
        Scope::AbstractUnixSocket => "scope.abstract_unix_socket",
        Scope::Signal => "scope.signal",
        _ => "scope.(newer scope)",
    }
}

/// The names of every right and scope of `abi`, or of `Unsupported` → none.
fn right_names(abi: ABI) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = AccessFs::from_all(abi).iter().map(fs_name).collect();
    names.extend(AccessNet::from_all(abi).iter().map(net_name));
    names.extend(Scope::from_all(abi).iter().map(scope_name));
    names
}

fn report(kernel_abi: Option<u32>, abi: Option<ABI>) -> LandlockReport {
    let used = abi.unwrap_or(ABI::Unsupported);
    let enforced = right_names(used);
    let not_enforceable = right_names(NEWEST_KNOWN)
        .into_iter()
        .filter(|n| !enforced.contains(n))
        .collect();
    LandlockReport {
        kernel_abi,
        enforced_abi: abi.map_or(0, |a| a as u32),
        enforced,
        not_enforceable,
    }
}

/// The rights a rule of each kind grants at `abi`.
pub(crate) struct Grants {
    pub read: BitFlags<AccessFs>,
    pub read_write: BitFlags<AccessFs>,
    pub read_exec: BitFlags<AccessFs>,
    pub file_mask: BitFlags<AccessFs>,
}

pub(crate) fn grants(abi: ABI) -> Grants {
    let all = AccessFs::from_all(abi);
    Grants {
        read: all & (AccessFs::ReadFile | AccessFs::ReadDir),
        read_write: all & !BitFlags::from(AccessFs::Execute),
        read_exec: all & (AccessFs::Execute | AccessFs::ReadFile | AccessFs::ReadDir),
        file_mask: AccessFs::from_file(abi),
    }
}

/// Checks the kernel against the plan's requirement and opens every path.
pub(crate) fn prepare(plan: &SandboxPlan) -> Result<PreparedLandlock, SandboxError> {
    let required = plan.landlock.required_abi();
    let require = plan.landlock.require;
    let abi = sys::landlock_abi();
    let kernel_abi = abi.map(|a| a as u32);
    match kernel_abi {
        None if require && required > 0 => return Err(SandboxError::LandlockUnavailable),
        None => tracing::warn!(
            "Landlock is unavailable and sandbox.require = false: file-system and network \
             rules are NOT enforced in-process"
        ),
        Some(available) if available < required => {
            if require {
                return Err(SandboxError::LandlockAbiTooOld {
                    required,
                    available,
                });
            }
            tracing::warn!(
                required,
                available,
                "Landlock ABI is older than the plan asks and sandbox.require = false: \
                 enforcing only what this kernel has"
            );
        }
        Some(_) => {}
    }
    let mut rules = Vec::new();
    if let Some(abi) = abi {
        let g = grants(abi);
        let kinds = [
            (&plan.read, g.read),
            (&plan.read_write, g.read_write),
            (&plan.read_exec, g.read_exec),
        ];
        for (paths, access) in kinds {
            for path in paths {
                let meta =
                    std::fs::metadata(path).map_err(|source| SandboxError::PathUnavailable {
                        path: path.clone(),
                        source,
                    })?;
                let access = if meta.is_dir() {
                    access
                } else {
                    access & g.file_mask
                };
                let fd = PathFd::new(path).map_err(|e| SandboxError::PathUnavailable {
                    path: path.clone(),
                    source: std::io::Error::other(e),
                })?;
                rules.push((path.clone(), fd, access));
            }
        }
    }
    Ok(PreparedLandlock {
        kernel_abi,
        abi,
        rules,
        ports: plan.tcp_connect.iter().copied().collect(),
    })
}

fn landlock_err(
    operation: impl Into<String>,
) -> impl FnOnce(landlock::RulesetError) -> SandboxError {
    let operation = operation.into();
    move |source| SandboxError::Landlock { operation, source }
}

/// Restricts the calling thread (and its future children). Also sets
/// `PR_SET_NO_NEW_PRIVS`, which Landlock needs without `CAP_SYS_ADMIN`.
pub(crate) fn enforce(prepared: PreparedLandlock) -> Result<LandlockReport, SandboxError> {
    let report = report(prepared.kernel_abi, prepared.abi);
    let Some(abi) = prepared.abi else {
        return Ok(report);
    };
    let net = AccessNet::from_all(abi);
    let scopes = Scope::from_all(abi);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))
        .map_err(landlock_err("handling file-system rights"))?;
    if !net.is_empty() {
        ruleset = ruleset
            .handle_access(net)
            .map_err(landlock_err("handling network rights"))?;
    }
    if !scopes.is_empty() {
        ruleset = ruleset
            .scope(scopes)
            .map_err(landlock_err("adding scopes"))?;
    }
    let mut created = ruleset
        .create()
        .map_err(landlock_err("creating the ruleset"))?;
    for (path, fd, access) in prepared.rules {
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(landlock_err(format!(
                "adding the rule for {}",
                path.display()
            )))?;
    }
    if !net.is_empty() {
        for port in prepared.ports {
            created = created
                .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
                .map_err(landlock_err(format!("adding the rule for TCP port {port}")))?;
        }
    }
    let status = created
        .restrict_self()
        .map_err(landlock_err("restricting this thread"))?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(SandboxError::LandlockNotEnforced);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lists_what_an_abi_2_kernel_cannot_enforce() {
        let r = report(Some(2), Some(ABI::V2));
        assert_eq!(r.enforced_abi, 2);
        assert!(r.enforced.contains(&"fs.refer"));
        assert!(!r.restricts_network());
        for missing in [
            "fs.truncate",
            "fs.ioctl_dev",
            "net.bind_tcp",
            "net.connect_tcp",
            "scope.signal",
        ] {
            assert!(r.not_enforceable.contains(&missing), "{missing}");
        }
    }

    #[test]
    fn report_without_landlock_enforces_nothing() {
        let r = report(None, None);
        assert_eq!(r.enforced_abi, 0);
        assert!(r.enforced.is_empty());
        assert!(r.not_enforceable.contains(&"fs.read_file"));
    }

    #[test]
    fn grants_never_give_execute_outside_read_exec() {
        for abi in [ABI::V1, ABI::V4, ABI::V6, ABI::V9] {
            let g = grants(abi);
            assert!(!g.read.contains(AccessFs::Execute));
            assert!(!g.read_write.contains(AccessFs::Execute));
            assert!(g.read_exec.contains(AccessFs::Execute));
            assert!(!g.read.contains(AccessFs::WriteFile));
            assert!(g.read_write.contains(AccessFs::WriteFile));
        }
    }
}
