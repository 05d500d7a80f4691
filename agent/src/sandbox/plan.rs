//! What one process may still do once it is sandboxed, as plain data.
//!
//! A [`SandboxPlan`] knows nothing of the agent's configuration: the agent
//! builds one plan for its main process and one for its installer child from
//! its config, and [`super::apply`] enforces it. Plans are serialisable so
//! that `sandbox-check` can hand the same plan to its probe processes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Which seccomp allowlist a process gets (see `seccomp_policy.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompProfile {
    /// The agent's main process: keystore, coordinator client, decryption
    /// into staging. Threads but no new processes, no exec, no bind/listen.
    Main,
    /// The installer child: unpacks, moves files, runs hooks. May fork and
    /// exec (the hooks inherit this filter), still no bind/listen.
    Installer,
}

impl SeccompProfile {
    /// The profile's name as written in configs and logs.
    pub fn name(self) -> &'static str {
        match self {
            SeccompProfile::Main => "main",
            SeccompProfile::Installer => "installer",
        }
    }
}

/// How much Landlock the plan insists on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandlockRequirement {
    /// Refuse to apply the plan when the kernel cannot enforce
    /// [`Self::min_abi`]. `false` is the explicit opt-out: the plan is then
    /// applied with whatever the kernel has, and what is not enforced is
    /// logged as a warning (never silently).
    pub require: bool,
    /// The lowest Landlock ABI the plan accepts. `None` means "what this
    /// plan's rules need": ABI 4, because every plan restricts TCP (bind is
    /// always denied). Setting 2 accepts a stock Debian bookworm kernel, whose
    /// Landlock cannot restrict the network (the systemd unit's
    /// `IPAddressDeny=`/`IPAddressAllow=` covers it there).
    pub min_abi: Option<u32>,
}

impl Default for LandlockRequirement {
    fn default() -> Self {
        LandlockRequirement {
            require: true,
            min_abi: None,
        }
    }
}

/// The Landlock ABI that brought TCP bind/connect rules.
pub const LANDLOCK_ABI_NETWORK: u32 = 4;

impl LandlockRequirement {
    /// The ABI this requirement asks of the kernel.
    pub fn required_abi(&self) -> u32 {
        self.min_abi.unwrap_or(LANDLOCK_ABI_NETWORK)
    }
}

/// Resource limits beyond `RLIMIT_CORE`, which is always 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceLimits {
    /// `RLIMIT_NOFILE` (soft and hard), when set.
    pub open_files: Option<u64>,
    /// `RLIMIT_FSIZE` in bytes (soft and hard), when set: a cap on any file
    /// the process writes (useful for the installer against decompression
    /// bombs).
    pub file_size: Option<u64>,
}

/// Everything one process may still do after [`super::apply`].
///
/// Binding a TCP port is never allowed, so there is no field for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxPlan {
    /// Files and directory trees the process may read (no execute).
    pub read: Vec<PathBuf>,
    /// Files and directory trees the process may read, create, write,
    /// rename and remove in (no execute). Device files such as
    /// `/dev/tpmrm0` go here.
    pub read_write: Vec<PathBuf>,
    /// Directory trees the process may read and execute from.
    pub read_exec: Vec<PathBuf>,
    /// TCP ports the process may connect to (any address: Landlock matches
    /// ports only; the unit's `IPAddressAllow=` restricts addresses).
    pub tcp_connect: Vec<u16>,
    /// The service user to switch to (name, resolved through NSS before any
    /// restriction). Never root.
    pub user: String,
    /// The primary group, when it is not the user's own.
    pub group: Option<String>,
    /// The seccomp allowlist.
    pub seccomp: SeccompProfile,
    /// How much Landlock is required.
    pub landlock: LandlockRequirement,
    /// Extra resource limits.
    pub limits: ResourceLimits,
}

impl SandboxPlan {
    /// An empty plan for `user` with `profile`: no paths, no network,
    /// Landlock required at the ABI the network rules need.
    pub fn new(user: impl Into<String>, profile: SeccompProfile) -> Self {
        SandboxPlan {
            read: Vec::new(),
            read_write: Vec::new(),
            read_exec: Vec::new(),
            tcp_connect: Vec::new(),
            user: user.into(),
            group: None,
            seccomp: profile,
            landlock: LandlockRequirement::default(),
            limits: ResourceLimits::default(),
        }
    }

    /// Adds a read-only path.
    #[must_use]
    pub fn read(mut self, path: impl Into<PathBuf>) -> Self {
        self.read.push(path.into());
        self
    }

    /// Adds a read-write path.
    #[must_use]
    pub fn read_write(mut self, path: impl Into<PathBuf>) -> Self {
        self.read_write.push(path.into());
        self
    }

    /// Adds a read-and-execute path.
    #[must_use]
    pub fn read_exec(mut self, path: impl Into<PathBuf>) -> Self {
        self.read_exec.push(path.into());
        self
    }

    /// Allows TCP connections to `port`.
    #[must_use]
    pub fn tcp_connect(mut self, port: u16) -> Self {
        self.tcp_connect.push(port);
        self
    }

