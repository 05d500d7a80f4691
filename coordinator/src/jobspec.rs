//! What each job type is built from, who may run it, how its payload is
//! materialised for the agent that claims it, and what its result changes.
//!
//! A job stores only ids ([`Spec`]); the payload (which holds `wrap(P_k, MK)`
//! for the claiming key manager `k`) is built at hand-out, so a failover to
//! another key manager sends that one's own wraps.

use crate::envelopes::{self, Expect, Kind};
use crate::error::{Error, Result};
use crate::state::Tx;
use crate::store::{apps, deployments as dstore, envs, servers};
use custody_envelope::jwe::Purpose;
use custody_proto::jobs::{
    ArtifactLocation, JobKind, JobOutput, JobPayload, PlainVariable, SealedVariable,
    WrappedMasterKey,
};
use serde::{Deserialize, Serialize};

/// The ids a job's payload is built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Spec {
    /// New master key.
    CreateMasterKey {
        /// Its id.
        master_key_id: String,
    },
    /// Share MK with a newcomer.
    ShareMasterKey {
        /// MK id.
        master_key_id: String,
        /// Server to wrap for.
        newcomer: String,
    },
    /// seal(MK, RK) for a release.
    RewrapReleaseKey {
        /// Release.
        release_id: String,
    },
    /// seal(MK, value) for a variable.
    SealSecretVariable {
        /// Variable row.
        variable_id: String,
    },
    /// Key list and DK.
    PrepareDeployment {
        /// Deployment.
        deployment_id: String,
    },
    /// wrap(P_t, DK).
    WrapDeployKey {
        /// Deployment.
        deployment_id: String,
        /// Target.
        target: String,
    },
    /// Install on a target.
    Deploy {
        /// Deployment.
        deployment_id: String,
        /// Target.
        target: String,
    },
}

impl Spec {
    /// The job type.
    pub fn kind(&self) -> JobKind {
        match self {
            Spec::CreateMasterKey { .. } => JobKind::CreateMasterKey,
            Spec::ShareMasterKey { .. } => JobKind::ShareMasterKey,
            Spec::RewrapReleaseKey { .. } => JobKind::RewrapReleaseKey,
            Spec::SealSecretVariable { .. } => JobKind::SealSecretVariable,
            Spec::PrepareDeployment { .. } => JobKind::PrepareDeployment,
            Spec::WrapDeployKey { .. } => JobKind::WrapDeployKey,
            Spec::Deploy { .. } => JobKind::Deploy,
        }
    }

    /// Deploy jobs run only on their target.
    pub fn target(&self) -> Option<&str> {
        match self {
            Spec::Deploy { target, .. } => Some(target),
            _ => None,
        }
    }

    /// Deploys are keyed by (deployment, target) so a target installs once.
    pub fn idempotency_key(&self) -> Option<String> {
        match self {
            Spec::Deploy {
                deployment_id,
                target,
            } => Some(format!("{deployment_id}:{target}")),
            _ => None,
        }
    }

    /// The id of the object the job works on (`jobs.subject`).
    pub fn subject(&self) -> &str {
        match self {
            Spec::CreateMasterKey { master_key_id }
            | Spec::ShareMasterKey { master_key_id, .. } => master_key_id,
            Spec::RewrapReleaseKey { release_id } => release_id,
            Spec::SealSecretVariable { variable_id } => variable_id,
            Spec::PrepareDeployment { deployment_id }
            | Spec::WrapDeployKey { deployment_id, .. }
            | Spec::Deploy { deployment_id, .. } => deployment_id,
        }
    }

    /// JSON for the `spec` column (deterministic: fixed field order).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Internal(format!("job spec: {e}")))
    }

    /// Parses the `spec` column.
    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| Error::Internal(format!("stored job spec: {e}")))
    }
}

async fn release(tx: &mut Tx<'_>, id: &str) -> Result<apps::ReleaseRow> {
    apps::get_release(&mut tx.c, id)
        .await?
        .ok_or_else(|| Error::Internal(format!("job refers to missing release {id}")))
}

async fn deployment(tx: &mut Tx<'_>, id: &str) -> Result<dstore::DeploymentRow> {
    dstore::get(&mut tx.c, id)
        .await?
        .ok_or_else(|| Error::Internal(format!("job refers to missing deployment {id}")))
}

async fn master_key_of_release(tx: &mut Tx<'_>, rel: &str) -> Result<String> {
    release(tx, rel)
        .await?
        .public
        .master_key_id
        .ok_or_else(|| Error::Internal("release without master key".into()))
}

