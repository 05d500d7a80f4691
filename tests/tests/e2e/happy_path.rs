//! The secure flow as a user runs it, through the `custody` command line:
//! two key managers — one on a SoftHSM2 token, one on a swtpm TPM, as the
//! demo has them — and a target (soft keystore: its hardware is not the
//! point here), all sandboxed. Making the app secure with one live key
//! manager is refused; with two it works; `examples/securekeys` is pushed
//! (its destination moved into the target's install root), deployed to
//! `dev`, and installed byte for byte with the secret files 0600 and the
//! hook's choice of `secret.cred`; the audit log holds every step and
//! `custody audit verify` passes.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use custody_e2e::{Agent, AgentOptions, Cli, Coordinator, Keystore};
use serde_json::Value;

const SECRET_VALUE: &str = "api-token-5f1c0e9a-not-for-logs";

/// Copies the example into `dir`, with its destination under `root`.
fn securekeys_copy(dir: &Path, root: &Path) -> Vec<(String, Vec<u8>)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/securekeys");
    std::fs::create_dir_all(dir).unwrap();
    let mut files = Vec::new();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(e.path()).unwrap();
        if name == "custody.toml" {
            let text = String::from_utf8(bytes).unwrap();
            let moved = text.replace(
                "destination = \"/srv/app/securekeys\"",
                &format!("destination = \"{}\"", root.join("securekeys").display()),
            );
            assert_ne!(moved, text, "the example's destination line changed");
            std::fs::write(dir.join(&name), moved).unwrap();
        } else {
            std::fs::write(dir.join(&name), &bytes).unwrap();
            files.push((name, bytes));
        }
    }
    files.sort();
    files
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_deploy_securekeys_on_softhsm_and_tpm() {
    let c = Coordinator::start().await.unwrap();
    let cli = Cli::login(&c).await.unwrap();
    let pin = cli.ok(&["keygen"]).await.unwrap().trim().to_owned();
    assert_eq!(pin.len(), 64, "{pin}");

    let mut hsm = Agent::new("km-hsm", &AgentOptions::key_manager(Keystore::SoftHsm)).unwrap();
    let mut tpm = Agent::new("km-tpm", &AgentOptions::key_manager(Keystore::Tpm)).unwrap();
    let mut web = Agent::new("web-1", &AgentOptions::target(Keystore::Soft, &[pin])).unwrap();
    for a in [&mut hsm, &mut tpm, &mut web] {
        let token = cli.ok(&["servers", "join-token"]).await.unwrap();
        a.enroll_with_token(&c, token.trim()).await.unwrap();
        a.start().unwrap();
    }
    for a in [&mut hsm, &mut tpm, &mut web] {
        a.wait_live(&c).await.unwrap();
    }

    // One live key manager: the master key exists, but an app cannot be
    // made secure yet.
    cli.ok(&["servers", "enable-km", "km-hsm"]).await.unwrap();
    c.wait_holders(&[&hsm.server_id]).await.unwrap();
    let refused = cli
        .fails(&["app", "create", "securekeys", "--secure"])
        .await
        .unwrap();
    assert!(
        refused.contains("at least 2 live key managers") && refused.contains("1 is live"),
        "{refused}"
    );
    cli.ok(&["app", "create", "securekeys"]).await.unwrap();
    let refused = cli.fails(&["app", "secure", "securekeys"]).await.unwrap();
    assert!(refused.contains("2 live key managers"), "{refused}");

    // The second one learns the master key; now it works.
    cli.ok(&["servers", "enable-km", "km-tpm"]).await.unwrap();
    c.wait_holders(&[&hsm.server_id, &tpm.server_id])
        .await
        .unwrap();
    cli.ok(&["app", "secure", "securekeys"]).await.unwrap();

    cli.ok(&["env", "create", "securekeys", "dev"])
        .await
        .unwrap();
    cli.ok(&["env", "add-server", "securekeys", "dev", "web-1"])
        .await
        .unwrap();
    cli.ok(&["env", "set-var", "securekeys", "dev", "STAGE", "dev"])
        .await
        .unwrap();
    let out = cli
        .run(
            &[
                "env",
                "set-var",
                "securekeys",
                "dev",
                "API_TOKEN",
                "--secret",
                "--accept-new-key-manager",
            ],
            Some(SECRET_VALUE.as_bytes()),
        )
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Push the example with the CLI and deploy it to dev.
    let src = cli.scratch().join("securekeys");
    let files = securekeys_copy(&src, &web.install_root);
    let release = cli
        .ok(&[
            "push",
            src.to_str().unwrap(),
            "--app",
            "securekeys",
            "--wait",
        ])
        .await
        .unwrap()
        .trim()
        .to_owned();
    assert!(release.starts_with("rel_"), "{release}");
    let follow = cli
        .run(
            &[
                "deploy",
                "securekeys",
                "--release",
                &release,
                "--env",
                "dev",
                "--follow",
            ],
            None,
        )
        .await
        .unwrap();
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&follow.stdout),
        String::from_utf8_lossy(&follow.stderr)
    );
    assert!(follow.status.success(), "{shown}\n{}", web.log());
    assert!(
        shown.contains("secret.cred is now secret.cred.dev"),
        "{shown}"
    );

    // Installed byte for byte; the secret files 0600, secret.cred = dev's.
    let dest = web.install_root.join("securekeys");
    let mut installed: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    installed.sort();
    let mut expected: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    expected.push("secret.cred".into());
    expected.sort();
    assert_eq!(installed, expected);
    for (name, bytes) in &files {
        assert_eq!(&std::fs::read(dest.join(name)).unwrap(), bytes, "{name}");
        if name.starts_with("secret.cred.") {
            assert_eq!(mode(&dest.join(name)), 0o600, "{name}");
        }
    }
    let dev = files.iter().find(|(n, _)| n == "secret.cred.dev").unwrap();
    assert_eq!(std::fs::read(dest.join("secret.cred")).unwrap(), dev.1);
    assert_eq!(mode(&dest.join("secret.cred")), 0o600);
    assert!(
        web.staging_entries().is_empty(),
        "{:?}",
        web.staging_entries()
    );

    // The audit log: exported, verified against the pinned key, and
    // holding every step of the flow.
    let export = cli.scratch().join("audit.jsonl");
    cli.ok(&["audit", "export", "--out", export.to_str().unwrap()])
        .await
        .unwrap();
    let verified = cli
        .ok(&["audit", "verify", export.to_str().unwrap()])
        .await
        .unwrap();
    assert!(!verified.trim().is_empty());
    let text = std::fs::read_to_string(&export).unwrap();
    assert!(!text.contains(SECRET_VALUE));
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v.get("checkpoint").is_none())
        .collect();
    let count = |action: &str| entries.iter().filter(|e| e["action"] == action).count();
    for (action, n) in [
        ("server.enroll", 3),
        ("server.enable_key_manager", 2),
        ("app.create", 1),
        ("app.secure", 1),
        ("release.create", 1),
        ("release.upload", 1),
        ("release.finalize", 1),
        ("release.sealed", 1),
        ("deployment.create", 1),
    ] {
        assert!(count(action) >= n, "{action}: {} in\n{text}", count(action));
    }
    let job_ok = |kind: &str| {
        entries.iter().any(|e| {
            e["action"] == "job.result" && e["result"] == "ok" && e["detail"]["type"] == kind
        })
    };
    for kind in [
        "create_master_key",
        "share_master_key",
        "seal_secret_variable",
        "rewrap_release_key",
        "prepare_deployment",
        "wrap_deploy_key",
        "deploy",
    ] {
        assert!(job_ok(kind), "no successful {kind} in\n{text}");
    }
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "deployment.state"
                && e["detail"].to_string().contains("succeeded")),
        "{text}"
    );

    // Every agent did all this sandboxed.
    for a in [&hsm, &tpm, &web] {
        a.check_sandboxed().unwrap();
    }
}
