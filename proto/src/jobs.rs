//! The agent job protocol (`docs/API.md`, "Agent job protocol").
//!
//! Agents long-poll `GET /v1/agent/jobs?wait=SECONDS` and receive a
//! [`PollResponse`] holding at most one [`Job`]. A job is leased to the agent
//! until `lease_expires_at_ms`; an agent that answers after that may find the
//! job already handed to another key manager (failover). Results go to
//! `POST /v1/agent/jobs/{id}/result` as a [`JobResult`]; the first valid one
//! wins and later ones are acknowledged with `duplicate: true` and ignored.
//! Delivery is at-least-once: key-manager jobs are harmless to redo, and a
//! target remembers `idempotency_key` (one per deployment and target) so a
//! deploy takes effect exactly once.

use crate::servers::KeyManagerKey;
use serde::{Deserialize, Serialize};

/// A job handed to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// [`crate::PROTOCOL_VERSION`] the job is written in.
    pub protocol: u32,
    /// Job id (`job_…`).
    pub id: String,
    /// 1 for the first hand-out, +1 for each re-issue (failover or lease expiry).
    pub attempt: u32,
    /// Same for every attempt of the same logical work. For deploys:
    /// `DEPLOYMENT_ID:SERVER_ID`, which a target remembers.
    pub idempotency_key: String,
    /// When the coordinator handed it out, Unix ms.
    pub issued_at_ms: i64,
    /// Answer before this, Unix ms, or the job goes to another agent.
    pub lease_expires_at_ms: i64,
    /// What to do.
    pub payload: JobPayload,
}

/// A key manager's description of the master key it is asked to use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedMasterKey {
    /// Master key id (the JWE's `kid` binding).
    pub master_key_id: String,
    /// `wrap(P_k, MK)` for the key manager that receives the job.
    pub jwe: String,
}

/// A secret environment variable sealed under `MK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedVariable {
    /// Variable name.
    pub name: String,
    /// `seal(MK, value)` (JWE `dir`/`A256GCM`).
    pub jwe: String,
}

/// A plain environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainVariable {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// Where a target downloads the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactLocation {
    /// Absolute URL on the coordinator (`…/v1/agent/artifacts/{sha256}`),
    /// fetched with the agent credential; supports `Range`.
    pub url: String,
    /// SHA-256 (hex) of the whole file.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// Every job type. Key-manager jobs first, then the target's one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum JobPayload {
    /// Make a new `MK` and wrap it to every listed key manager.
    CreateMasterKey {
        /// Account id (JWE binding).
        account: String,
        /// Id for the new key.
        master_key_id: String,
        /// Wrap to each of these (the receiving key manager is among them).
        key_managers: Vec<KeyManagerKey>,
    },
    /// Unwrap `MK` and wrap it to a newcomer.
    ShareMasterKey {
        /// Account id.
        account: String,
        /// `wrap(P_k, MK)`.
        master_key: WrappedMasterKey,
        /// The key manager to wrap it for.
        newcomer: KeyManagerKey,
    },
    /// `wrap(P_k, RK)` → `seal(MK, RK)`.
    RewrapReleaseKey {
        /// Account id.
        account: String,
        /// App name.
        app: String,
        /// Release id.
        release_id: String,
        /// `wrap(P_k, MK)`.
        master_key: WrappedMasterKey,
        /// `wrap(P_k, RK)`.
        wrapped_release_key: String,
    },
    /// `wrap(P_k, value)` → `seal(MK, value)`.
    SealSecretVariable {
        /// Account id.
        account: String,
        /// App name.
        app: String,
        /// Environment name.
        environment: String,
        /// Variable name.
        name: String,
        /// `wrap(P_k, MK)`.
        master_key: WrappedMasterKey,
        /// `wrap(P_k, value)`.
        wrapped_value: String,
    },
    /// Build the key list, make `DK`: → `seal(DK, keylist)`, `seal(MK, DK)`.
    PrepareDeployment {
        /// Account id.
        account: String,
        /// App name.
        app: String,
        /// Release id.
        release_id: String,
        /// Deployment id.
        deployment_id: String,
        /// Environment name.
        environment: String,
        /// `wrap(P_k, MK)`.
        master_key: WrappedMasterKey,
        /// `seal(MK, RK)`.
        sealed_release_key: String,
        /// SHA-256 (hex) of the package, for the key list.
        package_sha256: String,
        /// The environment's secret variables, sealed under `MK`.
        secret_variables: Vec<SealedVariable>,
    },
    /// `seal(MK, DK)` → `wrap(P_t, DK)` for one target.
    WrapDeployKey {
        /// Account id.
        account: String,
        /// App name.
        app: String,
        /// Release id.
        release_id: String,
        /// Deployment id.
        deployment_id: String,
        /// `wrap(P_k, MK)`.
        master_key: WrappedMasterKey,
        /// `seal(MK, DK)`.
        sealed_deploy_key: String,
        /// The target's key.
        target: KeyManagerKey,
    },
    /// Target: download, verify, decrypt, install.
    Deploy {
        /// Account id.
        account: String,
        /// App name.
        app: String,
        /// Release id.
        release_id: String,
        /// Deployment id.
        deployment_id: String,
        /// Environment name.
        environment: String,
        /// The publisher-signed release descriptor.
        descriptor: serde_json::Value,
        /// `seal(DK, keylist)`.
        sealed_keylist: String,
        /// `wrap(P_t, DK)` for this target.
        wrapped_deploy_key: String,
        /// The package.
        artifact: ArtifactLocation,
        /// Plain variables (secret ones are in the key list).
        variables: Vec<PlainVariable>,
    },
}