/// Servers that may run a job (before the liveness filter). Key-manager
/// jobs: enabled key managers holding the master key and any job-specific
/// wrap; deploys: the target.
pub async fn eligible(tx: &mut Tx<'_>, spec: &Spec) -> Result<Vec<String>> {
    let kms: Vec<String> = servers::key_managers(&mut tx.c)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let holders_of =
        |h: Vec<String>| -> Vec<String> { h.into_iter().filter(|s| kms.contains(s)).collect() };
    Ok(match spec {
        Spec::CreateMasterKey { .. } => kms.clone(),
        Spec::ShareMasterKey {
            master_key_id,
            newcomer,
        } => holders_of(servers::holders(&mut tx.c, master_key_id).await?)
            .into_iter()
            .filter(|s| s != newcomer)
            .collect(),
        Spec::RewrapReleaseKey { release_id } => {
            let mk = master_key_of_release(tx, release_id).await?;
            let wrapped = apps::release_wrap_servers(&mut tx.c, release_id).await?;
            holders_of(servers::holders(&mut tx.c, &mk).await?)
                .into_iter()
                .filter(|s| wrapped.contains(s))
                .collect()
        }
        Spec::SealSecretVariable { variable_id } => {
            let Some(v) = envs::get_var(&mut tx.c, variable_id).await? else {
                return Ok(vec![]);
            };
            let mk = v.master_key_id.unwrap_or_default();
            let wrapped = envs::var_wrap_servers(&mut tx.c, variable_id).await?;
            holders_of(servers::holders(&mut tx.c, &mk).await?)
                .into_iter()
                .filter(|s| wrapped.contains(s))
                .collect()
        }
        Spec::PrepareDeployment { deployment_id } | Spec::WrapDeployKey { deployment_id, .. } => {
            let d = deployment(tx, deployment_id).await?;
            let mk = master_key_of_release(tx, &d.release_id).await?;
            holders_of(servers::holders(&mut tx.c, &mk).await?)
        }
        Spec::Deploy { target, .. } => vec![target.clone()],
    })
}

async fn wrapped_mk(tx: &mut Tx<'_>, mk: &str, me: &str) -> Result<WrappedMasterKey> {
    let jwe = servers::wrap_for(&mut tx.c, mk, me)
        .await?
        .ok_or_else(|| Error::state(format!("server {me} holds no wrap of master key {mk}")))?;
    Ok(WrappedMasterKey {
        master_key_id: mk.to_string(),
        jwe,
    })
}

async fn server_key(tx: &mut Tx<'_>, id: &str) -> Result<custody_proto::servers::KeyManagerKey> {
    Ok(servers::find(&mut *tx.c, id)
        .await?
        .ok_or_else(|| Error::state(format!("server {id} was removed")))?
        .key())
}

/// A variable with its environment's and app's names; an error if either
/// row is gone.
async fn variable_in_context(
    tx: &mut Tx<'_>,
    variable_id: &str,
) -> Result<Option<(envs::VarRow, String, String)>> {
    envs::var_in_context(&mut tx.c, variable_id)
        .await?
        .map(named)
        .transpose()
}

/// The variable, its environment's name and its app's.
fn named(v: envs::VarInContext) -> Result<(envs::VarRow, String, String)> {
    let environment = v
        .environment
        .ok_or_else(|| Error::state("the environment is gone"))?;
    let app = v.app.ok_or_else(|| Error::state("the app is gone"))?;
    Ok((v.var, environment, app))
}

