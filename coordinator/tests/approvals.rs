#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Deployment approvals over real HTTP against a real coordinator: who may
//! decide and what a decision does. The full state machine (table-driven),
//! quorum and who may act, self-approval, approve-and-deploy, and that
//! nothing for a pending or declined deployment reaches a key manager.
//! What makes an approval count or stop counting (signed statements,
//! expiry, changed environments, windows) is in `approval_validity.rs`.

mod approval_support;
mod common;
use approval_support::*;
use common::*;
use custody_proto::ErrorCode;
use custody_proto::approvals::{DeploymentApprovals, PendingApproval};
use custody_proto::apps::{Deployment, DeploymentState as S};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Approve,
    ApproveAndDeploy,
    Decline,
    Start,
    Cancel,
}

const ACTIONS: [Action; 5] = [
    Action::Approve,
    Action::ApproveAndDeploy,
    Action::Decline,
    Action::Start,
    Action::Cancel,
];

async fn act(
    h: &Harness,
    approver: &Person,
    id: &str,
    a: Action,
) -> Result<Deployment, custody_client::ClientError> {
    match a {
        Action::Approve => approve_as(h, approver, id, false).await,
        Action::ApproveAndDeploy => approve_as(h, approver, id, true).await,
        Action::Decline => decline_as(approver, id, "not this week").await,
        Action::Start => {
            h.owner
                .post(&format!("/v1/deployments/{id}/start"), &json!({}))
                .await
        }
        Action::Cancel => {
            h.owner
                .post(
                    &format!("/v1/deployments/{id}/cancel"),
                    &json!({"message": "changed my mind"}),
                )
                .await
        }
    }
}

