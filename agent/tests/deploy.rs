#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Deploys end to end through real agents: two key managers prepare the
//! deployment and wrap its key; the target downloads, verifies, decrypts
//! and hands the package to its installer child, which installs it (files,
//! modes, hooks with the environment's variables, secrets redacted in the
//! streamed log) — exactly once, even when the coordinator re-delivers the
//! deploy. A release signed by an unpinned publisher, a tampered package,
//! and a wrapped deploy key of another deployment or for another server are
//! refused with a reason, leaving the staging dir empty and nothing
//! installed.

mod flow_common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use custody_envelope::jwe;
use custody_proto::apps::{Deployment, DeploymentState};
use flow_common::release::{self, Publisher};
use flow_common::{Agent, AgentOptions, Coordinator, Keystore, eventually};

/// Two soft key managers (enabled, holding MK) and a target pinning
/// `publisher`.
async fn cluster(c: &Coordinator, publisher: &Publisher) -> (Agent, Agent, Agent) {
    let mut a = Agent::new("km-a", &AgentOptions::new(Keystore::Soft));
    let mut b = Agent::new("km-b", &AgentOptions::new(Keystore::Soft));
    let mut opts = AgentOptions::new(Keystore::Soft);
    opts.target = true;
    opts.publisher_keys = vec![publisher.pin()];
    let mut t = Agent::new("target", &opts);
    a.enroll(c, "key_manager").await;
    b.enroll(c, "key_manager").await;
    t.enroll(c, "target").await;
    a.start();
    b.start();
    t.start();
    eventually(30, "the key managers to be live", || async {
        (c.server(&a.server_id).await.live && c.server(&b.server_id).await.live).then_some(())
    })
    .await;
    c.enable_key_manager(&a.server_id).await;
    c.enable_key_manager(&b.server_id).await;
    c.wait_holders(&[&a.server_id, &b.server_id]).await;
    (a, b, t)
}

/// [`cluster`] pinning `Publisher::new(7)`, and the secure app `web` with
/// a `dev` environment on the target where `MODE` is `dev`.
async fn web_dev(c: &Coordinator) -> (Publisher, Agent, Agent, Agent) {
    let publisher = Publisher::new(7);
    let (a, b, t) = cluster(c, &publisher).await;
    release::create_secure_app(c, "web").await;
    release::environment(c, "web", "dev", &[&t.server_id]).await;
    release::set_plain(c, "web", "dev", "MODE", "dev").await;
    (publisher, a, b, t)
}

fn manifest(root: &Path, pre_sleep: u32) -> String {
    format!(
        r#"version = 1
destination = "{dest}"
include = ["hello.txt", "secret.conf"]
env = ["MODE", "DB_PASSWORD"]

[[files]]
pattern = "secret.conf"
secret = true

[hooks.pre_install]
command = ["/bin/sh", "-c", "echo mode=$MODE password=$DB_PASSWORD; sleep {pre_sleep}"]

[hooks.post_install]
command = ["/bin/sh", "-c", "echo once >> {root}/installs.log; echo done with $DB_PASSWORD >&2"]
"#,
        dest = root.join("web").display(),
        root = root.display(),
    )
}

fn package(root: &Path, pre_sleep: u32, hello: &[u8]) -> Vec<u8> {
    let m = manifest(root, pre_sleep);
    release::tar_of(&[
        ("custody.toml", m.as_bytes(), 0o644),
        ("hello.txt", hello, 0o644),
        ("secret.conf", b"token=abc\n", 0o644),
    ])
}

async fn failed_with(c: &Coordinator, id: &str, code: &str) -> Deployment {
    let d = release::finished(c, id).await;
    assert_eq!(d.state, DeploymentState::Failed, "{d:?}");
    let reason = d.targets[0].reason.clone().unwrap_or_default();
    assert!(reason.contains(code), "{code} not in {reason:?}");
    d
}

