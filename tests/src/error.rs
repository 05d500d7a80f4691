//! What can go wrong while setting up or driving an end-to-end scenario.

use std::path::PathBuf;

/// A harness operation failed. Each variant names what was being done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum E2eError {
    /// A workspace binary has not been built.
    #[error(
        "the {name} binary is missing (looked for {path}): run `cargo build --workspace --bins` \
         first"
    )]
    MissingBinary {
        /// The binary's name.
        name: &'static str,
        /// Where it was expected.
        path: PathBuf,
    },
    /// A file-system or process operation failed.
    #[error("cannot {action} {what}: {source}")]
    Io {
        /// What was being done (`spawn`, `read`, `write` …).
        action: &'static str,
        /// On what.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("`{command}` failed ({status}):\n{stderr}")]
    Command {
        /// The command line, shortened.
        command: String,
        /// Its exit status.
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// A command or process printed something the harness cannot use.
    #[error("{what}: unexpected output: {output}")]
    Output {
        /// What was read.
        what: String,
        /// The output.
        output: String,
    },
    /// A process the scenario needs exited.
    #[error("{what} exited ({status}); last lines of its log:\n{tail}")]
    Exited {
        /// Which process.
        what: String,
        /// How it ended.
        status: String,
        /// The end of its log.
        tail: String,
    },
    /// A condition did not become true in time.
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout {
        /// The condition.
        what: String,
        /// How long was waited.
        secs: u64,
    },
    /// A call to the coordinator's API failed.
    #[error("API call {what}: {source}")]
    Api {
        /// The call.
        what: String,
        /// The client's error (its `code()` is the API error code).
        source: custody_client::ClientError,
    },
    /// Building or opening an envelope (package, JWE, descriptor) failed.
    #[error("{what}: {source}")]
    Envelope {
        /// What was being built or opened.
        what: &'static str,
        /// The envelope error.
        source: custody_envelope::EnvelopeError,
    },
    /// A SoftHSM2 token or swtpm could not be set up.
    #[error("simulator: {0}")]
    Simulator(#[from] hsm_sim::SimError),
    /// The scenario is set up inconsistently (a bug in the test).
    #[error("{0}")]
    Setup(String),
}

/// The harness's result type.
pub type Result<T> = std::result::Result<T, E2eError>;

/// Maps an I/O error with what was being done.
pub(crate) fn io(
    action: &'static str,
    what: impl std::fmt::Display,
) -> impl FnOnce(std::io::Error) -> E2eError {
    let what = what.to_string();
    move |source| E2eError::Io {
        action,
        what,
        source,
    }
}

/// Maps a client error with the call's description.
pub(crate) fn api(
    what: impl std::fmt::Display,
) -> impl FnOnce(custody_client::ClientError) -> E2eError {
    let what = what.to_string();
    move |source| E2eError::Api { what, source }
}

/// Maps an envelope error.
pub(crate) fn envelope(
    what: &'static str,
) -> impl FnOnce(custody_envelope::EnvelopeError) -> E2eError {
    move |source| E2eError::Envelope { what, source }
}
