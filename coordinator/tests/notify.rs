#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Email notifications against a real SMTP server (aiosmtpd) on loopback:
//! what approvers and the deployer are sent, in plain, STARTTLS and SMTPS
//! modes with authentication, a server that is down while state changes
//! happen (and a coordinator restart in between), and the refused
//! credentials file and plain-SMTP configurations. Webhooks are in
//! `notify_webhooks.rs`.

mod approval_support;
mod common;
use approval_support::*;
use common::*;
use custody_coordinator::config::{EmailConfig, SmtpSecurity};
use custody_proto::apps::DeploymentState as S;
use custody_proto::notify::{Delivery, DeliveryState};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn python() -> &'static str {
    // Debian's interpreter has python3-aiosmtpd; a pyenv shim on PATH may not.
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real SMTP server (aiosmtpd) writing each message to `dir` as JSON.
struct Smtp {
    child: Child,
}

impl Smtp {
    fn start(
        port: u16,
        dir: &Path,
        mode: &str,
        tls: Option<(&Path, &Path)>,
        auth: Option<(&str, &str)>,
    ) -> Smtp {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut cmd = Command::new(python());
        cmd.arg(script).arg(port.to_string()).arg(dir).arg(mode);
        if let Some((c, k)) = tls {
            cmd.arg(c).arg(k);
            if let Some((u, p)) = auth {
                cmd.arg(u).arg(p);
            }
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let s = Smtp { child };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the SMTP server did not start on port {port}");
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mails(dir: &Path) -> Vec<Value> {
    let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let v = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|x| x.1).collect()
}

async fn wait_mails(dir: &Path, n: usize) -> Vec<Value> {
    for _ in 0..300 {
        let m = mails(dir);
        if m.len() >= n {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {n} mails, got {:?}", mails(dir));
}

fn recipients(ms: &[Value]) -> Vec<String> {
    let mut r: Vec<String> = ms
        .iter()
        .flat_map(|m| {
            m["to"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
        })
        .collect();
    r.sort();
    r
}

/// The message as text: headers unfolded, body decoded (quoted-printable
/// or base64, whichever lettre chose).
fn text(raw: &str) -> String {
    use base64::Engine;
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let head = head.replace("\n ", " ").replace("\n\t", " ");
    let lower = head.to_ascii_lowercase();
    let body = if lower.contains("content-transfer-encoding: base64") {
        let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .unwrap(),
        )
        .unwrap()
    } else if lower.contains("content-transfer-encoding: quoted-printable") {
        let s = body.replace("=\n", "");
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'='
                && i + 2 < b.len()
                && let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16)
            {
                out.push(x);
                i += 3;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8(out).unwrap()
    } else {
        body.to_string()
    };
    format!("{head}\n\n{body}")
}

fn fast(c: &mut custody_coordinator::Config, port: u16, security: SmtpSecurity) {
    c.email = Some(EmailConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        security,
        from: "Custody <custody@example.test>".into(),
        credentials_file: None,
        ca_file: None,
        timeout_seconds: 2,
    });
    c.notifications.retry_initial_ms = 100;
    c.notifications.retry_max_ms = 300;
    c.notifications.max_attempts = 200;
    c.notifications.poll_interval_ms = 100;
    c.notifications.webhook_timeout_seconds = 2;
}

async fn notifications(h: &Harness, id: &str) -> Vec<Delivery> {
    h.owner
        .get(&format!("/v1/notifications?deployment={id}"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvers_get_the_command_and_link_and_the_deployer_hears_of_changes() {
    let port = free_port();
    let maildir = tempfile::tempdir().unwrap();
    let _smtp = Smtp::start(port, maildir.path(), "plain", None, None);
    let h = Harness::start_with(|c| fast(c, port, SmtpSecurity::Plain)).await;
    let w = world(&h).await;
    let alice = person(
        &h,
        "alice",
        &["approver"],
        Some("alice@example.test"),
        0xa1,
        true,
    )
    .await;
    let bob = person(
        &h,
        "bob",
        &["approver"],
        Some("bob@example.test"),
        0xb0,
        true,
    )
    .await;
    let carol = person(&h, "carol", &["approver"], None, 0xc0, true).await;
    // The deployer sets their own address.
    let u: custody_proto::admin::User = w
        .deployer
        .client
        .put(
            "/v1/users/dave/email",
            &json!({"email": "dave@example.test"}),
        )
        .await
        .unwrap();
    assert_eq!(u.email.as_deref(), Some("dave@example.test"));
    policy(
        &h,
        "ops",
        &[&alice, &bob, &carol],
        &["prod-idle"],
        1,
        false,
        3600,
    )
    .await;

    let d = deploy(&w, "prod-idle").await;
    let ms = wait_mails(maildir.path(), 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        mails(maildir.path()).len(),
        2,
        "only the two approvers with an address"
    );
    assert_eq!(recipients(&ms), ["alice@example.test", "bob@example.test"]);
    let link = format!("{}/deployments/{}", h.url, d.id);
    for m in &ms {
        assert_eq!(m["from"], "custody@example.test");
        let body = text(m["data"].as_str().unwrap());
        assert!(
            body.contains("Subject: [custody] approval needed: web"),
            "{body}"
        );
        assert!(
            body.contains(&format!("custody approve {}\n", d.id)),
            "{body}"
        );
        assert!(
            body.contains(&format!("custody approve {} --deploy", d.id)),
            "{body}"
        );
        assert!(body.contains(&link), "{body}");
        assert!(body.contains("environment:  prod-idle"), "{body}");
        assert!(body.contains("deployer:     dave"), "{body}");
        assert!(body.contains("idle-1 (srv_"), "{body}");
    }
    // A later state change reaches the deployer.
    approve_as(&h, &alice, &d.id, false).await.unwrap();
    let ms = wait_mails(maildir.path(), 3).await;
    let to_dave: Vec<_> = ms
        .iter()
        .filter(|m| m["to"][0] == "dave@example.test")
        .collect();
    assert_eq!(to_dave.len(), 1);
    let body = text(to_dave[0]["data"].as_str().unwrap());
    assert!(
        body.contains("is now approved (was pending_approval), by alice"),
        "{body}"
    );
    assert!(
        body.contains(&format!("custody deployments start {}", d.id)),
        "{body}"
    );
    let n = notifications(&h, &d.id).await;
    assert_eq!(n.len(), 3);
    assert!(
        n.iter()
            .all(|x| x.channel == "email" && x.state == DeliveryState::Sent && x.attempts == 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_server_that_is_down_blocks_nothing_and_loses_nothing() {
    let port = free_port();
    let maildir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(port, maildir.path(), "plain", None, None);
    let mut h = Harness::start_with(|c| fast(c, port, SmtpSecurity::Plain)).await;
    let w = world(&h).await;
    let alice = person(
        &h,
        "alice",
        &["approver"],
        Some("alice@example.test"),
        0xa1,
        true,
    )
    .await;
    let bob = person(
        &h,
        "bob",
        &["approver"],
        Some("bob@example.test"),
        0xb0,
        true,
    )
    .await;
    let _: Value = h
        .owner
        .put(
            "/v1/users/dave/email",
            &json!({"email": "dave@example.test"}),
        )
        .await
        .unwrap();
    policy(&h, "ops", &[&alice, &bob], &["prod-idle"], 1, false, 3600).await;
    smtp.kill();

    // State changes succeed at once while the mail server is down.
    let t0 = std::time::Instant::now();
    let d = deploy(&w, "prod-idle").await;
    decline_as(&alice, &d.id, "wrong day").await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(get(&h, &d.id).await.state, S::Declined);
    h.wait_for("failed attempts recorded", || async {
        let n = notifications(&h, &d.id).await;
        n.len() == 3
            && n.iter().all(|x| {
                x.state == DeliveryState::Pending && x.attempts >= 2 && x.last_error.is_some()
            })
    })
    .await;
    assert!(mails(maildir.path()).is_empty());

    // A coordinator restart loses nothing; the mail server comes back; all go out.
    h.restart().await;
    let _smtp = Smtp::start(port, maildir.path(), "plain", None, None);
    let ms = wait_mails(maildir.path(), 3).await;
    assert_eq!(
        recipients(&ms),
        [
            "alice@example.test",
            "bob@example.test",
            "dave@example.test"
        ]
    );
    let to_dave = ms
        .iter()
        .find(|m| m["to"][0] == "dave@example.test")
        .unwrap();
    let body = text(to_dave["data"].as_str().unwrap());
    assert!(body.contains("is now declined"), "{body}");
    assert!(body.contains("wrong day"), "{body}");
    h.wait_for("all sent", || async {
        notifications(&h, &d.id)
            .await
            .iter()
            .all(|x| x.state == DeliveryState::Sent)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_smtps_with_credentials_from_a_file() {
    let tlsdir = tempfile::tempdir().unwrap();
    custody_coordinator::tls::generate(tlsdir.path(), &["127.0.0.1".into()]).unwrap();
    let (cert, key, ca) = (
        tlsdir.path().join("server.pem"),
        tlsdir.path().join("server.key"),
        tlsdir.path().join("ca.pem"),
    );
    let creds = tlsdir.path().join("smtp-credentials");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&creds, "custody\ns3cret pass\n").unwrap();
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    for (mode, security) in [
        ("starttls", SmtpSecurity::Starttls),
        ("tls", SmtpSecurity::Tls),
    ] {
        let port = free_port();
        let maildir = tempfile::tempdir().unwrap();
        let _smtp = Smtp::start(
            port,
            maildir.path(),
            mode,
            Some((&cert, &key)),
            Some(("custody", "s3cret pass")),
        );
        let (ca2, creds2) = (ca.clone(), creds.clone());
        let h = Harness::start_with(move |c| {
            fast(c, port, security);
            let e = c.email.as_mut().unwrap();
            e.ca_file = Some(ca2);
            e.credentials_file = Some(creds2);
        })
        .await;
        let w = world(&h).await;
        let bob = person(
            &h,
            "bob",
            &["approver"],
            Some("bob@example.test"),
            0xb0,
            true,
        )
        .await;
        policy(&h, "ops", &[&bob], &["prod-idle"], 1, false, 3600).await;
        deploy(&w, "prod-idle").await;
        let ms = wait_mails(maildir.path(), 1).await;
        assert_eq!(ms[0]["to"][0], "bob@example.test", "{mode}");
        assert_eq!(ms[0]["tls"], true, "{mode}");
        assert_eq!(ms[0]["auth"], "custody", "{mode}");
    }
    // A credentials file others can read is refused at start.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut c = test_config(dir.path().join("state"));
    fast(&mut c, 1, SmtpSecurity::Starttls);
    c.email.as_mut().unwrap().credentials_file = Some(creds.clone());
    c.email.as_mut().unwrap().ca_file = Some(ca.clone());
    custody_coordinator::init::init(&c, "owner", &["127.0.0.1".into()])
        .await
        .unwrap();
    let e = custody_coordinator::server::start(c).await.err().unwrap();
    assert!(e.to_string().contains("chmod 600"), "{e}");
    // Plain SMTP to a non-loopback host is refused by the config.
    let bad = custody_coordinator::Config::parse(
        "state_dir = \"/x\"\n[email]\nhost = \"mail.example.com\"\nsecurity = \"plain\"\nfrom = \"a@b.c\"\n",
        Path::new("x.toml"),
    );
    assert!(matches!(
        bad,
        Err(custody_coordinator::config::ConfigError::PlainSmtpNotLoopback(_))
    ));
}
