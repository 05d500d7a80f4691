#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Deployment approvals over real HTTP against a real coordinator: what
//! makes an approval count and what makes it stop counting. Signed
//! statements and their refusals (wrong key, edited, not matching the
//! deployment, caller, decision or time), statements that expire, servers
//! joining or leaving the environment, and deployments not started within
//! the approval window. Who may decide and what a decision does is in
//! `approvals.rs`.

mod approval_support;
mod common;
use approval_support::*;
use common::*;
use custody_envelope::approval::{ApprovalStatement, Decision};
use custody_proto::ErrorCode;
use custody_proto::approvals::DeploymentApprovals;
use custody_proto::apps::{Deployment, DeploymentState as S};
use serde_json::json;

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
