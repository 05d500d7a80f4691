//! Key managers come and go ("About Key Management Servers"): A and B hold
//! the master key; B is killed and removed → deploys still work; C joins
//! and learns the key from A; A is killed and removed → deploys work via
//! C; D joins and learns it from C; C and D are killed and removed → the
//! key is lost: E joins alone and makes a new one; the old release is
//! refused with an error that says the master key was lost, a release
//! pushed now deploys. The other side: E and a newcomer F merely stopped
//! (not removed) → nothing is lost, a deployment waits, and completes when
//! E returns. Soft keystores (fast; the keystore is not the point here).

use std::collections::HashSet;

use custody_e2e::{
    Agent, AgentOptions, Cluster, ClusterOptions, Coordinator, CoordinatorOptions, Keystore,
    Publisher, eventually, release,
};
use custody_proto::ErrorCode;
use custody_proto::apps::{DeploymentState, Release, ReleaseState};
use serde_json::Value;

/// Deploys `release` to dev; asserts success; returns who prepared it.
async fn deploy_ok(c: &Coordinator, release: &str, target: &Agent) -> String {
    let d = c.deploy("web", release, "dev").await.unwrap();
    let done = c.finished(&d.id).await.unwrap();
    assert_eq!(
        done.state,
        DeploymentState::Succeeded,
        "{done:?}\n{}",
        target.log()
    );
    let jobs = c.jobs_of(&d.id).await.unwrap();
    let prepare = jobs
        .iter()
        .find(|j| j["type"] == "prepare_deployment")
        .unwrap();
    prepare["done_by"].as_str().unwrap().to_owned()
}

/// Enrolls, starts and enables a new key manager; waits until it holds the
/// master key; returns it and the share (or create) job that gave it one.
async fn join(c: &Coordinator, name: &str, holders_after: &[&str]) -> (Agent, Value) {
    let before: HashSet<String> = ids(&c.jobs().await.unwrap());
    let mut a = Agent::new(name, &AgentOptions::key_manager(Keystore::Soft)).unwrap();
    a.enroll(c).await.unwrap();
    a.start_live(c).await.unwrap();
    c.enable_key_manager(&a.server_id).await.unwrap();
    let mut want: Vec<&str> = holders_after.to_vec();
    want.push(&a.server_id);
    c.wait_holders(&want).await.unwrap();
    let job = c
        .jobs()
        .await
        .unwrap()
        .into_iter()
        .find(|j| {
            !before.contains(j["id"].as_str().unwrap_or_default())
                && (j["type"] == "share_master_key" || j["type"] == "create_master_key")
                && j["state"] == "done"
        })
        .unwrap();
    (a, job)
}

fn ids(jobs: &[Value]) -> HashSet<String> {
    jobs.iter()
        .filter_map(|j| j["id"].as_str().map(str::to_owned))
        .collect()
}

async fn remove(c: &Coordinator, a: &mut Agent) {
    a.kill9();
    c.remove_server(&a.server_id).await.unwrap();
}

