//! `custody push`, `env set-var --secret` and `deploy --follow` through the
//! built binary against a real coordinator on loopback, with key managers
//! and a target played by HTTP clients that hold real RSA keys: what the
//! CLI encrypted, wrapped and signed is opened and checked on their side.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../coordinator/tests/common/mod.rs"]
mod common;
mod support;

use common::*;
use custody_envelope::SymmetricKey;
use custody_envelope::descriptor::{PublisherKey, SignedDescriptor};
use custody_proto::apps::{Deployment, DeploymentState, Environment, Release};
use custody_proto::jobs::{Job, JobFailure, JobOutput, JobPayload, LogLine, LogStream};
use custody_proto::servers::AgentRole;
use sha2::Digest;
use std::io::Read;
use support::*;

async fn download(h: &Harness, release: &str) -> Vec<u8> {
    let path = format!("/v1/releases/{release}/package");
    let r = h
        .owner
        .send("download", h.owner.request(reqwest::Method::GET, &path))
        .await
        .unwrap();
    r.bytes().await.unwrap().to_vec()
}

/// Decrypts a package with `rk`, checks its header names the release, and
/// returns the tar's entries (path, mode, mtime, uid, gid, bytes).
fn open_package(pkg: &[u8], rk: &[u8], account: &str, release: &str) -> Vec<u8> {
    let mut tar = Vec::new();
    let header = custody_envelope::stream::decrypt_stream(
        &SymmetricKey::from_slice(rk).unwrap(),
        pkg,
        &mut tar,
    )
    .unwrap();
    assert_eq!(
        (
            header.account.as_str(),
            header.app.as_str(),
            header.release.as_str()
        ),
        (account, "securekeys", release)
    );
    tar
}

type Entry = (String, u32, u64, u64, u64, Vec<u8>);

fn entries(tar_bytes: &[u8]) -> Vec<Entry> {
    let mut a = tar::Archive::new(tar_bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            assert_eq!(h.entry_type(), tar::EntryType::Regular);
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                data,
            )
        })
        .collect()
}

