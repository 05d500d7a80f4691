#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Key managers: make-secure needs two live ones; failover when one never
//! answers; duplicate results ignored; a restart between hand-out and
//! result loses nothing and does nothing twice; a poll takes up to `max`
//! jobs, oldest first; a batch of results stands or falls per result.

mod common;
use common::*;
use custody_proto::ErrorCode;
use custody_proto::apps::{Release, ReleaseState};
use custody_proto::jobs::{BatchedResult, JobKind, JobOutput, JobPayload, Outcome};
use std::time::Duration;

#[tokio::test]
async fn make_secure_needs_two_live_key_managers() {
    let h = Harness::start().await;
    let _: serde_json::Value = h
        .owner
        .post("/v1/apps", &serde_json::json!({"name": "securekeys"}))
        .await
        .unwrap();
    let e = h
        .owner
        .post::<_, serde_json::Value>("/v1/apps/securekeys/secure", &serde_json::json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotEnoughKeyManagers));
    let ClientErrorApi { details, message } = api_error(e);
    assert_eq!(details["live"], 0);
    assert!(message.contains("0 are live"), "{message}");

    let _a = h.key_manager("km-a", 0).await;
    let e = h
        .owner
        .post::<_, serde_json::Value>("/v1/apps/securekeys/secure", &serde_json::json!({}))
        .await
        .unwrap_err();
    let ClientErrorApi { details, message } = api_error(e);
    assert_eq!(details["live"], 1);
    assert!(message.contains("1 is live"), "{message}");
    // A target-only agent does not count.
    let _t = h
        .agent("web-1", &[custody_proto::servers::AgentRole::Target])
        .await;
    let e = h
        .owner
        .post::<_, serde_json::Value>(
            "/v1/apps",
            &serde_json::json!({"name": "other", "secure": true}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotEnoughKeyManagers));

    let _b = h.key_manager("km-b", 1).await;
    let app: custody_proto::apps::App = h
        .owner
        .post("/v1/apps/securekeys/secure", &serde_json::json!({}))
        .await
        .unwrap();
    assert!(app.secure);
}

struct ClientErrorApi {
    details: serde_json::Value,
    message: String,
}

fn api_error(e: custody_client::ClientError) -> ClientErrorApi {
    match e {
        custody_client::ClientError::Api { error, .. } => ClientErrorApi {
            details: error.details.unwrap_or_default(),
            message: error.message,
        },
        other => panic!("not an API error: {other}"),
    }
}

async fn two_holders(h: &Harness) -> (FakeAgent, FakeAgent) {
    let a = h.key_manager("km-a", 0).await;
    let job = a.poll(5).await.unwrap();
    assert!(matches!(job.payload, JobPayload::CreateMasterKey { .. }));
    a.answer(&job, a.output_for(&job)).await.unwrap();
    let b = h.key_manager("km-b", 1).await;
    // B learns MK from A.
    let job = a.poll(5).await.unwrap();
    match &job.payload {
        JobPayload::ShareMasterKey {
            newcomer,
            master_key,
            ..
        } => {
            assert_eq!(newcomer.server_id, b.id);
            assert!(master_key.jwe.contains('.'));
        }
        other => panic!("expected share, got {other:?}"),
    }
    a.answer(&job, a.output_for(&job)).await.unwrap();
    let _: serde_json::Value = h
        .owner
        .post(
            "/v1/apps",
            &serde_json::json!({"name": "app", "secure": true}),
        )
        .await
        .unwrap();
    (a, b)
}

