#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real binary: init prints the CA fingerprint and owner token; `run`
//! notifies systemd; SIGKILL and restart lose nothing; SIGTERM drains.

mod common;
use custody_client::{Client, ClientConfig};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_custody-coordinator");

fn init(state: &std::path::Path) -> (String, String) {
    let out = Command::new(BIN)
        .args(["init", "--state-dir"])
        .arg(state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .split_whitespace()
            .last()
            .unwrap()
            .to_string()
    };
    (field("ca fingerprint:"), field("owner token:"))
}

fn run(state: &std::path::Path, notify: Option<&std::path::Path>) -> (Child, String) {
    run_on(state, notify, "127.0.0.1:0", &[])
}

fn run_on(
    state: &std::path::Path,
    notify: Option<&std::path::Path>,
    listen: &str,
    env: &[(&str, &str)],
) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "run",
        "--listen",
        listen,
        "--metrics-listen",
        "127.0.0.1:0",
        "--state-dir",
    ])
    .arg(state);
    if let Some(n) = notify {
        cmd.env("NOTIFY_SOCKET", n);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.split_whitespace().nth(2).unwrap().to_string();
    (child, format!("https://{addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_restart_and_graceful_stop() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (fp, token) = init(&state);
    assert_eq!(fp.len(), 64);
    // A second init refuses to touch an initialised state dir.
    assert!(
        !Command::new(BIN)
            .args(["init", "--state-dir"])
            .arg(&state)
            .output()
            .unwrap()
            .status
            .success()
    );

    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut child, url) = run(&state, Some(&sock_path));
    let mut buf = [0u8; 64];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");

    let c = Client::new(ClientConfig::new(&url, Some(&fp), Some(&token))).unwrap();
    let _: serde_json::Value = c
        .post(
            "/v1/users",
            &serde_json::json!({"name": "dana", "roles": ["deployer"]}),
        )
        .await
        .unwrap();
    let jt: custody_proto::servers::JoinToken = c
        .post("/v1/servers/join-tokens", &serde_json::json!({}))
        .await
        .unwrap();
    // A wrong pin is refused by the client before any request is sent.
    let wrong = Client::new(ClientConfig::new(
        &url,
        Some(&"00".repeat(32)),
        Some(&token),
    ))
    .unwrap();
    assert!(matches!(
        wrong
            .get::<serde_json::Value>("/v1/info")
            .await
            .unwrap_err(),
        custody_client::ClientError::Transport { .. }
    ));

    // SIGKILL: no chance to flush anything.
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, url) = run(&state, Some(&sock_path));
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    let c = Client::new(ClientConfig::new(&url, Some(&fp), Some(&token))).unwrap();
    let users: Vec<custody_proto::admin::User> = c.get("/v1/users").await.unwrap();
    assert!(users.iter().any(|u| u.name == "dana"));
    // The join token made before the crash still works, once.
    let anon = Client::new(ClientConfig::new(&url, Some(&fp), None)).unwrap();
    let mut req = custody_proto::fixtures::load_value("agent/enroll_request.json").unwrap();
    req["join_token"] = jt.token.into();
    req["public_key_pem"] = common::key_pem(0).into();
    let _: serde_json::Value = anon.post("/v1/agent/enroll", &req).await.unwrap();
    let audit = c.get_text("/v1/audit").await.unwrap();
    assert!(audit.contains("user.create") && audit.contains("server.enroll"));

    // SIGTERM: STOPPING=1, then a clean exit.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn watchdog_pings_at_half_the_interval_and_not_for_another_pid() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    init(&state);
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];

    // WATCHDOG_USEC 0.4 s: a ping every 0.2 s after READY.
    let (mut child, _) = run_on(
        &state,
        Some(&sock_path),
        "127.0.0.1:0",
        &[("WATCHDOG_USEC", "400000")],
    );
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    for _ in 0..3 {
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // WATCHDOG_PID names another process: the watchdog is not ours.
    let (mut child, _) = run_on(
        &state,
        Some(&sock_path),
        "127.0.0.1:0",
        &[("WATCHDOG_USEC", "400000"), ("WATCHDOG_PID", "1")],
    );
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    sock.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    assert!(sock.recv(&mut buf).is_err(), "pinged for another pid");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn example_config_parses_and_bad_ones_are_refused() {
    use custody_coordinator::config::{Config, ConfigError};
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/coordinator.toml");
    let c = Config::load(&p).unwrap();
    assert_eq!(c.jobs.key_manager_deadline_seconds, 30);
    let f = std::path::Path::new("x.toml");
    assert!(matches!(
        Config::parse("state_dir = \"/x\"\nlisten_addr = \"1.2.3.4:1\"\n", f),
        Err(ConfigError::Parse { .. })
    ));
    assert!(matches!(
        Config::parse(
            "state_dir = \"/x\"\nlisten = \"0.0.0.0:80\"\ninsecure_plain_http = true\n",
            f
        ),
        Err(ConfigError::PlainHttpNotLoopback(_))
    ));
    assert!(matches!(
        Config::parse("state_dir = \"/x\"\nmetrics_listen = \"0.0.0.0:9\"\n", f),
        Err(ConfigError::MetricsNotLoopback(_))
    ));
    assert!(matches!(
        Config::parse("state_dir = \"/x\"\n[jobs]\nmax_attempts = 0\n", f),
        Err(ConfigError::Zero(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_hand_out_and_result_loses_nothing_and_does_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (fp, token) = init(&state);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let (mut child, url) = run_on(&state, None, &listen, &[]);
    let h = common::Harness::light(&url, &fp, &token, tempfile::tempdir().unwrap());
    let a = h.key_manager("km-a", 0).await;
    let job = a.poll(5).await.expect("create master key job");
    assert!(matches!(
        job.payload,
        custody_proto::jobs::JobPayload::CreateMasterKey { .. }
    ));

    // Crash with the job handed out and not answered, then come back.
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, _) = run_on(&state, None, &listen, &[]);

    let ack = a.answer(&job, a.output_for(&job)).await.unwrap();
    assert!(ack.accepted && !ack.duplicate);
    let st: custody_proto::servers::MasterKeyStatus = h.owner.get("/v1/master-key").await.unwrap();
    assert_eq!(
        (st.state.as_str(), st.holders.clone()),
        ("active", vec![a.id.clone()])
    );
    let jobs = h.jobs().await;
    let j = jobs.iter().find(|j| j["id"] == job.id.as_str()).unwrap();
    assert_eq!(
        (j["state"].as_str(), j["attempts"].as_u64()),
        (Some("done"), Some(1))
    );
    assert!(a.poll(1).await.is_none(), "nothing is handed out twice");
    assert!(a.answer(&job, a.output_for(&job)).await.unwrap().duplicate);
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());
}