fn release_keys(seen: &std::sync::Mutex<Seen>, release: &str) -> Vec<(String, Vec<u8>)> {
    seen.lock()
        .unwrap()
        .release_keys
        .iter()
        .filter(|(_, r, _)| r == release)
        .map(|(km, _, k)| (km.clone(), k.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_encrypts_signs_and_wraps_to_every_key_manager() {
    let h = Harness::start().await;
    let (seen, _kms) = two_key_managers(&h).await;
    let d = tempfile::tempdir().unwrap();
    let cli = login(&h, d.path()).await;
    let src = d.path().join("src");
    let files = release_tree(&src);
    let bad = d.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("custody.toml"),
        "version = 1\ndestination = \"srv/app\"\ninclude = [\"*\"]\n",
    )
    .unwrap();
    let (c, s, b) = (cli.clone(), src.clone(), bad.clone());
    blocking(move || {
        c.ok(&["app", "create", "securekeys", "--secure"]);
        c.ok(&["keygen"]);
        let e = c.err(&[
            "push",
            b.to_str().unwrap(),
            "--app",
            "securekeys",
            "--accept-new-key-manager",
        ]);
        assert!(
            e.contains("custody.toml") && e.contains("must be an absolute path"),
            "{e}"
        );
        // Key managers never seen before: refused, naming the flag.
        let e = c.err(&["push", s.to_str().unwrap(), "--app", "securekeys"]);
        assert!(
            e.contains("a new key") && e.contains("--accept-new-key-manager"),
            "{e}"
        );
    })
    .await;
    // Nothing was created or uploaded by the refused pushes.
    let rs: Vec<Release> = h.owner.get("/v1/apps/securekeys/releases").await.unwrap();
    assert!(rs.is_empty(), "{rs:?}");
    assert!(h.artifact_files().is_empty());

    // A push that fails after the release was created (the package is over
    // the coordinator's 4 MiB limit) deletes the release again.
    let huge = d.path().join("huge");
    std::fs::create_dir_all(&huge).unwrap();
    std::fs::write(
        huge.join("custody.toml"),
        "version = 1\ndestination = \"/srv/huge\"\ninclude = [\"*.bin\"]\n",
    )
    .unwrap();
    let noise: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i * 7 % 256) as u8)
        .collect();
    std::fs::write(huge.join("big.bin"), noise).unwrap();
    let c = cli.clone();
    let e = blocking(move || {
        c.err(&[
            "push",
            huge.to_str().unwrap(),
            "--app",
            "securekeys",
            "--accept-new-key-manager",
        ])
    })
    .await;
    assert!(
        e.contains("push failed; release") && e.contains("deleted"),
        "{e}"
    );
    let rs: Vec<Release> = h.owner.get("/v1/apps/securekeys/releases").await.unwrap();
    assert!(rs.is_empty(), "{rs:?}");
    assert!(h.artifact_files().is_empty());

    let c = cli.clone();
    let s = src.clone();
    let (pushed, public) = blocking(move || {
        let public = std::fs::read_to_string(c.config.with_file_name("publisher.key")).unwrap();
        let out = c.ok(&[
            "--json",
            "push",
            s.to_str().unwrap(),
            "--app",
            "securekeys",
            "--accept-new-key-manager",
            "--wait",
        ]);
        (
            serde_json::from_str::<serde_json::Value>(&out).unwrap(),
            public,
        )
    })
    .await;
    assert!(public.contains("PRIVATE KEY"));
    assert_eq!(pushed["state"], "deployable");
    assert_eq!(pushed["files"], 4);
    let id = pushed["release_id"].as_str().unwrap().to_string();
    let account: custody_proto::Info = h.owner.get("/v1/info").await.unwrap();
    let account = account.account;

    // Both key managers received RK wrapped to them (the first attempt of
    // the rewrap job failed over), and it is the same key.
    let rks = release_keys(&seen, &id);
    let kms: std::collections::BTreeSet<&str> = rks.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kms.len(), 2, "{kms:?}");
    assert!(rks.iter().all(|(_, k)| k == &rks[0].1 && k.len() == 32));

    // The stored package is what push reported, and opens with that RK.
    let pkg = download(&h, &id).await;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&pkg)),
        pushed["package_sha256"].as_str().unwrap()
    );
    assert_eq!(pkg.len() as u64, pushed["package_size"].as_u64().unwrap());
    let tar1 = open_package(&pkg, &rks[0].1, &account, &id);
    let es = entries(&tar1);
    let names: Vec<&str> = es.iter().map(|e| e.0.as_str()).collect();
    let mut want = vec!["custody.toml"];
    want.extend(files.iter().map(|f| f.0.as_str()));
    assert_eq!(
        names, want,
        "manifest first, then the selected files in order"
    );
    assert_eq!(es[0].5, std::fs::read(src.join("custody.toml")).unwrap());
    for ((_, mode, mtime, uid, gid, data), (_, want_mode, want_data)) in es[1..].iter().zip(&files)
    {
        assert_eq!((*mode, *mtime, *uid, *gid), (*want_mode, 0, 0, 0));
        assert_eq!(data, want_data);
    }
    // A wrong key does not open it.
    let mut sink = Vec::new();
    assert!(
        custody_envelope::stream::decrypt_stream(
            &SymmetricKey::from_bytes([9; 32]),
            pkg.as_slice(),
            &mut sink
        )
        .is_err()
    );

    // The keys are known now: a second push needs no flag, and the same
    // tree gives the same tar under a new release key.
    let c = cli.clone();
    let s = src.clone();
    let id2 = blocking(move || {
        c.ok(&["push", s.to_str().unwrap(), "--app", "securekeys", "--wait"])
            .trim()
            .to_string()
    })
    .await;
    assert_ne!(id2, id);
    let rk2 = release_keys(&seen, &id2);
    assert_ne!(rk2[0].1, rks[0].1);
    let tar2 = open_package(&download(&h, &id2).await, &rk2[0].1, &account, &id2);
    assert_eq!(tar1, tar2);
    let known =
        std::fs::read_to_string(cli.config.with_file_name("known-key-managers.toml")).unwrap();
    for fp in pushed["key_managers"].as_array().unwrap() {
        assert!(known.contains(fp.as_str().unwrap()));
    }
}

