#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The whole job chain of a deployment with fake agents over real HTTP,
//! the payloads' shape against docs/fixtures, artifact download with Range,
//! deploy logs, and master-key loss only on removal.

mod common;
use common::*;
use custody_proto::ErrorCode;
use custody_proto::apps::{Deployment, DeploymentState, Release, ReleaseState};
use custody_proto::jobs::{Job, JobKind, JobPayload};
use custody_proto::servers::{AgentRole, MasterKeyStatus};

/// Same object keys (recursively) as the fixture: the coordinator's real
/// payloads have the documented shape.
fn same_shape(a: &serde_json::Value, b: &serde_json::Value, path: &str) {
    if path.ends_with(".descriptor") {
        // The publisher's signed descriptor travels opaque; its format is custody-envelope's.
        assert!(a.is_object() && b.is_object(), "descriptor at {path}");
        return;
    }
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let kx: Vec<_> = x.keys().collect();
            let ky: Vec<_> = y.keys().collect();
            assert_eq!(kx, ky, "keys differ at {path}");
            for k in x.keys() {
                same_shape(&x[k], &y[k], &format!("{path}.{k}"));
            }
        }
        (serde_json::Value::Array(x), serde_json::Value::Array(y)) => {
            if let (Some(p), Some(q)) = (x.first(), y.first()) {
                same_shape(p, q, &format!("{path}[0]"));
            }
        }
        _ => assert_eq!(
            std::mem::discriminant(a),
            std::mem::discriminant(b),
            "type differs at {path}"
        ),
    }
}

fn check_against_fixture(job: &Job) {
    let fixture =
        custody_proto::fixtures::load_value(&format!("jobs/{}.json", job.payload.kind().as_str()))
            .unwrap();
    let real = serde_json::to_value(job).unwrap();
    same_shape(&real, &fixture, "job");
}

