//! What the coordinator holds and hands out. A target never receives `MK`
//! or a key wrapped for another server: the deploy job each of two
//! targets gets is captured with that target's own credential (before the
//! target itself runs; the coordinator re-issues it after its deadline and
//! the real target installs it) and every JWE in it is checked. And a
//! stolen copy of the coordinator's state dir — SQLite file and WAL,
//! artifacts, keys — holds none of the release's plaintext, none of `MK`,
//! `RK`, `DK` (learned by the test: `RK` because it made the release, `MK`
//! and `DK` by unwrapping them with the soft keystores' key files — which
//! is why the keystores here are soft) and no secret variable value, in
//! any common encoding.

use base64::Engine as _;
use custody_client::{Client, ClientConfig};
use custody_e2e::{
    Agent, Cluster, ClusterOptions, CoordinatorOptions, Keystore, eventually, files, release,
};
use custody_envelope::OaepHash;
use custody_envelope::jwe::{self, Purpose};
use custody_proto::apps::DeploymentState;
use custody_proto::jobs::{Job, JobPayload};
use rsa::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use serde_json::Value;
use zeroize::Zeroizing;

const SECRET: &str = "db-password-7d2f9a41c3";
const MARKER: &[u8] = b"PLAINTEXT-MARKER-0b6d1e-the-release-body";

fn soft_key(a: &Agent) -> RsaPrivateKey {
    let pem = std::fs::read_to_string(a.soft_key_file()).unwrap();
    RsaPrivateKey::from_pkcs8_pem(&pem).unwrap()
}

/// Opens a JWE wrapped to `a` with its soft key file (what a thief of
/// that server's disk could do; never the coordinator's).
#[allow(clippy::disallowed_methods)] // test-only: the soft keystore's key file
fn unwrap_with(a: &Agent, jwe_str: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let key = soft_key(a);
    let public = RsaPublicKey::from_public_key_pem(&a.public_key_pem).unwrap();
    let binding = jwe::peek(jwe_str).unwrap().binding;
    jwe::open_wrapped(jwe_str, &public, &binding, |hash, ek| {
        assert_eq!(hash, OaepHash::Sha256);
        key.decrypt(Oaep::new::<rsa::sha2::Sha256>(), ek)
            .map(Zeroizing::new)
    })
    .map_err(|e| e.to_string())
}

/// Every string in `v` that looks like a compact JWE.
fn jwes(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.split('.').count() == 5 && jwe::peek(s).is_ok() => {
            out.push(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|x| jwes(x, out)),
        Value::Object(o) => o.values().for_each(|x| jwes(x, out)),
        _ => {}
    }
}

/// `bytes` as raw bytes, hex (both cases), base64 and base64url.
fn encodings(bytes: &[u8]) -> Vec<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    vec![
        bytes.to_vec(),
        hex::encode(bytes).into_bytes(),
        hex::encode_upper(bytes).into_bytes(),
        STANDARD.encode(bytes).into_bytes(),
        STANDARD_NO_PAD.encode(bytes).into_bytes(),
        URL_SAFE_NO_PAD.encode(bytes).into_bytes(),
    ]
}

/// Polls one job as `target` (with its own credential).
async fn poll_as(cl: &Cluster, target: &Agent) -> Job {
    let cred: Value =
        serde_json::from_slice(&std::fs::read(target.state.join("credential.json")).unwrap())
            .unwrap();
    let client = Client::new(ClientConfig::new(
        &cl.c.url,
        Some(&cl.c.ca_fingerprint),
        cred["credential"].as_str(),
    ))
    .unwrap();
    eventually(30, "the deploy job to reach the target", || {
        let client = client.clone();
        async move {
            client
                .poll_job(std::time::Duration::from_secs(2))
                .await
                .map_err(|e| custody_e2e::E2eError::Setup(e.to_string()))
        }
    })
    .await
    .unwrap()
}

