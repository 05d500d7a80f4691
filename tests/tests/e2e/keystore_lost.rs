//! A key manager whose TPM restarts under it (swtpm here; a resource
//! manager or a network HSM in the field): the job that meets the lost
//! connection fails as retryable, the agent drains and exits with a failure
//! that says why — systemd's `Restart=on-failure` would start it again —
//! and, started again, it opens the TPM afresh and the job completes.

use custody_e2e::{Agent, AgentOptions, Coordinator, CoordinatorOptions, Keystore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_manager_whose_tpm_restarts_exits_and_serves_again_once_restarted() {
    let c = Coordinator::start_with(&CoordinatorOptions {
        key_manager_deadline_seconds: 3,
        ..CoordinatorOptions::default()
    })
    .await
    .unwrap();
    let mut km = Agent::new("km-tpm", &AgentOptions::key_manager(Keystore::Tpm)).unwrap();
    km.enroll(&c).await.unwrap();
    km.start_live(&c).await.unwrap();
    c.enable_key_manager(&km.server_id).await.unwrap();
    c.wait_holders(&[&km.server_id]).await.unwrap();
    c.create_app("app", false).await.unwrap();
    c.environment("app", "dev", &[]).await.unwrap();
    let keys = [km.key(&c).await.unwrap()];

    km.restart_swtpm().unwrap();
    // Sealing the variable is a job for the key manager, whose TPM
    // connection is gone: it fails the job, stops, and is started again.
    let seal = c.set_secret(&keys, "app", "dev", "API_TOKEN", "not-in-any-log-0123");
    let restart = async {
        let status = km.process().unwrap().wait_exit(60).await.unwrap();
        assert_eq!(status.code(), Some(1), "{status:?}\n{}", km.log());
        let log = km.log();
        assert!(
            log.contains("the keystore stopped serving this agent")
                && log.contains("TPM2_RSA_Decrypt: response code 0xa00")
                && log.contains("exiting so that the service manager restarts the agent"),
            "{log}"
        );
        km.start_live(&c).await.unwrap();
    };
    let (sealed, ()) = tokio::join!(seal, restart);
    sealed.unwrap();

    let jobs = c.jobs().await.unwrap();
    let job = jobs
        .iter()
        .find(|j| j["type"] == "seal_secret_variable")
        .unwrap();
    assert_eq!(job["state"], "done", "{job}");
    assert!(job["attempts"].as_u64().unwrap() >= 2, "{job}");
    let audit = c.audit().await.unwrap();
    assert!(
        audit.iter().any(|e| e["action"] == "job.result"
            && e["result"] == "failed"
            && e["detail"]["code"] == "keystore_failed"
            && e["detail"]["retryable"] == true),
        "{audit:#?}"
    );
    assert!(!km.log().contains("not-in-any-log-0123"));
}