/// A fresh deployment brought into `state` (quorum 1, approver `alice`).
async fn in_state(h: &Harness, w: &World, alice: &Person, state: S) -> String {
    let env = match state {
        S::Succeeded => "prod",
        S::Failed => "prod-bad",
        _ => "prod-idle",
    };
    let d = deploy(w, env).await;
    assert_eq!(d.state, S::PendingApproval);
    let id = d.id;
    match state {
        S::PendingApproval => {}
        S::Approved => {
            assert_eq!(
                approve_as(h, alice, &id, false).await.unwrap().state,
                S::Approved
            );
        }
        S::InProgress | S::Succeeded | S::Failed => {
            assert_eq!(
                approve_as(h, alice, &id, true).await.unwrap().state,
                S::InProgress
            );
            wait_state(h, &id, state).await;
        }
        S::Declined => {
            decline_as(alice, &id, "no").await.unwrap();
        }
        S::Canceled => {
            let _: Deployment = w
                .deployer
                .client
                .post(&format!("/v1/deployments/{id}/cancel"), &json!({}))
                .await
                .unwrap();
        }
    }
    assert_eq!(get(h, &id).await.state, state);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transition_is_allowed_or_refused_with_409_and_the_state() {
    let h = Harness::start().await;
    let w = world(&h).await;
    let alice = person(&h, "alice", &["approver"], None, 0xa1, true).await;
    policy(
        &h,
        "ops",
        &[&alice],
        &["prod", "prod-bad", "prod-idle"],
        1,
        false,
        3600,
    )
    .await;

    let table: &[(S, &[(Action, S)])] = &[
        (
            S::PendingApproval,
            &[
                (Action::Approve, S::Approved),
                (Action::ApproveAndDeploy, S::InProgress),
                (Action::Decline, S::Declined),
                (Action::Cancel, S::Canceled),
            ],
        ),
        (
            S::Approved,
            &[
                (Action::Start, S::InProgress),
                (Action::Cancel, S::Canceled),
            ],
        ),
        (S::InProgress, &[]),
        (S::Succeeded, &[]),
        (S::Failed, &[]),
        (S::Declined, &[]),
        (S::Canceled, &[]),
    ];
    let mut checked = 0;
    for (from, allowed) in table {
        for a in ACTIONS {
            let id = in_state(&h, &w, &alice, *from).await;
            let want = allowed.iter().find(|(x, _)| *x == a).map(|x| x.1);
            let got = act(&h, &alice, &id, a).await;
            match (got, want) {
                (Ok(d), Some(to)) => {
                    assert_eq!(d.state, to, "{from:?} {a:?}");
                    assert_eq!(get(&h, &id).await.state, to);
                }
                (Err(e), None) => {
                    assert_eq!(
                        code(&e),
                        (409, ErrorCode::InvalidState),
                        "{from:?} {a:?}: {e}"
                    );
                    let now = get(&h, &id).await.state;
                    assert_eq!(now, *from, "{from:?} {a:?} changed the state");
                    assert_eq!(details_state(&e), from.as_str());
                }
                (got, want) => panic!("{from:?} {a:?}: got {got:?}, want {want:?}"),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 35);
    // Every approval, decline, start and cancel is audited with its actor.
    let log = audit(&h).await;
    for (action, actor) in [
        ("deployment.approve", format!("user:{}", alice.id)),
        ("deployment.decline", format!("user:{}", alice.id)),
        ("deployment.cancel", format!("user:{}", w.deployer.id)),
        ("deployment.start", "user:".to_string()),
    ] {
        assert!(
            log.iter()
                .any(|e| e["action"] == action && e["actor"].as_str().unwrap().starts_with(&actor)),
            "{action} by {actor} missing"
        );
    }
    assert!(
        log.iter()
            .any(|e| e["action"] == "deployment.decline"
                && e["detail"]["message"] == "not this week")
    );
    assert!(
        log.iter()
            .any(|e| e["action"] == "deployment.cancel"
                && e["detail"]["message"] == "changed my mind")
    );
    // Without a policy, a deployment goes straight to in_progress and takes no approval.
    let d = deploy(&w, "dev").await;
    assert_eq!(d.state, S::InProgress);
    assert!(d.approval.is_none());
    let e = approve_as(&h, &alice, &d.id, false).await.unwrap_err();
    assert_eq!(code(&e), (409, ErrorCode::InvalidState));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_two_of_three_and_who_may_act() {
    let h = Harness::start().await;
    let w = world(&h).await;
    let alice = person(&h, "alice", &["approver"], None, 0xa1, true).await;
    let bob = person(&h, "bob", &["approver"], None, 0xb0, true).await;
    let carol = person(&h, "carol", &["approver"], None, 0xc0, true).await;
    let mallory = person(&h, "mallory", &["approver"], None, 0x66, true).await;
    policy(
        &h,
        "ops",
        &[&alice, &bob, &carol],
        &["prod-idle"],
        2,
        false,
        3600,
    )
    .await;

    let d = deploy(&w, "prod-idle").await;
    let s = d.approval.clone().unwrap();
    assert_eq!((s.quorum, s.counted), (2, 0));
    // Listed as waiting for each approver, not for outsiders.
    let mine: Vec<PendingApproval> = alice.client.get("/v1/approvals").await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].deployment.id, d.id);
    assert!(!mine[0].approved_by_me);
    let theirs: Vec<PendingApproval> = mallory.client.get("/v1/approvals").await.unwrap();
    assert!(theirs.is_empty());

    let a = approve_as(&h, &alice, &d.id, false).await.unwrap();
    assert_eq!(a.state, S::PendingApproval);
    assert_eq!(a.approval.as_ref().unwrap().counted, 1);
    // The same approver twice still counts once.
    let a = approve_as(&h, &alice, &d.id, false).await.unwrap();
    assert_eq!(
        (a.state, a.approval.unwrap().counted),
        (S::PendingApproval, 1)
    );
    let mine: Vec<PendingApproval> = alice.client.get("/v1/approvals").await.unwrap();
    assert!(mine[0].approved_by_me);
    // An approver outside the group is refused; the deployer may not start it.
    let e = approve_as(&h, &mallory, &d.id, false).await.unwrap_err();
    assert_eq!(code(&e), (403, ErrorCode::Forbidden));
    let e = w
        .deployer
        .client
        .post::<_, Deployment>(&format!("/v1/deployments/{}/start", d.id), &json!({}))
        .await
        .unwrap_err();
    assert_eq!(code(&e), (403, ErrorCode::Forbidden));

    let b = approve_as(&h, &bob, &d.id, false).await.unwrap();
    assert_eq!(b.state, S::Approved);
    assert!(
        jobs_of(&h, &d.id).await.is_empty(),
        "approved is not started"
    );
    let v: DeploymentApprovals = h
        .owner
        .get(&format!("/v1/deployments/{}/approvals", d.id))
        .await
        .unwrap();
    assert_eq!(v.counted, 2);
    assert_eq!(v.approvals.len(), 3);
    assert!(v.approvals.iter().all(|r| r.signature_valid));
    assert_eq!(v.approvals.iter().filter(|r| r.counts).count(), 2);
    assert!(
        v.approvals[0]
            .not_counted_because
            .as_deref()
            .unwrap()
            .contains("superseded")
    );
    assert_eq!(v.policy.unwrap().group, "ops");
    // An approver of the group (not only the owner) may start it.
    let st: Deployment = carol
        .client
        .post(&format!("/v1/deployments/{}/start", d.id), &json!({}))
        .await
        .unwrap();
    assert_eq!(st.state, S::InProgress);
    assert_eq!(jobs_of(&h, &d.id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_approval_is_refused_unless_allowed() {
    let h = Harness::start().await;
    let w = world(&h).await;
    let dave2 = person(&h, "dave2", &["deployer", "approver"], None, 0xd2, true).await;
    let alice = person(&h, "alice", &["approver"], None, 0xa1, true).await;
    policy(&h, "ops", &[&dave2, &alice], &["prod-idle"], 1, false, 3600).await;
    let d: Deployment = dave2
        .client
        .post(
            "/v1/deployments",
            &json!({"app": "web", "release": w.release, "environment": "prod-idle"}),
        )
        .await
        .unwrap();
    let e = approve_as(&h, &dave2, &d.id, false).await.unwrap_err();
    assert_eq!(code(&e), (403, ErrorCode::Forbidden));
    assert!(e.to_string().contains("self-approval"), "{e}");
    let e = decline_as(&dave2, &d.id, "mine").await.unwrap_err();
    assert_eq!(code(&e), (403, ErrorCode::Forbidden));
    // The deployer is not offered their own deployment.
    let mine: Vec<PendingApproval> = dave2.client.get("/v1/approvals").await.unwrap();
    assert!(mine.is_empty());
    assert_eq!(get(&h, &d.id).await.state, S::PendingApproval);
    // A deployer may cancel their own pending deployment.
    let c: Deployment = dave2
        .client
        .post(&format!("/v1/deployments/{}/cancel", d.id), &json!({}))
        .await
        .unwrap();
    assert_eq!(c.state, S::Canceled);
    assert!(c.reason.unwrap().contains("canceled by dave2"));

    // With self-approval allowed for the environment, the deployer counts.
    let _: serde_json::Value = h
        .owner
        .put(
            "/v1/apps/web/environments/prod-idle/approval",
            &json!({"group": "ops", "quorum": 1, "allow_self_approval": true}),
        )
        .await
        .unwrap();
    let d: Deployment = dave2
        .client
        .post(
            "/v1/deployments",
            &json!({"app": "web", "release": w.release, "environment": "prod-idle"}),
        )
        .await
        .unwrap();
    assert_eq!(
        approve_as(&h, &dave2, &d.id, false).await.unwrap().state,
        S::Approved
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_and_deploy_completing_the_quorum_queues_prepare_at_once() {
    let h = Harness::start().await;
    let w = world(&h).await;
    let alice = person(&h, "alice", &["approver"], None, 0xa1, true).await;
    let bob = person(&h, "bob", &["approver"], None, 0xb0, true).await;
    policy(&h, "ops", &[&alice, &bob], &["prod"], 2, false, 3600).await;
    let d = deploy(&w, "prod").await;
    let a = approve_as(&h, &alice, &d.id, true).await.unwrap();
    assert_eq!(a.state, S::PendingApproval);
    assert!(a.approval.unwrap().deploy_requested);
    assert!(jobs_of(&h, &d.id).await.is_empty());
    // Bob's plain approval completes the quorum: alice asked to deploy.
    let b = approve_as(&h, &bob, &d.id, false).await.unwrap();
    assert_eq!(b.state, S::InProgress);
    let jobs = jobs_of(&h, &d.id).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["type"], "prepare_deployment");
    // And it runs to the end (fake key managers and target over real HTTP).
    wait_state(&h, &d.id, S::Succeeded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_for_a_pending_or_declined_deployment_reaches_a_key_manager() {
    let h = Harness::start().await;
    let mut w = world(&h).await;
    let alice = person(&h, "alice", &["approver"], None, 0xa1, true).await;
    policy(&h, "ops", &[&alice], &["prod-idle"], 1, false, 3600).await;
    w.silence_key_managers();
    let pending = deploy(&w, "prod-idle").await;
    let declined = deploy(&w, "prod-idle").await;
    decline_as(&alice, &declined.id, "wrong release")
        .await
        .unwrap();
    assert_eq!(
        get(&h, &declined.id).await.reason.as_deref(),
        Some("wrong release")
    );
    // The key managers poll and get nothing.
    let (x, y) = tokio::join!(w.kms[0].poll(1), w.kms[1].poll(1));
    assert!(x.is_none() && y.is_none(), "{x:?} {y:?}");
    for id in [&pending.id, &declined.id] {
        assert!(jobs_of(&h, id).await.is_empty());
        let log = audit(&h).await;
        assert!(
            !log.iter().any(|e| e["action"] == "job.create"
                && e["detail"]["spec"]["deployment_id"] == id.as_str()),
            "a job was created for {id}"
        );
    }
    // Positive control: once approved-and-deployed, a key manager gets its prepare job.
    approve_as(&h, &alice, &pending.id, true).await.unwrap();
    let (x, y) = tokio::join!(w.kms[0].poll(2), w.kms[1].poll(2));
    let got: Vec<_> = [x, y].into_iter().flatten().collect();
    assert_eq!(got.len(), 1);
    assert!(payload_is_for(&got[0].payload, &pending.id));
    let log = audit(&h).await;
    assert!(log.iter().any(|e| e["action"] == "job.create"
        && e["detail"]["spec"]["deployment_id"] == pending.id.as_str()));
    assert!(!log.iter().any(|e| e["action"] == "job.create"
        && e["detail"]["spec"]["deployment_id"] == declined.id.as_str()));
}
