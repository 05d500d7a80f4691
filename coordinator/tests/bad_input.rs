#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Bad input gets a clear 4xx with a stable code, and nothing half-stored.

mod common;
use common::*;
use custody_proto::ErrorCode;
use custody_proto::apps::{Release, ReleaseCreated, ReleaseState};
use sha2::Digest;

async fn raw(
    h: &Harness,
    method: reqwest::Method,
    path: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let r = h
        .owner
        .request(method, path)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn malformed_oversize_and_unknown() {
    let h = Harness::start().await;
    let (s, b) = raw(
        &h,
        reqwest::Method::POST,
        "/v1/users",
        b"{\"name\": \"x\",".to_vec(),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );
    let (s, b) = raw(
        &h,
        reqwest::Method::POST,
        "/v1/users",
        br#"{"name":"x","roles":["owner"],"admin":true}"#.to_vec(),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("malformed_json")),
        "unknown fields are refused"
    );
    let (s, b) = raw(
        &h,
        reqwest::Method::POST,
        "/v1/users",
        br#"{"name":"x","roles":["root"]}"#.to_vec(),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );
    let big = format!(
        r#"{{"name":"x","roles":["owner"],"email":"{}@x"}}"#,
        "a".repeat(70 * 1024)
    );
    let (s, b) = raw(&h, reqwest::Method::POST, "/v1/users", big.into_bytes()).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let (s, b) = raw(
        &h,
        reqwest::Method::POST,
        "/v1/users",
        br#"{"name":"../etc","roles":["owner"]}"#.to_vec(),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_input"))
    );
    let users: Vec<custody_proto::admin::User> = h.owner.get("/v1/users").await.unwrap();
    assert_eq!(users.len(), 1, "nothing stored by refused requests");

    for path in [
        "/v1/releases/rel_nope",
        "/v1/apps/nope",
        "/v1/deployments/dep_nope",
        "/v1/servers/srv_nope",
        "/v1/nothing/here",
    ] {
        let e = h.owner.get::<serde_json::Value>(path).await.unwrap_err();
        assert_eq!(
            (e.status(), e.code()),
            (Some(404), Some(ErrorCode::NotFound)),
            "{path}"
        );
    }
    let e = h
        .owner
        .post::<_, serde_json::Value>(
            "/v1/deployments",
            &serde_json::json!({"app": "nope", "release": "rel_x", "environment": "dev"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
}

async fn new_release(h: &Harness) -> ReleaseCreated {
    h.owner
        .post("/v1/apps/app/releases", &serde_json::json!({}))
        .await
        .unwrap()
}

#[tokio::test]
async fn digest_mismatches_store_nothing() {
    let h = Harness::start().await;
    let (_ids, _r) = key_managers_with_master_key(&h).await;
    let _: serde_json::Value = h
        .owner
        .post(
            "/v1/apps",
            &serde_json::json!({"name": "app", "secure": true}),
        )
        .await
        .unwrap();
    let rc = new_release(&h).await;
    let f = h.dir.path().join("pkg");
    std::fs::write(&f, b"the real package").unwrap();

    // 1. The upload's own digest header does not match the bytes: refused, no file kept.
    let wrong = hex::encode(sha2::Sha256::digest(b"something else"));
    let e = h
        .owner
        .upload_file::<serde_json::Value>(
            &format!("/v1/releases/{}/package", rc.release_id),
            &f,
            &wrong,
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(422), Some(ErrorCode::DigestMismatch))
    );
    assert!(h.artifact_files().is_empty(), "{:?}", h.artifact_files());
    let r: Release = h
        .owner
        .get(&format!("/v1/releases/{}", rc.release_id))
        .await
        .unwrap();
    assert_eq!(r.state, ReleaseState::Created);

    // 2. Upload fine, but the descriptor names another digest: refused, package discarded.
    let sha = hex::encode(sha2::Sha256::digest(b"the real package"));
    let _: serde_json::Value = h
        .owner
        .upload_file(&format!("/v1/releases/{}/package", rc.release_id), &f, &sha)
        .await
        .unwrap();
    assert_eq!(h.artifact_files().len(), 1);
    let wraps: Vec<serde_json::Value> = release_wraps(&rc)
        .iter()
        .map(|w| serde_json::to_value(w).unwrap())
        .collect();
    let desc = |sha: &str, rel: &str| signed_descriptor(&rc.account, "app", rel, sha);
    let e = h.owner.post::<_, serde_json::Value>(&format!("/v1/releases/{}/finalize", rc.release_id),
        &serde_json::json!({"descriptor": desc(&wrong, &rc.release_id), "wrapped_release_keys": wraps})).await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(422), Some(ErrorCode::DigestMismatch))
    );
    assert!(h.artifact_files().is_empty());
    let r: Release = h
        .owner
        .get(&format!("/v1/releases/{}", rc.release_id))
        .await
        .unwrap();
    assert_eq!(r.state, ReleaseState::Created);
    assert!(r.package_sha256.is_none());
    let jobs = h.jobs().await;
    assert!(
        jobs.iter().all(|j| j["type"] != "rewrap_release_key"),
        "no job queued"
    );

    // 3. Missing wraps or a JWE that is not one: refused, nothing stored.
    let _: serde_json::Value = h
        .owner
        .upload_file(&format!("/v1/releases/{}/package", rc.release_id), &f, &sha)
        .await
        .unwrap();
    let e = h.owner.post::<_, serde_json::Value>(&format!("/v1/releases/{}/finalize", rc.release_id),
        &serde_json::json!({"descriptor": desc(&sha, &rc.release_id), "wrapped_release_keys": [wraps[0]]})).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidInput));
    let e = h.owner.post::<_, serde_json::Value>(&format!("/v1/releases/{}/finalize", rc.release_id),
        &serde_json::json!({"descriptor": desc(&sha, &rc.release_id), "wrapped_release_keys": [{"server_id": rc.key_managers[0].server_id, "jwe": "x"}, wraps[1]]})).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidInput));
    let e = h.owner.post::<_, serde_json::Value>(&format!("/v1/releases/{}/finalize", rc.release_id),
        &serde_json::json!({"descriptor": desc(&sha, "rel_other"), "wrapped_release_keys": wraps})).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidInput));
    // A release key wrapped for another release, or to the wrong key manager's key.
    use custody_envelope::jwe::{Binding, Purpose};
    let other_rel = Binding {
        app: Some("app".into()),
        release: Some("rel_other".into()),
        ..bind(Purpose::ReleaseKey, &rc.account)
    };
    let this_rel = Binding {
        app: Some("app".into()),
        release: Some(rc.release_id.clone()),
        ..bind(Purpose::ReleaseKey, &rc.account)
    };
    for bad in [
        wrap_jwe(&rc.key_managers[0].fingerprint, other_rel),
        wrap_jwe(&rc.key_managers[1].fingerprint, this_rel.clone()),
        wrap_jwe(
            &rc.key_managers[0].fingerprint,
            Binding {
                purpose: Purpose::MasterKey,
                ..this_rel.clone()
            },
        ),
        seal_jwe(&rc.key_managers[0].fingerprint, this_rel.clone()),
    ] {
        let e = h.owner.post::<_, serde_json::Value>(&format!("/v1/releases/{}/finalize", rc.release_id),
            &serde_json::json!({"descriptor": desc(&sha, &rc.release_id), "wrapped_release_keys": [{"server_id": rc.key_managers[0].server_id, "jwe": bad}, wraps[1]]})).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::InvalidInput));
    }
    // A descriptor that is not a signed release descriptor.
    let e = h.owner.post::<_, serde_json::Value>(&format!("/v1/releases/{}/finalize", rc.release_id),
        &serde_json::json!({"descriptor": {"package_sha256": sha}, "wrapped_release_keys": wraps})).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidInput));
    let r: Release = h
        .owner
        .get(&format!("/v1/releases/{}", rc.release_id))
        .await
        .unwrap();
    assert_eq!(r.state, ReleaseState::Uploaded);
    assert!(r.key_manager_fingerprints.is_empty());

    // 4. An oversize package is refused and leaves no file.
    let big = h.dir.path().join("big");
    std::fs::write(&big, vec![0u8; 5 * 1024 * 1024]).unwrap();
    let rc2 = new_release(&h).await;
    let e = h
        .owner
        .upload_file::<serde_json::Value>(
            &format!("/v1/releases/{}/package", rc2.release_id),
            &big,
            &hex::encode(sha2::Sha256::digest(vec![0u8; 5 * 1024 * 1024])),
        )
        .await;
    assert!(e.is_err());
    assert_eq!(h.artifact_files().len(), 1, "{:?}", h.artifact_files());

    // 5. Deleting the release removes its package once nothing references it.
    h.owner
        .delete(&format!("/v1/releases/{}", rc.release_id))
        .await
        .unwrap();
    assert!(h.artifact_files().is_empty());

    // 6. Range requests outside the file are refused with 416.
    let rc3 = new_release(&h).await;
    let _: serde_json::Value = h
        .owner
        .upload_file(
            &format!("/v1/releases/{}/package", rc3.release_id),
            &f,
            &sha,
        )
        .await
        .unwrap();
    let r = h
        .owner
        .request(
            reqwest::Method::GET,
            &format!("/v1/releases/{}/package", rc3.release_id),
        )
        .header("range", "bytes=1000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 416);
    let r = h
        .owner
        .request(
            reqwest::Method::GET,
            &format!("/v1/releases/{}/package", rc3.release_id),
        )
        .header("range", "bytes=4-7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 4-7/16");
    assert_eq!(&r.bytes().await.unwrap()[..], b"real");
}

