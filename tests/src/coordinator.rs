//! The `custody-coordinator` binary as a real process: `init` then `run`,
//! TLS on loopback with its own CA (clients pin its fingerprint), a real
//! SQLite file in a temporary state dir, an OS-chosen port.

use std::path::{Path, PathBuf};
use std::process::Command;

use custody_client::{Client, ClientConfig};

use crate::bins;
use crate::error::{E2eError, Result, api, io};
use crate::process::Proc;
use crate::wait::eventually;

/// Timing and limits of a test coordinator (short, so that failover and
/// liveness happen within a test).
#[derive(Debug, Clone)]
pub struct CoordinatorOptions {
    /// `jobs.key_manager_deadline_seconds`: a key-manager job not answered
    /// within this goes to another key manager.
    pub key_manager_deadline_seconds: u64,
    /// `jobs.deploy_deadline_seconds`: a deploy not finished within this is
    /// re-issued to its target.
    pub deploy_deadline_seconds: u64,
    /// `agents.liveness_window_seconds`.
    pub liveness_window_seconds: u64,
    /// `agents.max_poll_wait_seconds`.
    pub max_poll_wait_seconds: u64,
    /// `agents.heartbeat_interval_seconds`.
    pub heartbeat_interval_seconds: u64,
    /// TOML appended to the generated configuration.
    pub extra_toml: String,
}

impl Default for CoordinatorOptions {
    fn default() -> Self {
        CoordinatorOptions {
            key_manager_deadline_seconds: 20,
            deploy_deadline_seconds: 120,
            liveness_window_seconds: 45,
            max_poll_wait_seconds: 5,
            heartbeat_interval_seconds: 2,
            extra_toml: String::new(),
        }
    }
}

/// A running coordinator and its owner's API client.
pub struct Coordinator {
    // Declared first: killed (and its log tail printed) before its
    // directory is removed.
    proc: Proc,
    root: tempfile::TempDir,
    config: PathBuf,
    state_dir: PathBuf,
    port: u16,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// SHA-256 of its CA certificate (hex), what clients pin.
    pub ca_fingerprint: String,
    /// The owner's API token (made by `init`).
    pub owner_token: String,
    /// The owner's client.
    pub owner: Client,
    /// The account id.
    pub account: String,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("url", &self.url)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

fn field(stdout: &str, label: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|v| v.trim().to_owned())
}

impl Coordinator {
    /// `init` and `run` with the default test options.
    pub async fn start() -> Result<Coordinator> {
        Self::start_with(&CoordinatorOptions::default()).await
    }