/// Builds the payload for server `me`.
pub async fn materialize(tx: &mut Tx<'_>, spec: &Spec, me: &str) -> Result<JobPayload> {
    let account = tx.state().account.clone();
    Ok(match spec {
        Spec::CreateMasterKey { master_key_id } => {
            let kms = servers::key_managers(&mut tx.c).await?;
            JobPayload::CreateMasterKey {
                account,
                master_key_id: master_key_id.clone(),
                key_managers: kms.iter().map(|s| s.key()).collect(),
            }
        }
        Spec::ShareMasterKey {
            master_key_id,
            newcomer,
        } => JobPayload::ShareMasterKey {
            account,
            master_key: wrapped_mk(tx, master_key_id, me).await?,
            newcomer: server_key(tx, newcomer).await?,
        },
        Spec::RewrapReleaseKey { release_id } => {
            let r = release(tx, release_id).await?;
            let mk = r.public.master_key_id.clone().unwrap_or_default();
            JobPayload::RewrapReleaseKey {
                account,
                app: r.public.app.clone(),
                release_id: release_id.clone(),
                master_key: wrapped_mk(tx, &mk, me).await?,
                wrapped_release_key: apps::release_wrap(&mut tx.c, release_id, me)
                    .await?
                    .ok_or_else(|| Error::state("no release key wrapped for this key manager"))?,
            }
        }
        Spec::SealSecretVariable { variable_id } => {
            let inputs = envs::seal_inputs(&mut tx.c, variable_id, me)
                .await?
                .ok_or_else(|| Error::state("the variable was replaced"))?;
            let (v, environment, app) = named(inputs.var)?;
            let mk = v.master_key_id.clone().unwrap_or_default();
            let jwe = inputs.master_key_wrap.ok_or_else(|| {
                Error::state(format!("server {me} holds no wrap of master key {mk}"))
            })?;
            JobPayload::SealSecretVariable {
                account,
                app,
                environment,
                name: v.name.clone(),
                master_key: WrappedMasterKey {
                    master_key_id: mk,
                    jwe,
                },
                wrapped_value: inputs
                    .value_wrap
                    .ok_or_else(|| Error::state("no value wrapped for this key manager"))?,
            }
        }
        Spec::PrepareDeployment { deployment_id } => {
            let d = deployment(tx, deployment_id).await?;
            let r = release(tx, &d.release_id).await?;
            let mk = r.public.master_key_id.clone().unwrap_or_default();
            let vars = envs::env_vars(&mut tx.c, &d.environment_id).await?;
            JobPayload::PrepareDeployment {
                account,
                app: d.app.clone(),
                release_id: d.release_id.clone(),
                deployment_id: d.id.clone(),
                environment: d.environment.clone(),
                master_key: wrapped_mk(tx, &mk, me).await?,
                sealed_release_key: r
                    .sealed_release_key
                    .ok_or_else(|| Error::state("release key not sealed"))?,
                package_sha256: r.public.package_sha256.unwrap_or_default(),
                secret_variables: vars
                    .into_iter()
                    .filter(|v| v.secret)
                    .filter_map(|v| v.sealed.map(|jwe| SealedVariable { name: v.name, jwe }))
                    .collect(),
            }
        }
        Spec::WrapDeployKey {
            deployment_id,
            target,
        } => {
            let d = deployment(tx, deployment_id).await?;
            let mk = master_key_of_release(tx, &d.release_id).await?;
            JobPayload::WrapDeployKey {
                account,
                app: d.app.clone(),
                release_id: d.release_id.clone(),
                deployment_id: d.id.clone(),
                master_key: wrapped_mk(tx, &mk, me).await?,
                sealed_deploy_key: d
                    .sealed_deploy_key
                    .ok_or_else(|| Error::state("deploy key not prepared"))?,
                target: server_key(tx, target).await?,
            }
        }
        Spec::Deploy {
            deployment_id,
            target,
        } => {
            let d = deployment(tx, deployment_id).await?;
            let r = release(tx, &d.release_id).await?;
            let wrapped_dk = dstore::targets(&mut tx.c, deployment_id)
                .await?
                .into_iter()
                .find(|t| &t.0.server_id == target)
                .and_then(|t| t.1)
                .ok_or_else(|| Error::state("deploy key not wrapped for this target"))?;
            let sha = r.public.package_sha256.clone().unwrap_or_default();
            let descriptor: serde_json::Value =
                serde_json::from_str(r.descriptor.as_deref().unwrap_or("null"))
                    .map_err(|e| Error::Internal(format!("stored descriptor: {e}")))?;
            let vars = envs::env_vars(&mut tx.c, &d.environment_id).await?;
            JobPayload::Deploy {
                account,
                app: d.app.clone(),
                release_id: d.release_id.clone(),
                deployment_id: d.id.clone(),
                environment: d.environment.clone(),
                descriptor,
                sealed_keylist: d
                    .sealed_keylist
                    .ok_or_else(|| Error::state("key list not prepared"))?,
                wrapped_deploy_key: wrapped_dk,
                artifact: ArtifactLocation {
                    url: format!("{}/v1/agent/artifacts/{sha}", tx.state().public_url),
                    sha256: sha,
                    size: r.public.package_size.unwrap_or(0),
                },
                variables: vars
                    .into_iter()
                    .filter(|v| !v.secret)
                    .map(|v| PlainVariable {
                        name: v.name,
                        value: v.value.unwrap_or_default(),
                    })
                    .collect(),
            }
        }
    })
}

