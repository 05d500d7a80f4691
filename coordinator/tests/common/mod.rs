//! Shared harness: a real coordinator on loopback (TLS, real SQLite file in
//! a temp dir), an owner client, and fake agents that are real HTTP clients
//! speaking the job protocol.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use custody_client::{Client, ClientConfig, ClientError};
use custody_coordinator::{Config, server};
use custody_envelope::jwe::{Binding, ProtectedHeader, Purpose};
use custody_proto::apps::WrappedKey;
use custody_proto::jobs::{Job, JobFailure, JobOutput, JobPayload, ResultAck};
use custody_proto::servers::{AgentRole, EnrollRequest, EnrollResponse, JoinToken};
use std::path::PathBuf;
use std::time::Duration;

const KEYS: [&str; 4] = [
    include_str!("../data/key1.pub.pem"),
    include_str!("../data/key2.pub.pem"),
    include_str!("../data/key3.pub.pem"),
    include_str!("../data/key4.pub.pem"),
];

/// One of four RSA-2048 public keys (SPKI PEM) made with openssl for tests.
pub fn key_pem(i: usize) -> String {
    KEYS[i % 4].to_string()
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub running: Option<server::Running>,
    pub url: String,
    pub ca_fingerprint: String,
    pub owner_token: String,
    pub owner: Client,
}

pub fn test_config(state_dir: PathBuf) -> Config {
    let mut c = Config::with_state_dir(state_dir);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.metrics_listen = "127.0.0.1:0".parse().unwrap();
    c.jobs.key_manager_deadline_seconds = 2;
    c.jobs.deploy_deadline_seconds = 5;
    c.jobs.sweep_interval_ms = 100;
    c.agents.max_poll_wait_seconds = 5;
    c.limits.max_json_body_bytes = 64 * 1024;
    c.limits.max_package_bytes = 4 * 1024 * 1024;
    c
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path().join("state"));
        tweak(&mut config);
        let out = custody_coordinator::init::init(
            &config,
            "owner",
            &["localhost".into(), "127.0.0.1".into()],
        )
        .await
        .unwrap();
        let running = server::start(config.clone()).await.unwrap();
        let url = format!("https://127.0.0.1:{}", running.addr.port());
        let fp = out.ca_fingerprint.clone().unwrap();
        let owner =
            Client::new(ClientConfig::new(&url, Some(&fp), Some(&out.owner_token))).unwrap();
        Harness {
            dir,
            config,
            running: Some(running),
            url,
            ca_fingerprint: fp,
            owner_token: out.owner_token,
            owner,
        }
    }

    /// A harness around an already running coordinator (benches): no server handle.
    pub fn light(url: &str, fp: &str, token: &str, dir: tempfile::TempDir) -> Self {
        let owner = Client::new(ClientConfig::new(url, Some(fp), Some(token))).unwrap();
        Harness {
            config: test_config(dir.path().join("unused")),
            dir,
            running: None,
            url: url.into(),
            ca_fingerprint: fp.into(),
            owner_token: token.into(),
            owner,
        }
    }

    /// Stops the server (drain) and starts it again on a new port with the same state.
    pub async fn restart(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        let running = server::start(self.config.clone()).await.unwrap();
        self.url = format!("https://127.0.0.1:{}", running.addr.port());
        self.owner = self.client(Some(&self.owner_token.clone()));
        self.running = Some(running);
    }

    pub fn client(&self, token: Option<&str>) -> Client {
        Client::new(ClientConfig::new(
            &self.url,
            Some(&self.ca_fingerprint),
            token,
        ))
        .unwrap()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.config.state_dir.clone()
    }

    pub async fn join_token(&self) -> String {
        let jt: JoinToken = self
            .owner
            .post("/v1/servers/join-tokens", &serde_json::json!({}))
            .await
            .unwrap();
        jt.token
    }

    pub async fn agent(&self, name: &str, roles: &[AgentRole]) -> FakeAgent {
        let token = self.join_token().await;
        FakeAgent::enroll(self, name, roles, &token, 0)
            .await
            .unwrap()
    }

    pub async fn key_manager(&self, name: &str, key: usize) -> FakeAgent {
        let token = self.join_token().await;
        let a = FakeAgent::enroll(
            self,
            name,
            &[AgentRole::KeyManager, AgentRole::Target],
            &token,
            key,
        )
        .await
        .unwrap();
        let _: serde_json::Value = self
            .owner
            .put(
                &format!("/v1/servers/{}/key-manager", a.id),
                &serde_json::json!({"enabled": true}),
            )
            .await
            .unwrap();
        a
    }

    pub async fn user(&self, name: &str, roles: &[&str]) -> Client {
        let _: serde_json::Value = self
            .owner
            .post(
                "/v1/users",
                &serde_json::json!({"name": name, "roles": roles}),
            )
            .await
            .unwrap();
        let t: serde_json::Value = self
            .owner
            .post("/v1/tokens", &serde_json::json!({"user": name}))
            .await
            .unwrap();
        self.client(Some(t["token"].as_str().unwrap()))
    }

    pub async fn jobs(&self) -> Vec<serde_json::Value> {
        self.owner.get("/v1/jobs").await.unwrap()
    }

    pub async fn wait_for<F, Fut>(&self, what: &str, mut f: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..200 {
            if f().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }

    pub fn artifact_files(&self) -> Vec<PathBuf> {
        walk(&self.state_dir().join("artifacts"))
    }
}