/// Polls as the target until a deploy job arrives.
async fn next_deploy(t: &FakeAgent) -> Job {
    for _ in 0..60 {
        if let Some(j) = t.poll(1).await {
            assert!(matches!(j.payload, JobPayload::Deploy { .. }), "{j:?}");
            return j;
        }
    }
    panic!("no deploy job");
}

fn line(stream: LogStream, s: &str) -> LogLine {
    LogLine {
        stream,
        line: s.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_vars_and_deploy_follow() {
    let h = Harness::start().await;
    let (seen, _kms) = two_key_managers(&h).await;
    let target = h.agent("web-1", &[AgentRole::Target]).await;
    let d = tempfile::tempdir().unwrap();
    let cli = login(&h, d.path()).await;
    let src = d.path().join("src");
    release_tree(&src);
    let (c, s) = (cli.clone(), src.clone());
    let (public, id) = blocking(move || {
        c.ok(&["app", "create", "securekeys", "--secure"]);
        let public = c.ok(&["keygen"]).trim().to_string();
        c.ok(&["env", "create", "securekeys", "dev"]);
        c.ok(&["env", "add-server", "securekeys", "dev", "web-1"]);
        c.ok(&["env", "set-var", "securekeys", "dev", "MODE", "dev"]);
        // A secret value is never taken from the command line.
        let e = c.err(&[
            "env",
            "set-var",
            "securekeys",
            "dev",
            "API_TOKEN",
            "x",
            "--secret",
        ]);
        assert!(e.contains("command line"), "{e}");
        let set = [
            "env",
            "set-var",
            "securekeys",
            "dev",
            "API_TOKEN",
            "--secret",
        ];
        let (_, e) = c.err_out(&set, Some(b"tok3n-value\n"));
        assert!(e.contains("--accept-new-key-manager"), "{e}");
        let mut accept = set.to_vec();
        accept.push("--accept-new-key-manager");
        let o = c.run_with_stdin(&accept, Some(b"tok3n-value\n"));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // The keys learnt there make a push without the flag work.
        let id = c
            .ok(&["push", s.to_str().unwrap(), "--app", "securekeys", "--wait"])
            .trim()
            .to_string();
        (public, id)
    })
    .await;
    // Setting a secret variable allocated no release: only the push made one.
    let rs: Vec<Release> = h.owner.get("/v1/apps/securekeys/releases").await.unwrap();
    assert_eq!(
        rs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    h.wait_for("secret sealed", || async {
        let e: Environment = h
            .owner
            .get("/v1/apps/securekeys/environments/dev")
            .await
            .unwrap();
        e.variables
            .iter()
            .any(|v| v.name == "API_TOKEN" && v.state.as_deref() == Some("sealed"))
    })
    .await;
    assert!(
        seen.lock()
            .unwrap()
            .secrets
            .iter()
            .any(|(_, n, v)| n == "API_TOKEN" && v == "tok3n-value")
    );
    let c = cli.clone();
    let shown = blocking(move || c.ok(&["env", "show", "securekeys", "dev"])).await;
    assert!(shown.contains("API_TOKEN") && shown.contains("(secret, sealed)"));
    assert!(!shown.contains("tok3n"));

    // deploy --follow: the target verifies what push made, streams log
    // lines and succeeds.
    let c = cli.clone();
    let rel = id.clone();
    let follow = tokio::task::spawn_blocking(move || {
        c.run(&[
            "deploy",
            "securekeys",
            "--release",
            &rel,
            "--env",
            "dev",
            "--follow",
        ])
    });
    let job = next_deploy(&target).await;
    let JobPayload::Deploy {
        descriptor,
        artifact,
        variables,
        ..
    } = &job.payload
    else {
        unreachable!()
    };
    let signed = SignedDescriptor::from_json(&serde_json::to_vec(descriptor).unwrap()).unwrap();
    let mut raw = [0u8; 32];
    hex::decode_to_slice(&public, &mut raw).unwrap();
    let verified = signed
        .verify(&[PublisherKey::from_bytes(&raw).unwrap()])
        .unwrap();
    assert_eq!(verified.package_sha256, artifact.sha256);
    assert_eq!(
        verified.manifest_sha256,
        hex::encode(sha2::Sha256::digest(
            std::fs::read(src.join("custody.toml")).unwrap()
        ))
    );
    let other = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    assert!(
        signed
            .verify(&[PublisherKey::new(other.verifying_key())])
            .is_err()
    );
    assert!(
        variables
            .iter()
            .any(|v| v.name == "MODE" && v.value == "dev")
    );
    assert!(
        !serde_json::to_string(&job.payload)
            .unwrap()
            .contains("tok3n")
    );
    let dest = d.path().join("download.pkg");
    target
        .client
        .download_artifact(artifact, &dest)
        .await
        .unwrap();
    let rk = release_keys(&seen, &id);
    let info: custody_proto::Info = h.owner.get("/v1/info").await.unwrap();
    open_package(&std::fs::read(&dest).unwrap(), &rk[0].1, &info.account, &id);
    target
        .client
        .job_log(
            &job,
            vec![
                line(LogStream::Status, "verified; installing"),
                line(LogStream::Stdout, "post_install: MODE=dev API_TOKEN=***"),
                line(LogStream::Stderr, "post_install: warning: cold cache"),
            ],
        )
        .await
        .unwrap();
    target
        .answer(
            &job,
            JobOutput::Deploy {
                already_installed: false,
            },
        )
        .await
        .unwrap();
    let o = follow.await.unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for want in [
        "[web-1] status: verified; installing",
        "[web-1] stdout: post_install: MODE=dev API_TOKEN=***",
        "[web-1] stderr: post_install: warning: cold cache",
        ": succeeded",
    ] {
        assert!(out.contains(want), "{want:?} in {out}");
    }

    // A failing target: --follow exits non-zero with the reason.
    let c = cli.clone();
    let rel = id.clone();
    let follow = tokio::task::spawn_blocking(move || {
        c.err_out(
            &[
                "deploy",
                "securekeys",
                "--release",
                &rel,
                "--env",
                "dev",
                "--follow",
            ],
            None,
        )
    });
    let job = next_deploy(&target).await;
    target
        .client
        .job_log(&job, vec![line(LogStream::Stderr, "post_install: exit 3")])
        .await
        .unwrap();
    target
        .client
        .job_failed(
            &job,
            JobFailure {
                code: "hook_failed".into(),
                message: "post_install exited with status 3".into(),
                retryable: false,
            },
        )
        .await
        .unwrap();
    let (out, err) = follow.await.unwrap();
    assert!(
        out.contains("[web-1] stderr: post_install: exit 3"),
        "{out}"
    );
    assert!(out.contains("post_install exited with status 3"), "{out}");
    assert!(
        err.contains("failed") && err.contains("post_install exited with status 3"),
        "{err}"
    );

    let c = cli.clone();
    let rel = id.clone();
    blocking(move || {
        let ds: Vec<Deployment> =
            serde_json::from_str(&c.ok(&["--json", "deployments", "list", "--app", "securekeys"]))
                .unwrap();
        assert_eq!(ds.len(), 2);
        assert!(ds.iter().any(|d| d.state == DeploymentState::Succeeded));
        let failed = ds
            .iter()
            .find(|d| d.state == DeploymentState::Failed)
            .unwrap();
        let shown = c.ok(&["deployments", "show", &failed.id, "--log"]);
        assert!(
            shown.contains("hook_failed") || shown.contains("post_install exited"),
            "{shown}"
        );
        assert!(shown.contains("post_install: exit 3"), "{shown}");
        // Deploying what does not exist: one clear line.
        let e = c.err(&[
            "deploy",
            "securekeys",
            "--release",
            "rel_nope",
            "--env",
            "dev",
        ]);
        assert!(e.contains("not_found"), "{e}");
        assert!(c.ok(&["releases", "list", "securekeys"]).contains(&rel));
    })
    .await;
}
