//! Failover: the key manager holding a job of a deployment is killed with
//! SIGKILL; the coordinator hands the job to the other key manager when its
//! deadline passes, the deployment completes, and the target installs it
//! exactly once (its `post_install` hook ran once). Soft keystores: which
//! keystore the dead key manager had is not the point.

use custody_e2e::{Cluster, ClusterOptions, CoordinatorOptions, eventually, release};
use custody_proto::apps::DeploymentState;
use rustix::process::Signal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_manager_killed_mid_deployment_fails_over_and_the_target_installs_once() {
    let mut cl = Cluster::start(&ClusterOptions {
        coordinator: CoordinatorOptions {
            key_manager_deadline_seconds: 3,
            liveness_window_seconds: 10,
            ..CoordinatorOptions::default()
        },
        ..ClusterOptions::default()
    })
    .await
    .unwrap();
    let (root, target) = {
        let t = cl.target().unwrap();
        (t.install_root.clone(), t.server_id.clone())
    };
    cl.c.create_app("web", true).await.unwrap();
    cl.c.environment("web", "dev", &[&target]).await.unwrap();
    let (tar, manifest) = release::app_package(
        &root.join("web"),
        &[("index.html", b"<h1>v1</h1>\n")],
        Some(&format!("echo ran >> {}/hook-runs.log", root.display())),
    )
    .unwrap();
    let r = release::push(&cl.c, "web", &tar, manifest.as_bytes(), &cl.publisher)
        .await
        .unwrap();

    // Freeze both key managers; the deployment's first key-manager job is
    // handed to one of them (its long poll was open) and stays unanswered.
    for km in &cl.kms {
        km.signal(Signal::STOP).unwrap();
    }
    let d = cl.c.deploy("web", &r.release_id, "dev").await.unwrap();
    let (job_id, holder) = eventually(10, "a key manager to hold the prepare job", || async {
        let jobs = cl.c.jobs_of(&d.id).await?;
        Ok(jobs
            .iter()
            .find(|j| j["type"] == "prepare_deployment" && j["state"] == "leased")
            .map(|j| {
                (
                    j["id"].as_str().unwrap_or_default().to_owned(),
                    j["assigned_server"].as_str().unwrap_or_default().to_owned(),
                )
            }))
    })
    .await
    .unwrap();
    let (dead, alive): (Vec<_>, Vec<_>) = cl.kms.iter_mut().partition(|k| k.server_id == holder);
    assert_eq!((dead.len(), alive.len()), (1, 1), "holder {holder}");
    let dead_id = dead[0].server_id.clone();
    dead.into_iter().for_each(|k| k.kill9());
    let alive_id = alive[0].server_id.clone();
    alive[0].signal(Signal::CONT).unwrap();

    // The other key manager takes over; the deployment completes.
    let done = cl.c.finished(&d.id).await.unwrap();
    let t = cl.target().unwrap();
    assert_eq!(
        done.state,
        DeploymentState::Succeeded,
        "{done:?}\n{}",
        t.log()
    );
    let jobs = cl.c.jobs_of(&d.id).await.unwrap();
    let prepare = jobs.iter().find(|j| j["id"] == job_id.as_str()).unwrap();
    assert_eq!(prepare["state"], "done", "{prepare}");
    assert_eq!(prepare["done_by"], alive_id.as_str(), "{prepare}");
    assert!(prepare["attempts"].as_u64().unwrap() >= 2, "{prepare}");
    let tried: Vec<&str> = prepare["tried"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(tried.contains(&dead_id.as_str()) && tried.contains(&alive_id.as_str()));
    // No job of this deployment was completed by the dead key manager.
    assert!(
        jobs.iter().all(|j| j["done_by"] != dead_id.as_str()),
        "{jobs:#?}"
    );
    let audit = cl.c.audit().await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "job.reassign"
                && e["object"] == format!("job:{job_id}").as_str()),
        "no job.reassign for {job_id}"
    );

    // Installed, exactly once.
    assert_eq!(
        std::fs::read(root.join("web/index.html")).unwrap(),
        b"<h1>v1</h1>\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("hook-runs.log")).unwrap(),
        "ran\n"
    );
    let deploys: Vec<_> = jobs.iter().filter(|j| j["type"] == "deploy").collect();
    assert_eq!(deploys.len(), 1, "{jobs:#?}");
    assert!(t.staging_entries().is_empty(), "{:?}", t.staging_entries());
    t.check_sandboxed().unwrap();
    cl.kms
        .iter()
        .find(|k| k.server_id == alive_id)
        .unwrap()
        .check_sandboxed()
        .unwrap();
}