    /// Sets the Landlock requirement.
    #[must_use]
    pub fn landlock(mut self, requirement: LandlockRequirement) -> Self {
        self.landlock = requirement;
        self
    }

    /// Every path of the plan, whatever its access.
    pub fn all_paths(&self) -> impl Iterator<Item = &Path> {
        self.read
            .iter()
            .chain(&self.read_write)
            .chain(&self.read_exec)
            .map(PathBuf::as_path)
    }

    /// Whether `path` lies at or beneath one of the plan's paths (lexically).
    pub fn covers(&self, path: &Path) -> bool {
        self.all_paths().any(|p| path.starts_with(p))
    }

    /// Checks what can be checked without touching the system.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.user.is_empty() {
            return Err("the service user is empty".into());
        }
        if self.user == "root" {
            return Err("the service user must not be root".into());
        }
        if let Some(p) = self.all_paths().find(|p| !p.is_absolute()) {
            return Err(format!("path {} is not absolute", p.display()));
        }
        if self.tcp_connect.contains(&0) {
            return Err("TCP port 0 is not a port one can connect to".into());
        }
        Ok(())
    }
}

/// The system directories programs are executed and loaded from, those of
/// them that exist here (`/usr`, `/bin`, `/sbin`, `/lib*`): the installer's
/// read-exec paths.
pub fn system_exec_paths() -> Vec<PathBuf> {
    existing(&[
        "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32",
    ])
}

/// The files the C library reads to resolve a host name, those that exist
/// here. A plan for a process that resolves names after the sandbox is
/// applied needs them read-only.
pub fn name_resolution_paths() -> Vec<PathBuf> {
    existing(&[
        "/etc/hosts",
        "/etc/resolv.conf",
        "/etc/nsswitch.conf",
        "/etc/host.conf",
        "/etc/gai.conf",
    ])
}

/// The TPM2 software stack's TCTI libraries (`libtss2-tcti-*.so*`) found
/// in the library directories here, resolved to the files themselves. The
/// TSS loads one with `dlopen` each time it creates a TCTI context: a main
/// plan whose TPM keystore creates contexts after the sandbox is applied
/// (e.g. one per worker thread at start) needs them read-only.
pub fn tpm_tcti_library_paths() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/usr/lib"), PathBuf::from("/usr/lib64")];
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        dirs.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with("-linux-gnu") && p.is_dir()),
        );
    }
    let mut libs: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libtss2-tcti-") && name.contains(".so")
        })
        .filter_map(|e| e.path().canonicalize().ok())
        .filter(|p| p.is_file())
        .collect();
    libs.sort();
    libs.dedup();
    libs
}

fn existing(candidates: &[&str]) -> Vec<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        // A symlink (`/bin` → `usr/bin` on merged-/usr systems) is covered by
        // its target; keep only real directories and files.
        .filter(|p| {
            p.symlink_metadata()
                .is_ok_and(|m| !m.file_type().is_symlink())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_requirement_is_the_network_abi() {
        let plan = SandboxPlan::new("custody-agent", SeccompProfile::Main);
        assert!(plan.landlock.require);
        assert_eq!(plan.landlock.required_abi(), LANDLOCK_ABI_NETWORK);
        let relaxed = LandlockRequirement {
            require: true,
            min_abi: Some(2),
        };
        assert_eq!(relaxed.required_abi(), 2);
    }

    #[test]
    fn validation_refuses_root_relative_paths_and_port_zero() {
        let ok = SandboxPlan::new("custody-agent", SeccompProfile::Main)
            .read("/etc/custody")
            .tcp_connect(8443);
        assert_eq!(ok.validate(), Ok(()));
        assert!(
            SandboxPlan::new("root", SeccompProfile::Main)
                .validate()
                .is_err()
        );
        assert!(
            SandboxPlan::new("", SeccompProfile::Main)
                .validate()
                .is_err()
        );
        assert!(ok.clone().read("etc/custody").validate().is_err());
        assert!(ok.clone().tcp_connect(0).validate().is_err());
    }

    #[test]
    fn covers_is_by_path_component() {
        let plan = SandboxPlan::new("u", SeccompProfile::Main).read_write("/var/lib/custody");
        assert!(plan.covers(Path::new("/var/lib/custody/state")));
        assert!(plan.covers(Path::new("/var/lib/custody")));
        assert!(!plan.covers(Path::new("/var/lib/custody-other")));
        assert!(!plan.covers(Path::new("/var/lib")));
    }

    #[test]
    fn plan_round_trips_through_json_and_refuses_unknown_fields() {
        let plan = SandboxPlan::new("custody-agent", SeccompProfile::Installer)
            .read_exec("/usr")
            .read_write("/srv/app");
        let json = serde_json::to_string(&plan).unwrap();
        let back: SandboxPlan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plan);
        let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
        value["bind"] = serde_json::json!([80]);
        assert!(serde_json::from_value::<SandboxPlan>(value).is_err());
    }
}
