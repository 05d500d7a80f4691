//! Releases made by the test itself, the way `custody push` makes them,
//! with custody-envelope and the API: for packages the CLI would never
//! build (unsafe tar entries), publishers the targets do not pin, and
//! scenarios that must know the release key `RK`.

use custody_envelope::descriptor::ReleaseDescriptor;
use custody_envelope::jwe::{self, Binding, Purpose};
use custody_envelope::package::Header;
use custody_envelope::{OaepHash, SymmetricKey};
use custody_proto::apps::{PackageUploaded, Release, ReleaseCreated, ReleaseState, WrappedKey};
use custody_proto::servers::KeyManagerKey;
use ed25519_dalek::SigningKey;
use rsa::RsaPublicKey;
use rsa::pkcs8::DecodePublicKey as _;
use sha2::{Digest, Sha256};

use crate::coordinator::Coordinator;
use crate::error::{E2eError, Result, api, envelope, io};
use crate::wait::eventually;

/// A publisher signing key (Ed25519, from a seed byte: tests only).
pub struct Publisher {
    /// The signing key.
    pub key: SigningKey,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("pin", &self.pin())
            .finish()
    }
}

impl Publisher {
    /// The key made from `[seed; 32]`.
    pub fn from_seed(seed: u8) -> Self {
        Publisher {
            key: SigningKey::from_bytes(&[seed; 32]),
        }
    }

    /// The public half as targets pin it (64 hex digits).
    pub fn pin(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }
}

/// A tar of regular files (path, bytes, mode), as `custody push` builds
/// one (mtime 0).
pub fn tar_of(files: &[(&str, &[u8], u32)]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes, mode) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(*mode);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mtime(0);
        b.append_data(&mut h, path, *bytes)
            .map_err(io("add to the tar", path))?;
    }
    b.into_inner().map_err(io("finish", "the tar"))
}

/// `wrap(P, plaintext)` to a key manager, checking its fingerprint.
pub fn wrap_to(k: &KeyManagerKey, binding: &Binding, plaintext: &[u8]) -> Result<String> {
    let pk = RsaPublicKey::from_public_key_pem(&k.public_key_pem)
        .map_err(|e| E2eError::Setup(format!("public key of {}: {e}", k.server_id)))?;
    if jwe::thumbprint(&pk) != k.fingerprint {
        return Err(E2eError::Setup(format!(
            "the fingerprint of {} does not match its key",
            k.server_id
        )));
    }
    let hash = OaepHash::best_common(&k.oaep_hashes)
        .ok_or_else(|| E2eError::Setup(format!("no OAEP hash for {}", k.server_id)))?;
    jwe::wrap(&pk, hash, binding, plaintext).map_err(envelope("wrap"))
}

/// A release pushed by [`push`].
#[derive(Debug)]
pub struct Pushed {
    /// Its id.
    pub release_id: String,
    /// The encrypted package as uploaded.
    pub package: Vec<u8>,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// The release key `RK` (known to the test only because it made it).
    pub release_key: [u8; 32],
}

