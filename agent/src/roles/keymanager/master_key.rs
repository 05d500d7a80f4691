//! The master key: *create master key* (the first key manager makes `MK`
//! and wraps it to every enabled key manager) and *share master key* (a
//! holder wraps it for a newcomer).

use custody_proto::apps::WrappedKey;
use custody_proto::jobs::{JobOutput, WrappedMasterKey};
use custody_proto::servers::KeyManagerKey;

use super::KeyManager;
use super::keys::{self, KeyMaterial, binding};
use crate::roles::JobError;

/// `MK = random`; `wrap(P_i, MK)` for every listed key manager. Before
/// answering, this key manager opens its own wrap through its keystore, so
/// a key it could not use later is never handed out.
pub fn create(
    km: &KeyManager<'_>,
    master_key_id: &str,
    key_managers: &[KeyManagerKey],
) -> Result<JobOutput, JobError> {
    custody_envelope::ident::check("master_key_id", master_key_id).map_err(|source| {
        JobError::Envelope {
            what: "master key id",
            source,
        }
    })?;
    let own = crate::commands::fingerprint(km.keystore.public_key());
    let mine = key_managers
        .iter()
        .find(|k| k.fingerprint == own)
        .ok_or_else(|| {
            JobError::InvalidJob("this key manager is not among the job's key managers".into())
        })?;
    let mk = KeyMaterial::generate()?;
    let b = binding::master_key(km.account);
    let mut wrapped = Vec::with_capacity(key_managers.len());
    for k in key_managers {
        let jwe = keys::wrap_to("wrap(P_i, MK)", k, &b, mk.expose())?;
        wrapped.push(WrappedKey {
            server_id: k.server_id.clone(),
            jwe,
        });
    }
    // Self-check: our own wrap opens to the same key.
    let own_wrap = wrapped
        .iter()
        .find(|w| w.server_id == mine.server_id)
        .map(|w| w.jwe.as_str())
        .unwrap_or_default();
    let back = keys::unwrap_jwe(km.keystore, "own master key wrap", own_wrap, &b)?;
    if back.as_slice() != mk.expose() {
        return Err(JobError::Unwrap {
            what: "own master key wrap",
        });
    }
    Ok(JobOutput::CreateMasterKey {
        master_key_id: master_key_id.to_owned(),
        wrapped,
    })
}

/// `wrap(P_k, MK)` → `wrap(P_newcomer, MK)`.
pub fn share(
    km: &KeyManager<'_>,
    master_key: &WrappedMasterKey,
    newcomer: &KeyManagerKey,
) -> Result<JobOutput, JobError> {
    let mk = km.master_key(master_key)?;
    let jwe = keys::wrap_to(
        "wrap(P_newcomer, MK)",
        newcomer,
        &binding::master_key(km.account),
        mk.expose(),
    )?;
    Ok(JobOutput::ShareMasterKey {
        wrapped: WrappedKey {
            server_id: newcomer.server_id.clone(),
            jwe,
        },
    })
}
