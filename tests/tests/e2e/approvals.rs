//! Deployment approvals with real agents (issue 6). The environment needs
//! 2 of 3 approvers. A deployment left pending (one approval) and one
//! declined are created first; then a third gets one approval and an
//! "approve and deploy" that completes the quorum: it starts at once, the
//! real key managers prepare it and the real target installs it. Only then
//! — the agents demonstrably polling and working all along — the job list
//! and the audit log are checked: nothing for the pending or the declined
//! deployment ever reached a key manager. Users, keys and signed
//! statements come from `coordinator/tests/approval_support`, pointed at
//! the coordinator process. Soft keystores: the keys are not the point.

use crate::approval_support::{approve_as, decline_as, person, policy};
use crate::common::Harness;
use custody_e2e::{Cluster, ClusterOptions, release};
use custody_proto::apps::{Deployment, DeploymentState};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_and_deploy_completing_the_quorum_installs_and_nothing_else_reaches_a_key_manager()
{
    let cl = Cluster::start(&ClusterOptions::default()).await.unwrap();
    let c = &cl.c;
    let t = cl.target().unwrap();
    c.create_app("web", true).await.unwrap();
    c.environment("web", "prod", &[&t.server_id]).await.unwrap();
    let h = Harness::light(
        &c.url,
        &c.ca_fingerprint,
        &c.owner_token,
        tempfile::tempdir().unwrap(),
    );
    let dave = person(&h, "dave", &["deployer"], None, 0xd0, false).await;
    let alice = person(&h, "alice", &["approver"], None, 0xa1, true).await;
    let bob = person(&h, "bob", &["approver"], None, 0xb2, true).await;
    let carol = person(&h, "carol", &["approver"], None, 0xc3, true).await;
    policy(
        &h,
        "prod-approvers",
        &[&alice, &bob, &carol],
        &["prod"],
        2,
        false,
        86400,
    )
    .await;

    let (tar, manifest) = release::app_package(
        &t.install_root.join("web"),
        &[("index.html", b"approved\n")],
        None,
    )
    .unwrap();
    let r = release::push(c, "web", &tar, manifest.as_bytes(), &cl.publisher)
        .await
        .unwrap();
    let create = || async {
        let d: Deployment = dave
            .client
            .post(
                "/v1/deployments",
                &json!({"app": "web", "release": r.release_id, "environment": "prod"}),
            )
            .await
            .unwrap();
        assert_eq!(d.state, DeploymentState::PendingApproval, "{d:?}");
        d
    };

    // Pending: one approval of two.
    let pending = create().await;
    let d = approve_as(&h, &alice, &pending.id, true).await.unwrap();
    assert_eq!(d.state, DeploymentState::PendingApproval);
    // Declined.
    let declined = create().await;
    let d = decline_as(&bob, &declined.id, "not this week")
        .await
        .unwrap();
    assert_eq!(d.state, DeploymentState::Declined);

    // Approve, then approve-and-deploy completing the quorum: it starts.
    let go = create().await;
    let d = approve_as(&h, &carol, &go.id, false).await.unwrap();
    assert_eq!(d.state, DeploymentState::PendingApproval);
    let d = approve_as(&h, &bob, &go.id, true).await.unwrap();
    assert_eq!(d.state, DeploymentState::InProgress, "{d:?}");
    let done = c.finished(&go.id).await.unwrap();
    assert_eq!(
        done.state,
        DeploymentState::Succeeded,
        "{done:?}\n{}",
        t.log()
    );
    assert_eq!(
        std::fs::read(t.install_root.join("web/index.html")).unwrap(),
        b"approved\n"
    );
    let go_jobs = c.jobs_of(&go.id).await.unwrap();
    for kind in ["prepare_deployment", "wrap_deploy_key", "deploy"] {
        assert!(
            go_jobs
                .iter()
                .any(|j| j["type"] == kind && j["state"] == "done"),
            "{kind}: {go_jobs:#?}"
        );
    }

    // Nothing for the pending or declined deployment reached a key manager.
    let audit = c.audit().await.unwrap();
    for (what, id, state) in [
        ("pending", &pending.id, DeploymentState::PendingApproval),
        ("declined", &declined.id, DeploymentState::Declined),
    ] {
        assert_eq!(c.deployment(id).await.unwrap().state, state);
        assert!(c.jobs_of(id).await.unwrap().is_empty(), "{what} has jobs");
        let about: Vec<_> = audit
            .iter()
            .filter(|e| e.to_string().contains(id.as_str()))
            .collect();
        assert!(
            about.iter().any(|e| e["action"] == "deployment.create"),
            "{what}: {about:#?}"
        );
        assert!(
            about.iter().all(|e| {
                let a = e["action"].as_str().unwrap_or_default();
                !a.starts_with("job.") && !a.starts_with("master_key.")
            }),
            "{what}: {about:#?}"
        );
    }
    // The audit log has the approvals and the decline with their actors.
    let actors = |action: &str, id: &str| -> Vec<String> {
        audit
            .iter()
            .filter(|e| e["action"] == action && e.to_string().contains(id))
            .map(|e| e["actor"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let mut approvers = actors("deployment.approve", &go.id);
    approvers.sort();
    let mut want = vec![format!("user:{}", bob.id), format!("user:{}", carol.id)];
    want.sort();
    assert_eq!(approvers, want);
    assert_eq!(
        actors("deployment.decline", &declined.id),
        vec![format!("user:{}", bob.id)]
    );
    for a in cl.kms.iter().chain(cl.targets.iter()) {
        a.check_sandboxed().unwrap();
    }
}
