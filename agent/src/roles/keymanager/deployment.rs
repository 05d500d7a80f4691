//! Deployments: *prepare deployment* (build the key list, make `DK`) and
//! *wrap deploy key* for one target.

use custody_envelope::SymmetricKey;
use custody_envelope::keylist::{KeyList, SecretVar};
use custody_proto::jobs::{JobOutput, JobPayload, WrappedMasterKey};
use custody_proto::servers::KeyManagerKey;
use zeroize::Zeroizing;

use super::KeyManager;
use super::keys::{self, KeyMaterial, binding};
use crate::roles::JobError;

/// Parses a package digest: 64 lower-case hex digits.
pub fn parse_digest(hex_text: &str) -> Result<[u8; 32], JobError> {
    let mut out = [0u8; 32];
    let lower = hex_text.len() == 64
        && hex_text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !lower || hex::decode_to_slice(hex_text, &mut out).is_err() {
        return Err(JobError::InvalidJob(
            "package_sha256 is not 64 lower-case hex digits".into(),
        ));
    }
    Ok(out)
}

/// `seal(MK, RK)` + the environment's `seal(MK, value)`s → the key list
/// (release id, `RK`, package digest, secret variables); a fresh `DK`;
/// answers `seal(DK, keylist)` and `seal(MK, DK)`.
pub fn prepare(km: &KeyManager<'_>, payload: &JobPayload) -> Result<JobOutput, JobError> {
    let JobPayload::PrepareDeployment {
        account: _,
        app,
        release_id,
        deployment_id,
        environment,
        master_key,
        sealed_release_key,
        package_sha256,
        secret_variables,
    } = payload
    else {
        return Err(JobError::InvalidJob("not a prepare_deployment job".into()));
    };
    let digest = parse_digest(package_sha256)?;
    let mk = km.master_key(master_key)?;
    let mk_id = &master_key.master_key_id;
    let rk_plain = keys::open_sealed(
        "sealed release key",
        sealed_release_key,
        &mk,
        mk_id,
        &binding::release_key(km.account, app, release_id),
    )?;
    let rk = KeyMaterial::from_plaintext("sealed release key", &rk_plain)?;
    drop(rk_plain);
    let mut secrets = Vec::with_capacity(secret_variables.len());
    for var in secret_variables {
        let plain = keys::open_sealed(
            "sealed secret variable",
            &var.jwe,
            &mk,
            mk_id,
            &binding::secret_var(km.account, app, environment, &var.name),
        )?;
        let value = std::str::from_utf8(&plain).map_err(|_| {
            JobError::InvalidJob(format!(
                "secret variable {}: the value is not UTF-8",
                var.name
            ))
        })?;
        // Sized exactly, so no reallocation leaves a copy behind.
        let mut owned = Zeroizing::new(String::with_capacity(value.len()));
        owned.push_str(value);
        secrets.push(SecretVar {
            name: var.name.clone(),
            value: owned,
        });
    }
    let list = KeyList {
        release: release_id.clone(),
        release_key: rk.with_key(|k| SymmetricKey::from_bytes(*k.as_bytes())),
        package_sha256: digest,
        secrets,
    };
    let json = list.to_json().map_err(|source| JobError::Build {
        what: "key list",
        source,
    })?;
    drop(list);
    let dk = KeyMaterial::generate()?;
    let sealed_keylist = keys::seal(
        "seal(DK, keylist)",
        &dk,
        &binding::key_list_kid(deployment_id),
        &binding::key_list(km.account, app, release_id, deployment_id),
        &json,
    )?;
    drop(json);
    let sealed_deploy_key = keys::seal(
        "seal(MK, DK)",
        &mk,
        mk_id,
        &binding::deploy_key(km.account, deployment_id),
        dk.expose(),
    )?;
    Ok(JobOutput::PrepareDeployment {
        sealed_keylist,
        sealed_deploy_key,
    })
}

/// `seal(MK, DK)` → `wrap(P_t, DK)` for the target.
pub fn wrap_deploy_key(
    km: &KeyManager<'_>,
    deployment_id: &str,
    master_key: &WrappedMasterKey,
    sealed_deploy_key: &str,
    target: &KeyManagerKey,
) -> Result<JobOutput, JobError> {
    let b = binding::deploy_key(km.account, deployment_id);
    let mk = km.master_key(master_key)?;
    let dk_plain = keys::open_sealed(
        "sealed deploy key",
        sealed_deploy_key,
        &mk,
        &master_key.master_key_id,
        &b,
    )?;
    let dk = KeyMaterial::from_plaintext("sealed deploy key", &dk_plain)?;
    drop(dk_plain);
    drop(mk);
    let wrapped = keys::wrap_to("wrap(P_t, DK)", target, &b, dk.expose())?;
    Ok(JobOutput::WrapDeployKey {
        wrapped_deploy_key: wrapped,
    })
}
