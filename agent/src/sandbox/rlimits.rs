//! Step 1: resource limits. `RLIMIT_CORE` is 0 (soft and hard, so it cannot
//! be raised again), whatever the plan says; the plan may add more.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use super::error::SandboxError;
use super::plan::ResourceLimits;

fn set(resource: Resource, name: &'static str, value: u64) -> Result<(), SandboxError> {
    let before = getrlimit(resource);
    if before.current == Some(value) && before.maximum == Some(value) {
        // Already so (e.g. LimitCORE=0 in the unit): no system call needed.
        return Ok(());
    }
    setrlimit(
        resource,
        Rlimit {
            current: Some(value),
            maximum: Some(value),
        },
    )
    .map_err(|e| SandboxError::Rlimit {
        resource: name,
        source: e.into(),
    })?;
    // Read it back: a limit we think is set but is not is worse than an error.
    let now = getrlimit(resource);
    if now.current != Some(value) || now.maximum != Some(value) {
        return Err(SandboxError::Rlimit {
            resource: name,
            source: std::io::Error::other("the limit read back differs from the one set"),
        });
    }
    Ok(())
}

/// Applies the limits.
pub(crate) fn apply(limits: &ResourceLimits) -> Result<(), SandboxError> {
    set(Resource::Core, "RLIMIT_CORE", 0)?;
    if let Some(n) = limits.open_files {
        set(Resource::Nofile, "RLIMIT_NOFILE", n)?;
    }
    if let Some(n) = limits.file_size {
        set(Resource::Fsize, "RLIMIT_FSIZE", n)?;
    }
    Ok(())
}