impl JobPayload {
    /// The wire name of the job type.
    pub fn kind(&self) -> JobKind {
        match self {
            JobPayload::CreateMasterKey { .. } => JobKind::CreateMasterKey,
            JobPayload::ShareMasterKey { .. } => JobKind::ShareMasterKey,
            JobPayload::RewrapReleaseKey { .. } => JobKind::RewrapReleaseKey,
            JobPayload::SealSecretVariable { .. } => JobKind::SealSecretVariable,
            JobPayload::PrepareDeployment { .. } => JobKind::PrepareDeployment,
            JobPayload::WrapDeployKey { .. } => JobKind::WrapDeployKey,
            JobPayload::Deploy { .. } => JobKind::Deploy,
        }
    }
}

/// Job types without their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// See [`JobPayload::CreateMasterKey`].
    CreateMasterKey,
    /// See [`JobPayload::ShareMasterKey`].
    ShareMasterKey,
    /// See [`JobPayload::RewrapReleaseKey`].
    RewrapReleaseKey,
    /// See [`JobPayload::SealSecretVariable`].
    SealSecretVariable,
    /// See [`JobPayload::PrepareDeployment`].
    PrepareDeployment,
    /// See [`JobPayload::WrapDeployKey`].
    WrapDeployKey,
    /// See [`JobPayload::Deploy`].
    Deploy,
}

impl JobKind {
    /// Every kind.
    pub const ALL: [JobKind; 7] = [
        JobKind::CreateMasterKey,
        JobKind::ShareMasterKey,
        JobKind::RewrapReleaseKey,
        JobKind::SealSecretVariable,
        JobKind::PrepareDeployment,
        JobKind::WrapDeployKey,
        JobKind::Deploy,
    ];

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::CreateMasterKey => "create_master_key",
            JobKind::ShareMasterKey => "share_master_key",
            JobKind::RewrapReleaseKey => "rewrap_release_key",
            JobKind::SealSecretVariable => "seal_secret_variable",
            JobKind::PrepareDeployment => "prepare_deployment",
            JobKind::WrapDeployKey => "wrap_deploy_key",
            JobKind::Deploy => "deploy",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Runs on a key manager (else on the deployment's target).
    pub fn is_key_manager_job(self) -> bool {
        !matches!(self, JobKind::Deploy)
    }
}

/// `GET /v1/agent/jobs` answer: at most one job; empty when the wait ran out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollResponse {
    /// [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Zero or one job.
    pub jobs: Vec<Job>,
}

/// What a successful job produced, by type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum JobOutput {
    /// `wrap(P_i, MK)` for every key manager in the job.
    CreateMasterKey {
        /// The new key's id (must equal the job's).
        master_key_id: String,
        /// One per key manager.
        wrapped: Vec<crate::apps::WrappedKey>,
    },
    /// `wrap(P_newcomer, MK)`.
    ShareMasterKey {
        /// For the newcomer.
        wrapped: crate::apps::WrappedKey,
    },
    /// `seal(MK, RK)`.
    RewrapReleaseKey {
        /// JWE.
        sealed_release_key: String,
    },
    /// `seal(MK, value)`.
    SealSecretVariable {
        /// JWE.
        sealed_value: String,
    },
    /// `seal(DK, keylist)` and `seal(MK, DK)`.
    PrepareDeployment {
        /// JWE.
        sealed_keylist: String,
        /// JWE.
        sealed_deploy_key: String,
    },
    /// `wrap(P_t, DK)`.
    WrapDeployKey {
        /// JWE.
        wrapped_deploy_key: String,
    },
    /// The target installed the release (or had already done so).
    Deploy {
        /// True when this delivery found the (deployment, target) installed already.
        already_installed: bool,
    },
}

