//! The agent's sandbox, proved on `custody-agent run` doing real work
//! (issue 7): an agent that is both key manager and target (soft keystore:
//! the keystore's own threads are covered by the agent's tests) serves
//! key-manager jobs and installs a release with a hook; then, for every
//! thread of both its processes — the main one and the installer child —
//! `/proc/PID/task/*/status` shows no capability in CapEff, CapPrm, CapBnd
//! (nor CapInh, CapAmb), NoNewPrivs 1, Seccomp 2 and the service user's
//! uids. `custody-agent sandbox-check --config …` passes. A SIGSEGV leaves
//! no core file: both processes have RLIMIT_CORE 0 (hard), are not
//! dumpable (their /proc files belong to root), the kernel reports no core
//! dumped, and no core file appears in the agent's cwd (its state dir,
//! writable by it) or anywhere in its directories — whatever the system's
//! core_pattern. And a configuration requiring a Landlock ABI this kernel
//! lacks is refused at start with a clear message.

use std::os::unix::process::ExitStatusExt as _;

use custody_e2e::proc_status::{self, ThreadStatus};
use custody_e2e::service_user::{self, SERVICE_USER};
use custody_e2e::{Agent, AgentOptions, Coordinator, Keystore, Publisher, Role, files, release};
use custody_proto::apps::DeploymentState;
use rustix::process::Signal;

fn check_threads(what: &str, pid: u32, uid: u32, gid: u32) -> Vec<ThreadStatus> {
    let threads = proc_status::threads(pid).unwrap();
    assert!(!threads.is_empty(), "{what}: no threads");
    for t in &threads {
        assert_eq!(t.cap_eff, 0, "{what} thread {}: CapEff", t.tid);
        assert_eq!(t.cap_prm, 0, "{what} thread {}: CapPrm", t.tid);
        assert_eq!(t.cap_bnd, 0, "{what} thread {}: CapBnd", t.tid);
        assert_eq!((t.cap_inh, t.cap_amb), (0, 0), "{what} thread {}", t.tid);
        assert_eq!(t.no_new_privs, 1, "{what} thread {}: NoNewPrivs", t.tid);
        assert_eq!(t.seccomp, 2, "{what} thread {}: Seccomp", t.tid);
        assert_eq!(t.uids, vec![uid; 4], "{what} thread {}: Uid", t.tid);
        assert_eq!(t.gids, vec![gid; 4], "{what} thread {}: Gid", t.tid);
    }
    threads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_thread_of_both_processes_is_sandboxed_sandbox_check_passes_and_sigsegv_dumps_no_core()
 {
    if !service_user::running_as_root() {
        eprintln!("skipped: the sandbox switches to {SERVICE_USER}, which needs root");
        return;
    }
    let (uid, gid) = service_user::service_ids().unwrap();
    let c = Coordinator::start().await.unwrap();
    let publisher = Publisher::from_seed(7);
    let mut km = Agent::new("km", &AgentOptions::key_manager(Keystore::Soft)).unwrap();
    let mut opts = AgentOptions::target(Keystore::Soft, &[publisher.pin()]);
    opts.role = Role::Both;
    let mut a = Agent::new("subject", &opts).unwrap();
    // The subject is enabled first: it creates the master key and shares
    // it with the other key manager (key-manager jobs it must do).
    for x in [&mut a, &mut km] {
        x.enroll(&c).await.unwrap();
        x.start_live(&c).await.unwrap();
        c.enable_key_manager(&x.server_id).await.unwrap();
        c.wait_holders(&[&x.server_id]).await.unwrap();
    }

    // Real work under the sandbox: key-manager jobs and an install with a hook.
    c.create_app("web", true).await.unwrap();
    c.environment("web", "dev", &[&a.server_id]).await.unwrap();
    let (tar, manifest) = release::app_package(
        &a.install_root.join("web"),
        &[("index.html", b"sandboxed\n")],
        Some("id -u > hook-uid"),
    )
    .unwrap();
    let r = release::push(&c, "web", &tar, manifest.as_bytes(), &publisher)
        .await
        .unwrap();
    let d = c.deploy("web", &r.release_id, "dev").await.unwrap();
    let done = c.finished(&d.id).await.unwrap();
    assert_eq!(
        done.state,
        DeploymentState::Succeeded,
        "{done:?}\n{}",
        a.log()
    );
    let web = a.install_root.join("web");
    assert_eq!(
        std::fs::read(web.join("index.html")).unwrap(),
        b"sandboxed\n"
    );
    // The hook ran as the service user.
    assert_eq!(
        std::fs::read_to_string(web.join("hook-uid"))
            .unwrap()
            .trim(),
        uid.to_string()
    );
    let jobs = c.jobs().await.unwrap();
    for kind in ["create_master_key", "share_master_key", "deploy"] {
        assert!(
            jobs.iter()
                .any(|j| j["done_by"] == a.server_id.as_str() && j["type"] == kind),
            "the subject did no {kind}: {jobs:#?}"
        );
    }

    // Every thread of both processes.
    let main = a.pid().unwrap();
    let installer = a.installer_pid().unwrap();
    let threads = check_threads("main", main, uid, gid);
    assert!(
        threads.len() > 1,
        "the runtime's threads: {}",
        threads.len()
    );
    check_threads("installer", installer, uid, gid);

    // sandbox-check with the agent's own configuration.
    let out = a.output(&["sandbox-check"]).await.unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains(SERVICE_USER) && table.contains("/etc/shadow"),
        "{table}"
    );

    // No core, whatever core_pattern says.
    for pid in [main, installer] {
        assert_eq!(proc_status::core_limit(pid).unwrap(), (Some(0), Some(0)));
        assert_eq!(
            proc_status::proc_owner(pid).unwrap(),
            0,
            "{pid} is dumpable"
        );
    }
    // Rust's runtime catches the first SIGSEGV (its stack-overflow
    // handler), restores the default action and returns; a later one is
    // fatal.
    let mut status = None;
    for _ in 0..10 {
        a.signal(Signal::SEGV).unwrap();
        if let Ok(s) = a.process().unwrap().wait_exit(1).await {
            status = Some(s);
            break;
        }
    }
    let status = status.expect("SIGSEGV did not end the agent");
    assert_eq!(status.signal(), Some(Signal::SEGV.as_raw()), "{status:?}");
    assert!(!status.core_dumped(), "{status:?}");
    custody_e2e::eventually(30, "the installer to exit with its parent", || async {
        Ok((!std::path::Path::new(&format!("/proc/{installer}")).exists()).then_some(()))
    })
    .await
    .unwrap();
    let cores: Vec<_> = files::walk(a.root())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("core"))
        })
        .collect();
    assert!(cores.is_empty(), "{cores:?}");
    km.check_sandboxed().unwrap();

    // A configuration requiring a newer Landlock than this kernel has: the
    // agent refuses to start, saying so.
    let kernel = custody_agent::sandbox::kernel_abi().unwrap_or(0);
    let cfg = std::fs::read_to_string(&a.config).unwrap();
    let line = cfg
        .lines()
        .find(|l| l.starts_with("landlock_min_abi"))
        .unwrap()
        .to_owned();
    std::fs::write(
        &a.config,
        cfg.replace(&line, &format!("landlock_min_abi = {}", kernel + 1)),
    )
    .unwrap();
    let out = a.output(&["run"]).await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("Landlock ABI {}", kernel + 1)) && err.contains(&kernel.to_string()),
        "{err}"
    );
}
