//! The `custody-agent` binary as a real process: `enroll` (as root, like an
//! administrator), then `run` with the sandbox **on**, as in production —
//! as root it drops to [`SERVICE_USER`](crate::service_user::SERVICE_USER),
//! which owns the state dir, the install root and a SoftHSM2 token dir.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use custody_proto::servers::KeyManagerKey;
use rustix::process::Signal;

use crate::bins;
use crate::coordinator::Coordinator;
use crate::error::{E2eError, Result, io};
use crate::process::Proc;
use crate::service_user::{self, SERVICE_USER};
use crate::wait::eventually;

/// Where an agent's server key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keystore {
    /// A PEM file in the state dir (development keystore; fastest).
    Soft,
    /// A SoftHSM2 token of its own (PKCS#11; OAEP-SHA-1 only).
    SoftHsm,
    /// A swtpm TPM of its own (over TCP).
    Tpm,
}

/// Which roles an agent offers at enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Key manager only.
    KeyManager,
    /// Deploy target only (gets an install root and an installer child).
    Target,
    /// Both.
    Both,
}

impl Role {
    fn arg(self) -> &'static str {
        match self {
            Role::KeyManager => "key_manager",
            Role::Target => "target",
            Role::Both => "key_manager,target",
        }
    }

    /// Whether it is a deploy target (has an install root and an installer).
    pub fn is_target(self) -> bool {
        matches!(self, Role::Target | Role::Both)
    }
}

/// How to set up an agent.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Its keystore.
    pub keystore: Keystore,
    /// Its roles.
    pub role: Role,
    /// `[target] publisher_keys` (64 hex digits each).
    pub publisher_keys: Vec<String>,
    /// Lines added to `[target]` (caps such as `max_files = 10`).
    pub target_toml: String,
    /// Install roots besides its own (e.g. one shared by several targets,
    /// so that one release installs on all of them); handed to the service
    /// user like its own.
    pub extra_install_roots: Vec<PathBuf>,
}

impl AgentOptions {
    /// A key manager on `keystore`.
    pub fn key_manager(keystore: Keystore) -> Self {
        AgentOptions {
            keystore,
            role: Role::KeyManager,
            publisher_keys: Vec::new(),
            target_toml: String::new(),
            extra_install_roots: Vec::new(),
        }
    }

    /// A target on `keystore` pinning `publisher_keys`.
    pub fn target(keystore: Keystore, publisher_keys: &[String]) -> Self {
        AgentOptions {
            keystore,
            role: Role::Target,
            publisher_keys: publisher_keys.to_vec(),
            target_toml: String::new(),
            extra_install_roots: Vec::new(),
        }
    }
}

/// One agent: its directories, keystore simulator and (once started) process.
pub struct Agent {
    // Declared first: dropped (killed) before the simulators below.
    proc: Option<Proc>,
    /// The name it enrolls under.
    pub name: String,
    /// Its roles.
    pub role: Role,
    root: tempfile::TempDir,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its state dir (credential, keys, staging, install records).
    pub state: PathBuf,
    /// The install root granted to it (targets).
    pub install_root: PathBuf,
    extra_install_roots: Vec<PathBuf>,
    hsm: Option<hsm_sim::SoftHsm>,
    tpm: Option<hsm_sim::Swtpm>,
    env: Vec<(String, OsString)>,
    /// The server id, once enrolled.
    pub server_id: String,
    /// Its public key (SPKI PEM), once enrolled.
    pub public_key_pem: String,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.name)
            .field("server_id", &self.server_id)
            .finish_non_exhaustive()
    }
}

fn landlock_min_abi() -> u32 {
    custody_agent::sandbox::kernel_abi().unwrap_or(0).min(4)
}