/// Every object key in `v`, recursively.
fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k.clone());
            keys(x, out);
        }),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_get_only_their_own_wrap_and_a_stolen_state_dir_holds_no_plaintext() {
    // One install root shared by both targets, so one release installs on both.
    let shared = tempfile::Builder::new()
        .prefix("custody-e2e-shared.")
        .tempdir()
        .unwrap();
    let mut cl = Cluster::start(&ClusterOptions {
        coordinator: CoordinatorOptions {
            deploy_deadline_seconds: 3,
            ..CoordinatorOptions::default()
        },
        targets: vec![Keystore::Soft, Keystore::Soft],
        target_install_roots: vec![shared.path().to_path_buf()],
        ..ClusterOptions::default()
    })
    .await
    .unwrap();
    let ids: Vec<String> = cl.targets.iter().map(|t| t.server_id.clone()).collect();
    let c = &cl.c;
    c.create_app("web", true).await.unwrap();
    c.environment("web", "dev", &[&ids[0], &ids[1]])
        .await
        .unwrap();
    c.set_plain("web", "dev", "MODE", "dev").await.unwrap();
    let holders = cl.km_keys().await.unwrap();
    c.set_secret(&holders, "web", "dev", "DB_PASSWORD", SECRET)
        .await
        .unwrap();
    let dest = shared.path().join("web");
    let manifest = format!(
        "version = 1\ndestination = \"{}\"\ninclude = [\"app.txt\"]\nenv = [\"MODE\", \"DB_PASSWORD\"]\n",
        dest.display()
    );
    let tar = release::tar_of(&[
        ("custody.toml", manifest.as_bytes(), 0o644),
        ("app.txt", MARKER, 0o644),
    ])
    .unwrap();
    let r = release::push(c, "web", &tar, manifest.as_bytes(), &cl.publisher)
        .await
        .unwrap();

    // MK, as a thief of a key manager's disk would learn it.
    let km = &cl.kms[0];
    let wrap = c
        .sql(&format!(
            "SELECT jwe FROM master_key_wraps WHERE server_id = '{}'",
            km.server_id
        ))
        .await
        .unwrap();
    let mk = unwrap_with(km, &wrap).unwrap();
    assert_eq!(mk.len(), 32);

    // The targets are down; the deploy job of each is taken with the
    // target's own credential: exactly what the target would receive.
    for t in cl.targets.iter_mut() {
        assert!(t.stop().await.unwrap().success());
    }
    let d = c.deploy("web", &r.release_id, "dev").await.unwrap();
    let mut dks = Vec::new();
    for (i, t) in cl.targets.iter().enumerate() {
        let other = &cl.targets[1 - i];
        let job = poll_as(&cl, t).await;
        let JobPayload::Deploy {
            deployment_id,
            wrapped_deploy_key,
            ..
        } = &job.payload
        else {
            panic!("{} got a {:?} job", t.name, job.payload.kind());
        };
        assert_eq!(deployment_id, &d.id);
        let value = serde_json::to_value(&job).unwrap();
        let mut names = Vec::new();
        keys(&value, &mut names);
        assert!(
            names.iter().all(|k| !k.contains("master")),
            "{}: {names:?}",
            t.name
        );
        let fingerprint = c.server(&t.server_id).await.unwrap().key_fingerprint;
        let mut found = Vec::new();
        jwes(&value, &mut found);
        assert_eq!(found.len(), 2, "{}: {found:?}", t.name);
        for j in &found {
            let h = jwe::peek(j).unwrap();
            if h.alg == "dir" {
                assert_eq!(h.binding.purpose, Purpose::KeyList, "{h:?}");
            } else {
                assert_eq!(h.binding.purpose, Purpose::DeployKey, "{h:?}");
                assert_eq!(h.kid, fingerprint, "a wrap for another server");
            }
            assert_eq!(h.binding.deployment.as_deref(), Some(d.id.as_str()));
        }
        // Its wrap opens with its own key, not with the other target's.
        let dk = unwrap_with(t, wrapped_deploy_key).unwrap();
        assert!(unwrap_with(other, wrapped_deploy_key).is_err());
        // And it carries no trace of MK.
        let text = serde_json::to_vec(&value).unwrap();
        for e in encodings(&mk) {
            assert!(!files::contains(&text, &e), "{}: MK in its job", t.name);
        }
        dks.push(dk);
    }
    assert_eq!(dks[0], dks[1], "one deploy key per deployment");

    // The real targets come back and get the deploy re-issued, one after
    // the other (they install into the same shared root).
    for (t, id) in cl.targets.iter_mut().zip(&ids) {
        t.start_live(c).await.unwrap();
        eventually(60, "the target to install", || async {
            let d = c.deployment(&d.id).await?;
            let state = d
                .targets
                .iter()
                .find(|t| &t.server_id == id)
                .map(|t| t.state.clone());
            Ok((state.as_deref() == Some("succeeded")).then_some(()))
        })
        .await
        .unwrap();
    }
    let done = c.finished(&d.id).await.unwrap();
    assert_eq!(done.state, DeploymentState::Succeeded, "{done:?}");
    assert_eq!(std::fs::read(dest.join("app.txt")).unwrap(), MARKER);

    // Every job either target was ever given is a deploy.
    for id in &ids {
        for j in c.jobs().await.unwrap() {
            let touched = j["assigned_server"] == id.as_str()
                || j["done_by"] == id.as_str()
                || j["tried"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|s| s == id.as_str()));
            if touched {
                assert_eq!(j["type"], "deploy", "{j}");
            }
        }
    }

    // A stolen copy of the state dir: nothing in it, in any encoding.
    let state = c.state_dir().to_path_buf();
    let needles: Vec<(&str, Vec<u8>)> = [
        ("MK", mk.to_vec()),
        ("RK", r.release_key.to_vec()),
        ("DK", dks[0].to_vec()),
        ("secret variable", SECRET.as_bytes().to_vec()),
        ("release body", MARKER.to_vec()),
        ("release manifest", manifest.as_bytes().to_vec()),
    ]
    .into_iter()
    .flat_map(|(what, bytes)| encodings(&bytes).into_iter().map(move |e| (what, e)))
    .collect();
    let sealed_keylist = c
        .sql(&format!(
            "SELECT sealed_keylist FROM deployments WHERE id = '{}'",
            d.id
        ))
        .await
        .unwrap();
    let grep_all = |when: &str| {
        let all = files::walk(&state);
        assert!(
            all.iter().any(|p| p.ends_with("coordinator.db")),
            "{when}: {all:?}"
        );
        // The search sees the database's contents (a control that must hit).
        assert!(
            !files::grep(&state, sealed_keylist.as_bytes()).is_empty(),
            "{when}: the control string is not found"
        );
        for (what, needle) in &needles {
            let hits = files::grep(&state, needle);
            assert!(hits.is_empty(), "{when}: {what} found in {hits:?}");
        }
        all
    };
    let running = grep_all("while running");
    assert!(
        running
            .iter()
            .any(|p| p.to_string_lossy().ends_with("-wal")),
        "no WAL to search: {running:?}"
    );
    cl.c.process().terminate(30).await.unwrap();
    grep_all("after shutdown");
}
