//! *Rewrap release key*: `wrap(P_k, RK)` → `seal(MK, RK)`.

use custody_proto::jobs::{JobOutput, WrappedMasterKey};

use super::KeyManager;
use super::keys::{self, binding};
use crate::roles::JobError;

/// Unwraps `MK` and `RK` (bound to this account, app and release) and
/// seals `RK` under `MK`.
pub fn rewrap(
    km: &KeyManager<'_>,
    app: &str,
    release_id: &str,
    master_key: &WrappedMasterKey,
    wrapped_release_key: &str,
) -> Result<JobOutput, JobError> {
    let b = binding::release_key(km.account, app, release_id);
    let mk = km.master_key(master_key)?;
    let rk = keys::unwrap_key(km.keystore, "release key", wrapped_release_key, &b)?;
    let sealed = keys::seal(
        "seal(MK, RK)",
        &mk,
        &master_key.master_key_id,
        &b,
        rk.expose(),
    )?;
    Ok(JobOutput::RewrapReleaseKey {
        sealed_release_key: sealed,
    })
}