impl JobOutput {
    /// The job type this output answers.
    pub fn kind(&self) -> JobKind {
        match self {
            JobOutput::CreateMasterKey { .. } => JobKind::CreateMasterKey,
            JobOutput::ShareMasterKey { .. } => JobKind::ShareMasterKey,
            JobOutput::RewrapReleaseKey { .. } => JobKind::RewrapReleaseKey,
            JobOutput::SealSecretVariable { .. } => JobKind::SealSecretVariable,
            JobOutput::PrepareDeployment { .. } => JobKind::PrepareDeployment,
            JobOutput::WrapDeployKey { .. } => JobKind::WrapDeployKey,
            JobOutput::Deploy { .. } => JobKind::Deploy,
        }
    }
}

/// Why a job failed on the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFailure {
    /// Stable agent-side code (`unwrap_failed`, `binding_mismatch`,
    /// `signature_invalid`, `digest_mismatch`, `hook_failed`, …).
    pub code: String,
    /// One line for people (no secrets).
    pub message: String,
    /// Another agent may succeed (key-manager jobs are then re-issued elsewhere).
    #[serde(default)]
    pub retryable: bool,
}

/// The outcome of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// Done.
    Succeeded {
        /// What it produced.
        output: JobOutput,
    },
    /// Not done.
    Failed {
        /// Why.
        failure: JobFailure,
    },
}

/// `POST /v1/agent/jobs/{id}/result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobResult {
    /// [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The job's `idempotency_key`.
    pub idempotency_key: String,
    /// The attempt this answers.
    pub attempt: u32,
    /// Outcome.
    pub outcome: Outcome,
}

/// The answer to [`JobResult`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultAck {
    /// This result was recorded.
    pub accepted: bool,
    /// Another result was recorded first; this one was ignored.
    pub duplicate: bool,
}

/// The most jobs one long poll hands out (`GET /v1/agent/jobs?max=`):
/// enough to keep a busy key manager's keystore fed between round trips,
/// few enough that the jobs an agent holds are answered well within their
/// lease.
pub const MAX_JOBS_PER_POLL: u32 = 32;

/// `POST /v1/agent/results`: the results of several jobs in one request
/// (at most [`MAX_RESULTS_PER_BATCH`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultBatch {
    /// [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// One entry per job.
    pub results: Vec<BatchedResult>,
}

/// The most results one [`ResultBatch`] carries.
pub const MAX_RESULTS_PER_BATCH: usize = 64;

/// One job's result inside a [`ResultBatch`]: a [`JobResult`] with the
/// job's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchedResult {
    /// The job.
    pub job_id: String,
    /// The job's `idempotency_key`.
    pub idempotency_key: String,
    /// The attempt this answers.
    pub attempt: u32,
    /// Outcome.
    pub outcome: Outcome,
}

/// The answer to a [`ResultBatch`]: one ack per result, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultBatchAck {
    /// [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// In the order of the results.
    pub acks: Vec<BatchedAck>,
}

/// One result's fate: recorded, a duplicate, or refused with the error a
/// single `POST /v1/agent/jobs/{id}/result` would have answered (the
/// others in the batch stand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchedAck {
    /// The job.
    pub job_id: String,
    /// This result was recorded.
    pub accepted: bool,
    /// Another result was recorded first; this one was ignored.
    pub duplicate: bool,
    /// Why it was refused (nothing of it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::ApiError>,
}

/// Stream of a deploy log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// Hook standard output.
    Stdout,
    /// Hook standard error.
    Stderr,
    /// Agent status lines (downloading, verifying, installing …).
    Status,
}

/// One log line from a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLine {
    /// Stream.
    pub stream: LogStream,
    /// Text, secret values already replaced by `***`.
    pub line: String,
}

/// `POST /v1/agent/jobs/{id}/log` (deploy jobs only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogBatch {
    /// [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Lines in order.
    pub lines: Vec<LogLine>,
}
