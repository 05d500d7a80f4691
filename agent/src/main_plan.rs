//! The main process's [`SandboxPlan`], built from the configuration
//! (`docs/HARDENING.md`, "The two plans"):
//!
//! - read: the configuration directory (SIGHUP re-reads the file and its
//!   drop-ins); the PKCS#11 module; the TPM's TCTI libraries (the TPM
//!   worker creates its context after the sandbox); `[sandbox] read`;
//! - read-write: the state directory (credential, install records,
//!   staging); SoftHSM2's token directory (it rewrites `token.lock`);
//!   `/dev/tpmrm0` (or the configured TPM device); `[sandbox] read_write`;
//! - TCP connect: the coordinator's port (and the proxy's), the swtpm
//!   command and control ports when the TPM is reached over TCP;
//! - no bind, no exec (seccomp profile `main`).

use std::path::{Path, PathBuf};

use crate::config::{AgentConfig, KeyStoreConfig, Pkcs11Config};
use crate::link::Resolved;
use crate::sandbox::{LandlockRequirement, SandboxPlan, SeccompProfile, tpm_tcti_library_paths};

/// The service user when nothing else says: systemd's `User=` for the unit.
pub const DEFAULT_SERVICE_USER: &str = "custody-agent";

/// The user the sandbox switches to: `[sandbox] user`, else the user the
/// agent was started as (when not root), else [`DEFAULT_SERVICE_USER`].
pub fn service_user(config: &AgentConfig) -> String {
    if let Some(u) = &config.sandbox.user {
        return u.clone();
    }
    let uid = rustix::process::geteuid();
    if !uid.is_root()
        && let Ok(Some(user)) =
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid.as_raw()))
    {
        return user.name;
    }
    DEFAULT_SERVICE_USER.to_owned()
}

/// SoftHSM2's token directory, from `SOFTHSM2_CONF` (or its default
/// configuration file), when the module is SoftHSM2.
pub fn softhsm_token_dir(p: &Pkcs11Config) -> Option<PathBuf> {
    let module = p.module.to_string_lossy().to_ascii_lowercase();
    if !module.contains("softhsm") {
        return None;
    }
    let conf = std::env::var_os("SOFTHSM2_CONF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/softhsm/softhsm2.conf"));
    let text = std::fs::read_to_string(conf).ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "directories.tokendir")
            .then(|| PathBuf::from(value.trim()))
            .filter(|p| p.is_absolute())
    })
}

/// What the TCTI string says the TPM needs: a device file, or TCP ports.
fn tpm_needs(tcti: &str) -> (Option<PathBuf>, Vec<u16>) {
    if let Some(dev) = tcti.strip_prefix("device:") {
        let dev = if dev.is_empty() { "/dev/tpmrm0" } else { dev };
        return (Some(PathBuf::from(dev)), Vec::new());
    }
    if let Some(conf) = tcti
        .strip_prefix("swtpm:")
        .or_else(|| tcti.strip_prefix("mssim:"))
    {
        let port = conf
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("port="))
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(2321);
        // The command port and the platform/control port next to it.
        let mut ports = vec![port];
        if let Some(next) = port.checked_add(1) {
            ports.push(next);
        }
        return (None, ports);
    }
    (None, Vec::new())
}

fn config_dir(config_path: &Path) -> PathBuf {
    let abs = if config_path.is_absolute() {
        config_path.to_owned()
    } else {
        std::env::current_dir()
            .map(|d| d.join(config_path))
            .unwrap_or_else(|_| config_path.to_owned())
    };
    abs.parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Builds the main plan. `config_path` is the file the agent was started
/// with; `resolved` the coordinator's (and proxy's) ports.
pub fn build(config: &AgentConfig, config_path: &Path, resolved: &Resolved) -> SandboxPlan {
    let mut plan = SandboxPlan::new(service_user(config), SeccompProfile::Main)
        .read(config_dir(config_path))
        .read_write(&config.state.dir);
    plan.group = config.sandbox.group.clone();
    plan.landlock = LandlockRequirement {
        require: config.sandbox.require,
        min_abi: config.sandbox.landlock_min_abi,
    };
    let mut ports = resolved.ports.clone();
    match &config.keystore {
        KeyStoreConfig::Pkcs11(p) => {
            plan = plan.read(&p.module);
            if let Some(dir) = softhsm_token_dir(p) {
                plan = plan.read_write(dir);
            }
        }
        KeyStoreConfig::Tpm(t) => {
            let (device, tpm_ports) = tpm_needs(&t.tcti);
            if let Some(dev) = device {
                plan = plan.read_write(dev);
            }
            ports.extend(tpm_ports);
            for lib in tpm_tcti_library_paths() {
                plan = plan.read(lib);
            }
        }
        KeyStoreConfig::Soft(s) => {
            if let Some(f) = &s.key_file
                && !f.starts_with(&config.state.dir)
            {
                plan = plan.read(f);
            }
        }
    }
    for p in &config.sandbox.read {
        plan = plan.read(p);
    }
    for p in &config.sandbox.read_write {
        plan = plan.read_write(p);
    }
    ports.sort_unstable();
    ports.dedup();
    for port in ports {
        plan = plan.tcp_connect(port);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcti_needs() {
        assert_eq!(
            tpm_needs("device:/dev/tpmrm0"),
            (Some(PathBuf::from("/dev/tpmrm0")), vec![])
        );
        assert_eq!(
            tpm_needs("swtpm:host=127.0.0.1,port=4000"),
            (None, vec![4000, 4001])
        );
        assert_eq!(tpm_needs("mssim:"), (None, vec![2321, 2322]));
        assert_eq!(tpm_needs("tabrmd"), (None, vec![]));
    }

    #[test]
    fn plan_from_config() {
        let cfg = crate::config::load_str(
            "[keystore]\nkind = \"tpm\"\ntcti = \"swtpm:host=127.0.0.1,port=4000\"\n\
             [state]\ndir = \"/var/lib/custody\"\n\
             [sandbox]\nuser = \"svc\"\nlandlock_min_abi = 2\nread_write = [\"/srv/extra\"]\n",
        )
        .unwrap();
        let resolved = Resolved {
            hosts: vec![],
            ports: vec![8443],
        };
        let plan = build(&cfg, Path::new("/etc/custody/agent.toml"), &resolved);
        assert_eq!(plan.user, "svc");
        assert_eq!(plan.seccomp, SeccompProfile::Main);
        assert!(plan.read.contains(&PathBuf::from("/etc/custody")));
        assert!(plan.read_write.contains(&PathBuf::from("/var/lib/custody")));
        assert!(plan.read_write.contains(&PathBuf::from("/srv/extra")));
        assert_eq!(plan.tcp_connect, vec![4000, 4001, 8443]);
        assert_eq!(plan.landlock.min_abi, Some(2));
        assert!(plan.read_exec.is_empty());
    }
}
