#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `custody-agent enroll` against a real coordinator: the credential is
//! stored 0600 and the server registered with its key and OAEP hashes; a
//! wrong CA pin, an unreachable coordinator and a bad join token each give
//! one clear line, and none of them spends the token.

mod flow_common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Output;

use flow_common::{Agent, AgentOptions, Coordinator, Keystore};

fn one_line_error(out: &Output, want: &str) {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("custody-agent: "))
        .collect();
    assert_eq!(ours.len(), 1, "stderr: {stderr}");
    assert!(ours[0].contains(want), "{want:?} not in {:?}", ours[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enroll_stores_a_private_credential_and_refuses_bad_input() {
    let c = Coordinator::start().await;
    let mut a = Agent::new("enrollee", &AgentOptions::new(Keystore::Soft));
    let token = c.join_token().await;

    let out = a.enroll_with(&c.url, &"00".repeat(32), &token, "key_manager");
    one_line_error(&out, "does not chain to the pinned CA fingerprint");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let out = a.enroll_with(
        &format!("https://127.0.0.1:{port}"),
        &c.fp,
        &token,
        "key_manager",
    );
    one_line_error(&out, "cannot reach the coordinator");

    let out = a.enroll_with(
        &c.url,
        &c.fp,
        &format!("cjt_{}", "A".repeat(43)),
        "key_manager",
    );
    one_line_error(&out, "refused the join token");

    let out = a.enroll_with(&c.url, &c.fp, &token, "key_manager,bogus");
    assert!(!out.status.success());

    // The token was not spent by the failures.
    let out = a.enroll_with(&c.url, &c.fp, &token, "key_manager,target");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let server_id = line.split_whitespace().nth(2).unwrap().to_owned();
    a.server_id = server_id.clone();

    let cred = a.state.join("credential.json");
    let mode = std::fs::metadata(&cred).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&cred).unwrap()).unwrap();
    assert_eq!(stored["server_id"], server_id.as_str());
    assert_eq!(stored["coordinator_url"], c.url.as_str());
    assert!(stored["credential"].as_str().unwrap().starts_with("cst_"));

    let s = c.server(&server_id).await;
    assert_eq!(s.name, "enrollee");
    assert_eq!(s.roles.len(), 2);
    // The soft keystore unwraps both hashes, strongest first.
    assert_eq!(
        s.oaep_hashes,
        vec![
            custody_envelope::OaepHash::Sha256,
            custody_envelope::OaepHash::Sha1
        ]
    );
    assert!(line.contains(&s.key_fingerprint), "{line}");
    assert_eq!(stored["key_thumbprint"], s.key_fingerprint.as_str());

    // A second enrollment is refused, and the token is spent anyway.
    let out = a.enroll_with(&c.url, &c.fp, &c.join_token().await, "key_manager");
    one_line_error(&out, "already enrolled as");
    let mut b = Agent::new("second", &AgentOptions::new(Keystore::Soft));
    let out = b.enroll_with(&c.url, &c.fp, &token, "key_manager");
    one_line_error(&out, "refused the join token");
    b.server_id.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_refuses_a_key_other_than_the_enrolled_one() {
    let c = Coordinator::start().await;
    let mut a = Agent::new("rekeyed", &AgentOptions::new(Keystore::Soft));
    a.enroll(&c, "key_manager").await;
    let enrolled = c.server(&a.server_id).await.key_fingerprint;
    // The key file is gone (a re-initialised token, a lost disk): the soft
    // keystore makes a new key, which `run` must refuse before it runs.
    std::fs::remove_file(a.state.join("soft-key.pem")).unwrap();
    let mut child = a
        .command(&["run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("run did not refuse the new key within 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    one_line_error(&out, "is not the key this server enrolled with");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("({enrolled})")), "{stderr}");
}
