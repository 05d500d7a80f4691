//! What `custody push` / `custody env set-var --secret` / `custody deploy`
//! do, done by the test with custody-envelope and custody-client: build a
//! package tar, encrypt it with a fresh release key, sign the descriptor,
//! wrap the key to every key manager, upload and finalize; wrap secret
//! variables to the key managers; create deployments and wait for them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use custody_envelope::descriptor::{PublisherKey, ReleaseDescriptor};
use custody_envelope::jwe::{self, Binding, Purpose};
use custody_envelope::package::Header;
use custody_envelope::{OaepHash, SymmetricKey};
use custody_proto::apps::{
    App, Deployment, DeploymentLogLine, Environment, PackageUploaded, Release, ReleaseCreated,
    ReleaseState, WrappedKey,
};
use custody_proto::servers::KeyManagerKey;
use ed25519_dalek::SigningKey;
use rsa::RsaPublicKey;
use rsa::pkcs8::DecodePublicKey as _;
use sha2::{Digest, Sha256};

use super::{Coordinator, eventually};

/// A publisher signing key and its pinned form (64 hex digits).
pub struct Publisher {
    pub key: SigningKey,
}

impl Publisher {
    pub fn new(seed: u8) -> Self {
        Publisher {
            key: SigningKey::from_bytes(&[seed; 32]),
        }
    }

    pub fn pin(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    pub fn public(&self) -> PublisherKey {
        PublisherKey::new(self.key.verifying_key())
    }
}

/// A tar with `files` (path, bytes, mode).
pub fn tar_of(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes, mode) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(*mode);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mtime(0);
        b.append_data(&mut h, path, *bytes).unwrap();
    }
    b.into_inner().unwrap()
}

fn wrap_to(k: &KeyManagerKey, binding: &Binding, plaintext: &[u8]) -> String {
    let pk = RsaPublicKey::from_public_key_pem(&k.public_key_pem).unwrap();
    assert_eq!(jwe::thumbprint(&pk), k.fingerprint);
    let hash = OaepHash::best_common(&k.oaep_hashes).unwrap();
    jwe::wrap(&pk, hash, binding, plaintext).unwrap()
}

/// A pushed release.
pub struct Pushed {
    pub release_id: String,
    pub package: Vec<u8>,
    pub sha256: String,
    pub release_key: [u8; 32],
}

/// Creates a secure app (needs two live key managers).
pub async fn create_secure_app(c: &Coordinator, app: &str) -> App {
    c.owner
        .post(
            "/v1/apps",
            &serde_json::json!({"name": app, "secure": true}),
        )
        .await
        .unwrap()
}

/// Pushes `tar` as a new release of `app`, signed by `publisher`; waits
/// until a key manager sealed its key (deployable).
pub async fn push(c: &Coordinator, app: &str, tar: &[u8], publisher: &Publisher) -> Pushed {
    let rc: ReleaseCreated = c
        .owner
        .post(&format!("/v1/apps/{app}/releases"), &serde_json::json!({}))
        .await
        .unwrap();
    let header = Header::new(&rc.account, &rc.app, &rc.release_id).unwrap();
    let rk = SymmetricKey::generate().unwrap();
    let package = custody_envelope::package::encrypt(&rk, &header, tar).unwrap();
    let digest: [u8; 32] = Sha256::digest(&package).into();
    let manifest: [u8; 32] = Sha256::digest(b"manifest").into();
    let descriptor = ReleaseDescriptor::new(header, &digest, &manifest)
        .unwrap()
        .sign(&publisher.key)
        .unwrap();
    let sha = hex::encode(digest);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("package.custody");
    std::fs::write(&file, &package).unwrap();
    let up: PackageUploaded = c
        .owner
        .upload_file(
            &format!("/v1/releases/{}/package", rc.release_id),
            &file,
            &sha,
        )
        .await
        .unwrap();
    assert_eq!(up.sha256, sha);
    let binding = Binding {
        purpose: Purpose::ReleaseKey,
        account: rc.account.clone(),
        app: Some(rc.app.clone()),
        release: Some(rc.release_id.clone()),
        deployment: None,
        name: None,
        environment: None,
    };
    let wrapped: Vec<WrappedKey> = rc
        .key_managers
        .iter()
        .map(|k| WrappedKey {
            server_id: k.server_id.clone(),
            jwe: wrap_to(k, &binding, rk.as_bytes()),
        })
        .collect();
    let descriptor_json: serde_json::Value =
        serde_json::from_slice(&descriptor.to_json().unwrap()).unwrap();
    let _: Release = c
        .owner
        .post(
            &format!("/v1/releases/{}/finalize", rc.release_id),
            &serde_json::json!({"descriptor": descriptor_json, "wrapped_release_keys": wrapped}),
        )
        .await
        .unwrap();
    let id = rc.release_id.clone();
    eventually(60, "the release to become deployable", || async {
        let r: Release = c.owner.get(&format!("/v1/releases/{id}")).await.unwrap();
        assert_ne!(r.state, ReleaseState::Undeployable, "{r:?}");
        (r.state == ReleaseState::Deployable).then_some(())
    })
    .await;
    Pushed {
        release_id: rc.release_id,
        package,
        sha256: sha,
        release_key: *rk.as_bytes(),
    }
}