    /// `init` and `run` with `opts`.
    pub async fn start_with(opts: &CoordinatorOptions) -> Result<Coordinator> {
        let bin = bins::binary(bins::COORDINATOR)?;
        let root = tempfile::Builder::new()
            .prefix("custody-e2e-coordinator.")
            .tempdir()
            .map_err(io("create", "a temporary directory"))?;
        let state_dir = root.path().join("state");
        let config = root.path().join("coordinator.toml");
        let text = format!(
            "state_dir = \"{state}\"\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n\n\
             [jobs]\nkey_manager_deadline_seconds = {km}\ndeploy_deadline_seconds = {dd}\n\
             sweep_interval_ms = 100\n\n\
             [agents]\nliveness_window_seconds = {live}\nheartbeat_interval_seconds = {hb}\n\
             max_poll_wait_seconds = {poll}\n\n{extra}\n",
            state = state_dir.display(),
            km = opts.key_manager_deadline_seconds,
            dd = opts.deploy_deadline_seconds,
            live = opts.liveness_window_seconds,
            hb = opts.heartbeat_interval_seconds,
            poll = opts.max_poll_wait_seconds,
            extra = opts.extra_toml,
        );
        std::fs::write(&config, text).map_err(io("write", config.display()))?;
        let out = tokio::process::Command::new(&bin)
            .arg("init")
            .arg("--config")
            .arg(&config)
            .output()
            .await
            .map_err(io("run", "custody-coordinator init"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(E2eError::Command {
                command: "custody-coordinator init".into(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let missing = |what: &str| E2eError::Output {
            what: format!("custody-coordinator init ({what})"),
            output: stdout.clone(),
        };
        let ca_fingerprint =
            field(&stdout, "ca fingerprint:").ok_or_else(|| missing("fingerprint"))?;
        let owner_token = field(&stdout, "owner token:").ok_or_else(|| missing("token"))?;
        let account = field(&stdout, "account:").ok_or_else(|| missing("account"))?;
        let proc = spawn_run(&bin, &config, None, root.path())?;
        let mut c = Coordinator {
            // Replaced once the port is known.
            owner: Client::new(ClientConfig::new(
                "https://127.0.0.1:1",
                Some(&ca_fingerprint),
                None,
            ))
            .map_err(api("client"))?,
            root,
            config,
            state_dir,
            proc,
            port: 0,
            url: String::new(),
            ca_fingerprint,
            owner_token,
            account,
        };
        c.wait_listening(0).await?;
        Ok(c)
    }

    async fn wait_listening(&mut self, seen_before: usize) -> Result<()> {
        let addr = {
            let proc = &mut self.proc;
            eventually(30, "the coordinator to listen", || {
                let r = proc.check_running().map(|()| {
                    proc.stdout()
                        .lines()
                        .filter_map(|l| l.strip_prefix("listening on "))
                        .nth(seen_before)
                        .and_then(|rest| rest.split_whitespace().next())
                        .map(str::to_owned)
                });
                async move { r }
            })
            .await?
        };
        let port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| E2eError::Output {
                what: "custody-coordinator run".into(),
                output: addr.clone(),
            })?;
        self.port = port;
        self.url = format!("https://127.0.0.1:{port}");
        self.owner = self.client(Some(&self.owner_token.clone()))?;
        let owner = self.owner.clone();
        eventually(30, "the coordinator to be ready", || {
            let owner = owner.clone();
            async move { Ok(owner.get_text("/readyz").await.ok().map(|_| ())) }
        })
        .await
    }

    /// A client for `token` (none: unauthenticated), pinning the CA.
    pub fn client(&self, token: Option<&str>) -> Result<Client> {
        Client::new(ClientConfig::new(
            &self.url,
            Some(&self.ca_fingerprint),
            token,
        ))
        .map_err(api("client"))
    }

    /// The port it serves on (kept across [`Coordinator::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its state directory: database, keys, certificates, artifacts.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.state_dir.join("coordinator.db")
    }

    /// The artifact store.
    pub fn artifact_dir(&self) -> PathBuf {
        self.state_dir.join("artifacts")
    }

    /// The process (signals, logs).
    pub fn process(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// SIGTERM (drain), then `run` again on the same port and state.
    pub async fn restart(&mut self) -> Result<()> {
        self.proc.terminate(30).await?;
        let before = self
            .proc
            .stdout()
            .lines()
            .filter(|l| l.starts_with("listening on "))
            .count();
        let bin = bins::binary(bins::COORDINATOR)?;
        self.proc = spawn_run(&bin, &self.config, Some(self.port), self.root.path())?;
        self.wait_listening(before).await
    }

    /// Runs an SQL statement on its database with the `sqlite3` tool (as a
    /// thief or a tamperer with access to the file would); returns stdout.
    pub async fn sql(&self, statement: &str) -> Result<String> {
        let out = tokio::process::Command::new("sqlite3")
            .arg("-cmd")
            .arg(".timeout 10000")
            .arg(self.database_path())
            .arg(statement)
            .output()
            .await
            .map_err(io("run", "sqlite3"))?;
        if !out.status.success() {
            return Err(E2eError::Command {
                command: format!("sqlite3 {statement}"),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The stored package file with this SHA-256 (hex).
    pub fn artifact_file(&self, sha256: &str) -> Result<PathBuf> {
        crate::files::walk(&self.artifact_dir())
            .into_iter()
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(sha256))
            })
            .ok_or_else(|| E2eError::Setup(format!("no stored package {sha256}")))
    }
}

fn spawn_run(bin: &Path, config: &Path, port: Option<u16>, log_dir: &Path) -> Result<Proc> {
    let mut cmd = Command::new(bin);
    cmd.arg("run").arg("--config").arg(config);
    if let Some(p) = port {
        cmd.arg("--listen").arg(format!("127.0.0.1:{p}"));
    }
    cmd.env("RUST_LOG", "info");
    Proc::spawn("coordinator", cmd, log_dir)
}
