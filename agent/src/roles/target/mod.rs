//! The target's job: *deploy* (`docs/API.md`; DESIGN Flow 6).
//!
//! In order, each step refusing with a typed [`DeployError`]:
//!
//! 1. exactly once: the (deployment, target) record says installed →
//!    answer `already_installed` without touching anything ([`records`]);
//! 2. download the package into the private staging dir, streamed and
//!    resumable ([`staging`]);
//! 3. unwrap `DK` in this server's keystore; open the key list under it
//!    (bound to account, app, release, deployment) ([`verify`]);
//! 4. verify the release descriptor's signature against `[target]
//!    publisher_keys` and its ids against the job's;
//! 5. SHA-256 of the whole package file = key list digest = descriptor
//!    digest;
//! 6. decrypt with the parallel decryptor into
//!    `staging/<deployment>/package.tar.partial`, renamed to `package.tar`
//!    only when the final chunk verified; the package header must name the
//!    job's release;
//! 7. hand the verified tar to the installer child with the environment's
//!    variables (plain from the job, secret from the key list), streaming
//!    its log lines to the coordinator ([`logs`]);
//! 8. record the install (also when `post_install` failed after the files
//!    were moved: a re-delivery is answered with that failure); remove the
//!    staging dir — in every case.

pub mod error;
mod install;
pub mod logs;
pub mod records;
pub mod staging;
pub mod verify;

use std::path::Path;
use std::sync::{Arc, RwLock};

use custody_client::Client;
use custody_envelope::descriptor::PublisherKey;
use custody_proto::jobs::{ArtifactLocation, Job, JobPayload};

pub use error::DeployError;
pub use install::InstallerSlot;
use logs::LogSink;
use records::{InstallOutcomeRecord, InstallState, Records};
use staging::Staging;
use verify::DeployIds;

use crate::config::{AgentConfig, parse_publisher_key};
use crate::keystore::KeyStore;
use crate::roles::JobError;

/// The deploy target: its keystore, pinned publisher keys, staging dir,
/// install records and installer.
pub struct Target {
    keystore: Arc<dyn KeyStore>,
    publisher_keys: RwLock<Vec<PublisherKey>>,
    staging: Staging,
    records: Records,
    installer: Option<InstallerSlot>,
    lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("staging", &self.staging)
            .finish_non_exhaustive()
    }
}

fn keys_from(list: &[String]) -> Vec<PublisherKey> {
    list.iter().filter_map(|k| parse_publisher_key(k)).collect()
}

