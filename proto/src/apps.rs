//! Apps, releases, environments, variables and deployments.

use crate::servers::KeyManagerKey;
use serde::{Deserialize, Serialize};

/// `POST /v1/apps` (owner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// Unique app name.
    pub name: String,
    /// Make it secure at once (needs two live key managers).
    #[serde(default)]
    pub secure: bool,
}

/// An app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// Opaque id (`app_…`).
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Releases are encrypted and keys go through key managers.
    pub secure: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// A key wrapped (JWE, `RSA-OAEP-256`/`RSA-OAEP`) to one key manager's `P_i`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedKey {
    /// The key manager it is wrapped to.
    pub server_id: String,
    /// JWE compact serialization.
    pub jwe: String,
}

/// Release lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseState {
    /// Id allocated, no package yet.
    Created,
    /// Package stored; waiting for finalize.
    Uploaded,
    /// Finalized; a key manager is sealing `RK` under `MK`.
    Sealing,
    /// `seal(MK, RK)` stored: can be deployed.
    Deployable,
    /// Cannot be deployed; `undeployable_reason` says why.
    Undeployable,
}

/// `POST /v1/apps/{app}/releases` (deployer): allocate a release id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseCreated {
    /// The id the client writes into the package header.
    pub release_id: String,
    /// Account id, for the package header.
    pub account: String,
    /// App name, for the package header.
    pub app: String,
    /// The master key the release will be sealed under.
    pub master_key_id: String,
    /// Wrap `RK` to every one of these.
    pub key_managers: Vec<KeyManagerKey>,
}

/// `PUT /v1/releases/{id}/package` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageUploaded {
    /// SHA-256 (hex) of the whole file as received.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// `POST /v1/releases/{id}/finalize` (deployer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalizeRelease {
    /// The publisher-signed release descriptor (`custody-envelope`'s
    /// `SignedDescriptor` JSON). Its `package_sha256` must equal the
    /// uploaded package's digest.
    pub descriptor: serde_json::Value,
    /// `wrap(P_i, RK)` for every key manager listed at create time.
    pub wrapped_release_keys: Vec<WrappedKey>,
}

/// A release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Opaque id (`rel_…`).
    pub id: String,
    /// App name.
    pub app: String,
    /// Lifecycle state.
    pub state: ReleaseState,
    /// SHA-256 (hex) of the package, once uploaded.
    #[serde(default)]
    pub package_sha256: Option<String>,
    /// Package size, once uploaded.
    #[serde(default)]
    pub package_size: Option<u64>,
    /// The master key `RK` is (or will be) sealed under.
    #[serde(default)]
    pub master_key_id: Option<String>,
    /// Why it cannot be deployed.
    #[serde(default)]
    pub undeployable_reason: Option<String>,
    /// Fingerprints of the key managers `RK` was wrapped to.
    #[serde(default)]
    pub key_manager_fingerprints: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// `POST /v1/apps/{app}/environments` (owner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironment {
    /// Name, unique within the app.
    pub name: String,
}

/// `POST /v1/apps/{app}/environments/{env}/servers` (owner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddEnvironmentServer {
    /// Server id or unique name.
    pub server: String,
}

/// `PUT /v1/apps/{app}/environments/{env}/variables/{name}` (owner).
/// Exactly one of `value` (plain) and `wrapped` (secret) is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetVariable {
    /// A plain value, stored as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A secret value wrapped to key managers (like a release key); the
    /// coordinator has a key manager seal it under `MK` and keeps only that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapped: Option<Vec<WrappedKey>>,
}

/// A variable as listed: secret values are never returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    /// Name (an environment-variable name).
    pub name: String,
    /// Secret.
    pub secret: bool,
    /// The value, plain variables only.
    #[serde(default)]
    pub value: Option<String>,
    /// Secret only: `sealing` until a key manager sealed it, then `sealed`.
    #[serde(default)]
    pub state: Option<String>,
}

/// An environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// Opaque id (`env_…`).
    pub id: String,
    /// App name.
    pub app: String,
    /// Name.
    pub name: String,
    /// Target server ids.
    pub servers: Vec<String>,
    /// Variables.
    pub variables: Vec<Variable>,
    /// Approval policy; absent: deployments start at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<crate::approvals::ApprovalPolicy>,
}

/// Deployment states. The transitions live in one place in the coordinator
/// (`deployments::transition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// Waiting for approvals.
    PendingApproval,
    /// Approved, not started.
    Approved,
    /// Key-manager and target jobs running.
    InProgress,
    /// Every target installed.
    Succeeded,
    /// Some step or target failed; `reason` and the targets say which.
    Failed,
    /// An approver declined.
    Declined,
    /// Canceled before it started.
    Canceled,
}

impl DeploymentState {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::PendingApproval => "pending_approval",
            DeploymentState::Approved => "approved",
            DeploymentState::InProgress => "in_progress",
            DeploymentState::Succeeded => "succeeded",
            DeploymentState::Failed => "failed",
            DeploymentState::Declined => "declined",
            DeploymentState::Canceled => "canceled",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            DeploymentState::PendingApproval,
            DeploymentState::Approved,
            DeploymentState::InProgress,
            DeploymentState::Succeeded,
            DeploymentState::Failed,
            DeploymentState::Declined,
            DeploymentState::Canceled,
        ]
        .into_iter()
        .find(|s2| s2.as_str() == s)
    }

    /// No further transition.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            DeploymentState::Succeeded
                | DeploymentState::Failed
                | DeploymentState::Declined
                | DeploymentState::Canceled
        )
    }
}

/// `POST /v1/deployments` (deployer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDeployment {
    /// App name.
    pub app: String,
    /// Release id.
    pub release: String,
    /// Environment name.
    pub environment: String,
}

/// One target's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStatus {
    /// Server id.
    pub server_id: String,
    /// `pending`, `wrapping`, `deploying`, `succeeded`, `failed`.
    pub state: String,
    /// Why it failed.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Opaque id (`dep_…`).
    pub id: String,
    /// App name.
    pub app: String,
    /// Release id.
    pub release_id: String,
    /// Environment name.
    pub environment: String,
    /// State.
    pub state: DeploymentState,
    /// User id of the deployer.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Why it failed (or was canceled/declined).
    #[serde(default)]
    pub reason: Option<String>,
    /// Per-target progress.
    pub targets: Vec<TargetStatus>,
    /// Approval progress, for deployments that need approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSummary>,
}

/// Where a deployment that needs approval stands
/// (`GET /v1/deployments/{id}/approvals` has every record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalSummary {
    /// Approvals needed.
    pub quorum: u32,
    /// Approvals counting now.
    pub counted: u32,
    /// Canceled if not started by then, Unix seconds.
    pub deadline_at: i64,
    /// An approver asked for the deploy to start once the quorum is met.
    pub deploy_requested: bool,
}

/// One stored log line of a deployment (`GET /v1/deployments/{id}/log`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentLogLine {
    /// Target server id.
    pub server_id: String,
    /// Per-deployment sequence number.
    pub seq: i64,
    /// `stdout`, `stderr` or `status`.
    pub stream: String,
    /// The line, secrets already redacted by the agent.
    pub line: String,
    /// Unix milliseconds.
    pub at_ms: i64,
}