/// Pushes `tar` (whose `custody.toml` is `manifest`) as a new release of
/// `app` signed by `publisher`: release id, fresh `RK`, package,
/// descriptor, `RK` wrapped to every key manager, upload, finalize. Does
/// not wait for it to become deployable ([`wait_deployable`]).
pub async fn push_only(
    c: &Coordinator,
    app: &str,
    tar: &[u8],
    manifest: &[u8],
    publisher: &Publisher,
) -> Result<Pushed> {
    let rc: ReleaseCreated = c
        .owner
        .post(&format!("/v1/apps/{app}/releases"), &serde_json::json!({}))
        .await
        .map_err(api(format!("create a release of {app}")))?;
    let header = Header::new(&rc.account, &rc.app, &rc.release_id).map_err(envelope("header"))?;
    let rk = SymmetricKey::generate().map_err(envelope("release key"))?;
    let package =
        custody_envelope::package::encrypt(&rk, &header, tar).map_err(envelope("encrypt"))?;
    let digest: [u8; 32] = Sha256::digest(&package).into();
    let manifest_digest: [u8; 32] = Sha256::digest(manifest).into();
    let descriptor = ReleaseDescriptor::new(header, &digest, &manifest_digest)
        .and_then(|d| d.sign(&publisher.key))
        .map_err(envelope("descriptor"))?;
    let sha = hex::encode(digest);
    let dir = tempfile::tempdir().map_err(io("create", "a temporary directory"))?;
    let file = dir.path().join("package.custody");
    std::fs::write(&file, &package).map_err(io("write", file.display()))?;
    let up: PackageUploaded = c
        .owner
        .upload_file(
            &format!("/v1/releases/{}/package", rc.release_id),
            &file,
            &sha,
        )
        .await
        .map_err(api("upload the package"))?;
    if up.sha256 != sha {
        return Err(E2eError::Setup("the upload answered another digest".into()));
    }
    let binding = Binding {
        purpose: Purpose::ReleaseKey,
        account: rc.account.clone(),
        app: Some(rc.app.clone()),
        release: Some(rc.release_id.clone()),
        deployment: None,
        name: None,
        environment: None,
    };
    let wrapped = rc
        .key_managers
        .iter()
        .map(|k| {
            Ok(WrappedKey {
                server_id: k.server_id.clone(),
                jwe: wrap_to(k, &binding, rk.as_bytes())?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let descriptor_json: serde_json::Value = descriptor
        .to_json()
        .map_err(envelope("descriptor JSON"))
        .and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| E2eError::Setup(format!("descriptor: {e}")))
        })?;
    let _: Release = c
        .owner
        .post(
            &format!("/v1/releases/{}/finalize", rc.release_id),
            &serde_json::json!({"descriptor": descriptor_json, "wrapped_release_keys": wrapped}),
        )
        .await
        .map_err(api("finalize the release"))?;
    Ok(Pushed {
        release_id: rc.release_id,
        package,
        sha256: sha,
        release_key: *rk.as_bytes(),
    })
}

/// Waits until a key manager sealed the release's key (`deployable`).
pub async fn wait_deployable(c: &Coordinator, release_id: &str) -> Result<()> {
    eventually(60, "the release to become deployable", || async {
        let r: Release = c
            .owner
            .get(&format!("/v1/releases/{release_id}"))
            .await
            .map_err(api("GET release"))?;
        match r.state {
            ReleaseState::Deployable => Ok(Some(())),
            ReleaseState::Undeployable => Err(E2eError::Setup(format!(
                "release {release_id} is undeployable: {:?}",
                r.undeployable_reason
            ))),
            _ => Ok(None),
        }
    })
    .await
}

/// [`push_only`], then [`wait_deployable`].
pub async fn push(
    c: &Coordinator,
    app: &str,
    tar: &[u8],
    manifest: &[u8],
    publisher: &Publisher,
) -> Result<Pushed> {
    let p = push_only(c, app, tar, manifest, publisher).await?;
    wait_deployable(c, &p.release_id).await?;
    Ok(p)
}

/// A release tar as `custody push` would build it for a manifest that
/// installs `files` (path, bytes; mode 0644) at `destination`, with an
/// optional `post_install` shell command; returns (tar, manifest).
pub fn app_package(
    destination: &std::path::Path,
    files: &[(&str, &[u8])],
    post_install: Option<&str>,
) -> Result<(Vec<u8>, String)> {
    let include: Vec<String> = files.iter().map(|(p, _)| format!("\"{p}\"")).collect();
    let mut manifest = format!(
        "version = 1\ndestination = \"{}\"\ninclude = [{}]\n",
        destination.display(),
        include.join(", ")
    );
    if let Some(cmd) = post_install {
        let cmd = serde_json::to_string(cmd)
            .map_err(|e| E2eError::Setup(format!("hook command: {e}")))?;
        manifest.push_str(&format!(
            "\n[hooks.post_install]\ncommand = [\"/bin/sh\", \"-c\", {cmd}]\ntimeout_secs = 60\n"
        ));
    }
    let mut entries: Vec<(&str, &[u8], u32)> = vec![("custody.toml", manifest.as_bytes(), 0o644)];
    entries.extend(files.iter().map(|(p, b)| (*p, *b, 0o644)));
    Ok((tar_of(&entries)?, manifest))
}
