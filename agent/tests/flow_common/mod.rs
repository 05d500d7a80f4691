//! Harness for the agent's runtime tests: a real coordinator (the
//! `custody-coordinator` library's server, TLS on loopback, a real SQLite
//! file, in this test process) and real `custody-agent` processes on soft,
//! SoftHSM2 and swtpm keystores — enrolled with `custody-agent enroll`, run
//! with `custody-agent run`, sandboxed as the `custody-test` user when the
//! tests run as root.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod release;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use custody_client::{Client, ClientConfig};
use custody_coordinator::{Config, server};
use custody_proto::servers::{JoinToken, MasterKeyStatus, Server};

#[path = "../common/test_user.rs"]
mod test_user;
pub use test_user::{TEST_USER, test_user};

pub const AGENT: &str = env!("CARGO_BIN_EXE_custody-agent");

/// Waits until `f` returns `Some`, polling; panics with `what` after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether agents run sandboxed: only as root (the sandbox switches user).
pub fn sandboxed() -> bool {
    rustix::process::geteuid().is_root()
}

pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

/// A coordinator in this process.
pub struct Coordinator {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub running: Option<server::Running>,
    pub url: String,
    pub fp: String,
    pub token: String,
    pub owner: Client,
    pub account: String,
}

impl Coordinator {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::with_state_dir(dir.path().join("state"));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.metrics_listen = "127.0.0.1:0".parse().unwrap();
        config.jobs.key_manager_deadline_seconds = 20;
        config.jobs.deploy_deadline_seconds = 120;
        config.jobs.sweep_interval_ms = 100;
        config.agents.max_poll_wait_seconds = 5;
        config.agents.heartbeat_interval_seconds = 2;
        tweak(&mut config);
        let out = custody_coordinator::init::init(
            &config,
            "owner",
            &["localhost".into(), "127.0.0.1".into()],
        )
        .await
        .unwrap();
        let running = server::start(config.clone()).await.unwrap();
        // Keep the port across restarts.
        config.listen = running.addr;
        let url = format!("https://127.0.0.1:{}", running.addr.port());
        let fp = out.ca_fingerprint.clone().unwrap();
        let owner =
            Client::new(ClientConfig::new(&url, Some(&fp), Some(&out.owner_token))).unwrap();
        let info: custody_proto::Info = owner.get("/v1/info").await.unwrap();
        Coordinator {
            dir,
            config,
            running: Some(running),
            url,
            fp,
            token: out.owner_token,
            owner,
            account: info.account,
        }
    }

    /// Stops serving (drain), keeping the state.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    /// Serves again on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.running = Some(server::start(self.config.clone()).await.unwrap());
    }

    pub fn port(&self) -> u16 {
        self.config.listen.port()
    }

    pub async fn join_token(&self) -> String {
        let jt: JoinToken = self
            .owner
            .post("/v1/servers/join-tokens", &serde_json::json!({}))
            .await
            .unwrap();
        jt.token
    }

    pub async fn server(&self, id: &str) -> Server {
        self.owner.get(&format!("/v1/servers/{id}")).await.unwrap()
    }

    pub async fn enable_key_manager(&self, id: &str) {
        let _: Server = self
            .owner
            .put(
                &format!("/v1/servers/{id}/key-manager"),
                &serde_json::json!({"enabled": true}),
            )
            .await
            .unwrap();
    }

    pub async fn master_key(&self) -> MasterKeyStatus {
        self.owner.get("/v1/master-key").await.unwrap()
    }

    /// Waits until every one of `servers` holds the current master key.
    pub async fn wait_holders(&self, servers: &[&str]) -> MasterKeyStatus {
        eventually(
            60,
            "the master key to be held by every key manager",
            || async {
                let mk = self.master_key().await;
                (mk.state == "active" && servers.iter().all(|s| mk.holders.iter().any(|h| h == s)))
                    .then_some(mk)
            },
        )
        .await
    }

    /// `/v1/jobs` as JSON values.
    pub async fn jobs(&self) -> Vec<serde_json::Value> {
        self.owner.get("/v1/jobs").await.unwrap()
    }
}

/// Which keystore an agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keystore {
    Soft,
    SoftHsm,
    Tpm,
}

/// One `custody-agent` with its own directories and keystore.
pub struct Agent {
    pub name: String,
    pub root: tempfile::TempDir,
    pub config: PathBuf,
    pub state: PathBuf,
    pub install_root: PathBuf,
    pub stderr: PathBuf,
    pub hsm: Option<hsm_sim::SoftHsm>,
    pub tpm: Option<hsm_sim::Swtpm>,
    pub child: Option<Child>,
    pub server_id: String,
    pub public_key_pem: String,
    pub env: Vec<(String, std::ffi::OsString)>,
}

/// Options for [`Agent::new`].
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub keystore: Keystore,
    /// Configure an install root (the agent is then a target).
    pub target: bool,
    /// `[target] publisher_keys`.
    pub publisher_keys: Vec<String>,
    /// Extra TOML appended to the config.
    pub extra: String,
}

impl AgentOptions {
    pub fn new(keystore: Keystore) -> Self {
        AgentOptions {
            keystore,
            target: false,
            publisher_keys: Vec::new(),
            extra: String::new(),
        }
    }
}

