//! Shared set-up for the approval tests (coordinator and CLI): an app with
//! a deployable release, environments with target agents, approver users
//! with Ed25519 keys, signed statements made the way the CLI makes them, and
//! the status, code and state a refused request carries.
//! Needs `mod common;` at the test crate's root.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use custody_client::Client;
use custody_envelope::approval::{ApprovalStatement, Decision, public_key_hex};
use custody_proto::ErrorCode;
use custody_proto::admin::User;
use custody_proto::apps::{Deployment, DeploymentState, Release};
use custody_proto::jobs::JobPayload;
use custody_proto::servers::AgentRole;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

/// A user with a token and (optionally) an approval key.
pub struct Person {
    pub id: String,
    pub name: String,
    pub client: Client,
    pub token: String,
    pub key: SigningKey,
}

/// Creates a user (roles, optional email) and a token for them; registers
/// an approval key (seed byte `seed`) when `with_key`.
pub async fn person(
    h: &Harness,
    name: &str,
    roles: &[&str],
    email: Option<&str>,
    seed: u8,
    with_key: bool,
) -> Person {
    let mut body = json!({"name": name, "roles": roles});
    if let Some(e) = email {
        body["email"] = json!(e);
    }
    let u: User = h.owner.post("/v1/users", &body).await.unwrap();
    let t: Value = h
        .owner
        .post("/v1/tokens", &json!({"user": name}))
        .await
        .unwrap();
    let token = t["token"].as_str().unwrap().to_string();
    let key = SigningKey::from_bytes(&[seed; 32]);
    if with_key {
        let u2: User = h
            .owner
            .put(
                &format!("/v1/users/{name}/approval-key"),
                &json!({"public_key": public_key_hex(&key.verifying_key())}),
            )
            .await
            .unwrap();
        assert!(u2.approval_key_id.is_some());
    }
    Person {
        id: u.id,
        name: name.into(),
        client: h.client(Some(&token)),
        token,
        key,
    }
}

pub fn copy(a: &FakeAgent) -> FakeAgent {
    FakeAgent {
        id: a.id.clone(),
        credential: a.credential.clone(),
        client: a.client.clone(),
    }
}

/// Answers every deploy job of `a` with a non-retryable failure.
pub fn fail_deploys(a: FakeAgent) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Some(j) = a.poll(1).await {
                let _ = a.fail(&j, "install_failed", false).await;
            }
        }
    })
}

