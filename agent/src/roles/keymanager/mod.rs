//! Key-manager jobs (`docs/API.md`, "Job types"), one file per family:
//! the master key ([`master_key`]: create, share), release keys
//! ([`release_key`]: rewrap), secret variables ([`secret_variable`]: seal),
//! deployments ([`deployment`]: prepare, wrap the deploy key for a target).
//!
//! Every JWE a job brings is opened with the exact binding the job implies
//! (purpose, account and ids from the job), which `custody-envelope` checks
//! before the keystore is asked to unwrap anything. `MK`, `RK` and `DK` are
//! [`keys::KeyMaterial`] — locked memory, zeroized when the job returns.
//! Jobs are synchronous (keystore calls block): the agent runs them on
//! `[jobs] parallelism` keystore threads of its own, one job each at a time.

pub mod deployment;
pub mod keys;
pub mod master_key;
pub mod release_key;
pub mod secret_variable;

use custody_proto::jobs::{JobOutput, JobPayload};

use super::JobError;
use crate::keystore::KeyStore;

/// What a key-manager job runs with.
pub struct KeyManager<'a> {
    /// The started keystore.
    pub keystore: &'a dyn KeyStore,
    /// The account this agent enrolled in: every job must name it.
    pub account: &'a str,
    /// This server's id.
    pub server_id: &'a str,
}

impl KeyManager<'_> {
    fn check_account(&self, account: &str) -> Result<(), JobError> {
        if account == self.account {
            Ok(())
        } else {
            Err(JobError::WrongAccount {
                expected: self.account.to_owned(),
                got: account.to_owned(),
            })
        }
    }

    /// Runs one key-manager job.
    pub fn run(&self, payload: &JobPayload) -> Result<JobOutput, JobError> {
        match payload {
            JobPayload::CreateMasterKey {
                account,
                master_key_id,
                key_managers,
            } => {
                self.check_account(account)?;
                master_key::create(self, master_key_id, key_managers)
            }
            JobPayload::ShareMasterKey {
                account,
                master_key,
                newcomer,
            } => {
                self.check_account(account)?;
                master_key::share(self, master_key, newcomer)
            }
            JobPayload::RewrapReleaseKey {
                account,
                app,
                release_id,
                master_key,
                wrapped_release_key,
            } => {
                self.check_account(account)?;
                release_key::rewrap(self, app, release_id, master_key, wrapped_release_key)
            }
            JobPayload::SealSecretVariable {
                account,
                app,
                environment,
                name,
                master_key,
                wrapped_value,
            } => {
                self.check_account(account)?;
                secret_variable::seal(self, app, environment, name, master_key, wrapped_value)
            }
            JobPayload::PrepareDeployment { account, .. } => {
                self.check_account(account)?;
                deployment::prepare(self, payload)
            }
            JobPayload::WrapDeployKey {
                account,
                deployment_id,
                master_key,
                sealed_deploy_key,
                target,
                ..
            } => {
                self.check_account(account)?;
                deployment::wrap_deploy_key(
                    self,
                    deployment_id,
                    master_key,
                    sealed_deploy_key,
                    target,
                )
            }
            JobPayload::Deploy { .. } => {
                Err(JobError::NotOffered("deploy", "a deploy is a target's job"))
            }
        }
    }

    /// Unwraps `MK` from the job's `wrap(P_k, MK)`.
    pub(crate) fn master_key(
        &self,
        wrapped: &custody_proto::jobs::WrappedMasterKey,
    ) -> Result<keys::KeyMaterial, JobError> {
        keys::unwrap_key(
            self.keystore,
            "master key",
            &wrapped.jwe,
            &keys::binding::master_key(self.account),
        )
    }
}
