//! Test support for the release-flow CLI tests: the built `custody`
//! binary against a real coordinator on loopback, and fake key managers —
//! real HTTP clients speaking the job protocol — that hold real RSA
//! private keys, so they can open what the CLI wrapped to them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::{FakeAgent, Harness};
use custody_envelope::jwe::{self, Binding, Purpose};
use custody_proto::jobs::JobPayload;
use custody_proto::servers::{AgentRole, EnrollRequest, EnrollResponse};
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

const BIN: &str = env!("CARGO_BIN_EXE_custody");

/// The CLI with its own login file.
#[derive(Clone)]
pub struct Cli {
    pub config: PathBuf,
}

impl Cli {
    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut child = std::process::Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("CUSTODY_TOKEN")
            .env_remove("CUSTODY_PUBLISHER_KEY")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(data) = stdin {
            child.stdin.take().unwrap().write_all(data).unwrap();
        }
        child.wait_with_output().unwrap()
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    /// Fails with exactly one line on stderr; returns (stdout, stderr).
    pub fn err_out(&self, args: &[&str], stdin: Option<&[u8]>) -> (String, String) {
        let o = self.run_with_stdin(args, stdin);
        assert!(!o.status.success(), "{args:?} should fail");
        let e = String::from_utf8(o.stderr).unwrap();
        let last = e.trim_end().lines().last().unwrap_or("").to_string();
        assert!(last.starts_with("custody: "), "{e}");
        // Key-manager tables may precede it; the error itself is one line.
        assert!(
            e.lines().filter(|l| l.starts_with("custody: ")).count() == 1,
            "one error line: {e}"
        );
        (String::from_utf8(o.stdout).unwrap(), last)
    }
    pub fn err(&self, args: &[&str]) -> String {
        self.err_out(args, None).1
    }
}

pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// `custody login` into a fresh directory.
pub async fn login(h: &Harness, dir: &Path) -> Cli {
    let cli = Cli {
        config: dir.join("custody/config.toml"),
    };
    let (url, fp, tok) = (
        h.url.clone(),
        h.ca_fingerprint.clone(),
        h.owner_token.clone(),
    );
    let c = cli.clone();
    blocking(move || {
        c.ok(&[
            "login",
            "--url",
            &url,
            "--ca-fingerprint",
            &fp,
            "--token",
            &tok,
        ])
    })
    .await;
    cli
}

/// What the fake key managers opened.
#[derive(Default)]
pub struct Seen {
    /// (key manager id, release id, RK) from `rewrap_release_key` jobs.
    pub release_keys: Vec<(String, String, Vec<u8>)>,
    /// (key manager id, variable name, value) from `seal_secret_variable`.
    pub secrets: Vec<(String, String, String)>,
    /// Rewrap jobs this many times failed on purpose (failover).
    pub failed_rewraps: usize,
}

/// A key manager with a real RSA key pair.
pub struct KeyManager {
    pub agent: FakeAgent,
    pub public: RsaPublicKey,
    private: RsaPrivateKey,
}

pub fn rsa_key() -> RsaPrivateKey {
    RsaPrivateKey::new(&mut custody_envelope::rng::OsRng, 2048).unwrap()
}

impl KeyManager {
    /// Enrolls with a fresh key and is enabled as key manager by the owner.
    pub async fn enroll(h: &Harness, name: &str) -> KeyManager {
        let private = rsa_key();
        let public = RsaPublicKey::from(&private);
        let join = h.join_token().await;
        let r: EnrollResponse = h
            .client(None)
            .post(
                "/v1/agent/enroll",
                &EnrollRequest {
                    protocol: custody_proto::PROTOCOL_VERSION,
                    join_token: join,
                    name: name.into(),
                    public_key_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
                    oaep_hashes: vec![custody_proto::OaepHash::Sha256],
                    roles: vec![AgentRole::KeyManager],
                    agent_version: "test".into(),
                },
            )
            .await
            .unwrap();
        let agent = FakeAgent {
            id: r.server_id,
            client: h.client(Some(&r.credential)),
            credential: r.credential,
        };
        let _: serde_json::Value = h
            .owner
            .put(
                &format!("/v1/servers/{}/key-manager", agent.id),
                &serde_json::json!({"enabled": true}),
            )
            .await
            .unwrap();
        KeyManager {
            agent,
            public,
            private,
        }
    }

