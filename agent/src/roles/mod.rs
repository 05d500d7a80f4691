//! What the agent does with a job: key-manager jobs ([`keymanager`]) and
//! the target's deploy ([`target`]). Each job ends in an output or a
//! [`JobError`], whose code, message and retryability go to the
//! coordinator: messages name the operation and the ids of the job, never
//! key material, secret values or attacker-chosen bytes.

pub mod keymanager;
pub mod target;

use custody_envelope::EnvelopeError;
use custody_proto::jobs::JobFailure;

use crate::keystore::KeyStoreError;

/// Why a job failed on this agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The job names another account than the one this agent enrolled in.
    #[error("the job is for account {got}, this agent serves {expected}")]
    WrongAccount {
        /// The enrolled account.
        expected: String,
        /// The job's.
        got: String,
    },
    /// The job speaks a protocol version this agent does not.
    #[error("the job is written in protocol {0}, this agent speaks {v}", v = custody_proto::PROTOCOL_VERSION)]
    Protocol(u32),
    /// A JWE in the job is malformed or bound to another purpose, ids, key
    /// or algorithm than the job says (checked before any key operation).
    #[error("{what}: refused: {source}")]
    Envelope {
        /// Which JWE of the job.
        what: &'static str,
        /// The envelope crate's reason.
        source: EnvelopeError,
    },
    /// The keystore could not unwrap a key wrapped to this server (the
    /// same error for every cause: no padding oracle).
    #[error("{what}: the keystore could not unwrap it")]
    Unwrap {
        /// Which JWE of the job.
        what: &'static str,
    },
    /// The keystore itself failed (worker stopped, token gone).
    #[error("keystore: {0}")]
    KeyStore(KeyStoreError),
    /// Building an output envelope failed.
    #[error("{what}: cannot build it: {source}")]
    Build {
        /// Which output.
        what: &'static str,
        /// The envelope crate's reason.
        source: EnvelopeError,
    },
    /// A field of the job is unusable (a public key that does not parse,
    /// a fingerprint that does not match its key, a digest that is not hex).
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// A recipient key manager or target offers no OAEP hash we can wrap with.
    #[error("server {server_id} registered no OAEP hash Custody wraps with")]
    NoCommonHash {
        /// The recipient.
        server_id: String,
    },
    /// This agent cannot do this kind of job.
    #[error("this agent cannot run {0} jobs: {1}")]
    NotOffered(&'static str, &'static str),
    /// Locked memory for key material could not be had.
    #[error("cannot allocate memory for key material")]
    Memory,
    /// A target-side failure (download, verification, decryption, install).
    #[error("{0}")]
    Deploy(#[from] target::DeployError),
}

impl JobError {
    /// The stable code sent to the coordinator.
    pub fn code(&self) -> &'static str {
        match self {
            JobError::WrongAccount { .. } => "wrong_account",
            JobError::Protocol(_) => "unsupported_protocol",
            JobError::Envelope {
                source: EnvelopeError::JweBinding | EnvelopeError::JweKid,
                ..
            } => "binding_mismatch",
            JobError::Envelope { .. } => "envelope_invalid",
            JobError::Unwrap { .. } => "unwrap_failed",
            JobError::KeyStore(_) => "keystore_failed",
            JobError::Build { .. } => "envelope_build_failed",
            JobError::InvalidJob(_) => "invalid_job",
            JobError::NoCommonHash { .. } => "no_common_hash",
            JobError::NotOffered(..) => "not_offered",
            JobError::Memory => "out_of_memory",
            JobError::Deploy(d) => d.code(),
        }
    }

    /// Whether this agent's keystore stopped serving it
    /// ([`KeyStoreError::Lost`]): the agent must restart to open it again.
    pub fn keystore_lost(&self) -> bool {
        matches!(
            self,
            JobError::KeyStore(KeyStoreError::Lost(_))
                | JobError::Deploy(target::DeployError::KeyStoreLost(_))
        )
    }

    /// Whether another key manager (or a later attempt) may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            // Another key manager holds its own wraps and keystore.
            JobError::Unwrap { .. } | JobError::KeyStore(_) | JobError::Memory => true,
            JobError::Deploy(d) => d.retryable(),
            _ => false,
        }
    }

    /// The failure as the protocol carries it (message cut at 500 chars).
    pub fn failure(&self) -> JobFailure {
        let mut message = self.to_string();
        if message.len() > 500 {
            let mut cut = 500;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        JobFailure {
            code: self.code().to_owned(),
            message,
            retryable: self.retryable(),
        }
    }
}