fn landlock_min_abi() -> u32 {
    custody_agent::sandbox::kernel_abi().unwrap_or(0).min(4)
}

impl Agent {
    pub fn new(name: &str, opts: &AgentOptions) -> Agent {
        let root = tempfile::Builder::new()
            .prefix(&format!("custody-agent-{name}."))
            .tempdir()
            .unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let etc = root.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        let state = root.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        let install_root = root.path().join("srv");
        std::fs::create_dir(&install_root).unwrap();
        let mut env: Vec<(String, std::ffi::OsString)> =
            vec![("TSS2_LOG".into(), "all+NONE".into())];
        let (mut hsm, mut tpm) = (None, None);
        let keystore = match opts.keystore {
            Keystore::Soft => "kind = \"soft\"\nkey_bits = 2048\n".to_owned(),
            Keystore::SoftHsm => {
                let h = hsm_sim::SoftHsm::start().unwrap();
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
                let t = hsm_sim::Swtpm::start().unwrap();
                let s = format!("kind = \"tpm\"\ntcti = \"{}\"\nkey_bits = 2048\n", t.tcti());
                tpm = Some(t);
                s
            }
        };
        let target = if opts.target {
            let keys: Vec<String> = opts
                .publisher_keys
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect();
            format!(
                "[target]\ninstall_roots = [\"{}\"]\npublisher_keys = [{}]\n",
                install_root.display(),
                keys.join(", ")
            )
        } else {
            String::new()
        };
        let sandbox = if sandboxed() {
            format!(
                "[sandbox]\nuser = \"{TEST_USER}\"\nlandlock_min_abi = {}\n",
                landlock_min_abi()
            )
        } else {
            "[sandbox]\nenabled = false\n".to_owned()
        };
        let config = etc.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "[keystore]\n{keystore}\n[state]\ndir = \"{}\"\n\n{target}\n{sandbox}\n[jobs]\npoll_wait_seconds = 5\n\n[log]\nlevel = \"debug\"\n{}\n",
                state.display(),
                opts.extra
            ),
        )
        .unwrap();
        let stderr = root.path().join("agent.log");
        Agent {
            name: name.to_owned(),
            root,
            config,
            state,
            install_root,
            stderr,
            hsm,
            tpm,
            child: None,
            server_id: String::new(),
            public_key_pem: String::new(),
            env,
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(AGENT);
        cmd.args(args).arg("--config").arg(&self.config);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a command to completion.
    pub fn output(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        tokio::task::block_in_place(move || cmd.output().unwrap())
    }

    /// `custody-agent enroll`; returns the process output.
    pub fn enroll_with(&self, url: &str, fp: &str, token: &str, roles: &str) -> Output {
        self.output(&[
            "enroll",
            "--coordinator",
            url,
            "--ca-fingerprint",
            fp,
            "--join-token",
            token,
            "--roles",
            roles,
            "--name",
            &self.name,
        ])
    }

    /// Enrolls with a fresh join token and remembers the server id.
    pub async fn enroll(&mut self, c: &Coordinator, roles: &str) {
        let token = c.join_token().await;
        let (url, fp) = (c.url.clone(), c.fp.clone());
        let out = self.enroll_with(&url, &fp, &token, roles);
        assert!(
            out.status.success(),
            "enroll {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        self.server_id = stdout.split_whitespace().nth(2).unwrap().to_owned();
        assert!(self.server_id.starts_with("srv_"), "{stdout}");
        let pem = self.output(&["pubkey"]);
        assert!(pem.status.success());
        self.public_key_pem = String::from_utf8(pem.stdout).unwrap();
    }

    /// This agent's key as the coordinator describes key managers.
    pub async fn key(&self, c: &Coordinator) -> custody_proto::servers::KeyManagerKey {
        let s = c.server(&self.server_id).await;
        custody_proto::servers::KeyManagerKey {
            server_id: s.id,
            name: s.name,
            public_key_pem: self.public_key_pem.clone(),
            oaep_hashes: s.oaep_hashes,
            fingerprint: s.key_fingerprint,
        }
    }

    /// Hands the state dir (and a SoftHSM2 token) to the sandbox user, as
    /// the packaging does.
    pub fn give_to_service_user(&self) {
        if !sandboxed() {
            return;
        }
        let (uid, gid) = test_user();
        chown_tree(&self.state, uid, gid);
        chown_tree(&self.install_root, uid, gid);
        if let Some(h) = &self.hsm {
            chown_tree(h.dir(), uid, gid);
        }
    }

    /// Starts `custody-agent run`.
    pub fn start(&mut self) {
        self.give_to_service_user();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr)
            .unwrap();
        let child = self
            .command(&["run"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends a signal (`TERM`, `HUP`, `KILL` …) to the running agent.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM and wait (panics after 30 s).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        tokio::task::block_in_place(|| self.stop_blocking())
    }

    fn stop_blocking(&mut self) -> std::process::ExitStatus {
        let Some(mut child) = self.child.take() else {
            panic!("{} is not running", self.name);
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{} did not stop on SIGTERM:\n{}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// What the agent logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn staging(&self) -> PathBuf {
        self.state.join("staging")
    }

    /// Entries left in the staging dir.
    pub fn staging_entries(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.staging()) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- {} log ----\n{}", self.name, self.log());
        }
        self.kill();
    }
}