pub fn walk(d: &std::path::Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A JWE with a real Custody protected header (what `jwe::peek` reads)
/// and dummy ciphertext: the coordinator checks headers, never contents.
pub fn env_jwe(alg: &str, kid: &str, binding: Binding) -> String {
    let b = |x: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(x);
    let h = ProtectedHeader {
        alg: alg.into(),
        enc: "A256GCM".into(),
        kid: kid.into(),
        crit: vec!["custody".into()],
        binding,
    };
    let ek = if alg == "dir" {
        String::new()
    } else {
        b(&[7u8; 256])
    };
    format!(
        "{}.{}.{}.{}.{}",
        b(&h.encode().unwrap()),
        ek,
        b(&[1u8; 12]),
        b(b"ciphertext"),
        b(&[2u8; 16])
    )
}

pub fn bind(purpose: Purpose, account: &str) -> Binding {
    Binding {
        purpose,
        account: account.into(),
        app: None,
        release: None,
        deployment: None,
        name: None,
        environment: None,
    }
}

/// wrap(P_kid, x) as an agent or the CLI would address it.
pub fn wrap_jwe(kid: &str, b: Binding) -> String {
    env_jwe("RSA-OAEP-256", kid, b)
}

/// seal(key kid, x).
pub fn seal_jwe(kid: &str, b: Binding) -> String {
    env_jwe("dir", kid, b)
}

/// A publisher-signed release descriptor (fixed test publisher key).
pub fn signed_descriptor(
    account: &str,
    app: &str,
    release: &str,
    sha256_hex: &str,
) -> serde_json::Value {
    use custody_envelope::descriptor::ReleaseDescriptor;
    use custody_envelope::package::Header;
    let key = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let sha: [u8; 32] = hex::decode(sha256_hex).unwrap().try_into().unwrap();
    let d = ReleaseDescriptor::new(
        Header::new(account, app, release).unwrap(),
        &sha,
        &[0u8; 32],
    )
    .unwrap();
    serde_json::from_slice(&d.sign(&key).unwrap().to_json().unwrap()).unwrap()
}

pub struct FakeAgent {
    pub id: String,
    pub credential: String,
    pub client: Client,
}

impl FakeAgent {
    pub async fn enroll(
        h: &Harness,
        name: &str,
        roles: &[AgentRole],
        join: &str,
        key: usize,
    ) -> Result<Self, ClientError> {
        let anon = h.client(None);
        let r: EnrollResponse = anon
            .post(
                "/v1/agent/enroll",
                &EnrollRequest {
                    protocol: custody_proto::PROTOCOL_VERSION,
                    join_token: join.into(),
                    name: name.into(),
                    public_key_pem: key_pem(key),
                    oaep_hashes: vec![custody_proto::OaepHash::Sha256],
                    roles: roles.to_vec(),
                    agent_version: "test".into(),
                },
            )
            .await?;
        Ok(FakeAgent {
            id: r.server_id,
            client: h.client(Some(&r.credential)),
            credential: r.credential,
        })
    }

    /// Points the agent at a restarted coordinator.
    pub fn reconnect(&mut self, h: &Harness) {
        self.client = h.client(Some(&self.credential));
    }

    pub async fn poll(&self, wait: u64) -> Option<Job> {
        self.client
            .poll_job(Duration::from_secs(wait))
            .await
            .unwrap()
    }

    pub async fn answer(&self, job: &Job, output: JobOutput) -> Result<ResultAck, ClientError> {
        self.client.job_succeeded(job, output).await
    }

    pub async fn fail(
        &self,
        job: &Job,
        code: &str,
        retryable: bool,
    ) -> Result<ResultAck, ClientError> {
        let failure = JobFailure {
            code: code.into(),
            message: format!("{code} in test"),
            retryable,
        };
        self.client.job_failed(job, failure).await
    }

    /// A well-formed output for any job, as a real agent would shape it.
    pub fn output_for(&self, job: &Job) -> JobOutput {
        match &job.payload {
            JobPayload::CreateMasterKey {
                account,
                master_key_id,
                key_managers,
            } => JobOutput::CreateMasterKey {
                master_key_id: master_key_id.clone(),
                wrapped: key_managers
                    .iter()
                    .map(|k| WrappedKey {
                        server_id: k.server_id.clone(),
                        jwe: wrap_jwe(&k.fingerprint, bind(Purpose::MasterKey, account)),
                    })
                    .collect(),
            },
            JobPayload::ShareMasterKey {
                account, newcomer, ..
            } => JobOutput::ShareMasterKey {
                wrapped: WrappedKey {
                    server_id: newcomer.server_id.clone(),
                    jwe: wrap_jwe(&newcomer.fingerprint, bind(Purpose::MasterKey, account)),
                },
            },
            JobPayload::RewrapReleaseKey {
                account,
                app,
                release_id,
                master_key,
                ..
            } => JobOutput::RewrapReleaseKey {
                sealed_release_key: seal_jwe(
                    &master_key.master_key_id,
                    Binding {
                        app: Some(app.clone()),
                        release: Some(release_id.clone()),
                        ..bind(Purpose::ReleaseKey, account)
                    },
                ),
            },
            JobPayload::SealSecretVariable {
                account,
                app,
                environment,
                name,
                master_key,
                ..
            } => JobOutput::SealSecretVariable {
                sealed_value: seal_jwe(
                    &master_key.master_key_id,
                    Binding {
                        app: Some(app.clone()),
                        environment: Some(environment.clone()),
                        name: Some(name.clone()),
                        ..bind(Purpose::SecretVar, account)
                    },
                ),
            },
            JobPayload::PrepareDeployment {
                account,
                app,
                release_id,
                deployment_id,
                master_key,
                ..
            } => JobOutput::PrepareDeployment {
                sealed_keylist: seal_jwe(
                    "dk",
                    Binding {
                        app: Some(app.clone()),
                        release: Some(release_id.clone()),
                        deployment: Some(deployment_id.clone()),
                        ..bind(Purpose::KeyList, account)
                    },
                ),
                sealed_deploy_key: seal_jwe(
                    &master_key.master_key_id,
                    Binding {
                        deployment: Some(deployment_id.clone()),
                        ..bind(Purpose::DeployKey, account)
                    },
                ),
            },
            JobPayload::WrapDeployKey {
                account,
                deployment_id,
                target,
                ..
            } => JobOutput::WrapDeployKey {
                wrapped_deploy_key: wrap_jwe(
                    &target.fingerprint,
                    Binding {
                        deployment: Some(deployment_id.clone()),
                        ..bind(Purpose::DeployKey, account)
                    },
                ),
            },
            JobPayload::Deploy { .. } => JobOutput::Deploy {
                already_installed: false,
            },
        }
    }

    /// Polls once and answers whatever arrives. Returns the job it handled.
    pub async fn serve_one(&self, wait: u64) -> Option<Job> {
        let job = self.poll(wait).await?;
        let out = self.output_for(&job);
        self.answer(&job, out).await.unwrap();
        Some(job)
    }

    pub async fn heartbeat(&self) {
        self.client.heartbeat("test").await.unwrap();
    }
}

/// Keeps answering every job of these agents until dropped.
pub struct Responder(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Responder {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

pub fn respond(agents: Vec<FakeAgent>) -> Responder {
    Responder(
        agents
            .into_iter()
            .map(|a| {
                tokio::spawn(async move {
                    loop {
                        let _ = a.serve_one(1).await;
                    }
                })
            })
            .collect(),
    )
}

/// Sets up two responding key managers and a master key. Returns their ids.
pub async fn key_managers_with_master_key(h: &Harness) -> (Vec<String>, Responder) {
    let a = h.key_manager("km-a", 0).await;
    let b = h.key_manager("km-b", 1).await;
    let ids = vec![a.id.clone(), b.id.clone()];
    let r = respond(vec![a, b]);
    h.wait_for("master key held by both", || async {
        let s: custody_proto::servers::MasterKeyStatus =
            h.owner.get("/v1/master-key").await.unwrap();
        s.state == "active" && s.holders.len() == 2
    })
    .await;
    (ids, r)
}

/// `wrap(P_i, RK)` for every key manager a release was created with.
pub fn release_wraps(rc: &custody_proto::apps::ReleaseCreated) -> Vec<WrappedKey> {
    rc.key_managers
        .iter()
        .map(|k| WrappedKey {
            server_id: k.server_id.clone(),
            jwe: wrap_jwe(
                &k.fingerprint,
                Binding {
                    app: Some(rc.app.clone()),
                    release: Some(rc.release_id.clone()),
                    ..bind(Purpose::ReleaseKey, &rc.account)
                },
            ),
        })
        .collect()
}

/// Pushes a release of `app` with `data` as the package; returns its id after it is deployable.
pub async fn push(h: &Harness, client: &Client, app: &str, data: &[u8]) -> String {
    use sha2::Digest;
    let rc: custody_proto::apps::ReleaseCreated = client
        .post(&format!("/v1/apps/{app}/releases"), &serde_json::json!({}))
        .await
        .unwrap();
    let sha = hex::encode(sha2::Sha256::digest(data));
    let f = h.dir.path().join(format!("{}.pkg", rc.release_id));
    std::fs::write(&f, data).unwrap();
    let _: custody_proto::apps::PackageUploaded = client
        .upload_file(&format!("/v1/releases/{}/package", rc.release_id), &f, &sha)
        .await
        .unwrap();
    let wraps = release_wraps(&rc);
    let _: custody_proto::apps::Release = client
        .post(
            &format!("/v1/releases/{}/finalize", rc.release_id),
            &serde_json::json!({
                "descriptor": signed_descriptor(&rc.account, app, &rc.release_id, &sha),
                "wrapped_release_keys": wraps,
            }),
        )
        .await
        .unwrap();
    let id = rc.release_id.clone();
    h.wait_for("release deployable", || async {
        let r: custody_proto::apps::Release =
            client.get(&format!("/v1/releases/{id}")).await.unwrap();
        r.state == custody_proto::apps::ReleaseState::Deployable
    })
    .await;
    rc.release_id
}
