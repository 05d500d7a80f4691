//! `custody push`: package a directory as an encrypted, signed release.
//!
//! 1. Read `DIR/custody.toml` and list the files it selects.
//! 2. Check the key managers holding the master key against the
//!    trust-on-first-use record (refuse unknown ones before anything is
//!    created, unless `--accept-new-key-manager`).
//! 3. Ask the coordinator for a release id; recompute and check every
//!    returned key manager's fingerprint, and gate them again.
//! 4. Make a fresh release key `RK`; stream the deterministic tar through
//!    the parallel encryptor into a temporary file, hashing it.
//! 5. Sign the release descriptor with the publisher key; wrap `RK` to
//!    every key manager (their strongest OAEP hash); drop `RK` (zeroized).
//! 6. Upload, finalize; with `--wait`, wait until the release is
//!    deployable.
//!
//! Any failure after step 3 deletes the release (when the caller may), so
//! nothing half-pushed stays behind.

mod build;
mod tarball;
mod upload;

use super::Ctx;
use crate::key_managers::{Known, VerifiedKey, known_path};
use crate::{output, publisher_key};
use anyhow::{Context, Result, bail};
use custody_client::Client;
use custody_envelope::SymmetricKey;
use custody_envelope::descriptor::ReleaseDescriptor;
use custody_envelope::jwe::{Binding, Purpose};
use custody_envelope::package::Header;
use custody_proto::apps::{FinalizeRelease, Release, ReleaseCreated, ReleaseState, WrappedKey};
use custody_proto::servers::Server;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `custody push` arguments.
#[derive(clap::Args)]
pub struct PushArgs {
    /// The directory to package; it must hold custody.toml.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// The application (must be secure).
    #[arg(long)]
    app: String,
    /// Publisher signing key (default: publisher.key next to the login file).
    #[arg(long, value_name = "FILE", env = "CUSTODY_PUBLISHER_KEY")]
    key: Option<PathBuf>,
    /// Accept key-manager keys not seen before (trust on first use): compare
    /// the fingerprints shown with `custody-agent pubkey` on each key manager.
    #[arg(long)]
    accept_new_key_manager: bool,
    /// Wait until a key manager has sealed the release key and the release
    /// is deployable.
    #[arg(long)]
    wait: bool,
    /// Longest wait with --wait, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    wait_timeout: u64,
}

/// What a push made.
#[derive(serde::Serialize)]
struct Pushed {
    release_id: String,
    app: String,
    files: usize,
    package_sha256: String,
    package_size: u64,
    publisher_key_id: String,
    key_managers: Vec<String>,
    state: ReleaseState,
}

/// Refuses, before a release is created, when a key manager holding the
/// master key is not in the record (by the fingerprint the coordinator
/// lists; the keys themselves are checked again once received).
async fn precheck(c: &Client, known: &Known, accept_new: bool) -> Result<()> {
    if accept_new {
        return Ok(());
    }
    let servers: Vec<Server> = c.get("/v1/servers").await?;
    let unknown: Vec<&Server> = servers
        .iter()
        .filter(|s| s.holds_master_key && known.get(&s.key_fingerprint).is_none())
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let shown: Vec<(String, String, String)> = servers
        .iter()
        .filter(|s| s.holds_master_key)
        .map(|s| (s.name.clone(), s.id.clone(), s.key_fingerprint.clone()))
        .collect();
    known.gate_listed(&shown, false)?;
    Ok(())
}

