//! `run`: the agent's start-up, strictly in this order (CONVENTIONS §4,
//! `docs/HARDENING.md`):
//!
//! 1. arguments parsed, configuration loaded and validated (by the caller);
//! 2. the credential read;
//! 3. the installer child started (targets), before anything is restricted
//!    — and before the keystore is opened, so that no descriptor the
//!    keystore holds (SoftHSM2's token files, the TPM connection) can leak
//!    into the process that runs the packages' hooks;
//! 4. the keystore opened — module loaded, logged in, TPM context made —
//!    without starting a thread;
//! 5. the coordinator's address resolved, the systemd socket connected;
//! 6. the main process's sandbox plan built from the configuration and
//!    applied (rlimits → Landlock → service user, no capabilities →
//!    no_new_privs → not dumpable → seccomp);
//! 7. the keystore started (session pool, TPM worker thread);
//! 8. the async runtime built, and the agent run ([`crate::daemon`]).
//!
//! Nothing starts a thread before step 6: Landlock, credentials and seccomp
//! bind only the calling thread and the threads it starts later.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::AgentConfig;
use crate::credential::{Credential, CredentialError};
use crate::daemon::{self, Context};
use crate::installer::{InstallerError, InstallerHandle, InstallerSettings};
use crate::keystore::{self, KeyStoreConfig, KeyStoreError};
use crate::link::{self, Endpoint, LinkError};
use crate::logging::LogHandle;
use crate::main_plan;
use crate::notify::Notifier;
use crate::roles::target::Target;
use crate::sandbox::{self, LandlockRequirement, SandboxError};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The credential is missing or unreadable.
    #[error("{0}")]
    Credential(#[from] CredentialError),
    /// The coordinator's URL or address is unusable.
    #[error("{0}")]
    Link(#[from] LinkError),
    /// The keystore could not be opened or started.
    #[error("keystore: {0}")]
    KeyStore(#[from] KeyStoreError),
    /// Running as root without a sandbox that drops to a service user.
    #[error(
        "refusing to run as root with [sandbox] enabled = false: run as the service user, or \
         enable the sandbox (it switches to the service user)"
    )]
    Root,
    /// The sandbox could not be applied.
    #[error("sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    /// The systemd notification socket could not be connected.
    #[error("cannot connect to $NOTIFY_SOCKET: {0}")]
    Notify(std::io::Error),
    /// The target's state directories could not be prepared.
    #[error("cannot prepare the staging and install-record directories: {0}")]
    TargetState(std::io::Error),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The threads that run key-manager jobs could not start.
    #[error("cannot start the keystore threads: {0}")]
    KeystoreThreads(std::io::Error),
    /// The HTTP client could not be built.
    #[error("{0}")]
    Client(LinkError),
    /// The installer child could not be started.
    #[error("installer: {0}")]
    Installer(#[from] InstallerError),
    /// The keystore holds another key than the one the server enrolled
    /// with.
    #[error(
        "the keystore's key ({now}) is not the key this server enrolled with ({enrolled}); a \
         server's key never changes: restore the token or key file, or remove the server \
         and enroll it again"
    )]
    KeyChanged {
        /// The thumbprint recorded at enrollment.
        enrolled: String,
        /// The thumbprint of the key the keystore holds now.
        now: String,
    },
    /// The keystore stopped serving the running agent; it stopped so that
    /// its service manager starts it again.
    #[error("stopped: {0}; exiting so that the service manager restarts the agent")]
    KeystoreLost(String),
}

/// Options given on the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides `[jobs] parallelism`.
    pub jobs_parallelism: Option<usize>,
}

/// How many key-manager jobs run at once by default: what the keystore
/// can unwrap concurrently.
pub fn default_parallelism(config: &AgentConfig) -> usize {
    match &config.keystore {
        KeyStoreConfig::Pkcs11(p) => p.sessions,
        KeyStoreConfig::Tpm(_) => 1,
        KeyStoreConfig::Soft(_) => std::thread::available_parallelism().map_or(2, |n| n.get()),
    }
}

/// Creates the staging and install-record directories (0700) before the
/// installer child opens the staging dir for its sandbox. Started as root
/// with the sandbox on, they are handed to the service user the process is
/// about to become.
fn prepare_target_dirs(config: &AgentConfig) -> Result<(), RunError> {
    use std::os::unix::fs::DirBuilderExt as _;
    for dir in [config.state.staging_dir(), config.state.installs_dir()] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(RunError::TargetState)?;
        if config.sandbox.enabled && rustix::process::geteuid().is_root() {
            let user = main_plan::service_user(config);
            if let Ok(Some(u)) = nix::unistd::User::from_name(&user) {
                std::os::unix::fs::chown(&dir, Some(u.uid.as_raw()), Some(u.gid.as_raw()))
                    .map_err(RunError::TargetState)?;
            }
        }
    }
    Ok(())
}

