//! Tampering with what the coordinator stores, as someone holding its
//! disk would: one byte of a stored package flipped; another release's
//! package, another release's sealed release key, or another deployment's
//! wrapped deploy key swapped in through the SQLite file; and a release
//! signed with a publisher key the target does not pin. Every deploy fails
//! with a reason, nothing is written at its destination and the target's
//! staging dir is empty; an untouched release still deploys. Soft
//! keystores: the keys are not the point.

use custody_e2e::{Cluster, ClusterOptions, Publisher, Pushed, eventually, release};
use custody_proto::apps::DeploymentState;

async fn push_to(cl: &Cluster, dest: &str, publisher: &Publisher) -> Pushed {
    let root = &cl.target().unwrap().install_root;
    let (tar, manifest) = release::app_package(
        &root.join(dest),
        &[("index.html", format!("{dest}\n").as_bytes())],
        None,
    )
    .unwrap();
    release::push(&cl.c, "web", &tar, manifest.as_bytes(), publisher)
        .await
        .unwrap()
}

/// Waits for deployment `id`; asserts it failed with `code` and that
/// nothing is at `dest` and the staging dir is empty. Returns the reason.
async fn failed(cl: &Cluster, id: &str, dest: &str, code: &str) -> String {
    let done = cl.c.finished(id).await.unwrap();
    assert_eq!(done.state, DeploymentState::Failed, "{done:?}");
    let reason = done
        .reason
        .clone()
        .or_else(|| done.targets.first().and_then(|t| t.reason.clone()))
        .unwrap_or_default();
    assert!(reason.contains(code), "{code} not in {reason:?}");
    let t = cl.target().unwrap();
    assert!(!t.install_root.join(dest).exists(), "{dest} was written");
    assert!(t.staging_entries().is_empty(), "{:?}", t.staging_entries());
    reason
}

/// Deploys `release` and checks it is [`failed`]; returns the deployment
/// id and the reason.
async fn refused(cl: &Cluster, release: &str, dest: &str, code: &str) -> (String, String) {
    let d = cl.c.deploy("web", release, "dev").await.unwrap();
    let reason = failed(cl, &d.id, dest, code).await;
    (d.id, reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_swapped_and_unpinned_releases_are_refused() {
    let mut cl = Cluster::start(&ClusterOptions::default()).await.unwrap();
    let c = &cl.c;
    let target = cl.target().unwrap().server_id.clone();
    c.create_app("web", true).await.unwrap();
    c.environment("web", "dev", &[&target]).await.unwrap();

    // One byte of the stored package flipped on disk.
    let flipped = push_to(&cl, "flipped", &cl.publisher).await;
    let file = c.artifact_file(&flipped.sha256).unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    refused(&cl, &flipped.release_id, "flipped", "digest_mismatch").await;

    // Another release's package swapped in (the row now names it).
    let victim = push_to(&cl, "victim", &cl.publisher).await;
    let other = push_to(&cl, "other", &cl.publisher).await;
    c.sql(&format!(
        "UPDATE releases SET package_sha256 = '{}', package_size = {} WHERE id = '{}'",
        other.sha256,
        other.package.len(),
        victim.release_id
    ))
    .await
    .unwrap();
    refused(&cl, &victim.release_id, "victim", "digest_mismatch").await;
    assert!(!cl.target().unwrap().install_root.join("other").exists());

    // Another release's sealed release key swapped in: the key manager
    // preparing the deployment finds it bound to the other release.
    let keyed = push_to(&cl, "keyed", &cl.publisher).await;
    let donor = push_to(&cl, "donor", &cl.publisher).await;
    let donor_key = c
        .sql(&format!(
            "SELECT sealed_release_key FROM releases WHERE id = '{}'",
            donor.release_id
        ))
        .await
        .unwrap();
    assert!(donor_key.starts_with("ey"), "{donor_key}");
    c.sql(&format!(
        "UPDATE releases SET sealed_release_key = '{donor_key}' WHERE id = '{}'",
        keyed.release_id
    ))
    .await
    .unwrap();
    let (_, reason) = refused(&cl, &keyed.release_id, "keyed", "binding").await;
    assert!(
        !reason.contains(&hex::encode(keyed.release_key)),
        "{reason}"
    );

    // Signed with a publisher key the target does not pin.
    let stranger = Publisher::from_seed(99);
    let unpinned = push_to(&cl, "unpinned", &stranger).await;
    let (unpinned_deployment, _) =
        refused(&cl, &unpinned.release_id, "unpinned", "unknown_publisher").await;

    // Another deployment's wrapped deploy key swapped in for this one's
    // (the target is stopped while the coordinator holds the job).
    let donor_wrap = cl
        .c
        .sql(&format!(
            "SELECT wrapped_deploy_key FROM deployment_targets WHERE deployment_id = '{unpinned_deployment}'"
        ))
        .await
        .unwrap();
    assert!(donor_wrap.starts_with("ey"), "{donor_wrap}");
    let swapped = push_to(&cl, "dk-swap", &cl.publisher).await;
    assert!(cl.targets[0].stop().await.unwrap().success());
    let d =
        cl.c.deploy("web", &swapped.release_id, "dev")
            .await
            .unwrap();
    let row = format!("deployment_id = '{}' AND server_id = '{target}'", d.id);
    let c = &cl.c;
    eventually(
        60,
        "the deploy key to be wrapped for the target",
        || async {
            let v = c
                .sql(&format!(
                    "SELECT wrapped_deploy_key FROM deployment_targets WHERE {row}"
                ))
                .await?;
            Ok((!v.is_empty()).then_some(()))
        },
    )
    .await
    .unwrap();
    c.sql(&format!(
        "UPDATE deployment_targets SET wrapped_deploy_key = '{donor_wrap}' WHERE {row}"
    ))
    .await
    .unwrap();
    cl.targets[0].start_live(&cl.c).await.unwrap();
    failed(&cl, &d.id, "dk-swap", "binding_mismatch").await;
    let c = &cl.c;

    // An untouched release still deploys: the refusals were the tampering's.
    let clean = push_to(&cl, "clean", &cl.publisher).await;
    let d = c.deploy("web", &clean.release_id, "dev").await.unwrap();
    let done = c.finished(&d.id).await.unwrap();
    let t = cl.target().unwrap();
    assert_eq!(
        done.state,
        DeploymentState::Succeeded,
        "{done:?}\n{}",
        t.log()
    );
    assert_eq!(
        std::fs::read(t.install_root.join("clean/index.html")).unwrap(),
        b"clean\n"
    );
    t.check_sandboxed().unwrap();
}