fn nothing_installed(t: &Agent) {
    assert!(!t.install_root.join("web").exists());
    assert!(
        t.staging_entries().is_empty(),
        "staging: {:?}",
        t.staging_entries()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deploy_installs_once_even_when_re_delivered() {
    // A short deploy deadline and a slow pre_install hook: the coordinator
    // re-issues the deploy to the target while the first attempt runs.
    let c = Coordinator::start_with(|cfg| cfg.jobs.deploy_deadline_seconds = 4).await;
    let (publisher, _a, _b, mut t) = web_dev(&c).await;
    let pushed = release::push(
        &c,
        "web",
        &package(&t.install_root, 5, b"hello v1\n"),
        &publisher,
    )
    .await;
    let kms = [_a.key(&c).await, _b.key(&c).await];
    release::set_secret(&c, &kms, "web", "dev", "DB_PASSWORD", "pa55-w0rd-xyz").await;

    let d = release::deploy(&c, "web", &pushed.release_id, "dev").await;
    let done = release::finished(&c, &d.id).await;
    assert_eq!(
        done.state,
        DeploymentState::Succeeded,
        "{done:?}\n{}",
        t.log()
    );

    // Installed bytes and modes.
    let web = t.install_root.join("web");
    assert_eq!(std::fs::read(web.join("hello.txt")).unwrap(), b"hello v1\n");
    assert_eq!(
        std::fs::read(web.join("secret.conf")).unwrap(),
        b"token=abc\n"
    );
    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(web.join("secret.conf")), 0o600);
    assert_eq!(mode(web.join("hello.txt")), 0o644);

    // The re-delivered attempt answered "already installed" and installed nothing.
    eventually(30, "the re-delivered deploy to be answered", || async {
        let log = release::log(&c, &d.id).await;
        log.iter()
            .any(|l| l.line.contains("already installed on this server"))
            .then_some(())
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(t.install_root.join("installs.log")).unwrap(),
        "once\n"
    );

    // Hook output streamed, every secret value redacted.
    let log = release::log(&c, &d.id).await;
    let lines: Vec<String> = log
        .iter()
        .map(|l| format!("{} {}", l.stream, l.line))
        .collect();
    assert!(
        lines.iter().any(|l| l == "stdout mode=dev password=***"),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l == "stderr done with ***"),
        "{lines:#?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains("pa55-w0rd-xyz")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("status installed")),
        "{lines:#?}"
    );
    assert!(t.staging_entries().is_empty(), "{:?}", t.staging_entries());
    assert!(!t.log().contains("pa55-w0rd-xyz"));

    // A new deployment of a new release installs again (a new key).
    let pushed2 = release::push(
        &c,
        "web",
        &package(&t.install_root, 0, b"hello v2\n"),
        &publisher,
    )
    .await;
    let d2 = release::deploy(&c, "web", &pushed2.release_id, "dev").await;
    assert_eq!(
        release::finished(&c, &d2.id).await.state,
        DeploymentState::Succeeded
    );
    assert_eq!(std::fs::read(web.join("hello.txt")).unwrap(), b"hello v2\n");
    let status = t.stop();
    assert!(status.success(), "{status}");
}

fn artifact_file(c: &Coordinator, sha: &str) -> PathBuf {
    fn walk(dir: &Path, sha: &str) -> Option<PathBuf> {
        for e in std::fs::read_dir(dir).ok()? {
            let p = e.ok()?.path();
            if p.is_dir() {
                if let Some(f) = walk(&p, sha) {
                    return Some(f);
                }
            } else if p.file_name()?.to_string_lossy().contains(sha) {
                return Some(p);
            }
        }
        None
    }
    walk(&c.config.artifact_dir(), sha).unwrap()
}

fn sql(c: &Coordinator, statement: &str) -> String {
    let out = std::process::Command::new("sqlite3")
        .arg(c.config.database_path())
        .arg(statement)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Stops the target, creates a deployment, waits until its deploy key is
/// wrapped, replaces the stored wrap with `swap(old)`, restarts the target.
async fn deploy_with_swapped_key(
    c: &Coordinator,
    t: &mut Agent,
    release_id: &str,
    swap: impl FnOnce(&str) -> String,
) -> String {
    t.stop();
    let d = release::deploy(c, "web", release_id, "dev").await;
    let where_ = format!(
        "deployment_id = '{}' AND server_id = '{}'",
        d.id, t.server_id
    );
    let stored = eventually(
        60,
        "the deploy key to be wrapped for the target",
        || async {
            let v = sql(
                c,
                &format!("SELECT wrapped_deploy_key FROM deployment_targets WHERE {where_}"),
            );
            (!v.is_empty()).then_some(v)
        },
    )
    .await;
    let swapped = swap(&stored);
    sql(
        c,
        &format!("UPDATE deployment_targets SET wrapped_deploy_key = '{swapped}' WHERE {where_}"),
    );
    t.start();
    d.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unpinned_tampered_and_foreign_keys_are_refused() {
    let c = Coordinator::start().await;
    let (publisher, a, _b, mut t) = web_dev(&c).await;

    // Signed by a publisher key the target does not pin.
    let stranger = Publisher::new(9);
    let unpinned = release::push(&c, "web", &package(&t.install_root, 0, b"x"), &stranger).await;
    let d = release::deploy(&c, "web", &unpinned.release_id, "dev").await;
    failed_with(&c, &d.id, "unknown_publisher").await;
    nothing_installed(&t);

    // The stored package modified by one byte.
    let good = release::push(&c, "web", &package(&t.install_root, 0, b"y"), &publisher).await;
    let file = artifact_file(&c, &good.sha256);
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let d = release::deploy(&c, "web", &good.release_id, "dev").await;
    failed_with(&c, &d.id, "digest_mismatch").await;
    nothing_installed(&t);
    bytes[mid] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();

    // The deploy key of another deployment (bound to its id).
    let first = release::deploy(&c, "web", &good.release_id, "dev").await;
    let ok = release::finished(&c, &first.id).await;
    assert_eq!(ok.state, DeploymentState::Succeeded, "{ok:?}\n{}", t.log());
    std::fs::remove_dir_all(t.install_root.join("web")).unwrap();
    let other = sql(
        &c,
        &format!(
            "SELECT wrapped_deploy_key FROM deployment_targets WHERE deployment_id = '{}'",
            first.id
        ),
    );
    let id = deploy_with_swapped_key(&c, &mut t, &good.release_id, |_| other.clone()).await;
    failed_with(&c, &id, "binding_mismatch").await;
    nothing_installed(&t);

    // A deploy key wrapped to another server (a key manager), correctly
    // bound otherwise.
    let km_pub = {
        use rsa::pkcs8::DecodePublicKey as _;
        rsa::RsaPublicKey::from_public_key_pem(&a.public_key_pem).unwrap()
    };
    let id = deploy_with_swapped_key(&c, &mut t, &good.release_id, |stored| {
        let h = jwe::peek(stored).unwrap();
        jwe::wrap(
            &km_pub,
            custody_envelope::OaepHash::Sha256,
            &h.binding,
            &[1u8; 32],
        )
        .unwrap()
    })
    .await;
    failed_with(&c, &id, "binding_mismatch").await;
    nothing_installed(&t);
    assert!(t.log().contains("deploy failed"), "{}", t.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_install_interrupted_by_a_crash_is_not_repeated() {
    let c = Coordinator::start_with(|cfg| cfg.jobs.deploy_deadline_seconds = 4).await;
    let (publisher, _a, _b, mut t) = web_dev(&c).await;
    let pushed = release::push(&c, "web", &package(&t.install_root, 3, b"z"), &publisher).await;
    let d = release::deploy(&c, "web", &pushed.release_id, "dev").await;
    // The agent dies while its installer runs the (slow) pre_install hook.
    eventually(60, "the installer to start", || async {
        release::log(&c, &d.id)
            .await
            .iter()
            .any(|l| l.line.starts_with("mode=dev"))
            .then_some(())
    })
    .await;
    t.kill();
    // Restarted, it gets the deploy again and refuses to install twice.
    t.start();
    failed_with(&c, &d.id, "interrupted_install").await;
    assert!(t.staging_entries().is_empty(), "{:?}", t.staging_entries());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_download_left_by_a_crash_is_fetched_again() {
    let c = Coordinator::start().await;
    let (publisher, _a, _b, mut t) = web_dev(&c).await;
    let pushed = release::push(
        &c,
        "web",
        &package(&t.install_root, 0, b"hello after a power cut\n"),
        &publisher,
    )
    .await;
    // The target is down when the deploy is made; what a power cut left
    // in its staging dir is the whole package's length of wrong bytes
    // (never synced), which a resumed download takes as complete.
    t.kill();
    let d = release::deploy(&c, "web", &pushed.release_id, "dev").await;
    let dir = t.staging().join(&d.id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut stale = pushed.package.clone();
    let mid = stale.len() / 2;
    stale[mid..].fill(0);
    std::fs::write(dir.join("package.custody"), &stale).unwrap();
    t.start();

    let done = release::finished(&c, &d.id).await;
    assert_eq!(
        done.state,
        DeploymentState::Succeeded,
        "{done:?}\n{}",
        t.log()
    );
    assert_eq!(
        std::fs::read(t.install_root.join("web").join("hello.txt")).unwrap(),
        b"hello after a power cut\n"
    );
    let log = release::log(&c, &d.id).await;
    assert!(
        log.iter().any(|l| l.line.contains(
            "the resumed download does not match the package digest; downloading it again"
        )),
        "{log:#?}"
    );
    assert!(t.staging_entries().is_empty(), "{:?}", t.staging_entries());
}
