#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The CLI against a real coordinator on loopback: login, admin commands,
//! and `custody audit verify` catching every kind of tampering.

#[path = "../../coordinator/tests/common/mod.rs"]
mod common;
use common::*;
use custody_proto::audit::{AuditEntry, CheckpointLine, checkpoint_message, entry_hash};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

const BIN: &str = env!("CARGO_BIN_EXE_custody");

struct Cli {
    config: PathBuf,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("CUSTODY_TOKEN")
            .output()
            .unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    fn err(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(!o.status.success(), "{args:?} should fail");
        let e = String::from_utf8(o.stderr).unwrap();
        assert_eq!(e.trim_end().lines().count(), 1, "one-line error: {e}");
        e
    }
}

async fn login(h: &Harness) -> (Cli, tempfile::TempDir) {
    let d = tempfile::tempdir().unwrap();
    let cli = Cli {
        config: d.path().join("custody/config.toml"),
    };
    let url = h.url.clone();
    let (fp, tok) = (h.ca_fingerprint.clone(), h.owner_token.clone());
    let cfg = cli.config.clone();
    let out = tokio::task::spawn_blocking(move || {
        Cli { config: cfg }.ok(&[
            "login",
            "--url",
            &url,
            "--ca-fingerprint",
            &fp,
            "--token",
            &tok,
        ])
    })
    .await
    .unwrap();
    assert!(out.contains("as owner"), "{out}");
    let mode = std::fs::metadata(&cli.config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    (cli, d)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_admin_commands() {
    let h = Harness::start().await;
    let (cli, _d) = login(&h).await;
    let cli = std::sync::Arc::new(cli);
    // A wrong CA pin fails login with one line, and writes nothing.
    let url = h.url.clone();
    let tok = h.owner_token.clone();
    let other = tempfile::tempdir().unwrap();
    let c2 = Cli {
        config: other.path().join("c.toml"),
    };
    let e = blocking(move || {
        c2.err(&[
            "login",
            "--url",
            &url,
            "--ca-fingerprint",
            &"ab".repeat(32),
            "--token",
            &tok,
        ])
    })
    .await;
    assert!(e.starts_with("custody: "), "{e}");
    assert!(!other.path().join("c.toml").exists());

    let c = cli.clone();
    let jt = blocking(move || {
        c.ok(&[
            "users",
            "add",
            "alice",
            "--role",
            "approver,deployer",
            "--email",
            "alice@example.com",
        ]);
        let list: Vec<custody_proto::admin::User> =
            serde_json::from_str(&c.ok(&["--json", "users", "list"])).unwrap();
        assert!(list.iter().any(|u| u.name == "alice" && u.roles.len() == 2));
        assert!(c.ok(&["users", "list"]).contains("alice"));
        let e = c.err(&["users", "add", "mallory", "--role", "root"]);
        assert!(e.contains("unknown role"), "{e}");
        let e = c.err(&["users", "add", "alice", "--role", "owner"]);
        assert!(e.contains("already_exists"), "{e}");

        let t: custody_proto::admin::TokenCreated = serde_json::from_str(&c.ok(&[
            "--json", "tokens", "create", "--user", "alice", "--label", "ci",
        ]))
        .unwrap();
        assert!(t.token.starts_with("cst_"));
        c.ok(&["tokens", "revoke", &t.id]);
        let ts: Vec<custody_proto::admin::TokenInfo> =
            serde_json::from_str(&c.ok(&["--json", "tokens", "list"])).unwrap();
        assert!(ts.iter().any(|x| x.id == t.id && x.revoked_at.is_some()));

        c.ok(&["groups", "add", "approvers"]);
        c.ok(&["groups", "add-member", "approvers", "alice"]);
        let gs: Vec<custody_proto::admin::Group> =
            serde_json::from_str(&c.ok(&["--json", "groups", "list"])).unwrap();
        assert_eq!(gs[0].members.len(), 1);
        c.ok(&["servers", "join-token"]).trim().to_string()
    })
    .await;
    let km = FakeAgent::enroll(
        &h,
        "km-a",
        &[custody_proto::servers::AgentRole::KeyManager],
        &jt,
        0,
    )
    .await
    .unwrap();
    let id = km.id.clone();
    let c = cli.clone();
    blocking(move || {
        let ss: Vec<custody_proto::servers::Server> =
            serde_json::from_str(&c.ok(&["--json", "servers", "list"])).unwrap();
        assert_eq!(ss.len(), 1);
        assert!(c.ok(&["servers", "enable-km", &id]).contains("enabled"));
        assert!(c.ok(&["servers", "list"]).contains("km-a"));
        c.ok(&["servers", "disable-km", "km-a"]);
        c.ok(&["servers", "remove", &id]);
        let e = c.err(&["servers", "remove", &id]);
        assert!(e.contains("not_found"), "{e}");
        c.err(&["users", "remove", "nobody"]);
        c.ok(&["users", "remove", "alice"]);
    })
    .await;
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write(p: &Path, ls: &[String]) {
    std::fs::write(p, ls.join("\n") + "\n").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_catches_edits_deletions_reorders_and_cut_tails() {
    let h = Harness::start().await;
    let (cli, d) = login(&h).await;
    for n in ["u1", "u2", "u3"] {
        let _: serde_json::Value = h
            .owner
            .post(
                "/v1/users",
                &serde_json::json!({"name": n, "roles": ["deployer"]}),
            )
            .await
            .unwrap();
    }
    let dir = d.path().to_path_buf();
    let key_file = h.state_dir().join("audit.key");
    blocking(move || {
        let full = dir.join("full.jsonl");
        cli.ok(&["audit", "export", "--out", full.to_str().unwrap()]);
        let good = lines(&full);
        assert_eq!(good.len(), 7, "6 entries and a checkpoint");
        assert!(
            cli.ok(&["audit", "verify", full.to_str().unwrap()])
                .contains("verified: 6 entries")
        );
        let t = dir.join("t.jsonl");
        let check = |ls: Vec<String>, expect: &str| {
            write(&t, &ls);
            let e = cli.err(&["audit", "verify", t.to_str().unwrap()]);
            assert!(e.contains(expect), "expected {expect:?} in {e}");
        };
        // Edit entry 3.
        let mut ls = good.clone();
        ls[2] = ls[2].replace("\"result\":\"ok\"", "\"result\":\"refused\"");
        check(ls, "entry 3: content does not match its hash");
        // Delete entry 2.
        let mut ls = good.clone();
        ls.remove(1);
        check(ls, "sequence 3, expected 2");
        // Reorder entries 4 and 5.
        let mut ls = good.clone();
        ls.swap(3, 4);
        check(ls, "entry at position 4");
        // Cut the tail but keep the checkpoint.
        let mut ls = good.clone();
        ls.remove(5);
        check(ls, "covers 6 entries");
        // Cut the tail with the checkpoint.
        check(good[..4].to_vec(), "no signed checkpoint");
        // A checkpoint from another key.
        let mut ls = good.clone();
        let mut cp: CheckpointLine = serde_json::from_str(&ls[6]).unwrap();
        cp.checkpoint.public_key = "11".repeat(32);
        ls[6] = serde_json::to_string(&cp).unwrap();
        check(ls, "not by the coordinator key pinned at login");
        // A forged count: signature fails.
        let mut ls = good.clone();
        let mut cp: CheckpointLine = serde_json::from_str(&ls[6]).unwrap();
        cp.checkpoint.at_ms += 1;
        ls[6] = serde_json::to_string(&cp).unwrap();
        check(ls, "signature does not verify");

        // A compromised coordinator with its own key rewrites history and re-signs:
        // the head remembered by the last verify catches it.
        let seed: [u8; 32] = std::fs::read(&key_file).unwrap().try_into().unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let mut entries: Vec<AuditEntry> = good[..6]
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        entries[1].detail = serde_json::json!({"name": "someone-else"});
        let mut prev = custody_proto::audit::GENESIS_HASH.to_string();
        for e in entries.iter_mut() {
            e.prev_hash = prev.clone();
            e.hash = entry_hash(e);
            prev = e.hash.clone();
        }
        let mut cp: CheckpointLine = serde_json::from_str(&good[6]).unwrap();
        cp.checkpoint.head_hash = prev.clone();
        use ed25519_dalek::Signer;
        cp.checkpoint.signature = hex::encode(
            key.sign(&checkpoint_message(6, &prev, cp.checkpoint.at_ms))
                .to_bytes(),
        );
        let mut ls: Vec<String> = entries
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        ls.push(serde_json::to_string(&cp).unwrap());
        check(ls.clone(), "entry 6 differs from the head verified before");
        // And serving an older, shorter (validly signed) log is caught too.
        let mut cp3 = cp.clone();
        let e3: AuditEntry = serde_json::from_str(&good[2]).unwrap();
        cp3.checkpoint.count = 3;
        cp3.checkpoint.head_hash = e3.hash.clone();
        cp3.checkpoint.signature = hex::encode(
            key.sign(&checkpoint_message(3, &e3.hash, cp3.checkpoint.at_ms))
                .to_bytes(),
        );
        let mut short = good[..3].to_vec();
        short.push(serde_json::to_string(&cp3).unwrap());
        check(short, "entries 4.. were removed");
        // The genuine export still verifies.
        cli.ok(&["audit", "verify", full.to_str().unwrap()]);
    })
    .await;
}
