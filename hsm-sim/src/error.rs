//! The fixtures' error type.

use std::path::PathBuf;

/// Why a simulator could not be stood up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A file or directory operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A helper program could not be run.
    #[error("cannot run {program}: {source} (is it installed? `make deps`)")]
    Spawn {
        /// The program.
        program: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A helper program failed.
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        /// The program.
        program: &'static str,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of its stderr.
        stderr: String,
    },
    /// The SoftHSM2 module is not installed where Debian puts it.
    #[error("libsofthsm2.so not found (looked in {looked:?}); install softhsm2")]
    NoSoftHsmModule {
        /// The paths tried.
        looked: Vec<PathBuf>,
    },
    /// No free loopback port pair was found.
    #[error("no free loopback port pair for swtpm")]
    NoFreePorts,
    /// swtpm exited before it accepted connections.
    #[error("swtpm exited during start-up ({status}); log: {log}")]
    SwtpmExited {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its log's last lines.
        log: String,
    },
    /// swtpm did not accept connections in time.
    #[error("swtpm did not become ready within {seconds} s")]
    SwtpmTimeout {
        /// How long we waited.
        seconds: u64,
    },
    /// The fixture was already stopped.
    #[error("swtpm is not running")]
    NotRunning,
}

pub(crate) fn io(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> SimError {
    let path = path.into();
    move |source| SimError::Io {
        action,
        path,
        source,
    }
}
