#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The approval commands through the built binary against a real
//! coordinator: keygen --user, users set-key / set-email, env
//! set-approval, approvals list, approve (signed here), deployments show
//! (signatures checked here), start, decline, cancel, and their refusals.

#[path = "../../coordinator/tests/approval_support/mod.rs"]
mod approval_support;
#[path = "../../coordinator/tests/common/mod.rs"]
mod common;
use approval_support::*;
use common::*;
use custody_proto::apps::DeploymentState as S;
use std::path::PathBuf;
use std::process::Output;

const BIN: &str = env!("CARGO_BIN_EXE_custody");

#[derive(Clone)]
struct Cli {
    config: PathBuf,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
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

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// A login file for `token` in its own directory (approver.key goes beside it).
async fn login(h: &Harness, token: &str, dir: &tempfile::TempDir) -> Cli {
    let cli = Cli {
        config: dir.path().join("custody/config.toml"),
    };
    let (url, fp, tok, c) = (
        h.url.clone(),
        h.ca_fingerprint.clone(),
        token.to_string(),
        cli.clone(),
    );
    blocking(move || {
        c.ok(&[
            "login",
            "--url",
            &url,
            "--ca-fingerprint",
            &fp,
            "--token",
            &tok,
        ]);
    })
    .await;
    cli
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_decline_start_cancel_from_the_command_line() {
    let h = Harness::start().await;
    let w = world(&h).await;
    let alice = person(&h, "alice", &["approver"], None, 0xa1, false).await;
    let bob = person(&h, "bob", &["approver"], None, 0xb0, false).await;
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let owner = login(&h, &h.owner_token, &dirs[0]).await;
    let a = login(&h, &alice.token, &dirs[1]).await;
    let b = login(&h, &bob.token, &dirs[2]).await;
    let dave = login(&h, &w.deployer.token, &dirs[3]).await;

    // Alice makes her key; the owner registers it and her address.
    let (a2, o2) = (a.clone(), owner.clone());
    let pub_file = dirs[1].path().join("custody/approver.key.pub");
    let pf = pub_file.clone();
    blocking(move || {
        let out = a2.ok(&["keygen", "--user"]);
        assert_eq!(out.trim().len(), 64, "{out}");
        assert!(a2.err(&["keygen", "--user"]).contains("already exists"));
        let set = o2.ok(&[
            "users",
            "set-key",
            "alice",
            "--public-key",
            pf.to_str().unwrap(),
        ]);
        assert!(set.contains("approval key set for alice"), "{set}");
        let set = o2.ok(&["users", "set-email", "alice", "alice@example.test"]);
        assert!(set.contains("email alice@example.test"), "{set}");
        o2.ok(&["groups", "add", "ops"]);
        o2.ok(&["groups", "add-member", "ops", "alice"]);
        o2.ok(&["groups", "add-member", "ops", "bob"]);
        let e = o2.ok(&[
            "env",
            "set-approval",
            "web",
            "prod-idle",
            "--group",
            "ops",
            "--quorum",
            "1",
            "--window",
            "2h",
        ]);
        assert!(
            e.contains("need 1 approval(s) from group ops, window 2h"),
            "{e}"
        );
        assert!(
            o2.err(&[
                "env",
                "set-approval",
                "web",
                "prod-idle",
                "--group",
                "ops",
                "--quorum",
                "3"
            ])
            .contains("quorum 3")
        );
    })
    .await;
    let mode = std::fs::metadata(dirs[1].path().join("custody/approver.key"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    let d1 = deploy(&w, "prod-idle").await;
    let d2 = deploy(&w, "prod-idle").await;
    let d3 = deploy(&w, "prod-idle").await;
    let (a2, b2, o2, v2) = (a.clone(), b.clone(), owner.clone(), dave.clone());
    let (id1, id2, id3) = (d1.id.clone(), d2.id.clone(), d3.id.clone());
    blocking(move || {
        let list = a2.ok(&["approvals", "list"]);
        for id in [&id1, &id2, &id3] {
            assert!(list.contains(id.as_str()), "{list}");
        }
        // Bob has no key: a clear one-line refusal.
        let e = b2.err(&["approve", &id1]);
        assert!(e.contains("custody keygen --user"), "{e}");
        // Starting a pending deployment is refused with its state.
        let e = o2.err(&["deployments", "start", &id1]);
        assert!(
            e.contains("pending_approval") && e.contains("invalid_state"),
            "{e}"
        );
        // Alice approves (signed here); the owner sees it verify and starts it.
        let out = a2.ok(&["approve", &id1, "--expires", "2h"]);
        assert!(
            out.contains(&format!("approved {id1}: now approved, 1 of 1 approvals")),
            "{out}"
        );
        let show = o2.ok(&["deployments", "show", &id1]);
        assert!(show.contains("approval: 1 of 1 from group ops"), "{show}");
        assert!(show.contains("alice approved at"), "{show}");
        assert!(show.contains("signature verifies"), "{show}");
        assert!(show.contains(", counts"), "{show}");
        let out = o2.ok(&["deployments", "start", &id1]);
        assert!(out.contains("now in_progress"), "{out}");
        // Decline (signed too, since alice has a key) and cancel.
        let out = a2.ok(&["decline", &id2, "--message", "wrong release"]);
        assert!(out.contains("now declined"), "{out}");
        let show = v2.ok(&["deployments", "show", &id2]);
        assert!(show.contains("alice declined at"), "{show}");
        assert!(show.contains("message: wrong release"), "{show}");
        assert!(show.contains("signature verifies"), "{show}");
        let out = v2.ok(&["deployments", "cancel", &id3, "--message", "superseded"]);
        assert!(
            out.contains("now canceled") && out.contains("reason: superseded"),
            "{out}"
        );
        let e = a2.err(&["approve", &id3]);
        assert!(e.contains("canceled"), "{e}");
        assert!(a2.ok(&["approvals", "list"]).lines().count() <= 1);
    })
    .await;
    assert_eq!(get(&h, &d1.id).await.state, S::InProgress);
    assert_eq!(get(&h, &d2.id).await.state, S::Declined);
    assert_eq!(get(&h, &d3.id).await.state, S::Canceled);

    // Approve and deploy in one step; removing a server sends it back.
    let d4 = deploy(&w, "prod-idle").await;
    let d5 = deploy(&w, "prod-idle").await;
    let (a2, o2) = (a.clone(), owner.clone());
    let (id4, id5) = (d4.id.clone(), d5.id.clone());
    let idle2 = w.idle[1].id.clone();
    blocking(move || {
        let out = a2.ok(&["approve", &id4, "--deploy"]);
        assert!(out.contains("now in_progress"), "{out}");
        a2.ok(&["approve", &id5]);
        let out = o2.ok(&["env", "remove-server", "web", "prod-idle", &idle2]);
        assert!(!out.contains(&idle2), "{out}");
        let show = o2.ok(&["deployments", "show", &id5]);
        assert!(show.contains("state:   pending_approval"), "{show}");
        assert!(
            show.contains("does not count: it names other target servers"),
            "{show}"
        );
    })
    .await;
    assert!(
        jobs_of(&h, &d4.id)
            .await
            .iter()
            .any(|j| j["type"] == "prepare_deployment")
    );
    assert!(jobs_of(&h, &d5.id).await.is_empty());
}