/// Starts the installer child with the settings of `[target]` and the
/// sandbox's user, group and Landlock requirement.
fn spawn_installer(config: &AgentConfig) -> Result<InstallerHandle, RunError> {
    let mut settings = InstallerSettings::from_config(config)?;
    settings.user = main_plan::service_user(config);
    settings.group = config.sandbox.group.clone();
    settings.landlock = LandlockRequirement {
        require: config.sandbox.require,
        min_abi: config.sandbox.landlock_min_abi,
    };
    let handle = InstallerHandle::spawn(&settings)?;
    tracing::info!(
        pid = handle.pid(),
        landlock_abi = handle.landlock_abi(),
        "installer process started and sandboxed"
    );
    Ok(handle)
}

/// Runs the agent until SIGTERM.
pub fn run(
    config: AgentConfig,
    config_path: &Path,
    log: LogHandle,
    options: &RunOptions,
) -> Result<(), RunError> {
    if !config.sandbox.enabled && rustix::process::geteuid().is_root() {
        return Err(RunError::Root);
    }
    // 2. Credential.
    let credential = Credential::load(&config.state.credential_path())?;
    let endpoint = Endpoint::from_config(&config, &credential)?;
    // Decided now, while /sys and /proc are readable.
    let parallelism = options
        .jobs_parallelism
        .or(config.jobs.parallelism)
        .unwrap_or_else(|| default_parallelism(&config))
        .clamp(1, crate::config::MAX_PARALLELISM);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());

    // 3. The installer child (targets only), before any restriction and
    //    before the keystore holds any descriptor.
    let is_target = !config.target.install_roots.is_empty();
    let installer = if is_target {
        prepare_target_dirs(&config)?;
        Some(Arc::new(spawn_installer(&config)?))
    } else {
        None
    };

    // 4. Keystore, no threads. A server's key never changes: another key
    //    (a re-initialised token, a replaced key file) is refused here
    //    rather than failing every job it is sent.
    let opened = keystore::open(&config.keystore, &config.state.dir)?;
    if let Some(enrolled) = &credential.key_thumbprint {
        let now = super::fingerprint(opened.public_key());
        if &now != enrolled {
            return Err(RunError::KeyChanged {
                enrolled: enrolled.clone(),
                now,
            });
        }
    }

    // 5. Addresses and the systemd socket.
    let resolved = link::resolve(&endpoint)?;
    let notifier = Notifier::from_env().map_err(RunError::Notify)?;

    // 6. Sandbox.
    if config.sandbox.enabled {
        let plan = main_plan::build(&config, config_path, &resolved);
        sandbox::apply(&plan)?;
    } else {
        tracing::warn!("the sandbox is disabled ([sandbox] enabled = false): development only");
    }

    // 7. Keystore workers.
    let keystore = opened.start()?;

    // 8. Runtime and agent.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.clamp(2, 8))
        .max_blocking_threads(parallelism + 16)
        .thread_name("custody-agent")
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    let poll_wait = Duration::from_secs(config.jobs.poll_wait_seconds.unwrap_or(25));
    let client = link::client(
        &endpoint,
        &resolved,
        Some(&credential.credential),
        poll_wait + Duration::from_secs(60),
    )
    .map_err(RunError::Client)?;
    let target = if is_target {
        let t = Target::new(&config, keystore.clone(), installer).map_err(RunError::TargetState)?;
        Some(Arc::new(t))
    } else {
        None
    };
    let ctx = Arc::new(
        Context::new(
            client,
            keystore,
            credential.server_id.clone(),
            credential.account.clone(),
            Duration::from_secs(credential.heartbeat_interval_seconds.clamp(1, 3600)),
            poll_wait,
            parallelism,
            target,
            notifier,
            log,
            config_path.to_owned(),
        )
        .map_err(RunError::KeystoreThreads)?,
    );
    let stopped = rt.block_on(daemon::run(ctx));
    rt.shutdown_timeout(Duration::from_secs(5));
    match stopped {
        daemon::Stopped::Asked => Ok(()),
        daemon::Stopped::KeystoreLost(reason) => Err(RunError::KeystoreLost(reason)),
    }
}
