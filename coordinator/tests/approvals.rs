#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Deployment approvals over real HTTP against a real coordinator: the full
//! state machine (table-driven), quorum, self-approval, signed statements
//! and their refusals, expiry, environments that change, windows that end,
//! approve-and-deploy, and that nothing for a pending or declined
//! deployment reaches a key manager.

mod approval_support;
mod common;
use approval_support::*;
use common::*;
use custody_envelope::approval::{ApprovalStatement, Decision};
use custody_proto::ErrorCode;
use custody_proto::approvals::{DeploymentApprovals, PendingApproval};
use custody_proto::apps::{Deployment, DeploymentState as S};
use serde_json::json;

fn code(e: &custody_client::ClientError) -> (u16, ErrorCode) {
    (e.status().unwrap(), e.code().unwrap())
}

fn details_state(e: &custody_client::ClientError) -> String {
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
async fn statements_must_be_signed_by_the_approver_and_match_the_deployment() {
    let h = Harness::start().await;
    let w = world(&h).await;
    let alice = person(&h, "alice", &["approver"], None, 0xa1, true).await;
    let bob = person(&h, "bob", &["approver"], None, 0xb0, false).await;
    policy(&h, "ops", &[&alice, &bob], &["prod-idle"], 1, false, 3600).await;
    let d = deploy(&w, "prod-idle").await;
    let path = format!("/v1/deployments/{}/approve", d.id);
    let good = statement(&h, &alice, &d.id, Decision::Approve, now_s() + 600).await;
    let parsed = custody_envelope::approval::SignedApproval::from_value(&good).unwrap();
    let base = parsed.statement.clone();
    let post = |v: serde_json::Value, who: &Person| {
        let c = who.client.clone();
        let path = path.clone();
        async move {
            c.post::<_, Deployment>(&path, &json!({"statement": v}))
                .await
                .unwrap_err()
        }
    };
    // Bob has no key registered.
    let e = post(
        statement(&h, &bob, &d.id, Decision::Approve, now_s() + 600).await,
        &bob,
    )
    .await;
    assert_eq!(code(&e), (403, ErrorCode::Forbidden));
    // Signed with another key (claims bob's approver id? no: alice's, other key).
    let other = ed25519_dalek::SigningKey::from_bytes(&[0x99; 32]);
    let e = post(sign(&other, base.clone()), &alice).await;
    assert_eq!(code(&e), (400, ErrorCode::InvalidSignature));
    // Edited after signing.
    let mut edited = good.clone();
    edited["statement"]["release"] = json!("rel_other");
    let e = post(edited, &alice).await;
    assert_eq!(code(&e), (400, ErrorCode::InvalidSignature));
    // Properly signed, but not for this deployment / caller / decision / time.
    let cases: Vec<(&str, ApprovalStatement)> = vec![
        (
            "targets",
            ApprovalStatement {
                targets: vec![w.idle[0].id.clone()],
                ..base.clone()
            },
        ),
        (
            "package_sha256",
            ApprovalStatement {
                package_sha256: "00".repeat(32),
                ..base.clone()
            },
        ),
        (
            "environment",
            ApprovalStatement {
                environment: "prod".into(),
                ..base.clone()
            },
        ),
        (
            "account",
            ApprovalStatement {
                account: "other".into(),
                ..base.clone()
            },
        ),
        (
            "approver",
            ApprovalStatement {
                approver: bob.id.clone(),
                ..base.clone()
            },
        ),
        (
            "decision",
            ApprovalStatement {
                decision: Decision::Decline,
                ..base.clone()
            },
        ),
        (
            "expires_at",
            ApprovalStatement {
                expires_at: now_s() - 1,
                ..base.clone()
            },
        ),
        (
            "expires_at",
            ApprovalStatement {
                expires_at: now_s() + 40 * 86_400,
                ..base.clone()
            },
        ),
    ];
    for (field, s) in cases {
        let e = post(sign(&alice.key, s), &alice).await;
        assert_eq!(code(&e), (400, ErrorCode::StatementMismatch), "{field}");
        match &e {
            custody_client::ClientError::Api { error, .. } => {
                assert_eq!(error.details.as_ref().unwrap()["field"], field)
            }
            _ => unreachable!(),
        }
    }
    // Garbage is refused as input, not as a signature.
    let e = post(json!({"statement": {"v": 1}}), &alice).await;
    assert_eq!(code(&e), (400, ErrorCode::InvalidInput));
    // Nothing counted; the good one works.
    let v: DeploymentApprovals = h
        .owner
        .get(&format!("/v1/deployments/{}/approvals", d.id))
        .await
        .unwrap();
    assert!(v.approvals.is_empty());
    let ok: Deployment = alice
        .client
        .post(&path, &json!({"statement": good}))
        .await
        .unwrap();
    assert_eq!(ok.state, S::Approved);
    // A key can belong to one user only.
    let e = h
        .owner
        .put::<_, serde_json::Value>(
            "/v1/users/bob/approval-key",
            &json!({"public_key": custody_envelope::approval::public_key_hex(&alice.key.verifying_key())}),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), (409, ErrorCode::AlreadyExists));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_approvals_no_longer_count() {
    let h = Harness::start().await;
    let w = world(&h).await;
    let alice = person(&h, "alice", &["approver"], None, 0xa1, true).await;
    let bob = person(&h, "bob", &["approver"], None, 0xb0, true).await;
    policy(&h, "ops", &[&alice, &bob], &["prod-idle"], 2, false, 3600).await;
    let d = deploy(&w, "prod-idle").await;
    let short = statement(&h, &alice, &d.id, Decision::Approve, now_s() + 2).await;
    let a: Deployment = alice
        .client
        .post(
            &format!("/v1/deployments/{}/approve", d.id),
            &json!({"statement": short}),
        )
        .await
        .unwrap();
    assert_eq!(a.approval.unwrap().counted, 1);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let b = approve_as(&h, &bob, &d.id, true).await.unwrap();
    assert_eq!(b.state, S::PendingApproval, "alice's approval expired");
    assert_eq!(b.approval.unwrap().counted, 1);
    let v: DeploymentApprovals = h
        .owner
        .get(&format!("/v1/deployments/{}/approvals", d.id))
        .await
        .unwrap();
    assert!(
        v.approvals[0]
            .not_counted_because
            .as_deref()
            .unwrap()
            .contains("expired")
    );
    assert!(jobs_of(&h, &d.id).await.is_empty());

    // Approved, then the statements expire before the start: back to pending.
    let d2 = deploy(&w, "prod-idle").await;
    for p in [&alice, &bob] {
        let s = statement(&h, p, &d2.id, Decision::Approve, now_s() + 2).await;
        let _: Deployment = p
            .client
            .post(
                &format!("/v1/deployments/{}/approve", d2.id),
                &json!({"statement": s}),
            )
            .await
            .unwrap();
    }
    assert_eq!(get(&h, &d2.id).await.state, S::Approved);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let e = h
        .owner
        .post::<_, Deployment>(&format!("/v1/deployments/{}/start", d2.id), &json!({}))
        .await
        .unwrap_err();
    assert_eq!(code(&e), (409, ErrorCode::InvalidState));
    assert_eq!(details_state(&e), "pending_approval");
    assert_eq!(get(&h, &d2.id).await.state, S::PendingApproval);
    assert!(jobs_of(&h, &d2.id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_environment_servers_need_new_approvals() {
    let h = Harness::start().await;
    let w = world(&h).await;
    let alice = person(&h, "alice", &["approver"], None, 0xa1, true).await;
    policy(&h, "ops", &[&alice], &["prod-idle"], 1, false, 3600).await;
    let d = deploy(&w, "prod-idle").await;
    let old = statement(&h, &alice, &d.id, Decision::Approve, now_s() + 600).await;
    // A server joins the environment while it waits: it takes the new set.
    let _: serde_json::Value = h
        .owner
        .post(
            "/v1/apps/web/environments/prod-idle/servers",
            &json!({"server": w.spare.id}),
        )
        .await
        .unwrap();
    let now = get(&h, &d.id).await;
    assert_eq!(now.state, S::PendingApproval);
    assert_eq!(now.targets.len(), 3);
    let e = alice
        .client
        .post::<_, Deployment>(
            &format!("/v1/deployments/{}/approve", d.id),
            &json!({"statement": old}),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), (400, ErrorCode::StatementMismatch));
    assert_eq!(
        approve_as(&h, &alice, &d.id, false).await.unwrap().state,
        S::Approved
    );
    // Approved, then a server leaves: back to pending; the approval no longer counts.
    h.owner
        .delete(&format!(
            "/v1/apps/web/environments/prod-idle/servers/{}",
            w.spare.id
        ))
        .await
        .unwrap();
    let back = get(&h, &d.id).await;
    assert_eq!(back.state, S::PendingApproval);
    assert!(back.reason.unwrap().contains("servers changed"));
    assert_eq!(back.approval.unwrap().counted, 0);
    assert_eq!(back.targets.len(), 2);
    let log = audit(&h).await;
    assert!(
        log.iter().any(|e| e["action"] == "deployment.targets"
            && e["object"] == format!("deployment:{}", d.id))
    );
    assert_eq!(
        approve_as(&h, &alice, &d.id, false).await.unwrap().state,
        S::Approved
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_not_started_within_the_window_is_canceled() {
    let h = Harness::start().await;
    let w = world(&h).await;
    let alice = person(&h, "alice", &["approver"], None, 0xa1, true).await;
    policy(&h, "ops", &[&alice], &["prod-idle"], 1, false, 1).await;
    let pending = deploy(&w, "prod-idle").await;
    let approved = deploy(&w, "prod-idle").await;
    approve_as(&h, &alice, &approved.id, false).await.unwrap();
    for id in [&pending.id, &approved.id] {
        let d = wait_state(&h, id, S::Canceled).await;
        assert_eq!(
            d.reason.as_deref(),
            Some("not started within the environment's approval window (1s)")
        );
        let e = approve_as(&h, &alice, id, false).await.unwrap_err();
        assert_eq!(details_state(&e), "canceled");
        assert!(jobs_of(&h, id).await.is_empty());
    }
    let log = audit(&h).await;
    assert!(log.iter().any(|e| {
        e["action"] == "deployment.state"
            && e["result"] == "canceled"
            && e["actor"] == "coordinator"
            && e["detail"]["reason"]
                .as_str()
                .unwrap()
                .contains("approval window")
    }));
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