/// Applies a successful result. An invalid output is refused (400) and
/// changes nothing: the transaction rolls back.
pub async fn apply(tx: &mut Tx<'_>, spec: &Spec, by: &str, output: JobOutput) -> Result<()> {
    match (spec, output) {
        (
            Spec::CreateMasterKey { master_key_id },
            JobOutput::CreateMasterKey {
                master_key_id: got,
                wrapped,
            },
        ) => {
            if &got != master_key_id {
                return Err(Error::invalid("master_key_id does not match the job"));
            }
            crate::masterkey::on_created(tx, master_key_id, &wrapped, by).await
        }
        (
            Spec::ShareMasterKey {
                master_key_id,
                newcomer,
            },
            JobOutput::ShareMasterKey { wrapped },
        ) => {
            if &wrapped.server_id != newcomer {
                return Err(Error::invalid("the wrap is not for the job's newcomer"));
            }
            let fp = server_key(tx, newcomer).await?.fingerprint;
            let account = tx.state().account.clone();
            envelopes::check(
                &wrapped.jwe,
                &account,
                Expect::new("wrapped master key", Purpose::MasterKey, Kind::WrapTo).kid(&fp),
            )?;
            crate::masterkey::on_shared(tx, master_key_id, newcomer, &wrapped.jwe).await
        }
        (
            Spec::RewrapReleaseKey { release_id },
            JobOutput::RewrapReleaseKey { sealed_release_key },
        ) => {
            let r = release(tx, release_id).await?;
            let mk = r.public.master_key_id.clone().unwrap_or_default();
            envelopes::check(
                &sealed_release_key,
                &tx.state().account,
                Expect::new("sealed release key", Purpose::ReleaseKey, Kind::Sealed)
                    .kid(&mk)
                    .app(&r.public.app)
                    .release(release_id),
            )?;
            crate::releases::on_sealed(tx, release_id, &sealed_release_key).await
        }
        (
            Spec::SealSecretVariable { variable_id },
            JobOutput::SealSecretVariable { sealed_value },
        ) => {
            if let Some((v, environment, app)) = variable_in_context(tx, variable_id).await? {
                let mk = v.master_key_id.clone().unwrap_or_default();
                envelopes::check(
                    &sealed_value,
                    &tx.state().account,
                    Expect::new("sealed value", Purpose::SecretVar, Kind::Sealed)
                        .kid(&mk)
                        .app(&app)
                        .environment(&environment)
                        .name(&v.name),
                )?;
                envs::set_var_sealed(&mut tx.c, variable_id, Some(&sealed_value)).await?;
            }
            Ok(())
        }
        (
            Spec::PrepareDeployment { deployment_id },
            JobOutput::PrepareDeployment {
                sealed_keylist,
                sealed_deploy_key,
            },
        ) => {
            let d = deployment(tx, deployment_id).await?;
            let mk = master_key_of_release(tx, &d.release_id).await?;
            let account = tx.state().account.clone();
            envelopes::check(
                &sealed_keylist,
                &account,
                Expect::new("sealed key list", Purpose::KeyList, Kind::Sealed)
                    .deployment(deployment_id),
            )?;
            envelopes::check(
                &sealed_deploy_key,
                &account,
                Expect::new("sealed deploy key", Purpose::DeployKey, Kind::Sealed)
                    .kid(&mk)
                    .deployment(deployment_id),
            )?;
            crate::deployments::on_prepared(tx, deployment_id, &sealed_keylist, &sealed_deploy_key)
                .await
        }
        (
            Spec::WrapDeployKey {
                deployment_id,
                target,
            },
            JobOutput::WrapDeployKey { wrapped_deploy_key },
        ) => {
            let fp = server_key(tx, target).await?.fingerprint;
            let account = tx.state().account.clone();
            envelopes::check(
                &wrapped_deploy_key,
                &account,
                Expect::new("wrapped deploy key", Purpose::DeployKey, Kind::WrapTo)
                    .kid(&fp)
                    .deployment(deployment_id),
            )?;
            crate::deployments::on_wrapped(tx, deployment_id, target, &wrapped_deploy_key).await
        }
        (
            Spec::Deploy {
                deployment_id,
                target,
            },
            JobOutput::Deploy { .. },
        ) => crate::deployments::on_target_done(tx, deployment_id, target, None).await,
        _ => Err(Error::invalid("the output's type does not match the job")),
    }
}

/// Applies a job's final failure.
pub async fn on_failure(tx: &mut Tx<'_>, spec: &Spec, reason: &str) -> Result<()> {
    match spec {
        Spec::CreateMasterKey { master_key_id } => {
            servers::set_master_key_state(&mut tx.c, master_key_id, "failed").await
        }
        Spec::ShareMasterKey { .. } => Ok(()),
        Spec::RewrapReleaseKey { release_id } => {
            apps::set_release_state(
                &mut tx.c,
                release_id,
                custody_proto::apps::ReleaseState::Undeployable,
                Some(&format!("sealing the release key failed: {reason}")),
            )
            .await
        }
        Spec::SealSecretVariable { variable_id } => {
            envs::set_var_sealed(&mut tx.c, variable_id, None).await
        }
        Spec::PrepareDeployment { deployment_id } => {
            crate::deployments::fail(
                tx,
                deployment_id,
                &format!("preparing the deployment failed: {reason}"),
            )
            .await
        }
        Spec::WrapDeployKey {
            deployment_id,
            target,
        } => {
            crate::deployments::on_target_done(
                tx,
                deployment_id,
                target,
                Some(&format!("wrapping the deploy key failed: {reason}")),
            )
            .await
        }
        Spec::Deploy {
            deployment_id,
            target,
        } => crate::deployments::on_target_done(tx, deployment_id, target, Some(reason)).await,
    }
}