#[tokio::test]
async fn an_action_whose_audit_entry_cannot_be_written_is_not_done() {
    let h = Harness::start().await;
    // Another writer makes the audit table refuse inserts (a full disk or a
    // corrupted log looks the same to the coordinator).
    let db = h.state_dir().join("coordinator.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&db);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    sqlx::query("CREATE TRIGGER deny_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit store unavailable'); END")
        .execute(&pool)
        .await
        .unwrap();
    let e = h
        .owner
        .post::<_, serde_json::Value>(
            "/v1/users",
            &serde_json::json!({"name": "eve", "roles": ["deployer"]}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(503), Some(ErrorCode::AuditUnavailable))
    );
    sqlx::query("DROP TRIGGER deny_audit")
        .execute(&pool)
        .await
        .unwrap();
    let users: Vec<custody_proto::admin::User> = h.owner.get("/v1/users").await.unwrap();
    assert!(
        users.iter().all(|u| u.name != "eve"),
        "the user must not exist without its audit entry"
    );
    let _: serde_json::Value = h
        .owner
        .post(
            "/v1/users",
            &serde_json::json!({"name": "eve", "roles": ["deployer"]}),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn metrics_are_served_on_their_own_listener() {
    let h = Harness::start().await;
    let a = h
        .agent("web-1", &[custody_proto::servers::AgentRole::Target])
        .await;
    a.heartbeat().await;
    let addr = h.running.as_ref().unwrap().metrics_addr;
    assert!(addr.ip().is_loopback());
    let plain = custody_client::Client::new(custody_client::ClientConfig::new(
        &format!("http://{addr}"),
        None,
        None,
    ))
    .unwrap();
    let text = plain.get_text("/metrics").await.unwrap();
    for m in [
        "custody_live_agents 1",
        "custody_job_queue_depth{state=\"queued\"}",
        "custody_job_dispatch_latency_seconds_bucket",
        "custody_http_requests_total{class=\"2xx\"}",
    ] {
        assert!(text.contains(m), "{m} missing in\n{text}");
    }
    // The API listener does not serve it.
    assert_eq!(
        h.owner.get_text("/metrics").await.unwrap_err().code(),
        Some(ErrorCode::NotFound)
    );
}