fn tar(root: &std::path::Path, body: &[u8]) -> (Vec<u8>, String) {
    release::app_package(&root.join("web"), &[("index.html", body)], None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_key_survives_rotation_and_outages_and_is_lost_only_by_removal() {
    let mut cl = Cluster::start(&ClusterOptions {
        coordinator: CoordinatorOptions {
            liveness_window_seconds: 6,
            ..CoordinatorOptions::default()
        },
        ..ClusterOptions::default()
    })
    .await
    .unwrap();
    let c = &cl.c;
    let publisher: &Publisher = &cl.publisher;
    let t = &cl.targets[0];
    let root = t.install_root.clone();
    let (mut a, mut b) = {
        let mut kms = std::mem::take(&mut cl.kms).into_iter();
        (kms.next().unwrap(), kms.next().unwrap())
    };
    c.create_app("web", true).await.unwrap();
    c.environment("web", "dev", &[&t.server_id]).await.unwrap();
    let mk1 = c.master_key().await.unwrap().master_key_id.unwrap();
    let (pkg, manifest) = tar(&root, b"release one\n");
    let r1 = release::push(c, "web", &pkg, manifest.as_bytes(), publisher)
        .await
        .unwrap();
    deploy_ok(c, &r1.release_id, t).await;

    // B is killed and removed: A still holds the key; deploys work.
    remove(c, &mut b).await;
    let mk = c.master_key().await.unwrap();
    assert_eq!(mk.master_key_id.as_deref(), Some(mk1.as_str()));
    assert_eq!(mk.holders, vec![a.server_id.clone()]);
    assert_eq!(deploy_ok(c, &r1.release_id, t).await, a.server_id);

    // C joins and learns the key from A.
    let (mut kc, share) = join(c, "km-c", &[&a.server_id]).await;
    assert_eq!(share["type"], "share_master_key", "{share}");
    assert_eq!(share["done_by"], a.server_id.as_str(), "{share}");
    assert_eq!(
        c.master_key().await.unwrap().master_key_id.as_deref(),
        Some(mk1.as_str())
    );

    // A is killed and removed: deploys work through C.
    remove(c, &mut a).await;
    assert_eq!(deploy_ok(c, &r1.release_id, t).await, kc.server_id);

    // D joins and learns the key from C.
    let (mut kd, share) = join(c, "km-d", &[&kc.server_id]).await;
    assert_eq!(share["type"], "share_master_key", "{share}");
    assert_eq!(share["done_by"], kc.server_id.as_str(), "{share}");

    // C and D are killed and removed: nobody holds the key any more.
    remove(c, &mut kc).await;
    remove(c, &mut kd).await;
    let mk = c.master_key().await.unwrap();
    assert!(mk.holders.is_empty(), "{mk:?}");
    assert!(mk.lost.iter().any(|l| l == &mk1), "{mk:?}");

    // E joins alone and makes a new master key.
    let (mut ke, created) = join(c, "km-e", &[]).await;
    assert_eq!(created["type"], "create_master_key", "{created}");
    let mk2 = c.master_key().await.unwrap().master_key_id.unwrap();
    assert_ne!(mk2, mk1);

    // The old release cannot be deployed, and says why.
    let err = c
        .try_deploy("web", &r1.release_id, "dev")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::MasterKeyLost), "{err}");
    assert!(err.to_string().contains("lost"), "{err}");
    let old: Release = c
        .owner
        .get(&format!("/v1/releases/{}", r1.release_id))
        .await
        .unwrap();
    assert_eq!(old.state, ReleaseState::Undeployable);
    let why = old.undeployable_reason.unwrap_or_default();
    assert!(why.contains("master key") && why.contains("lost"), "{why}");

    // A release pushed now deploys.
    let (pkg, manifest) = tar(&root, b"release two\n");
    let r2 = release::push(c, "web", &pkg, manifest.as_bytes(), publisher)
        .await
        .unwrap();
    assert_eq!(deploy_ok(c, &r2.release_id, t).await, ke.server_id);
    assert_eq!(
        std::fs::read(root.join("web/index.html")).unwrap(),
        b"release two\n"
    );

    // The other side: F joins; then E and F are merely stopped (an outage,
    // not a removal). Nothing is lost; a deployment waits for them.
    let (mut kf, _) = join(c, "km-f", &[&ke.server_id]).await;
    for k in [&mut ke, &mut kf] {
        assert!(k.stop().await.unwrap().success(), "{}", k.log());
    }
    eventually(30, "E and F to count as gone", || async {
        Ok(
            (!c.server(&ke.server_id).await?.live && !c.server(&kf.server_id).await?.live)
                .then_some(()),
        )
    })
    .await
    .unwrap();
    let mk = c.master_key().await.unwrap();
    assert_eq!(mk.state, "active");
    assert_eq!(mk.master_key_id.as_deref(), Some(mk2.as_str()));
    assert!(mk.lost.iter().all(|l| l != &mk2), "{mk:?}");
    let mut holders = mk.holders.clone();
    holders.sort();
    let mut want = vec![ke.server_id.clone(), kf.server_id.clone()];
    want.sort();
    assert_eq!(holders, want);
    // A push needs a live holder: refused for now, not "lost".
    let refused = c
        .owner
        .post::<_, Value>("/v1/apps/web/releases", &serde_json::json!({}))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NoMasterKey), "{refused}");
    let d = c.deploy("web", &r2.release_id, "dev").await.unwrap();
    eventually(
        30,
        "the deployment's job to wait for a key manager",
        || async {
            let jobs = c.jobs_of(&d.id).await?;
            Ok(jobs.iter().any(|j| j["state"] == "waiting").then_some(()))
        },
    )
    .await
    .unwrap();
    assert_eq!(
        c.deployment(&d.id).await.unwrap().state,
        DeploymentState::InProgress
    );

    // E returns: the waiting deployment completes; pushing works again.
    ke.start_live(c).await.unwrap();
    let done = c.finished(&d.id).await.unwrap();
    assert_eq!(done.state, DeploymentState::Succeeded, "{done:?}");
    let (pkg, manifest) = tar(&root, b"release three\n");
    let r3 = release::push(c, "web", &pkg, manifest.as_bytes(), publisher)
        .await
        .unwrap();
    assert_eq!(deploy_ok(c, &r3.release_id, t).await, ke.server_id);
    assert_eq!(
        std::fs::read(root.join("web/index.html")).unwrap(),
        b"release three\n"
    );
    ke.check_sandboxed().unwrap();
    t.check_sandboxed().unwrap();
}
