#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Authentication and authorisation: 401 / 403, revocation, removed
//! servers, one-time expiring join tokens, the failed-auth rate limit.

mod common;
use common::*;
use custody_proto::ErrorCode;
use custody_proto::servers::AgentRole;

#[tokio::test]
async fn no_token_wrong_role_revoked_token() {
    let h = Harness::start().await;
    // No token: 401 everywhere but health.
    let anon = h.client(None);
    for path in [
        "/v1/info",
        "/v1/users",
        "/v1/servers",
        "/v1/audit",
        "/v1/agent/jobs?protocol=1",
    ] {
        let e = anon.get::<serde_json::Value>(path).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::Unauthenticated), "{path}");
        assert_eq!(e.status(), Some(401));
    }
    assert_eq!(anon.get_text("/healthz").await.unwrap(), "ok\n");
    // A wrong token: 401.
    let bogus = h.client(Some("cst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    assert_eq!(
        bogus
            .get::<serde_json::Value>("/v1/info")
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Unauthenticated)
    );

    // A deployer cannot create users or join tokens: 403.
    let dep = h.user("dana", &["deployer"]).await;
    let e = dep
        .post::<_, serde_json::Value>(
            "/v1/users",
            &serde_json::json!({"name": "eve", "roles": ["owner"]}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    assert_eq!(e.status(), Some(403));
    let e = dep
        .post::<_, serde_json::Value>("/v1/servers/join-tokens", &serde_json::json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    let who: custody_proto::admin::WhoAmI = dep.get("/v1/whoami").await.unwrap();
    assert_eq!(who.name, "dana");

    // Revoked token: 401 at once.
    let t: custody_proto::admin::TokenCreated = h
        .owner
        .post(
            "/v1/tokens",
            &serde_json::json!({"user": "dana", "label": "ci"}),
        )
        .await
        .unwrap();
    let ci = h.client(Some(&t.token));
    ci.get::<serde_json::Value>("/v1/whoami").await.unwrap();
    h.owner
        .delete(&format!("/v1/tokens/{}", t.id))
        .await
        .unwrap();
    assert_eq!(
        ci.get::<serde_json::Value>("/v1/whoami")
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Unauthenticated)
    );

    // A removed user's tokens stop working.
    h.owner.delete("/v1/users/dana").await.unwrap();
    assert_eq!(
        dep.get::<serde_json::Value>("/v1/whoami")
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Unauthenticated)
    );
    // The last owner cannot be removed.
    let e = h.owner.delete("/v1/users/owner").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidState));

    // Tokens are stored as hashes only.
    let db = std::fs::read(h.state_dir().join("coordinator.db")).unwrap();
    let wal = std::fs::read(h.state_dir().join("coordinator.db-wal")).unwrap_or_default();
    for hay in [&db, &wal] {
        assert!(!hay.windows(t.token.len()).any(|w| w == t.token.as_bytes()));
        assert!(
            !hay.windows(h.owner_token.len())
                .any(|w| w == h.owner_token.as_bytes())
        );
    }
}

#[tokio::test]
async fn user_tokens_and_agent_credentials_do_not_mix() {
    let h = Harness::start().await;
    let a = h.agent("web-1", &[AgentRole::Target]).await;
    // An agent credential cannot use the user API, a user token not the agent API.
    assert_eq!(
        a.client
            .get::<serde_json::Value>("/v1/users")
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        h.owner
            .get::<serde_json::Value>("/v1/agent/jobs?protocol=1")
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Forbidden)
    );
    // A removed server's credential stops working at once.
    a.heartbeat().await;
    h.owner
        .delete(&format!("/v1/servers/{}", a.id))
        .await
        .unwrap();
    let e = a
        .client
        .post::<_, serde_json::Value>("/v1/agent/heartbeat", &serde_json::json!({"protocol": 1}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Unauthenticated));
    let servers: Vec<custody_proto::servers::Server> = h.owner.get("/v1/servers").await.unwrap();
    assert!(servers.iter().all(|s| s.id != a.id));
}

#[tokio::test]
async fn join_tokens_are_one_time_and_expire() {
    let h = Harness::start().await;
    let jt = h.join_token().await;
    FakeAgent::enroll(&h, "a", &[AgentRole::Target], &jt, 0)
        .await
        .unwrap();
    let e = FakeAgent::enroll(&h, "b", &[AgentRole::Target], &jt, 1)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), Some(ErrorCode::JoinTokenInvalid));

    let short: custody_proto::servers::JoinToken = h
        .owner
        .post(
            "/v1/servers/join-tokens",
            &serde_json::json!({"ttl_seconds": 1}),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let e = FakeAgent::enroll(&h, "c", &[AgentRole::Target], &short.token, 2)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), Some(ErrorCode::JoinTokenInvalid));
    let e = FakeAgent::enroll(&h, "d", &[AgentRole::Target], "cjt_made_up", 2)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), Some(ErrorCode::JoinTokenInvalid));

    // A bad key is refused before the join token is spent.
    let jt = h.join_token().await;
    let anon = h.client(None);
    let e = anon
        .post::<_, serde_json::Value>(
            "/v1/agent/enroll",
            &serde_json::json!({"protocol": 1, "join_token": jt, "name": "x", "public_key_pem": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "oaep_hashes": ["sha256"], "roles": ["target"]}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidInput));
    FakeAgent::enroll(&h, "e", &[AgentRole::Target], &jt, 3)
        .await
        .unwrap();
}

#[tokio::test]
async fn failed_authentication_is_rate_limited() {
    let h = Harness::start_with(|c| c.auth_rate_limit.max_failures = 5).await;
    let bogus = h.client(Some("cst_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"));
    for _ in 0..5 {
        assert_eq!(
            bogus
                .get::<serde_json::Value>("/v1/info")
                .await
                .unwrap_err()
                .code(),
            Some(ErrorCode::Unauthenticated)
        );
    }
    let e = bogus
        .get::<serde_json::Value>("/v1/info")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::RateLimited));
    assert_eq!(e.status(), Some(429));
    // The source is limited too (all tests run from 127.0.0.1), even with a good token.
    assert_eq!(
        h.owner
            .get::<serde_json::Value>("/v1/info")
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::RateLimited)
    );
}