/// Steps 3–6 for an allocated release; the caller cleans up on error.
async fn complete(
    ctx: &Ctx,
    c: &Client,
    a: &PushArgs,
    rc: &ReleaseCreated,
    sel: Arc<tarball::Selection>,
    signing: &ed25519_dalek::SigningKey,
    known: &Known,
) -> Result<(Pushed, Vec<VerifiedKey>)> {
    let login = ctx.login()?;
    if rc.account != login.account || rc.app != a.app {
        bail!(
            "the coordinator allocated the release for {}/{}, not {}/{}",
            rc.account,
            rc.app,
            login.account,
            a.app
        );
    }
    if rc.key_managers.is_empty() {
        bail!("the coordinator listed no key manager to wrap the release key to");
    }
    let keys = rc
        .key_managers
        .iter()
        .map(VerifiedKey::from_api)
        .collect::<Result<Vec<_>, _>>()?;
    let new = known.gate(&keys, a.accept_new_key_manager)?;

    let header = Header::new(&rc.account, &rc.app, &rc.release_id)
        .context("the release id is not usable in a package header")?;
    let rk = SymmetricKey::generate().context("making the release key")?;
    let files = sel.files.len();
    let manifest_sha = sel.manifest_sha256();
    let pkg = build::encrypt(sel, &rk, &header)?;
    let binding = Binding {
        purpose: Purpose::ReleaseKey,
        account: rc.account.clone(),
        app: Some(rc.app.clone()),
        release: Some(rc.release_id.clone()),
        deployment: None,
        name: None,
        environment: None,
    };
    let wrapped: Vec<WrappedKey> = keys
        .iter()
        .map(|k| k.wrap(&binding, rk.as_bytes()))
        .collect::<Result<_>>()?;
    drop(rk);
    let signed = ReleaseDescriptor::new(header, &pkg.sha256, &manifest_sha)
        .and_then(|d| d.sign(signing))
        .and_then(|s| s.to_json())
        .context("signing the release descriptor")?;
    let descriptor: serde_json::Value =
        serde_json::from_slice(&signed).context("signing the release descriptor")?;
    let sha_hex = hex::encode(pkg.sha256);
    eprintln!(
        "{files} files → package {} bytes, sha256 {sha_hex}",
        pkg.size
    );
    let up = upload::upload(c, &rc.release_id, &pkg.file, &sha_hex, pkg.size).await?;
    if up.sha256 != sha_hex || up.size != pkg.size {
        bail!("the coordinator stored a different package than the one sent");
    }
    let rel: Release = c
        .post(
            &format!("/v1/releases/{}/finalize", rc.release_id),
            &FinalizeRelease {
                descriptor,
                wrapped_release_keys: wrapped,
            },
        )
        .await
        .context("finalizing the release")?;
    Ok((
        Pushed {
            release_id: rc.release_id.clone(),
            app: rc.app.clone(),
            files,
            package_sha256: sha_hex,
            package_size: pkg.size,
            publisher_key_id: publisher_key::key_id(signing),
            key_managers: keys.iter().map(|k| k.fingerprint.clone()).collect(),
            state: rel.state,
        },
        new,
    ))
}

/// Polls until the release is deployable (or undeployable, or time runs out).
async fn wait_deployable(c: &Client, id: &str, timeout: Duration) -> Result<ReleaseState> {
    let start = Instant::now();
    loop {
        let r: Release = c.get(&format!("/v1/releases/{id}")).await?;
        match r.state {
            ReleaseState::Deployable => return Ok(r.state),
            ReleaseState::Undeployable => bail!(
                "release {id} is undeployable: {}",
                r.undeployable_reason
                    .as_deref()
                    .unwrap_or("no reason given")
            ),
            _ if start.elapsed() > timeout => bail!(
                "release {id} is still {:?} after {} s (is a key manager holding the master key running?)",
                r.state,
                timeout.as_secs()
            ),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Runs it.
pub async fn run(ctx: &Ctx, a: PushArgs) -> Result<()> {
    let key_path = match &a.key {
        Some(p) => p.clone(),
        None => super::keygen::default_path(ctx)?,
    };
    let signing = publisher_key::load(&key_path)?;
    let sel = Arc::new(tarball::Selection::read(&a.dir)?);
    let login = ctx.login()?;
    let c = ctx.client()?;
    let mut known = Known::load(known_path(&ctx.config_path()?), &login.account)?;
    precheck(&c, &known, a.accept_new_key_manager).await?;
    let rc: ReleaseCreated = c
        .post(
            &format!("/v1/apps/{}/releases", a.app),
            &serde_json::json!({}),
        )
        .await
        .context("creating the release")?;
    // Ctrl-C while packaging or uploading still deletes the release.
    let interrupted = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let outcome = tokio::select! {
        r = complete(ctx, &c, &a, &rc, sel, &signing, &known) => r,
        () = interrupted => Err(anyhow::anyhow!("interrupted")),
    };
    let (mut pushed, new) = match outcome {
        Ok(x) => x,
        Err(e) => {
            let what = match c.delete(&format!("/v1/releases/{}", rc.release_id)).await {
                Ok(()) => format!("push failed; release {} deleted", rc.release_id),
                Err(d) => format!(
                    "push failed; release {} could not be deleted ({}) — an owner can run `custody releases delete {}`",
                    rc.release_id,
                    d.code().map(|c| c.as_str()).unwrap_or("error"),
                    rc.release_id
                ),
            };
            return Err(e.context(what));
        }
    };
    known.add(&new)?;
    if a.wait {
        eprintln!(
            "waiting for a key manager to seal the release key of {}",
            pushed.release_id
        );
        pushed.state =
            wait_deployable(&c, &pushed.release_id, Duration::from_secs(a.wait_timeout)).await?;
    }
    if ctx.json {
        return output::json(&pushed);
    }
    eprintln!(
        "pushed release {} of {} ({}), signed by publisher key {}",
        pushed.release_id,
        pushed.app,
        match pushed.state {
            ReleaseState::Deployable => "deployable",
            _ => "sealing: `custody releases show` tells when it is deployable",
        },
        pushed.publisher_key_id
    );
    println!("{}", pushed.release_id);
    Ok(())
}
