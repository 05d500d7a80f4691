//! Where the workspace's built binaries are.
//!
//! Cargo sets `CARGO_BIN_EXE_*` only for a package's own binaries, so the
//! harness finds `custody-coordinator`, `custody-agent` and `custody` next
//! to the running test (or bench) executable: `target/<profile>/deps/x` →
//! `target/<profile>/`. `cargo test --workspace` builds every package's
//! binaries before it runs any test; `cargo test -p custody-e2e` alone does
//! not, hence the message naming `cargo build --workspace --bins`.

use std::path::{Path, PathBuf};

use crate::error::{E2eError, Result};

/// The coordinator binary's name.
pub const COORDINATOR: &str = "custody-coordinator";
/// The agent binary's name.
pub const AGENT: &str = "custody-agent";
/// The command line's binary name.
pub const CLI: &str = "custody";

/// The directory holding the workspace's binaries for the running profile.
pub fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CUSTODY_E2E_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().map_err(crate::error::io("find", "the test executable"))?;
    let mut dir = exe
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| E2eError::Setup(format!("{} has no parent directory", exe.display())))?;
    // Tests and benches live in target/<profile>/deps/.
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

/// The path of binary `name` (one of [`COORDINATOR`], [`AGENT`], [`CLI`]);
/// an error naming `cargo build --workspace --bins` when it is missing.
pub fn binary(name: &'static str) -> Result<PathBuf> {
    binary_in(&bin_dir()?, name)
}

/// The path of binary `name` in `dir`, or [`E2eError::MissingBinary`].
pub fn binary_in(dir: &Path, name: &'static str) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(E2eError::MissingBinary { name, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_names_the_build_command() {
        let err = binary_in(Path::new("/nonexistent"), "custody-nothing").unwrap_err();
        assert!(matches!(err, E2eError::MissingBinary { .. }));
        assert!(err.to_string().contains("cargo build --workspace --bins"));
    }
}