/// Creates environment `env` of `app` with `targets`.
pub async fn environment(c: &Coordinator, app: &str, env: &str, targets: &[&str]) {
    let _: Environment = c
        .owner
        .post(
            &format!("/v1/apps/{app}/environments"),
            &serde_json::json!({"name": env}),
        )
        .await
        .unwrap();
    for t in targets {
        let _: Environment = c
            .owner
            .post(
                &format!("/v1/apps/{app}/environments/{env}/servers"),
                &serde_json::json!({"server": t}),
            )
            .await
            .unwrap();
    }
}

/// Sets a plain variable.
pub async fn set_plain(c: &Coordinator, app: &str, env: &str, name: &str, value: &str) {
    let _: Environment = c
        .owner
        .put(
            &format!("/v1/apps/{app}/environments/{env}/variables/{name}"),
            &serde_json::json!({"value": value}),
        )
        .await
        .unwrap();
}

/// Sets a secret variable: wrapped to every key manager in `kms` (those
/// holding the master key); waits until a key manager sealed it.
pub async fn set_secret(
    c: &Coordinator,
    kms: &[KeyManagerKey],
    app: &str,
    env: &str,
    name: &str,
    value: &str,
) {
    let binding = Binding {
        purpose: Purpose::SecretVar,
        account: c.account.clone(),
        app: Some(app.to_owned()),
        release: None,
        deployment: None,
        name: Some(name.to_owned()),
        environment: Some(env.to_owned()),
    };
    let wrapped: Vec<WrappedKey> = kms
        .iter()
        .map(|k| WrappedKey {
            server_id: k.server_id.clone(),
            jwe: wrap_to(k, &binding, value.as_bytes()),
        })
        .collect();
    let _: Environment = c
        .owner
        .put(
            &format!("/v1/apps/{app}/environments/{env}/variables/{name}"),
            &serde_json::json!({"wrapped": wrapped}),
        )
        .await
        .unwrap();
    eventually(60, "the secret variable to be sealed", || async {
        let e: Environment = c
            .owner
            .get(&format!("/v1/apps/{app}/environments/{env}"))
            .await
            .unwrap();
        let v = e.variables.iter().find(|v| v.name == name).unwrap();
        assert_ne!(v.state.as_deref(), Some("failed"), "{v:?}");
        (v.state.as_deref() == Some("sealed")).then_some(())
    })
    .await;
}

/// Creates a deployment.
pub async fn deploy(c: &Coordinator, app: &str, release: &str, env: &str) -> Deployment {
    c.owner
        .post(
            "/v1/deployments",
            &serde_json::json!({"app": app, "release": release, "environment": env}),
        )
        .await
        .unwrap()
}

/// Waits until the deployment is in a terminal state.
pub async fn finished(c: &Coordinator, id: &str) -> Deployment {
    eventually(120, "the deployment to finish", || async {
        let d: Deployment = c.owner.get(&format!("/v1/deployments/{id}")).await.unwrap();
        d.state.is_terminal().then_some(d)
    })
    .await
}

/// The deployment's log lines.
pub async fn log(c: &Coordinator, id: &str) -> Vec<DeploymentLogLine> {
    c.owner
        .get(&format!("/v1/deployments/{id}/log?after=0"))
        .await
        .unwrap()
}
