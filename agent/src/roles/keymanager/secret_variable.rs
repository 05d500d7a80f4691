//! *Seal secret variable*: `wrap(P_k, value)` → `seal(MK, value)`.

use custody_proto::jobs::{JobOutput, WrappedMasterKey};

use super::KeyManager;
use super::keys::{self, binding};
use crate::roles::JobError;

/// Unwraps the value (bound to this account, app and variable name) and
/// `MK`, and seals the value under `MK`. The value is zeroized on return.
pub fn seal(
    km: &KeyManager<'_>,
    app: &str,
    environment: &str,
    name: &str,
    master_key: &WrappedMasterKey,
    wrapped_value: &str,
) -> Result<JobOutput, JobError> {
    let b = binding::secret_var(km.account, app, environment, name);
    let value = keys::unwrap_jwe(km.keystore, "secret variable", wrapped_value, &b)?;
    if value.len() > custody_envelope::keylist::MAX_SECRET_LEN
        || value.contains(&0)
        || std::str::from_utf8(&value).is_err()
    {
        return Err(JobError::InvalidJob(format!(
            "secret variable {name}: the value must be UTF-8 without NUL, at most 64 KiB"
        )));
    }
    let mk = km.master_key(master_key)?;
    let sealed = keys::seal(
        "seal(MK, value)",
        &mk,
        &master_key.master_key_id,
        &b,
        &value,
    )?;
    Ok(JobOutput::SealSecretVariable {
        sealed_value: sealed,
    })
}