/// A secure app `web` with a deployable release, key managers answering
/// every job, and environments:
/// - `prod`: target `ok-1` that installs (answers deploy jobs);
/// - `prod-bad`: target `bad-1` whose installs fail;
/// - `prod-idle`: targets `idle-1`, `idle-2` that never poll;
/// - `dev`: no approval policy, target `idle-1`.
///
/// The approval policy (on the `prod*` environments) is set by the caller.
pub struct World {
    pub release: String,
    pub account: String,
    pub km_ids: Vec<String>,
    pub kms: Vec<FakeAgent>,
    pub idle: Vec<FakeAgent>,
    pub spare: FakeAgent,
    pub deployer: Person,
    responders: Vec<Responder>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for World {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl World {
    /// Stops the key managers' automatic answers (they stay enrolled; the
    /// test polls them itself through `kms`).
    pub fn silence_key_managers(&mut self) {
        self.responders.clear();
    }
}

pub async fn world(h: &Harness) -> World {
    let a = h.key_manager("km-a", 0).await;
    let b = h.key_manager("km-b", 1).await;
    let kms = vec![copy(&a), copy(&b)];
    let km_ids = vec![a.id.clone(), b.id.clone()];
    let r = respond(vec![a, b]);
    h.wait_for("master key held by both", || async {
        let s: custody_proto::servers::MasterKeyStatus =
            h.owner.get("/v1/master-key").await.unwrap();
        s.state == "active" && s.holders.len() == 2
    })
    .await;
    let ok = h.agent("ok-1", &[AgentRole::Target]).await;
    let bad = h.agent("bad-1", &[AgentRole::Target]).await;
    let idle1 = h.agent("idle-1", &[AgentRole::Target]).await;
    let idle2 = h.agent("idle-2", &[AgentRole::Target]).await;
    let spare = h.agent("spare-1", &[AgentRole::Target]).await;
    let _: Value = h
        .owner
        .post("/v1/apps", &json!({"name": "web", "secure": true}))
        .await
        .unwrap();
    for (env, servers) in [
        ("prod", vec![&ok.id]),
        ("prod-bad", vec![&bad.id]),
        ("prod-idle", vec![&idle1.id, &idle2.id]),
        ("dev", vec![&idle1.id]),
    ] {
        let _: Value = h
            .owner
            .post("/v1/apps/web/environments", &json!({"name": env}))
            .await
            .unwrap();
        for s in servers {
            let _: Value = h
                .owner
                .post(
                    &format!("/v1/apps/web/environments/{env}/servers"),
                    &json!({"server": s}),
                )
                .await
                .unwrap();
        }
    }
    let deployer = person(h, "dave", &["deployer"], None, 0xd0, false).await;
    let release = push(h, &deployer.client, "web", b"a small package body").await;
    let info: custody_proto::Info = h.owner.get("/v1/info").await.unwrap();
    let tasks = vec![fail_deploys(bad)];
    World {
        release,
        account: info.account,
        km_ids,
        kms,
        idle: vec![idle1, idle2],
        spare,
        deployer,
        responders: vec![r, respond(vec![ok])],
        tasks,
    }
}

/// A group of `members` (names) and the policy on `envs`.
pub async fn policy(
    h: &Harness,
    group: &str,
    members: &[&Person],
    envs: &[&str],
    quorum: u32,
    allow_self: bool,
    window_seconds: u64,
) {
    let _: Value = h
        .owner
        .post("/v1/groups", &json!({"name": group}))
        .await
        .unwrap();
    for m in members {
        let _: Value = h
            .owner
            .post(
                &format!("/v1/groups/{group}/members"),
                &json!({"user": m.name}),
            )
            .await
            .unwrap();
    }
    for env in envs {
        let e: custody_proto::apps::Environment = h
            .owner
            .put(
                &format!("/v1/apps/web/environments/{env}/approval"),
                &json!({"group": group, "quorum": quorum, "allow_self_approval": allow_self,
                        "window_seconds": window_seconds}),
            )
            .await
            .unwrap();
        assert_eq!(e.approval.unwrap().quorum, quorum);
    }
}

pub async fn deploy(w: &World, env: &str) -> Deployment {
    w.deployer
        .client
        .post(
            "/v1/deployments",
            &json!({"app": "web", "release": w.release, "environment": env}),
        )
        .await
        .unwrap()
}

pub async fn get(h: &Harness, id: &str) -> Deployment {
    h.owner.get(&format!("/v1/deployments/{id}")).await.unwrap()
}

pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The statement for deployment `id` as the coordinator describes it now,
/// signed by `p` with decision and expiry.
pub async fn statement(
    h: &Harness,
    p: &Person,
    id: &str,
    decision: Decision,
    expires_at: u64,
) -> Value {
    let d = get(h, id).await;
    let rel: Release = h
        .owner
        .get(&format!("/v1/releases/{}", d.release_id))
        .await
        .unwrap();
    let info: custody_proto::Info = h.owner.get("/v1/info").await.unwrap();
    let mut targets: Vec<String> = d.targets.iter().map(|t| t.server_id.clone()).collect();
    ApprovalStatement::normalize_targets(&mut targets);
    sign(
        &p.key,
        ApprovalStatement {
            account: info.account,
            deployment: d.id,
            app: d.app,
            release: d.release_id,
            package_sha256: rel.package_sha256.unwrap(),
            environment: d.environment,
            targets,
            expires_at,
            decision,
            approver: p.id.clone(),
        },
    )
}

pub fn sign(key: &SigningKey, s: ApprovalStatement) -> Value {
    serde_json::from_slice(&s.sign(key).unwrap().to_json().unwrap()).unwrap()
}

pub async fn approve_as(
    h: &Harness,
    p: &Person,
    id: &str,
    deploy: bool,
) -> Result<Deployment, custody_client::ClientError> {
    let st = statement(h, p, id, Decision::Approve, now_s() + 3600).await;
    p.client
        .post(
            &format!("/v1/deployments/{id}/approve"),
            &json!({"statement": st, "deploy": deploy}),
        )
        .await
}

pub async fn decline_as(
    p: &Person,
    id: &str,
    message: &str,
) -> Result<Deployment, custody_client::ClientError> {
    p.client
        .post(
            &format!("/v1/deployments/{id}/decline"),
            &json!({"message": message}),
        )
        .await
}

pub async fn wait_state(h: &Harness, id: &str, want: DeploymentState) -> Deployment {
    let mut last = None;
    for _ in 0..300 {
        let d = get(h, id).await;
        if d.state == want {
            return d;
        }
        last = Some(d.state);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("deployment {id} never reached {want:?} (last {last:?})");
}

/// Jobs whose subject is `id`.
pub async fn jobs_of(h: &Harness, id: &str) -> Vec<Value> {
    h.jobs()
        .await
        .into_iter()
        .filter(|j| j["subject"] == id)
        .collect()
}

/// Audit entries (the export's entry lines).
pub async fn audit(h: &Harness) -> Vec<Value> {
    let text = h.owner.get_text("/v1/audit").await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("checkpoint").is_none())
        .collect()
}

/// Whether a job payload concerns deployment `id`.
pub fn payload_is_for(p: &JobPayload, id: &str) -> bool {
    match p {
        JobPayload::PrepareDeployment { deployment_id, .. }
        | JobPayload::WrapDeployKey { deployment_id, .. }
        | JobPayload::Deploy { deployment_id, .. } => deployment_id == id,
        _ => false,
    }
}

/// The HTTP status and error code of a refused request.
pub fn code(e: &custody_client::ClientError) -> (u16, ErrorCode) {
    (e.status().unwrap(), e.code().unwrap())
}

/// The deployment state a refusal reports in its details (`""` if none).
pub fn details_state(e: &custody_client::ClientError) -> String {
    match e {
        custody_client::ClientError::Api { error, .. } => error
            .details
            .as_ref()
            .and_then(|d| d["state"].as_str())
            .unwrap_or_default()
            .to_string(),
        other => panic!("not an API error: {other}"),
    }
}
