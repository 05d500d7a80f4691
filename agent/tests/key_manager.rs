#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Key managers doing their jobs as real processes, sandboxed where the
//! tests run as root: one agent on a SoftHSM2 token, one on a swtpm TPM.
//! Enabling the first creates the master key, the second learns it;
//! secret variables are sealed; a pushed release's key is re-wrapped; a
//! deployment is prepared and its deploy key wrapped for a target, which
//! installs it. A target never receives a key-manager job. Every thread of
//! every agent runs sandboxed (when the tests run as root).

mod flow_common;

use custody_proto::apps::{Deployment, DeploymentState, Release, ReleaseState};
use flow_common::release::{self, Publisher};
use flow_common::{Agent, AgentOptions, Coordinator, Keystore, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_managers_create_share_rewrap_seal_prepare_and_wrap() {
    let c = Coordinator::start().await;
    let mut hsm = Agent::new("km-hsm", &AgentOptions::new(Keystore::SoftHsm));
    let mut tpm = Agent::new("km-tpm", &AgentOptions::new(Keystore::Tpm));
    let publisher = Publisher::new(7);
    let mut target_opts = AgentOptions::new(Keystore::Soft);
    target_opts.target = true;
    target_opts.publisher_keys = vec![publisher.pin()];
    let mut target = Agent::new("target", &target_opts);

    hsm.enroll(&c, "key_manager").await;
    tpm.enroll(&c, "key_manager").await;
    target.enroll(&c, "target").await;
    // SoftHSM2 2.6 only does OAEP with SHA-1; the TPM key SHA-256.
    let hsm_server = c.server(&hsm.server_id).await;
    assert_eq!(
        hsm_server.oaep_hashes,
        vec![custody_envelope::OaepHash::Sha1]
    );
    let tpm_server = c.server(&tpm.server_id).await;
    assert_eq!(
        tpm_server.oaep_hashes,
        vec![custody_envelope::OaepHash::Sha256]
    );

    hsm.start();
    tpm.start();
    target.start();
    eventually(30, "all three agents to be live", || async {
        let mut live = true;
        for a in [&hsm, &tpm, &target] {
            live &= c.server(&a.server_id).await.live;
        }
        live.then_some(())
    })
    .await;

    // The first key manager creates MK; the second learns it.
    c.enable_key_manager(&hsm.server_id).await;
    let first = c.wait_holders(&[&hsm.server_id]).await;
    c.enable_key_manager(&tpm.server_id).await;
    let both = c.wait_holders(&[&hsm.server_id, &tpm.server_id]).await;
    assert_eq!(first.master_key_id, both.master_key_id);

    // A release: RK wrapped to both, sealed under MK by one of them.
    release::create_secure_app(&c, "web").await;
    let manifest = format!(
        "version = 1\ndestination = \"{}\"\ninclude = [\"hello.txt\"]\n",
        target.install_root.join("web").display()
    );
    let tar = release::tar_of(&[
        ("custody.toml", manifest.as_bytes(), 0o644),
        ("hello.txt", b"hello", 0o644),
    ]);
    let pushed = release::push(&c, "web", &tar, &publisher).await;
    let r: Release = c
        .owner
        .get(&format!("/v1/releases/{}", pushed.release_id))
        .await
        .unwrap();
    assert_eq!(r.state, ReleaseState::Deployable);

    // An environment with a plain and a secret variable.
    release::environment(&c, "web", "dev", &[&target.server_id]).await;
    release::set_plain(&c, "web", "dev", "MODE", "dev").await;
    let kms = [hsm.key(&c).await, tpm.key(&c).await];
    release::set_secret(&c, &kms, "web", "dev", "DB_PASSWORD", "s3cr3t-value").await;

    // Prepare + wrap the deploy key run on the key managers; the deploy
    // reaches the target.
    let d = release::deploy(&c, "web", &pushed.release_id, "dev").await;
    let done: Deployment = release::finished(&c, &d.id).await;
    assert_eq!(
        done.state,
        DeploymentState::Succeeded,
        "{done:?}\n{}",
        target.log()
    );
    assert_eq!(
        std::fs::read(target.install_root.join("web/hello.txt")).unwrap(),
        b"hello"
    );
    let log = release::log(&c, &d.id).await;
    let lines: Vec<&str> = log.iter().map(|l| l.line.as_str()).collect();
    assert!(
        lines.iter().any(|l| l.contains("decrypting the package")),
        "{done:?} {lines:?}"
    );
    // No secret value ever reaches the log.
    assert!(lines.iter().all(|l| !l.contains("s3cr3t-value")));
    assert!(
        target.staging_entries().is_empty(),
        "{:?}",
        target.staging_entries()
    );

    // Which job went where: the target got only its deploy.
    let jobs = c.jobs().await;
    let of = |server: &str| -> Vec<String> {
        jobs.iter()
            .filter(|j| j["assigned_server"] == server || j["done_by"] == server)
            .map(|j| j["type"].as_str().unwrap().to_owned())
            .collect()
    };
    let target_jobs = of(&target.server_id);
    assert_eq!(target_jobs, vec!["deploy".to_owned()], "{jobs:#?}");
    let mut km_jobs: Vec<String> = of(&hsm.server_id);
    km_jobs.extend(of(&tpm.server_id));
    for kind in [
        "create_master_key",
        "share_master_key",
        "rewrap_release_key",
        "seal_secret_variable",
        "prepare_deployment",
        "wrap_deploy_key",
    ] {
        assert!(
            km_jobs.iter().any(|k| k == kind),
            "{kind} not run: {km_jobs:?}"
        );
    }
    for j in &jobs {
        if j["type"] != "deploy" {
            assert_eq!(j["state"], "done", "{j}");
        }
    }

    // Every thread of every agent, the keystores' workers included, is
    // sandboxed: no capabilities, no new privileges, seccomp, service user.
    if flow_common::sandboxed() {
        let (uid, gid) = flow_common::test_user();
        for a in [&hsm, &tpm, &target] {
            let tasks = custody_agent::sandbox::proc_status::all_tasks(a.pid()).unwrap();
            for (tid, s) in tasks {
                assert!(
                    s.is_sandboxed_as(uid, gid),
                    "{} thread {tid}: {s:?}",
                    a.name
                );
            }
        }
    }

    // SIGTERM drains and exits cleanly.
    for a in [&mut hsm, &mut tpm, &mut target] {
        let status = a.stop();
        assert!(status.success(), "{}: {status}\n{}", a.name, a.log());
    }
}