impl Target {
    /// A target from the configuration (staging and install record
    /// directories under the state dir are created, leftover plaintext
    /// removed).
    pub fn new(
        config: &AgentConfig,
        keystore: Arc<dyn KeyStore>,
        installer: Option<InstallerSlot>,
    ) -> std::io::Result<Target> {
        Ok(Target {
            keystore,
            publisher_keys: RwLock::new(keys_from(&config.target.publisher_keys)),
            staging: Staging::open(&config.state.staging_dir())?,
            records: Records::open(&config.state.installs_dir())?,
            installer,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Replaces the pinned publisher keys (SIGHUP). Returns how many.
    pub fn set_publisher_keys(&self, list: &[String]) -> usize {
        let keys = keys_from(list);
        let n = keys.len();
        if let Ok(mut k) = self.publisher_keys.write() {
            *k = keys;
        }
        n
    }

    fn pinned(&self) -> Vec<PublisherKey> {
        self.publisher_keys
            .read()
            .map(|k| k.clone())
            .unwrap_or_default()
    }

    /// The staging root.
    pub fn staging_root(&self) -> &Path {
        self.staging.root()
    }

    /// Runs one deploy job. `Ok(true)`: it was installed before (nothing
    /// done); `Ok(false)`: installed now.
    pub async fn deploy(
        &self,
        client: &Client,
        account: &str,
        job: &Job,
    ) -> Result<bool, JobError> {
        let JobPayload::Deploy {
            account: job_account,
            app,
            release_id,
            deployment_id,
            ..
        } = &job.payload
        else {
            return Err(JobError::InvalidJob("not a deploy job".into()));
        };
        if job_account != account {
            return Err(DeployError::WrongAccount {
                expected: account.to_owned(),
                got: job_account.clone(),
            }
            .into());
        }
        // One deploy at a time; a re-delivery waits for the first and then
        // finds its record.
        let _guard = self.lock.lock().await;
        let ids = DeployIds {
            account,
            app,
            release: release_id,
            deployment: deployment_id,
        };
        let mut log = LogSink::start(client.clone(), job);
        let result = self.deploy_locked(client, job, &ids, &mut log).await;
        match &result {
            Ok(true) => log.status("already installed on this server; not installing again"),
            Ok(false) => log.status("installed"),
            Err(e) => log.status(&format!("deploy failed: {e}")),
        }
        log.finish().await;
        result.map_err(JobError::from)
    }

    async fn deploy_locked(
        &self,
        client: &Client,
        job: &Job,
        ids: &DeployIds<'_>,
        log: &mut LogSink,
    ) -> Result<bool, DeployError> {
        let key = job.idempotency_key.as_str();
        let state = self
            .records
            .state(key)
            .map_err(|source| DeployError::Staging {
                action: "read the install records",
                source,
            });
        let result = match state {
            Err(e) => Err(e),
            Ok(InstallState::Installed(rec)) => match rec.outcome {
                InstallOutcomeRecord::Succeeded => Ok(true),
                InstallOutcomeRecord::Failed { message } => {
                    Err(DeployError::FailedBefore { message })
                }
            },
            Ok(InstallState::Interrupted) => Err(DeployError::Interrupted),
            Ok(InstallState::New) => match self.staging.prepare(ids.deployment) {
                Ok(dir) => self
                    .stage_and_install(client, job, ids, &dir, log)
                    .await
                    .map(|()| false),
                Err(e) => Err(e),
            },
        };
        // The staging dir goes, whatever happened (also what an attempt
        // that crashed left there).
        self.staging.remove(ids.deployment);
        result
    }

    async fn stage_and_install(
        &self,
        client: &Client,
        job: &Job,
        ids: &DeployIds<'_>,
        dir: &Path,
        log: &mut LogSink,
    ) -> Result<(), DeployError> {
        let JobPayload::Deploy {
            descriptor,
            sealed_keylist,
            wrapped_deploy_key,
            artifact,
            variables,
            ..
        } = &job.payload
        else {
            return Err(DeployError::Internal("not a deploy job"));
        };
        if !staging::safe_component(&artifact.sha256)
            || artifact.sha256.len() != 64
            || !artifact.sha256.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(DeployError::Download(
                "the job's package digest is not hex".into(),
            ));
        }

        // 2. Download (resumable).
        log.status(&format!(
            "downloading the package ({} bytes)",
            artifact.size
        ));
        let cipher = dir.join(staging::CIPHERTEXT);
        // What an interrupted attempt left is resumed. The file is never
        // synced, so after a power loss it may hold anything: if it then
        // fails the digest, it is fetched once more from the start.
        let resumed = tokio::fs::metadata(&cipher)
            .await
            .is_ok_and(|m| m.len() > 0);
        fetch(client, artifact, &cipher).await?;

        // 3–5. Keys, key list, descriptor, digests (blocking: keystore, hashing).
        log.status("verifying the deploy key, key list, publisher signature and package digest");
        let keystore = self.keystore.clone();
        let pinned = self.pinned();
        let (wrapped, sealed, desc) = (
            wrapped_deploy_key.clone(),
            sealed_keylist.clone(),
            descriptor.clone(),
        );
        let owned = OwnedIds::from(ids);
        let (list, desc) = tokio::task::spawn_blocking(move || {
            let ids = owned.borrow();
            let dk = verify::unwrap_deploy_key(keystore.as_ref(), &ids, &wrapped)?;
            let list = verify::open_key_list(&dk, &ids, &sealed)?;
            drop(dk);
            let d = verify::verify_descriptor(&desc, &pinned, &ids)?;
            Ok::<_, DeployError>((list, d))
        })
        .await
        .map_err(|_| DeployError::Internal("the verification task failed"))??;
        let mut checked = verify::check_digests(&package_digest(&cipher).await?, &list, &desc);
        if resumed && matches!(checked, Err(DeployError::Digest { .. })) {
            log.status(
                "the resumed download does not match the package digest; downloading it again",
            );
            tokio::fs::remove_file(&cipher)
                .await
                .map_err(|source| DeployError::Staging {
                    action: "remove the package",
                    source,
                })?;
            fetch(client, artifact, &cipher).await?;
            checked = verify::check_digests(&package_digest(&cipher).await?, &list, &desc);
        }
        checked?;
        log.set_secrets(list.secrets.iter().map(|s| s.value.as_str()));

        // 6. Decrypt into staging; publish the name only when it all verified.
        log.status("decrypting the package into the private staging directory");
        let plain = dir.join(staging::PLAINTEXT);
        let partial = dir.join(staging::PLAINTEXT_PARTIAL);
        let owned = OwnedIds::from(ids);
        let rk = list.release_key;
        let (c, p, f) = (cipher.clone(), partial.clone(), plain.clone());
        tokio::task::spawn_blocking(move || decrypt(&rk, &c, &p, &f, &owned.borrow()))
            .await
            .map_err(|_| DeployError::Internal("the decryption task failed"))??;

        // 7. Install.
        log.status("handing the verified package to the installer");
        self.records
            .begin(&job.idempotency_key)
            .map_err(|source| DeployError::Staging {
                action: "write the install marker",
                source,
            })?;
        let installed = install::run(
            self.installer.as_ref(),
            ids.deployment,
            &plain,
            variables,
            list.secrets,
            log,
        )
        .await;
        if let Err(e) = installed {
            // Files moved but post_install failed: record that outcome, so
            // a re-delivery is answered from it. Otherwise nothing was
            // moved and a later deploy may try again.
            let recorded = match &e {
                DeployError::PostInstall { message } => self
                    .records
                    .finish_failed(
                        &job.idempotency_key,
                        ids.deployment,
                        ids.app,
                        ids.release,
                        message,
                    )
                    .map(drop),
                _ => self.records.abort(&job.idempotency_key),
            };
            if let Err(err) = recorded {
                tracing::error!(error = %err, "cannot record the install's outcome");
            }
            return Err(e);
        }
        // 8. Record.
        self.records
            .finish(&job.idempotency_key, ids.deployment, ids.app, ids.release)
            .map_err(DeployError::Record)?;
        Ok(())
    }
}

/// Downloads the package into `cipher` (resuming what is there) and
/// checks its size when the job states one: the digest checks cover the
/// content, the size catches a short or long file early.
async fn fetch(
    client: &Client,
    artifact: &ArtifactLocation,
    cipher: &Path,
) -> Result<(), DeployError> {
    let got = staging::download(client, &artifact.sha256, artifact.size, cipher).await?;
    if artifact.size > 0 && got != artifact.size {
        return Err(DeployError::Size {
            expected: artifact.size,
            got,
        });
    }
    Ok(())
}

/// SHA-256 of the downloaded package (hashing blocks: off the runtime).
async fn package_digest(cipher: &Path) -> Result<[u8; 32], DeployError> {
    let cipher = cipher.to_owned();
    tokio::task::spawn_blocking(move || staging::sha256_file(&cipher))
        .await
        .map_err(|_| DeployError::Internal("the hashing task failed"))?
}

/// Decrypts `cipher` into `partial` on all cores, checks the header names
/// the job's release, then renames `partial` to `plain`. On any error the
/// partial plaintext is removed.
fn decrypt(
    rk: &custody_envelope::SymmetricKey,
    cipher: &Path,
    partial: &Path,
    plain: &Path,
    ids: &DeployIds<'_>,
) -> Result<(), DeployError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let result = (|| {
        let input = std::fs::File::open(cipher).map_err(|source| DeployError::Staging {
            action: "open the package",
            source,
        })?;
        let output = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(partial)
            .map_err(|source| DeployError::Staging {
                action: "create the plaintext file",
                source,
            })?;
        let header = custody_envelope::stream::decrypt_file(rk, &input, &output, 0)
            .map_err(DeployError::Decrypt)?;
        verify::check_header(&header, ids)?;
        // No fsync: the plaintext never outlives this process (`Staging::open`
        // removes what a crash left), so it needs no durability, and a
        // deploy that finishes before writeback never puts it on the disk.
        std::fs::rename(partial, plain).map_err(|source| DeployError::Staging {
            action: "publish the plaintext file",
            source,
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(partial);
    }
    result
}

/// [`DeployIds`] owned, to cross into a blocking task.
struct OwnedIds {
    account: String,
    app: String,
    release: String,
    deployment: String,
}

impl OwnedIds {
    fn from(ids: &DeployIds<'_>) -> Self {
        OwnedIds {
            account: ids.account.to_owned(),
            app: ids.app.to_owned(),
            release: ids.release.to_owned(),
            deployment: ids.deployment.to_owned(),
        }
    }

    fn borrow(&self) -> DeployIds<'_> {
        DeployIds {
            account: &self.account,
            app: &self.app,
            release: &self.release,
            deployment: &self.deployment,
        }
    }
}