#[tokio::test]
async fn deployment_runs_prepare_wrap_deploy_and_succeeds() {
    let h = Harness::start().await;
    let a = h.key_manager("km-a", 0).await;
    let t1 = h.agent("web-1", &[AgentRole::Target]).await;
    let t2 = h.agent("web-2", &[AgentRole::Target]).await;
    let mut jobs_seen: Vec<Job> = vec![];

    // Master key: created by A, then shared with B.
    let j = a.poll(2).await.unwrap();
    a.answer(&j, a.output_for(&j)).await.unwrap();
    jobs_seen.push(j);
    let b = h.key_manager("km-b", 1).await;
    let j = a.poll(2).await.unwrap();
    a.answer(&j, a.output_for(&j)).await.unwrap();
    jobs_seen.push(j);
    let st: MasterKeyStatus = h.owner.get("/v1/master-key").await.unwrap();
    assert_eq!((st.state.as_str(), st.holders.len()), ("active", 2));

    let _: serde_json::Value = h
        .owner
        .post(
            "/v1/apps",
            &serde_json::json!({"name": "securekeys", "secure": true}),
        )
        .await
        .unwrap();
    let _: serde_json::Value = h
        .owner
        .post(
            "/v1/apps/securekeys/environments",
            &serde_json::json!({"name": "dev"}),
        )
        .await
        .unwrap();
    for t in [&t1, &t2] {
        let _: serde_json::Value = h
            .owner
            .post(
                "/v1/apps/securekeys/environments/dev/servers",
                &serde_json::json!({"server": t.id}),
            )
            .await
            .unwrap();
    }
    let _: serde_json::Value = h
        .owner
        .put(
            "/v1/apps/securekeys/environments/dev/variables/DESTINATION_FILE",
            &serde_json::json!({"value": "/opt/application/secret.cred"}),
        )
        .await
        .unwrap();
    let servers: Vec<custody_proto::servers::Server> = h.owner.get("/v1/servers").await.unwrap();
    let account: custody_proto::Info = h.owner.get("/v1/info").await.unwrap();
    let wraps_for = |env: &str| -> Vec<serde_json::Value> {
        servers
            .iter()
            .filter(|s| s.key_manager)
            .map(|s| {
                let b = custody_envelope::jwe::Binding {
                    app: Some("securekeys".into()),
                    environment: Some(env.into()),
                    name: Some("SECRET_FILE".into()),
                    ..bind(custody_envelope::jwe::Purpose::SecretVar, &account.account)
                };
                serde_json::json!({"server_id": s.id, "jwe": wrap_jwe(&s.key_fingerprint, b)})
            })
            .collect()
    };
    // A value wrapped for another environment of the same app is refused.
    let e = h
        .owner
        .put::<_, serde_json::Value>(
            "/v1/apps/securekeys/environments/dev/variables/SECRET_FILE",
            &serde_json::json!({"wrapped": wraps_for("prod")}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(400), Some(custody_proto::ErrorCode::InvalidInput)),
        "{e}"
    );
    let wrapped = wraps_for("dev");
    assert_eq!(wrapped.len(), 2);
    let env: custody_proto::apps::Environment = h
        .owner
        .put(
            "/v1/apps/securekeys/environments/dev/variables/SECRET_FILE",
            &serde_json::json!({"wrapped": wrapped}),
        )
        .await
        .unwrap();
    let v = env
        .variables
        .iter()
        .find(|v| v.name == "SECRET_FILE")
        .unwrap();
    assert!(v.secret && v.value.is_none() && v.state.as_deref() == Some("sealing"));

    let deployer = h.user("dep", &["deployer"]).await;
    // Push, answering the seal-variable and rewrap jobs.
    let pkg: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let responder = tokio::spawn({
        let a = FakeAgent {
            id: a.id.clone(),
            credential: a.credential.clone(),
            client: a.client.clone(),
        };
        let b = FakeAgent {
            id: b.id.clone(),
            credential: b.credential.clone(),
            client: b.client.clone(),
        };
        async move {
            let mut seen = vec![];
            for _ in 0..40 {
                let (x, y) = tokio::join!(a.poll(1), b.poll(1));
                for (who, j) in [(&a, x), (&b, y)] {
                    if let Some(j) = j {
                        who.answer(&j, who.output_for(&j)).await.unwrap();
                        seen.push(j);
                    }
                }
                if seen
                    .iter()
                    .filter(|j: &&Job| j.payload.kind() == JobKind::WrapDeployKey)
                    .count()
                    == 2
                {
                    break;
                }
            }
            seen
        }
    });
    let rel = push(&h, &deployer, "securekeys", &pkg).await;
    h.wait_for("secret sealed", || async {
        let e: custody_proto::apps::Environment = h
            .owner
            .get("/v1/apps/securekeys/environments/dev")
            .await
            .unwrap();
        e.variables
            .iter()
            .any(|v| v.name == "SECRET_FILE" && v.state.as_deref() == Some("sealed"))
    })
    .await;

    let d: Deployment = deployer
        .post(
            "/v1/deployments",
            &serde_json::json!({"app": "securekeys", "release": rel, "environment": "dev"}),
        )
        .await
        .unwrap();
    assert_eq!(d.state, DeploymentState::InProgress);
    jobs_seen.extend(responder.await.unwrap());

    // Each target gets its own deploy job, and only its own.
    for t in [&t1, &t2] {
        let job = t.poll(5).await.expect("deploy job");
        let JobPayload::Deploy {
            deployment_id,
            artifact,
            variables,
            wrapped_deploy_key,
            ..
        } = &job.payload
        else {
            panic!("{job:?}")
        };
        assert_eq!(deployment_id, &d.id);
        assert_eq!(job.idempotency_key, format!("{}:{}", d.id, t.id));
        assert!(wrapped_deploy_key.contains('.'));
        assert_eq!(
            variables.len(),
            1,
            "only plain variables travel outside the key list"
        );
        // Resumable download: first half, then the rest with Range.
        let dest = h.dir.path().join(format!("{}.dl", t.id));
        std::fs::write(&dest, &pkg[..50_000]).unwrap();
        let n = t.client.download_to(&artifact.url, &dest).await.unwrap();
        assert_eq!(n, pkg.len() as u64);
        assert_eq!(std::fs::read(&dest).unwrap(), pkg);
        assert_eq!(
            custody_client::sha256_file(&dest).await.unwrap(),
            artifact.sha256
        );
        // The checked download: resumes, then verifies size and digest.
        std::fs::write(&dest, &pkg[..1000]).unwrap();
        let sha = t.client.download_artifact(artifact, &dest).await.unwrap();
        assert_eq!(sha, artifact.sha256);
        // A corrupt partial file is caught by the digest check and removed.
        std::fs::write(&dest, b"garbage").unwrap();
        assert!(t.client.download_artifact(artifact, &dest).await.is_err());
        assert!(!dest.exists());
        let _: () = t.client.post_unit(&format!("/v1/agent/jobs/{}/log", job.id), &serde_json::json!({"protocol": 1,
            "lines": [{"stream": "status", "line": "installing"}, {"stream": "stdout", "line": "SECRET=***"}]})).await.unwrap();
        t.answer(&job, t.output_for(&job)).await.unwrap();
        jobs_seen.push(job);
    }
    let d: Deployment = deployer
        .get(&format!("/v1/deployments/{}", d.id))
        .await
        .unwrap();
    assert_eq!(d.state, DeploymentState::Succeeded, "{d:?}");
    assert!(d.targets.iter().all(|t| t.state == "succeeded"));
    let log: Vec<custody_proto::apps::DeploymentLogLine> = deployer
        .get(&format!("/v1/deployments/{}/log", d.id))
        .await
        .unwrap();
    assert_eq!(log.len(), 4);

    // Another agent cannot download the package.
    let stranger = h.agent("web-3", &[AgentRole::Target]).await;
    let sha = d.release_id.clone();
    let r: Release = h.owner.get(&format!("/v1/releases/{sha}")).await.unwrap();
    let e = stranger
        .client
        .get_text(&format!(
            "/v1/agent/artifacts/{}",
            r.package_sha256.unwrap()
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));

    // Every job type was seen and matches its fixture's shape.
    for kind in JobKind::ALL {
        let j = jobs_seen
            .iter()
            .find(|j| j.payload.kind() == kind)
            .unwrap_or_else(|| panic!("no {kind:?} job"));
        check_against_fixture(j);
    }
    // Nothing secret-looking in plaintext: the database holds only JWE strings.
    let audit = h.owner.get_text("/v1/audit").await.unwrap();
    assert!(audit.contains("deployment.state") && audit.contains("succeeded"));
}

