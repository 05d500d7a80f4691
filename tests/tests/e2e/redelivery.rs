//! A failed `post_install` hook leaves a clear failed status, and a
//! re-delivery of the same (deployment, target) does not install twice.
//! The coordinator's deploy deadline is shorter than the hook, so it
//! re-issues the deploy while the first attempt still runs; the first
//! attempt's failure is the result, and every later attempt must be
//! answered from the target's record without moving files or running the
//! hook again. Soft keystores: the keys are not the point.

use custody_e2e::{Cluster, ClusterOptions, CoordinatorOptions, eventually, release};
use custody_proto::apps::DeploymentState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_post_install_is_recorded_and_not_installed_again_on_redelivery() {
    let cl = Cluster::start(&ClusterOptions {
        coordinator: CoordinatorOptions {
            deploy_deadline_seconds: 3,
            ..CoordinatorOptions::default()
        },
        ..ClusterOptions::default()
    })
    .await
    .unwrap();
    let t = cl.target().unwrap();
    let root = t.install_root.clone();
    cl.c.create_app("web", true).await.unwrap();
    cl.c.environment("web", "dev", &[&t.server_id])
        .await
        .unwrap();
    let (tar, manifest) = release::app_package(
        &root.join("web"),
        &[("index.html", b"<h1>v1</h1>\n")],
        Some(&format!(
            "echo ran >> {}/hook-runs.log; sleep 4; echo giving up >&2; exit 3",
            root.display()
        )),
    )
    .unwrap();
    let r = release::push(&cl.c, "web", &tar, manifest.as_bytes(), &cl.publisher)
        .await
        .unwrap();
    let d = cl.c.deploy("web", &r.release_id, "dev").await.unwrap();
    let done = cl.c.finished(&d.id).await.unwrap();
    assert_eq!(done.state, DeploymentState::Failed, "{done:?}");
    let reason = done.targets[0].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("hook_failed") && reason.contains("post_install"),
        "{reason}"
    );

    // Wait until every hand-out of the deploy has been answered (the
    // first result counts, later ones are audited as duplicates).
    let job =
        cl.c.jobs_of(&d.id)
            .await
            .unwrap()
            .into_iter()
            .find(|j| j["type"] == "deploy")
            .unwrap();
    let job_id = job["id"].as_str().unwrap().to_owned();
    let object = format!("job:{job_id}");
    let attempts = eventually(60, "every deploy attempt to be answered", || async {
        let attempts =
            cl.c.jobs_of(&d.id)
                .await?
                .into_iter()
                .find(|j| j["id"] == job_id.as_str())
                .and_then(|j| j["attempts"].as_u64())
                .unwrap_or(0);
        let answered =
            cl.c.audit()
                .await?
                .iter()
                .filter(|e| e["action"] == "job.result" && e["object"] == object.as_str())
                .count() as u64;
        Ok((attempts >= 2 && answered == attempts).then_some(attempts))
    })
    .await
    .unwrap();
    assert!(attempts >= 2, "the deploy was re-delivered");

    // The hook ran once; the files stayed as the first attempt left them.
    assert_eq!(
        std::fs::read_to_string(root.join("hook-runs.log")).unwrap(),
        "ran\n",
        "{}",
        t.log()
    );
    assert_eq!(
        std::fs::read(root.join("web/index.html")).unwrap(),
        b"<h1>v1</h1>\n"
    );
    assert!(t.staging_entries().is_empty(), "{:?}", t.staging_entries());
    t.check_sandboxed().unwrap();
}