    /// Opens a JWE wrapped to this key manager, checking its binding.
    #[allow(clippy::disallowed_methods)] // test-only private key
    pub fn open(&self, jwe: &str, expected: &Binding) -> Zeroizing<Vec<u8>> {
        jwe::open_wrapped(jwe, &self.public, expected, |hash, ek| {
            assert_eq!(hash, custody_envelope::OaepHash::Sha256);
            self.private
                .decrypt(Oaep::new::<rsa::sha2::Sha256>(), ek)
                .map(Zeroizing::new)
        })
        .unwrap()
    }

    /// Answers jobs until the task is aborted: opens every release key and
    /// secret value wrapped to it and records them; fails the first
    /// `fail_rewraps` rewrap jobs (retryable) so they move to the other.
    pub fn serve(self, seen: Arc<Mutex<Seen>>, fail_rewraps: usize) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut failed = 0;
            loop {
                let Some(job) = self.agent.poll(1).await else {
                    continue;
                };
                match &job.payload {
                    JobPayload::RewrapReleaseKey {
                        account,
                        app,
                        release_id,
                        wrapped_release_key,
                        ..
                    } => {
                        let b = Binding {
                            purpose: Purpose::ReleaseKey,
                            account: account.clone(),
                            app: Some(app.clone()),
                            release: Some(release_id.clone()),
                            deployment: None,
                            name: None,
                            environment: None,
                        };
                        let rk = self.open(wrapped_release_key, &b);
                        seen.lock().unwrap().release_keys.push((
                            self.agent.id.clone(),
                            release_id.clone(),
                            rk.to_vec(),
                        ));
                        if failed < fail_rewraps {
                            failed += 1;
                            seen.lock().unwrap().failed_rewraps += 1;
                            self.agent.fail(&job, "test_failover", true).await.unwrap();
                            continue;
                        }
                    }
                    JobPayload::SealSecretVariable {
                        account,
                        app,
                        environment,
                        name,
                        wrapped_value,
                        ..
                    } => {
                        let b = Binding {
                            purpose: Purpose::SecretVar,
                            account: account.clone(),
                            app: Some(app.clone()),
                            release: None,
                            deployment: None,
                            name: Some(name.clone()),
                            environment: Some(environment.clone()),
                        };
                        let v = self.open(wrapped_value, &b);
                        seen.lock().unwrap().secrets.push((
                            self.agent.id.clone(),
                            name.clone(),
                            String::from_utf8(v.to_vec()).unwrap(),
                        ));
                    }
                    _ => {}
                }
                let out = self.agent.output_for(&job);
                self.agent.answer(&job, out).await.unwrap();
            }
        })
    }
}

/// Two responding key managers holding the master key.
pub async fn two_key_managers(h: &Harness) -> (Arc<Mutex<Seen>>, Vec<tokio::task::JoinHandle<()>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let a = KeyManager::enroll(h, "km-a").await;
    let b = KeyManager::enroll(h, "km-b").await;
    let tasks = vec![a.serve(seen.clone(), 1), b.serve(seen.clone(), 1)];
    h.wait_for("master key held by both", || async {
        let s: custody_proto::servers::MasterKeyStatus =
            h.owner.get("/v1/master-key").await.unwrap();
        s.state == "active" && s.holders.len() == 2
    })
    .await;
    (seen, tasks)
}

/// Writes a release tree: custody.toml and a few files, nested, one secret,
/// one large (several encryption batches), one excluded.
pub fn release_tree(dir: &Path) -> Vec<(String, u32, Vec<u8>)> {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("conf/.git")).unwrap();
    std::fs::write(
        dir.join("custody.toml"),
        r#"version = 1
destination = "/srv/securekeys"
include = ["**"]
exclude = ["conf/.git"]
env = ["MODE", "API_TOKEN"]

[[files]]
pattern = "bin/*"
mode = "0755"

[[files]]
pattern = "conf/secret.cred.*"
secret = true
"#,
    )
    .unwrap();
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 17u32)
        .map(|i| (i % 251) as u8)
        .collect();
    let files = vec![
        (
            "bin/start".to_string(),
            0o755,
            b"#!/bin/sh\necho up\n".to_vec(),
        ),
        (
            "conf/app.toml".to_string(),
            0o644,
            b"port = 8080\n".to_vec(),
        ),
        (
            "conf/secret.cred.dev".to_string(),
            0o600,
            b"dev-credential\n".to_vec(),
        ),
        ("data.bin".to_string(), 0o644, big),
    ];
    for (p, _, data) in &files {
        std::fs::write(dir.join(p), data).unwrap();
    }
    std::fs::write(dir.join("conf/.git/HEAD"), "ref: x\n").unwrap();
    files
}
