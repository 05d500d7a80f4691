#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `custody-agent run` as a process: it notifies systemd (READY, WATCHDOG
//! at half of WATCHDOG_USEC, STOPPING), runs with every thread sandboxed
//! (when the tests run as root), reconnects after the coordinator went
//! away, reloads its log level and publisher keys on SIGHUP (and refuses
//! an invalid configuration), drains on SIGTERM; and it refuses to run as
//! root without the sandbox.

mod flow_common;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flow_common::{Agent, AgentOptions, Coordinator, Keystore, eventually, sandboxed, test_user};

/// Collects every datagram systemd would receive, in a thread (the
/// agent's sends are non-blocking: a full queue drops them, as it would if
/// systemd did not read).
struct NotifySink {
    seen: Arc<Mutex<Vec<String>>>,
}

impl NotifySink {
    fn bind(path: &std::path::Path) -> Self {
        let sock = UnixDatagram::bind(path).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok(n) = sock.recv(&mut buf) {
                s.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        NotifySink { seen }
    }

    fn count(&self, want: &str) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|m| m.lines().any(|l| l == want)).count()
    }

    async fn wait(&self, want: &str, n: usize, secs: u64) {
        eventually(secs, want, || async {
            (self.count(want) >= n).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_notifies_reconnects_reloads_and_drains() {
    let mut c = Coordinator::start().await;
    let mut opts = AgentOptions::new(Keystore::Soft);
    opts.target = true;
    let mut a = Agent::new("runtime", &opts);
    a.enroll(&c, "key_manager,target").await;

    let sock_path = a.root.path().join("notify.sock");
    let sink = NotifySink::bind(&sock_path);
    a.env
        .push(("NOTIFY_SOCKET".into(), sock_path.clone().into()));
    a.env.push(("WATCHDOG_USEC".into(), "1000000".into()));
    a.start();

    sink.wait("READY=1", 1, 20).await;
    // Watchdog pings at half the interval: 4 within 3 s.
    let t0 = Instant::now();
    let before = sink.count("WATCHDOG=1");
    sink.wait("WATCHDOG=1", before + 4, 5).await;
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());

    eventually(20, "the agent to be live", || async {
        c.server(&a.server_id).await.live.then_some(())
    })
    .await;

    if sandboxed() {
        // Every thread of the running agent: no capabilities, no new
        // privileges, seccomp filter, the service user.
        let (uid, gid) = test_user();
        let tasks = custody_agent::sandbox::proc_status::all_tasks(a.pid()).unwrap();
        assert!(
            tasks.len() > 2,
            "the runtime's threads exist: {}",
            tasks.len()
        );
        for (tid, s) in tasks {
            assert!(s.is_sandboxed_as(uid, gid), "thread {tid}: {s:?}");
        }
    }

    // The coordinator goes away and comes back on the same address.
    c.stop().await;
    let log_has = |a: &Agent, s: &str| a.log().contains(s);
    eventually(30, "the agent to notice", || async {
        log_has(&a, "lost the coordinator").then_some(())
    })
    .await;
    assert!(a.running());
    c.restart().await;
    let before = a.log().matches("connected to the coordinator").count();
    eventually(90, "the agent to reconnect", || async {
        (a.log().matches("connected to the coordinator").count() > before).then_some(())
    })
    .await;
    eventually(20, "the agent to be live again", || async {
        c.server(&a.server_id).await.live.then_some(())
    })
    .await;

    // SIGHUP with a new log level and publisher key: applied.
    let cfg = std::fs::read_to_string(&a.config).unwrap();
    let key = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[3; 32])
            .verifying_key()
            .as_bytes(),
    );
    let changed = cfg
        .replace("level = \"debug\"", "level = \"info\"")
        .replace(
            "publisher_keys = []",
            &format!("publisher_keys = [\"{key}\"]"),
        );
    assert_ne!(changed, cfg);
    std::fs::write(&a.config, &changed).unwrap();
    a.signal("HUP");
    eventually(10, "the reload", || async {
        log_has(&a, "configuration reloaded").then_some(())
    })
    .await;
    let reloaded = a.log();
    let line = reloaded
        .lines()
        .find(|l| l.contains("configuration reloaded"))
        .unwrap();
    assert!(
        line.contains("publisher_keys=1") && line.contains("log_level=info"),
        "{line}"
    );
    // An invalid configuration changes nothing.
    std::fs::write(&a.config, format!("{changed}\n[nonsense]\n")).unwrap();
    a.signal("HUP");
    eventually(10, "the refused reload", || async {
        log_has(&a, "reload refused").then_some(())
    })
    .await;
    assert!(a.running());

    // SIGTERM: STOPPING=1, clean exit.
    let status = a.stop();
    assert!(status.success(), "{status}\n{}", a.log());
    sink.wait("STOPPING=1", 1, 5).await;
    // A reload said so (RELOADING=1, then READY=1 again).
    assert_eq!(sink.count("RELOADING=1"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_root_without_the_sandbox_and_a_missing_credential() {
    let mut opts = AgentOptions::new(Keystore::Soft);
    opts.extra = String::new();
    let a = Agent::new("norun", &opts);
    // Not enrolled: one clear line.
    let out = a.output(&["run"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("run `custody-agent enroll` first"), "{err}");
    if sandboxed() {
        let cfg = std::fs::read_to_string(&a.config).unwrap();
        let start = cfg.find("[sandbox]").unwrap();
        let end = cfg[start..].find("\n\n").map_or(cfg.len(), |e| start + e);
        let unsandboxed = format!(
            "{}[sandbox]\nenabled = false\n{}",
            &cfg[..start],
            &cfg[end..]
        );
        std::fs::write(&a.config, unsandboxed).unwrap();
        let out = a.output(&["run"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("refusing to run as root"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_check_proves_the_configured_plan() {
    if !sandboxed() {
        eprintln!("skipped: sandbox-check switches to the service user and needs root");
        return;
    }
    let c = Coordinator::start().await;
    let mut a = Agent::new("checked", &AgentOptions::new(Keystore::Soft));
    a.enroll(&c, "key_manager").await;
    a.give_to_service_user();
    let out = a.output(&["sandbox-check"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains("main plan, service user custody-test"),
        "{table}"
    );
    assert!(table.contains("/etc/shadow"), "{table}");
    // The coordinator's port is the one TCP port the plan allows.
    assert!(table.contains(&format!("{}", c.port())), "{table}");
}