#[tokio::test]
async fn master_key_is_lost_only_when_every_holder_is_removed() {
    let h = Harness::start_with(|c| c.agents.liveness_window_seconds = 1).await;
    let (ids, responder) = key_managers_with_master_key(&h).await;
    let _: serde_json::Value = h
        .owner
        .post(
            "/v1/apps",
            &serde_json::json!({"name": "app", "secure": true}),
        )
        .await
        .unwrap();
    let rel = push(&h, &h.owner, "app", b"old release").await;
    // Both holders go quiet (an outage): nothing is lost.
    drop(responder);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let st: MasterKeyStatus = h.owner.get("/v1/master-key").await.unwrap();
    assert_eq!((st.state.as_str(), st.holders.len()), ("active", 2));
    let servers: Vec<custody_proto::servers::Server> = h.owner.get("/v1/servers").await.unwrap();
    assert!(servers.iter().all(|s| !s.live && s.holds_master_key));
    // A push needs a live holder.
    let e = h
        .owner
        .post::<_, serde_json::Value>("/v1/apps/app/releases", &serde_json::json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NoMasterKey));

    // A key manager enabled now waits, visibly, to learn MK from a live holder.
    let c = h.key_manager("km-c", 2).await;
    assert!(c.poll(1).await.is_none());
    let st: MasterKeyStatus = h.owner.get("/v1/master-key").await.unwrap();
    assert_eq!(st.waiting, vec![c.id.clone()]);
    let jobs = h.jobs().await;
    assert!(
        jobs.iter()
            .any(|j| j["type"] == "share_master_key" && j["state"] == "waiting"),
        "{jobs:?}"
    );

    // The owner removes one holder: still fine. Then the other: lost.
    h.owner
        .delete(&format!("/v1/servers/{}", ids[0]))
        .await
        .unwrap();
    let r: Release = h.owner.get(&format!("/v1/releases/{rel}")).await.unwrap();
    assert_eq!(r.state, ReleaseState::Deployable);
    h.owner
        .delete(&format!("/v1/servers/{}", ids[1]))
        .await
        .unwrap();
    let st: MasterKeyStatus = h.owner.get("/v1/master-key").await.unwrap();
    // Lost; the remaining (enabled) key manager is asked for a new one.
    assert_eq!(st.lost.len(), 1);
    assert_eq!(st.state, "creating");
    assert_ne!(st.master_key_id.as_ref(), st.lost.first());
    let r: Release = h.owner.get(&format!("/v1/releases/{rel}")).await.unwrap();
    assert_eq!(r.state, ReleaseState::Undeployable);
    assert!(r.undeployable_reason.unwrap().contains("was lost"));

    // The waiting key manager makes a new master key; the old release stays
    // undeployable with that reason.
    let jobs = h.jobs().await;
    assert!(
        jobs.iter()
            .any(|j| j["type"] == "share_master_key" && j["state"] == "failed"),
        "{jobs:?}"
    );
    let job = c.poll(3).await.unwrap();
    assert!(matches!(job.payload, JobPayload::CreateMasterKey { .. }));
    c.answer(&job, c.output_for(&job)).await.unwrap();
    let t = h.agent("web-1", &[AgentRole::Target]).await;
    let _: serde_json::Value = h
        .owner
        .post(
            "/v1/apps/app/environments",
            &serde_json::json!({"name": "dev"}),
        )
        .await
        .unwrap();
    let _: serde_json::Value = h
        .owner
        .post(
            "/v1/apps/app/environments/dev/servers",
            &serde_json::json!({"server": t.id}),
        )
        .await
        .unwrap();
    let e = h
        .owner
        .post::<_, serde_json::Value>(
            "/v1/deployments",
            &serde_json::json!({"app": "app", "release": rel, "environment": "dev"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::MasterKeyLost));
    assert!(e.to_string().contains("was lost"), "{e}");
    // New releases work.
    let _r = respond(vec![c]);
    let rel2 = push(&h, &h.owner, "app", b"new release").await;
    let d: Deployment = h
        .owner
        .post(
            "/v1/deployments",
            &serde_json::json!({"app": "app", "release": rel2, "environment": "dev"}),
        )
        .await
        .unwrap();
    assert_eq!(d.state, DeploymentState::InProgress);
}