impl Agent {
    /// Directories, keystore (a fresh SoftHSM2 token or swtpm for the
    /// hardware kinds, RSA-2048) and configuration; not enrolled yet.
    pub fn new(name: &str, opts: &AgentOptions) -> Result<Agent> {
        let root = tempfile::Builder::new()
            .prefix(&format!("custody-e2e-{name}."))
            .tempdir()
            .map_err(io("create", "a temporary directory"))?;
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m))
                .map_err(io("chmod", p.display()))
        };
        // The service user traverses the root to reach its state dir.
        mode(root.path(), 0o755)?;
        let etc = root.path().join("etc");
        let state = root.path().join("state");
        let install_root = root.path().join("srv");
        for d in [&etc, &state, &install_root] {
            std::fs::create_dir(d).map_err(io("create", d.display()))?;
        }
        mode(&state, 0o700)?;
        let mut env: Vec<(String, OsString)> = vec![("TSS2_LOG".into(), "all+NONE".into())];
        let (mut hsm, mut tpm) = (None, None);
        let keystore = match opts.keystore {
            Keystore::Soft => "kind = \"soft\"\nkey_bits = 2048\n".to_owned(),
            Keystore::SoftHsm => {
                let h = hsm_sim::SoftHsm::start()?;
                env.push(("SOFTHSM2_CONF".into(), h.conf().into()));
                let s = format!(
                    "kind = \"pkcs11\"\nmodule = \"{}\"\ntoken_label = \"{}\"\npin = {{ file = \"{}\" }}\nkey_bits = 2048\nsessions = 2\n",
                    h.module().display(),
                    h.token_label(),
                    h.pin_file().display()
                );
                hsm = Some(h);
                s
            }
            Keystore::Tpm => {
                let t = hsm_sim::Swtpm::start()?;
                let s = format!("kind = \"tpm\"\ntcti = \"{}\"\nkey_bits = 2048\n", t.tcti());
                tpm = Some(t);
                s
            }
        };
        let target = if opts.role.is_target() {
            let keys: Vec<String> = opts
                .publisher_keys
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect();
            let roots: Vec<String> = std::iter::once(&install_root)
                .chain(&opts.extra_install_roots)
                .map(|r| format!("\"{}\"", r.display()))
                .collect();
            format!(
                "[target]\ninstall_roots = [{}]\npublisher_keys = [{}]\n{}\n",
                roots.join(", "),
                keys.join(", "),
                opts.target_toml
            )
        } else {
            String::new()
        };
        // The sandbox is on in every scenario, as in production.
        let user = if service_user::running_as_root() {
            format!("user = \"{SERVICE_USER}\"\n")
        } else {
            String::new()
        };
        let sandbox = format!(
            "[sandbox]\nenabled = true\n{user}landlock_min_abi = {}\n",
            landlock_min_abi()
        );
        let config = etc.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "[keystore]\n{keystore}\n[state]\ndir = \"{}\"\n\n{target}\n{sandbox}\n[jobs]\npoll_wait_seconds = 5\n\n[log]\nlevel = \"info\"\n",
                state.display(),
            ),
        )
        .map_err(io("write", config.display()))?;
        Ok(Agent {
            proc: None,
            name: name.to_owned(),
            role: opts.role,
            root,
            config,
            state,
            install_root,
            extra_install_roots: opts.extra_install_roots.clone(),
            hsm,
            tpm,
            env,
            server_id: String::new(),
            public_key_pem: String::new(),
        })
    }

    fn command(&self, args: &[&str]) -> Result<Command> {
        let mut cmd = Command::new(bins::binary(bins::AGENT)?);
        cmd.args(args).arg("--config").arg(&self.config);
        // The state dir, writable by the service user: where a core file
        // would land (core_pattern "core") if the sandbox allowed one.
        cmd.current_dir(&self.state);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        Ok(cmd)
    }

    /// Runs `custody-agent ARGS --config …` to completion.
    pub async fn output(&self, args: &[&str]) -> Result<Output> {
        let cmd = self.command(args)?;
        tokio::process::Command::from(cmd)
            .output()
            .await
            .map_err(io("run", format!("custody-agent {}", args.join(" "))))
    }

    /// `custody-agent enroll` with a fresh join token from `c`; records the
    /// server id and public key.
    pub async fn enroll(&mut self, c: &Coordinator) -> Result<()> {
        let token = c.join_token().await?;
        self.enroll_with_token(c, &token).await
    }

    /// `custody-agent enroll` with `token` (from `custody servers
    /// join-token`, say); records the server id and public key.
    pub async fn enroll_with_token(&mut self, c: &Coordinator, token: &str) -> Result<()> {
        let (url, fp) = (c.url.clone(), c.ca_fingerprint.clone());
        let role = self.role.arg();
        let name = self.name.clone();
        let out = self
            .output(&[
                "enroll",
                "--coordinator",
                &url,
                "--ca-fingerprint",
                &fp,
                "--join-token",
                token,
                "--roles",
                role,
                "--name",
                &name,
            ])
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(E2eError::Command {
                command: format!("custody-agent enroll ({})", self.name),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        self.server_id = stdout
            .split_whitespace()
            .find(|w| w.starts_with("srv_"))
            .ok_or_else(|| E2eError::Output {
                what: "custody-agent enroll".into(),
                output: stdout.clone(),
            })?
            .to_owned();
        let pem = self.output(&["pubkey"]).await?;
        if !pem.status.success() {
            return Err(E2eError::Command {
                command: "custody-agent pubkey".into(),
                status: pem.status.to_string(),
                stderr: String::from_utf8_lossy(&pem.stderr).into_owned(),
            });
        }
        self.public_key_pem = String::from_utf8_lossy(&pem.stdout).into_owned();
        Ok(())
    }

    /// Hands the state dir, install root and SoftHSM2 token dir to the
    /// service user, as the packaging and the operator do.
    pub fn give_to_service_user(&self) -> Result<()> {
        if !service_user::running_as_root() {
            return Ok(());
        }
        let (uid, gid) = service_user::service_ids()?;
        service_user::chown_tree(&self.state, uid, gid)?;
        service_user::chown_tree(&self.install_root, uid, gid)?;
        for r in &self.extra_install_roots {
            service_user::chown_tree(r, uid, gid)?;
        }
        if let Some(h) = &self.hsm {
            service_user::chown_tree(h.dir(), uid, gid)?;
        }
        Ok(())
    }

    /// Starts `custody-agent run` (sandboxed). Returns at once; see
    /// [`Agent::wait_live`].
    pub fn start(&mut self) -> Result<()> {
        if self.proc.as_mut().is_some_and(Proc::is_running) {
            return Err(E2eError::Setup(format!("{} already runs", self.name)));
        }
        self.give_to_service_user()?;
        let cmd = self.command(&["run"])?;
        self.proc = Some(Proc::spawn(&self.name, cmd, self.root.path())?);
        Ok(())
    }

    /// Starts it and waits until the coordinator sees it live.
    pub async fn start_live(&mut self, c: &Coordinator) -> Result<()> {
        self.start()?;
        self.wait_live(c).await
    }

    /// Waits until the coordinator counts it as live (and it still runs).
    pub async fn wait_live(&mut self, c: &Coordinator) -> Result<()> {
        let id = self.server_id.clone();
        let what = format!("{} to be live", self.name);
        let proc = self.proc.as_mut();
        let Some(proc) = proc else {
            return Err(E2eError::Setup(format!("{} was not started", self.name)));
        };
        eventually(60, &what, || {
            let running = proc.check_running();
            let id = id.clone();
            async move {
                running?;
                Ok(c.server(&id).await?.live.then_some(()))
            }
        })
        .await
    }

    /// The running process.
    pub fn process(&mut self) -> Result<&mut Proc> {
        self.proc
            .as_mut()
            .ok_or_else(|| E2eError::Setup("the agent was never started".into()))
    }

    /// Its process id.
    pub fn pid(&self) -> Result<u32> {
        self.proc
            .as_ref()
            .and_then(Proc::pid)
            .ok_or_else(|| E2eError::Setup(format!("{} is not running", self.name)))
    }

    /// Sends a signal to the running agent.
    pub fn signal(&self, sig: Signal) -> Result<()> {
        self.proc
            .as_ref()
            .ok_or_else(|| E2eError::Setup(format!("{} is not running", self.name)))?
            .signal(sig)
    }

    /// SIGTERM (drain) and waits for a clean exit.
    pub async fn stop(&mut self) -> Result<std::process::ExitStatus> {
        match self.proc.as_mut() {
            Some(p) => p.terminate(30).await,
            None => Err(E2eError::Setup(format!("{} is not running", self.name))),
        }
    }

    /// SIGKILL (a crash, or a machine pulled from the rack).
    pub fn kill9(&mut self) {
        if let Some(p) = self.proc.as_mut() {
            p.kill9();
        }
    }

    /// Whether the process runs.
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::is_running)
    }

    /// Its log (stderr) so far, across restarts.
    pub fn log(&self) -> String {
        self.proc.as_ref().map(Proc::stderr).unwrap_or_default()
    }

    /// The directory holding its configuration, state, install root and
    /// logs. It runs in its state dir.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The installer child's process id (targets).
    pub fn installer_pid(&self) -> Result<u32> {
        let pid = self.pid()?;
        let kids = crate::proc_status::children(pid)?;
        match kids.as_slice() {
            [one] => Ok(*one),
            _ => Err(E2eError::Setup(format!(
                "{} has {} child processes, expected its installer: {kids:?}",
                self.name,
                kids.len()
            ))),
        }
    }

    /// Checks that every thread of the agent (and of its installer child,
    /// for targets) is sandboxed: no capabilities in any set, no new
    /// privileges, a seccomp filter, every uid/gid the service user's.
    pub fn check_sandboxed(&self) -> Result<()> {
        let (uid, gid) = service_user::service_ids()?;
        let mut pids = vec![("main", self.pid()?)];
        if self.role.is_target() {
            pids.push(("installer", self.installer_pid()?));
        }
        for (what, pid) in pids {
            let threads = crate::proc_status::threads(pid)?;
            if threads.is_empty() {
                return Err(E2eError::Setup(format!("{} {what}: no threads", self.name)));
            }
            if let Some(t) = threads.iter().find(|t| !t.is_sandboxed_as(uid, gid)) {
                return Err(E2eError::Setup(format!(
                    "{} {what} process {pid}: thread not sandboxed: {t:?}",
                    self.name
                )));
            }
        }
        Ok(())
    }

    /// The private staging dir.
    pub fn staging(&self) -> PathBuf {
        self.state.join("staging")
    }

    /// Whatever is left in the staging dir.
    pub fn staging_entries(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.staging())
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    }

    /// The soft keystore's private key file (soft agents only).
    pub fn soft_key_file(&self) -> PathBuf {
        self.state.join("soft-key.pem")
    }

    /// The SoftHSM2 token, when it has one.
    pub fn softhsm(&self) -> Option<&hsm_sim::SoftHsm> {
        self.hsm.as_ref()
    }

    /// The swtpm, when it has one.
    pub fn swtpm(&self) -> Option<&hsm_sim::Swtpm> {
        self.tpm.as_ref()
    }

    /// Restarts its swtpm: the TPM's state stays, every connection, session
    /// and loaded object is gone (as when a TPM's resource manager
    /// restarts). swtpm comes back on new ports, so the configuration's
    /// `tcti` is pointed at them for the agent's next start (a real TPM's
    /// device path does not move).
    pub fn restart_swtpm(&mut self) -> Result<()> {
        let name = &self.name;
        let tpm = self
            .tpm
            .as_mut()
            .ok_or_else(|| E2eError::Setup(format!("{name} has no swtpm")))?;
        let old = tpm.tcti();
        tpm.restart()?;
        let new = tpm.tcti();
        let text =
            std::fs::read_to_string(&self.config).map_err(io("read", self.config.display()))?;
        if !text.contains(&old) {
            return Err(E2eError::Setup(format!(
                "{}: no {old} to replace",
                self.config.display()
            )));
        }
        std::fs::write(&self.config, text.replace(&old, &new))
            .map_err(io("write", self.config.display()))
    }

    /// Its key as the coordinator lists key managers.
    pub async fn key(&self, c: &Coordinator) -> Result<KeyManagerKey> {
        let s = c.server(&self.server_id).await?;
        Ok(KeyManagerKey {
            server_id: s.id,
            name: s.name,
            public_key_pem: self.public_key_pem.clone(),
            oaep_hashes: s.oaep_hashes,
            fingerprint: s.key_fingerprint,
        })
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Kill the agent (printing its log when a test failed) before the
        // token and TPM it uses go away.
        self.proc = None;
    }
}
