//! Why a deploy failed on the target. Every message names the step and the
//! ids involved; none carries key material, a secret value, or a path
//! outside the agent's own staging directory.

use custody_envelope::EnvelopeError;

use crate::keystore::KeyStoreError;

/// A deploy's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The deployment id cannot be used as a staging directory name.
    #[error("invalid deployment id")]
    DeploymentId,
    /// The job names another account than this agent's.
    #[error("the deploy is for account {got}, this agent serves {expected}")]
    WrongAccount {
        /// Ours.
        expected: String,
        /// The job's.
        got: String,
    },
    /// An earlier attempt of this deploy stopped while the installer ran:
    /// whether it installed is unknown, so it is not installed again.
    #[error(
        "an earlier attempt of this deployment was interrupted while installing; not installing \
         twice (check the server, then deploy again)"
    )]
    Interrupted,
    /// The staging directory could not be prepared or written.
    #[error("staging: cannot {action}: {source}")]
    Staging {
        /// What was being done.
        action: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The package could not be downloaded.
    #[error("download of the package failed: {0}")]
    Download(String),
    /// The downloaded file has another size than the job says.
    #[error("the downloaded package has {got} bytes, the job says {expected}")]
    Size {
        /// The job's size.
        expected: u64,
        /// The file's.
        got: u64,
    },
    /// A digest does not match: the package file's SHA-256 versus the key
    /// list's or the signed descriptor's.
    #[error("package digest mismatch: the package file's SHA-256 differs from the {against}'s")]
    Digest {
        /// `key list`, `signed descriptor` or `job`.
        against: &'static str,
    },
    /// The deploy key could not be unwrapped in this server's keystore.
    #[error("the deploy key could not be unwrapped by this server's keystore")]
    Unwrap,
    /// The wrapped deploy key or the key list is malformed, or bound to
    /// another purpose, deployment, release or key.
    #[error("{what}: refused: {source}")]
    Envelope {
        /// `wrapped deploy key` or `key list`.
        what: &'static str,
        /// Why.
        source: EnvelopeError,
    },
    /// The key list is for another release than the job.
    #[error("the key list is for release {got}, the job deploys {expected}")]
    KeyListRelease {
        /// The job's release.
        expected: String,
        /// The key list's.
        got: String,
    },
    /// The release descriptor is not a valid signed descriptor.
    #[error("release descriptor: {0}")]
    Descriptor(EnvelopeError),
    /// The descriptor was signed by a key not in `[target] publisher_keys`.
    #[error("release descriptor: signed by a publisher key this target does not pin")]
    UnknownPublisher,
    /// The descriptor's signature does not verify.
    #[error("release descriptor: the signature does not verify")]
    Signature,
    /// The descriptor (or package header) names another account, app or
    /// release than the job.
    #[error("the {what} names {field} {got}, the job deploys {expected}")]
    Mismatch {
        /// `descriptor` or `package header`.
        what: &'static str,
        /// `account`, `app` or `release`.
        field: &'static str,
        /// The job's.
        expected: String,
        /// The object's.
        got: String,
    },
    /// Decryption failed (wrong key, modified or truncated package).
    #[error("decryption failed: {0}")]
    Decrypt(EnvelopeError),
    /// This agent has no installer (not a target).
    #[error("this agent is not a deploy target (no installer)")]
    NoInstaller,
    /// The installer refused or failed (unsafe package, hook failure …).
    #[error("install failed: {message}")]
    Install {
        /// The installer's stable code.
        code: &'static str,
        /// Its one-line reason.
        message: String,
    },
    /// The files were moved into place but `post_install` failed (the
    /// outcome is recorded: a re-delivery is not installed again).
    #[error("install failed: {message}")]
    PostInstall {
        /// One line: the hook's status and where the files are.
        message: String,
    },
    /// An earlier attempt of this deploy moved the files into place and its
    /// `post_install` failed; recorded, so not installed again.
    #[error("an earlier attempt of this deployment failed and is not repeated: {message}")]
    FailedBefore {
        /// The recorded failure.
        message: String,
    },
    /// The install record could not be written.
    #[error("installed, but the install record could not be written: {0}")]
    Record(std::io::Error),
    /// An internal task failed.
    #[error("the agent failed internally: {0}")]
    Internal(&'static str),
    /// This server's keystore stopped serving it (see
    /// [`KeyStoreError::Lost`]); the agent restarts and the deploy comes again.
    #[error("keystore: {0}")]
    KeyStoreLost(KeyStoreError),
}

impl DeployError {
    /// The stable code sent to the coordinator.
    pub fn code(&self) -> &'static str {
        match self {
            DeployError::DeploymentId => "invalid_job",
            DeployError::WrongAccount { .. } => "wrong_account",
            DeployError::Interrupted => "interrupted_install",
            DeployError::Staging { .. } => "staging_failed",
            DeployError::Download(_) => "download_failed",
            DeployError::Size { .. } | DeployError::Digest { .. } => "digest_mismatch",
            DeployError::Unwrap => "unwrap_failed",
            DeployError::Envelope {
                source: EnvelopeError::JweBinding | EnvelopeError::JweKid,
                ..
            }
            | DeployError::KeyListRelease { .. }
            | DeployError::Mismatch { .. } => "binding_mismatch",
            DeployError::Envelope { .. } => "envelope_invalid",
            DeployError::Descriptor(_) => "descriptor_invalid",
            DeployError::UnknownPublisher => "unknown_publisher",
            DeployError::Signature => "signature_invalid",
            DeployError::Decrypt(_) => "decrypt_failed",
            DeployError::NoInstaller => "not_target",
            DeployError::Install { code, .. } => code,
            DeployError::PostInstall { .. } | DeployError::FailedBefore { .. } => "hook_failed",
            DeployError::Record(_) => "record_failed",
            DeployError::Internal(_) => "internal",
            DeployError::KeyStoreLost(_) => "keystore_failed",
        }
    }

    /// Whether a later attempt may succeed (the coordinator re-issues the
    /// deploy to this target).
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            DeployError::Download(_)
                | DeployError::Staging { .. }
                | DeployError::Internal(_)
                | DeployError::KeyStoreLost(_)
        )
    }
}