#[tokio::test]
async fn a_target_that_fails_fails_the_deployment_with_its_reason() {
    let h = Harness::start().await;
    let (_ids, _r) = key_managers_with_master_key(&h).await;
    let t = h.agent("web-1", &[AgentRole::Target]).await;
    let _: serde_json::Value = h
        .owner
        .post(
            "/v1/apps",
            &serde_json::json!({"name": "app", "secure": true}),
        )
        .await
        .unwrap();
    let _: serde_json::Value = h
        .owner
        .post(
            "/v1/apps/app/environments",
            &serde_json::json!({"name": "dev"}),
        )
        .await
        .unwrap();
    let _: serde_json::Value = h
        .owner
        .post(
            "/v1/apps/app/environments/dev/servers",
            &serde_json::json!({"server": t.id}),
        )
        .await
        .unwrap();
    let rel = push(&h, &h.owner, "app", b"pkg").await;
    let d: Deployment = h
        .owner
        .post(
            "/v1/deployments",
            &serde_json::json!({"app": "app", "release": rel, "environment": "dev"}),
        )
        .await
        .unwrap();
    let job = t.poll(5).await.unwrap();
    t.fail(&job, "hook_failed", false).await.unwrap();
    let d: Deployment = h
        .owner
        .get(&format!("/v1/deployments/{}", d.id))
        .await
        .unwrap();
    assert_eq!(d.state, DeploymentState::Failed);
    assert!(
        d.reason.as_deref().unwrap().contains("hook_failed"),
        "{d:?}"
    );
    assert_eq!(d.targets[0].state, "failed");
    // Re-delivery of the same deploy after it failed is a duplicate.
    assert!(t.answer(&job, t.output_for(&job)).await.unwrap().duplicate);
}