/// Creates and finalizes a release without answering its rewrap job.
async fn finalize_release(h: &Harness, data: &[u8]) -> String {
    use sha2::Digest;
    let rc: custody_proto::apps::ReleaseCreated = h
        .owner
        .post("/v1/apps/app/releases", &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(rc.key_managers.len(), 2);
    let sha = hex::encode(sha2::Sha256::digest(data));
    let f = h.dir.path().join(format!("{}.pkg", rc.release_id));
    std::fs::write(&f, data).unwrap();
    let _: serde_json::Value = h
        .owner
        .upload_file(&format!("/v1/releases/{}/package", rc.release_id), &f, &sha)
        .await
        .unwrap();
    let r: Release = h
        .owner
        .post(
            &format!("/v1/releases/{}/finalize", rc.release_id),
            &serde_json::json!({"descriptor": signed_descriptor(&rc.account, "app", &rc.release_id, &sha),
                "wrapped_release_keys": release_wraps(&rc)}),
        )
        .await
        .unwrap();
    assert_eq!(r.state, ReleaseState::Sealing);
    assert_eq!(r.key_manager_fingerprints.len(), 2);
    rc.release_id
}

#[tokio::test]
async fn a_silent_key_manager_is_failed_over_and_late_results_are_ignored() {
    let h = Harness::start().await;
    let (a, b) = two_holders(&h).await;
    let rel = finalize_release(&h, b"package one").await;

    // Whoever gets the rewrap job first stays silent.
    let (ja, jb) = tokio::join!(a.poll(1), b.poll(1));
    let (silent, other, job) = match (ja, jb) {
        (Some(j), None) => (&a, &b, j),
        (None, Some(j)) => (&b, &a, j),
        x => panic!("exactly one key manager should get the job: {x:?}"),
    };
    assert_eq!(job.payload.kind(), JobKind::RewrapReleaseKey);
    assert_eq!(job.attempt, 1);
    // After the 2 s deadline it goes to the other one, with that one's own wraps.
    let job2 = other.poll(5).await.expect("failover");
    assert_eq!(job2.id, job.id);
    assert_eq!(job2.attempt, 2);
    assert_eq!(job2.idempotency_key, job.idempotency_key);
    let (
        JobPayload::RewrapReleaseKey { master_key: m1, .. },
        JobPayload::RewrapReleaseKey { master_key: m2, .. },
    ) = (&job.payload, &job2.payload)
    else {
        panic!()
    };
    assert_ne!(m1.jwe, m2.jwe, "each key manager gets its own wrap of MK");
    let ack = other.answer(&job2, other.output_for(&job2)).await.unwrap();
    assert!(ack.accepted && !ack.duplicate);
    let r: Release = h.owner.get(&format!("/v1/releases/{rel}")).await.unwrap();
    assert_eq!(r.state, ReleaseState::Deployable);

    // The silent one answers late: ignored, logged as a duplicate.
    let ack = silent.answer(&job, silent.output_for(&job)).await.unwrap();
    assert!(!ack.accepted && ack.duplicate);
    let ack = other.answer(&job2, other.output_for(&job2)).await.unwrap();
    assert!(ack.duplicate);
    let jobs = h.jobs().await;
    let j = jobs.iter().find(|j| j["id"] == job.id.as_str()).unwrap();
    assert_eq!(j["state"], "done");
    assert_eq!(j["attempts"], 2);
    assert_eq!(j["done_by"], other.id.as_str());
    let audit = h.owner.get_text("/v1/audit").await.unwrap();
    assert!(audit.contains("\"result\":\"duplicate\""));
    assert!(audit.contains("\"action\":\"job.reassign\""));

    // A server that never held the job cannot post a result for it.
    let t = h
        .agent("web-1", &[custody_proto::servers::AgentRole::Target])
        .await;
    assert_eq!(
        t.answer(&job, t.output_for(&job)).await.unwrap_err().code(),
        Some(ErrorCode::NotFound)
    );
}

#[tokio::test]
async fn a_wrong_result_type_is_refused_and_changes_nothing() {
    let h = Harness::start().await;
    let (a, b) = two_holders(&h).await;
    let rel = finalize_release(&h, b"package two").await;
    let (ja, jb) = tokio::join!(a.poll(1), b.poll(1));
    let (who, job) = match (ja, jb) {
        (Some(j), None) => (&a, j),
        (None, Some(j)) => (&b, j),
        x => panic!("{x:?}"),
    };
    let wrong = custody_proto::jobs::JobOutput::Deploy {
        already_installed: false,
    };
    assert_eq!(
        who.answer(&job, wrong).await.unwrap_err().code(),
        Some(ErrorCode::InvalidInput)
    );
    // A sealed release key bound to another release is refused too.
    let JobPayload::RewrapReleaseKey {
        account,
        app,
        master_key,
        ..
    } = &job.payload
    else {
        panic!()
    };
    let other = custody_envelope::jwe::Binding {
        app: Some(app.clone()),
        release: Some("rel_other".into()),
        ..bind(custody_envelope::jwe::Purpose::ReleaseKey, account)
    };
    let wrong_binding = custody_proto::jobs::JobOutput::RewrapReleaseKey {
        sealed_release_key: seal_jwe(&master_key.master_key_id, other),
    };
    assert_eq!(
        who.answer(&job, wrong_binding).await.unwrap_err().code(),
        Some(ErrorCode::InvalidInput)
    );
    let bad = custody_proto::jobs::JobOutput::RewrapReleaseKey {
        sealed_release_key: "not-a-jwe".into(),
    };
    assert_eq!(
        who.answer(&job, bad).await.unwrap_err().code(),
        Some(ErrorCode::InvalidInput)
    );
    let r: Release = h.owner.get(&format!("/v1/releases/{rel}")).await.unwrap();
    assert_eq!(r.state, ReleaseState::Sealing);
    // A retryable failure moves it to the other key manager at once.
    who.fail(&job, "hsm_busy", true).await.unwrap();
    let other = if who.id == a.id { &b } else { &a };
    let j2 = other
        .poll(3)
        .await
        .expect("re-issued after a retryable failure");
    assert_eq!(j2.id, job.id);
    other.answer(&j2, other.output_for(&j2)).await.unwrap();
    let r: Release = h.owner.get(&format!("/v1/releases/{rel}")).await.unwrap();
    assert_eq!(r.state, ReleaseState::Deployable);
}

#[tokio::test]
async fn restart_between_hand_out_and_result_loses_nothing_and_does_nothing_twice() {
    let mut h = Harness::start().await;
    let (mut a, mut b) = two_holders(&h).await;
    let rel1 = finalize_release(&h, b"first").await;
    let (ja, jb) = tokio::join!(a.poll(1), b.poll(1));
    let (holder_is_a, job) = match (ja, jb) {
        (Some(j), None) => (true, j),
        (None, Some(j)) => (false, j),
        x => panic!("{x:?}"),
    };
    // A second job queued but not yet handed out.
    let rel2 = finalize_release(&h, b"second").await;

    h.restart().await;
    a.reconnect(&h);
    b.reconnect(&h);
    let (holder, other) = if holder_is_a { (&a, &b) } else { (&b, &a) };
    let ack = holder.answer(&job, holder.output_for(&job)).await.unwrap();
    assert!(ack.accepted);
    let r: Release = h.owner.get(&format!("/v1/releases/{rel1}")).await.unwrap();
    assert_eq!(r.state, ReleaseState::Deployable);

    // The queued job survived and is handed out once; the answered one never again.
    let mut seen = vec![];
    for _ in 0..2 {
        let (x, y) = tokio::join!(holder.poll(1), other.poll(1));
        for (who, j) in [(holder, x), (other, y)] {
            if let Some(j) = j {
                who.answer(&j, who.output_for(&j)).await.unwrap();
                seen.push(j);
            }
        }
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_ne!(seen[0].id, job.id);
    let r: Release = h.owner.get(&format!("/v1/releases/{rel2}")).await.unwrap();
    assert_eq!(r.state, ReleaseState::Deployable);
    let jobs = h.jobs().await;
    let j = jobs.iter().find(|j| j["id"] == job.id.as_str()).unwrap();
    assert_eq!(j["attempts"], 1);
    assert_eq!(j["state"], "done");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn unknown_protocol_versions_are_refused() {
    let h = Harness::start().await;
    let a = h
        .agent("web-1", &[custody_proto::servers::AgentRole::Target])
        .await;
    for path in ["/v1/agent/jobs?protocol=99", "/v1/agent/jobs"] {
        let e = a.client.get::<serde_json::Value>(path).await.unwrap_err();
        assert_eq!(
            e.code(),
            Some(ErrorCode::UnsupportedProtocolVersion),
            "{path}"
        );
        assert_eq!(e.status(), Some(400));
    }
    let e = a
        .client
        .post::<_, serde_json::Value>("/v1/agent/heartbeat", &serde_json::json!({"protocol": 2}))
        .await
        .unwrap_err();
    let ClientErrorApi { details, .. } = api_error(e);
    assert_eq!(details["supported"], serde_json::json!([1]));
    let jt = h.join_token().await;
    let mut req = custody_proto::fixtures::load_value("agent/enroll_request.json").unwrap();
    req["protocol"] = 7.into();
    req["join_token"] = jt.into();
    req["public_key_pem"] = key_pem(0).into();
    let e = h
        .client(None)
        .post::<_, serde_json::Value>("/v1/agent/enroll", &req)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UnsupportedProtocolVersion));
}

/// Puts secret variable `name` in `app`/`dev`, wrapped for `km` only, so
/// its sealing job can go nowhere else.
async fn secret_for(h: &Harness, km: &FakeAgent, name: &str) {
    let servers: Vec<custody_proto::servers::Server> = h.owner.get("/v1/servers").await.unwrap();
    let fp = &servers
        .iter()
        .find(|s| s.id == km.id)
        .unwrap()
        .key_fingerprint;
    let info: custody_proto::Info = h.owner.get("/v1/info").await.unwrap();
    let b = custody_envelope::jwe::Binding {
        app: Some("app".into()),
        environment: Some("dev".into()),
        name: Some(name.into()),
        ..bind(custody_envelope::jwe::Purpose::SecretVar, &info.account)
    };
    let _: serde_json::Value = h
        .owner
        .put(
            &format!("/v1/apps/app/environments/dev/variables/{name}"),
            &serde_json::json!({"wrapped": [{"server_id": km.id, "jwe": wrap_jwe(fp, b)}]}),
        )
        .await
        .unwrap();
}

/// Two master-key holders, environment `dev` of `app`, and one secret
/// variable per name wrapped for the first holder only (its sealing job
/// queued for it, oldest first).
async fn with_secrets<S: AsRef<str>>(h: &Harness, names: &[S]) -> (FakeAgent, FakeAgent) {
    let (a, b) = two_holders(h).await;
    let _: serde_json::Value = h
        .owner
        .post(
            "/v1/apps/app/environments",
            &serde_json::json!({"name": "dev"}),
        )
        .await
        .unwrap();
    for name in names {
        secret_for(h, &a, name.as_ref()).await;
    }
    (a, b)
}

#[tokio::test]
async fn a_poll_takes_up_to_max_jobs_oldest_first_and_each_only_once() {
    let h = Harness::start().await;
    let (a, b) = with_secrets(&h, &["V0", "V1", "V2", "V3"]).await;
    let names = |jobs: &[custody_proto::jobs::Job]| -> Vec<String> {
        jobs.iter()
            .map(|j| match &j.payload {
                JobPayload::SealSecretVariable { name, .. } => name.clone(),
                other => panic!("expected a seal job, got {other:?}"),
            })
            .collect()
    };
    let wait = Duration::from_secs(2);
    // Two at once, in queue order; then the rest, though more were asked for.
    let first = a.client.poll_jobs(wait, 2).await.unwrap();
    assert_eq!(names(&first), ["V0", "V1"]);
    let rest = a.client.poll_jobs(wait, 10).await.unwrap();
    assert_eq!(names(&rest), ["V2", "V3"]);
    // Handed out once: nothing left for A, and none of A's jobs for B.
    assert!(
        a.client
            .poll_jobs(Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        b.client
            .poll_jobs(Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Every job of a batch is leased: each is answered and the variables seal.
    for job in first.iter().chain(&rest) {
        let ack = a.answer(job, a.output_for(job)).await.unwrap();
        assert!(ack.accepted && !ack.duplicate);
    }
    let env: custody_proto::apps::Environment =
        h.owner.get("/v1/apps/app/environments/dev").await.unwrap();
    let sealed = env
        .variables
        .iter()
        .filter(|v| v.state.as_deref() == Some("sealed"))
        .count();
    assert_eq!(sealed, 4);
}

#[tokio::test]
async fn a_poll_without_max_takes_one_job_and_max_is_capped() {
    let h = Harness::start().await;
    let (a, _b) = with_secrets(&h, &(0..34).map(|i| format!("V{i}")).collect::<Vec<_>>()).await;
    // The plain poll (no `max`) an older agent sends: one job.
    let one = a.poll(2).await.unwrap();
    assert_eq!(one.payload.kind(), JobKind::SealSecretVariable);
    // `max` above the cap gets the cap (32), `max=0` counts as 1.
    let many = a
        .client
        .poll_jobs(Duration::from_secs(2), 1000)
        .await
        .unwrap();
    assert_eq!(many.len(), 32);
    let last = a.client.poll_jobs(Duration::from_secs(2), 0).await.unwrap();
    assert_eq!(last.len(), 1);
}

fn batched(job: &custody_proto::jobs::Job, output: JobOutput) -> BatchedResult {
    BatchedResult {
        job_id: job.id.clone(),
        idempotency_key: job.idempotency_key.clone(),
        attempt: job.attempt,
        outcome: Outcome::Succeeded { output },
    }
}

#[tokio::test]
async fn a_batch_of_results_records_the_good_ones_and_refuses_the_bad_alone() {
    let h = Harness::start().await;
    let (a, _b) = with_secrets(&h, &["V0", "V1", "V2"]).await;
    let jobs = a.client.poll_jobs(Duration::from_secs(2), 3).await.unwrap();
    assert_eq!(jobs.len(), 3);
    let mut unknown = batched(&jobs[0], a.output_for(&jobs[0]));
    unknown.job_id = "job_doesnotexist".into();
    let batch = vec![
        batched(&jobs[0], a.output_for(&jobs[0])),
        // The wrong type of output for a seal job.
        batched(
            &jobs[1],
            JobOutput::Deploy {
                already_installed: false,
            },
        ),
        unknown,
        batched(&jobs[2], a.output_for(&jobs[2])),
    ];
    let acks = a.client.job_results(batch.clone()).await.unwrap();
    let fate: Vec<(bool, bool, Option<ErrorCode>)> = acks
        .iter()
        .map(|k| (k.accepted, k.duplicate, k.error.as_ref().map(|e| e.code)))
        .collect();
    assert_eq!(
        fate,
        [
            (true, false, None),
            (false, false, Some(ErrorCode::InvalidInput)),
            (false, false, Some(ErrorCode::NotFound)),
            (true, false, None),
        ]
    );
    assert_eq!(acks[1].job_id, jobs[1].id);
    let states = |env: &custody_proto::apps::Environment| -> Vec<Option<String>> {
        env.variables.iter().map(|v| v.state.clone()).collect()
    };
    let env: custody_proto::apps::Environment =
        h.owner.get("/v1/apps/app/environments/dev").await.unwrap();
    let mut seen = states(&env);
    seen.sort();
    assert_eq!(
        seen,
        [
            Some("sealed".to_string()),
            Some("sealed".to_string()),
            Some("sealing".to_string())
        ],
        "the refused result changed nothing; the others stand"
    );
    // The refused job is still open; the right answer is taken later, and
    // the batch sent again finds its recorded results duplicates.
    let ack = a.answer(&jobs[1], a.output_for(&jobs[1])).await.unwrap();
    assert!(ack.accepted);
    let again = a.client.job_results(batch).await.unwrap();
    assert!(again[0].duplicate && again[3].duplicate && again[1].duplicate);
    // The audit log has each recorded result once, and the refused ones
    // left no gap in the chain.
    let audit = h.owner.get_text("/v1/audit").await.unwrap();
    let lines: Vec<&str> = audit.lines().filter(|l| !l.trim().is_empty()).collect();
    let (_checkpoint, entries) = lines.split_last().unwrap();
    let entries: Vec<custody_proto::audit::AuditEntry> = entries
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    custody_proto::audit::verify_chain(&entries, 1, custody_proto::audit::GENESIS_HASH).unwrap();
    let ok_results = entries
        .iter()
        .filter(|e| e.action == "job.result" && e.result == "ok")
        .count();
    assert_eq!(
        ok_results,
        2 + 3,
        "two master-key jobs, then the three seals"
    );
}

#[tokio::test]
async fn a_batch_over_the_limit_is_refused_whole() {
    let h = Harness::start().await;
    let (a, _b) = two_holders(&h).await;
    let job = custody_proto::jobs::Job {
        protocol: custody_proto::PROTOCOL_VERSION,
        id: "job_x".into(),
        attempt: 1,
        idempotency_key: "job_x".into(),
        issued_at_ms: 0,
        lease_expires_at_ms: 0,
        payload: JobPayload::CreateMasterKey {
            account: "x".into(),
            master_key_id: "mk_x".into(),
            key_managers: vec![],
        },
    };
    let batch = vec![
        batched(
            &job,
            JobOutput::Deploy {
                already_installed: false
            }
        );
        65
    ];
    let e = a.client.job_results(batch).await.unwrap_err();
    assert_eq!(e.status(), Some(413), "{e}");
}
