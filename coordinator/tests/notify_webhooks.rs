#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Webhook notifications against real receivers on loopback: who may
//! register which URLs, payloads signed with each webhook's own HMAC secret
//! (checked independently of the coordinator's code), retries with the same
//! delivery id against a receiver that answers 500, giving up after
//! `max_attempts`, delivery records, and removing a webhook. Email is in
//! `notify.rs`.

mod approval_support;
mod common;
use approval_support::*;
use common::*;
use custody_proto::apps::DeploymentState as S;
use custody_proto::notify::{Delivery, DeliveryState, WebhookCreated, WebhookPayload};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// A webhook receiver on loopback: records every request; answers 500 to
/// the first `fail_first` requests (all when `None`).
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<(axum::http::HeaderMap, bytes::Bytes)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receiver(fail_first: Option<usize>) -> Receiver {
    let seen: Arc<Mutex<Vec<(axum::http::HeaderMap, bytes::Bytes)>>> = Arc::default();
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let seen = s2.clone();
            async move {
                let n = {
                    let mut g = seen.lock().unwrap();
                    g.push((headers, body));
                    g.len()
                };
                if fail_first.is_none_or(|k| n <= k) {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/hook", l.local_addr().unwrap().port());
    let task = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Receiver { url, seen, task }
}

/// The receiver's check, written independently of the coordinator's code.
fn hmac_ok(secret: &str, header: &str, body: &[u8]) -> bool {
    use hmac::{KeyInit, Mac};
    let (t, v1) = header.split_once(",v1=").unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(format!("{t}.").as_bytes());
    m.update(body);
    m.verify_slice(&hex::decode(v1).unwrap()).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_retried_and_their_deliveries_visible() {
    let h = Harness::start_with(|c| {
        c.notifications.retry_initial_ms = 50;
        c.notifications.retry_max_ms = 100;
        c.notifications.max_attempts = 4;
        c.notifications.poll_interval_ms = 100;
    })
    .await;
    let w = world(&h).await;
    let alice = person(&h, "alice", &["approver"], None, 0xa1, true).await;
    policy(&h, "ops", &[&alice], &["prod-idle"], 1, false, 3600).await;
    let good = receiver(Some(0)).await;
    let flaky = receiver(Some(2)).await;
    let down = receiver(None).await;
    let mut hooks = vec![];
    for r in [&good, &flaky, &down] {
        let c: WebhookCreated = h
            .owner
            .post("/v1/webhooks", &json!({"url": r.url}))
            .await
            .unwrap();
        hooks.push(c);
    }
    // Only owners manage webhooks; only https or loopback http.
    let e = alice
        .client
        .post::<_, Value>("/v1/webhooks", &json!({"url": good.url}))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403));
    let e = h
        .owner
        .post::<_, Value>("/v1/webhooks", &json!({"url": "http://192.0.2.1/x"}))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));

    let d = deploy(&w, "prod-idle").await;
    approve_as(&h, &alice, &d.id, false).await.unwrap();
    // The good receiver gets both changes, each signed with its own secret.
    h.wait_for("two deliveries", || async {
        good.seen.lock().unwrap().len() == 2
    })
    .await;
    let got = good.seen.lock().unwrap().clone();
    let mut tos = vec![];
    for (headers, body) in &got {
        let sig = headers["custody-signature"].to_str().unwrap();
        assert!(hmac_ok(&hooks[0].secret, sig, body), "HMAC must verify");
        assert!(
            !hmac_ok(&hooks[1].secret, sig, body),
            "another webhook's secret must not"
        );
        assert!(!hmac_ok(
            &hooks[0].secret,
            sig,
            &[body.as_ref(), b" "].concat()
        ));
        assert_eq!(headers["custody-event"], "deployment.state_changed");
        let p: WebhookPayload = serde_json::from_slice(body).unwrap();
        assert_eq!(headers["custody-delivery"].to_str().unwrap(), p.id);
        assert_eq!(p.deployment.id, d.id);
        assert_eq!(p.account, w.account);
        assert_eq!(p.url, format!("{}/deployments/{}", h.url, d.id));
        tos.push((p.from, p.to, p.actor));
    }
    tos.sort_by_key(|x| x.1.as_str());
    assert_eq!(
        tos,
        [
            (
                Some(S::PendingApproval),
                S::Approved,
                format!("user:{}", alice.id)
            ),
            (None, S::PendingApproval, format!("user:{}", w.deployer.id)),
        ]
    );
    // The flaky one answered 500 twice, then took them: retried, same delivery id.
    h.wait_for("flaky delivered", || async {
        let ds: Vec<Delivery> = h
            .owner
            .get(&format!("/v1/webhooks/{}/deliveries", hooks[1].webhook.id))
            .await
            .unwrap();
        ds.len() == 2 && ds.iter().all(|x| x.state == DeliveryState::Sent)
    })
    .await;
    let ds: Vec<Delivery> = h
        .owner
        .get(&format!("/v1/webhooks/{}/deliveries", hooks[1].webhook.id))
        .await
        .unwrap();
    assert_eq!(ds.iter().map(|x| x.attempts).sum::<u32>(), 4, "{ds:?}");
    assert!(ds.iter().all(|x| x.last_status == Some(204)));
    let seen = flaky.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    for x in &ds {
        let n = seen
            .iter()
            .filter(|(hd, _)| hd["custody-delivery"].to_str().unwrap() == x.id)
            .count();
        assert_eq!(
            n as u32, x.attempts,
            "every retry carries the same delivery id"
        );
    }
    // The one that always fails is given up after max_attempts, with its status.
    h.wait_for("down given up", || async {
        let ds: Vec<Delivery> = h
            .owner
            .get(&format!("/v1/webhooks/{}/deliveries", hooks[2].webhook.id))
            .await
            .unwrap();
        ds.len() == 2 && ds.iter().all(|x| x.state == DeliveryState::Failed)
    })
    .await;
    let ds: Vec<Delivery> = h
        .owner
        .get(&format!("/v1/webhooks/{}/deliveries", hooks[2].webhook.id))
        .await
        .unwrap();
    assert!(
        ds.iter()
            .all(|x| x.attempts == 4 && x.last_status == Some(500)),
        "{ds:?}"
    );
    assert_eq!(down.seen.lock().unwrap().len(), 8);
    // The deployment itself was never held up.
    assert_eq!(get(&h, &d.id).await.state, S::Approved);
    // Removing a webhook stops its deliveries.
    h.owner
        .delete(&format!("/v1/webhooks/{}", hooks[0].webhook.id))
        .await
        .unwrap();
    let list: Vec<custody_proto::notify::Webhook> = h.owner.get("/v1/webhooks").await.unwrap();
    assert_eq!(list.len(), 2);
}
