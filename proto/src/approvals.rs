//! Deployment approvals: environment policies, approver keys, signed
//! approvals and declines, the approval view of a deployment
//! (`/v1/apps/{app}/environments/{env}/approval`, `/v1/users/{user}/approval-key`,
//! `/v1/deployments/{id}/approve|decline|start|cancel|approvals`, `/v1/approvals`).
//!
//! The signed statement itself is custody-envelope's
//! `approval::SignedApproval` (canonical JSON, `docs/FORMAT.md` §7); here
//! it travels as a JSON value.

use crate::apps::Deployment;
use serde::{Deserialize, Serialize};

/// Default approval window: a pending or approved deployment not started
/// within it is canceled.
pub const DEFAULT_WINDOW_SECONDS: u64 = 24 * 3600;
/// Longest approval window an environment may set (30 days).
pub const MAX_WINDOW_SECONDS: u64 = 30 * 24 * 3600;
/// Longest validity a statement may claim at submission (30 days).
pub const MAX_STATEMENT_SECONDS: u64 = 30 * 24 * 3600;
/// Longest decline / cancel message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 2000;

/// `PUT /v1/apps/{app}/environments/{env}/approval` (owner): require
/// approval for deployments to this environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetApprovalPolicy {
    /// Approver group (id or name).
    pub group: String,
    /// Approvals needed (k of the group); default 1.
    #[serde(default = "one")]
    pub quorum: u32,
    /// Let the deployer count as an approver of their own deployment
    /// (default false: self-approval is prevented).
    #[serde(default)]
    pub allow_self_approval: bool,
    /// Seconds a pending or approved deployment may wait before it is
    /// canceled; default 86400 (24 h), at most 30 days.
    #[serde(default = "default_window")]
    pub window_seconds: u64,
}

fn one() -> u32 {
    1
}
fn default_window() -> u64 {
    DEFAULT_WINDOW_SECONDS
}

/// An environment's approval policy as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    /// Approver group id.
    pub group_id: String,
    /// Approver group name.
    pub group: String,
    /// Approvals needed.
    pub quorum: u32,
    /// Whether the deployer may approve their own deployment.
    pub allow_self_approval: bool,
    /// The approval window, seconds.
    pub window_seconds: u64,
}

/// `PUT /v1/users/{user}/approval-key` (owner): the user's Ed25519
/// approval public key, 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetApprovalKey {
    /// Raw 32-byte public key, hex.
    pub public_key: String,
}

/// `PUT /v1/users/{user}/email` (owner, or the user for themself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetEmail {
    /// The address; absent or null removes it.
    #[serde(default)]
    pub email: Option<String>,
}

/// `POST /v1/deployments/{id}/approve` (an eligible approver).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveDeployment {
    /// The signed statement (`decision: approve`), canonical JSON as a value.
    pub statement: serde_json::Value,
    /// Approve and deploy: start the deploy as soon as the quorum is met
    /// (at once when this approval completes it).
    #[serde(default)]
    pub deploy: bool,
}

/// `POST /v1/deployments/{id}/decline` (an eligible approver).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclineDeployment {
    /// Why (required, 1–2000 characters).
    pub message: String,
    /// Optionally, a signed statement with `decision: decline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<serde_json::Value>,
}

/// `POST /v1/deployments/{id}/cancel` (the deployer, an owner, or for an
/// approved deployment an approver).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelDeployment {
    /// Why (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One approval or decline as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// Record id (`apr_…`).
    pub id: String,
    /// Approver user id.
    pub user_id: String,
    /// Approver user name.
    pub user_name: String,
    /// `approve` or `decline`.
    pub decision: String,
    /// Approve and deploy.
    pub deploy: bool,
    /// When it was received, Unix seconds.
    pub at: i64,
    /// The statement's expiry, Unix seconds (when signed).
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// Decline message.
    #[serde(default)]
    pub message: Option<String>,
    /// The key that signed it (`key_id`), when signed.
    #[serde(default)]
    pub key_id: Option<String>,
    /// The approver's currently registered public key (hex), to re-verify.
    #[serde(default)]
    pub public_key: Option<String>,
    /// The signed statement as stored, when signed.
    #[serde(default)]
    pub statement: Option<serde_json::Value>,
    /// The coordinator's verification of the stored statement against the
    /// approver's current key.
    pub signature_valid: bool,
    /// Counts toward the quorum now.
    pub counts: bool,
    /// Why it does not count (expired, other targets, no longer eligible …).
    #[serde(default)]
    pub not_counted_because: Option<String>,
}

/// `GET /v1/deployments/{id}/approvals`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentApprovals {
    /// Deployment id.
    pub deployment_id: String,
    /// The deployment's state.
    pub state: crate::apps::DeploymentState,
    /// Whether the deployment needed approval.
    pub required: bool,
    /// The policy it was created under.
    #[serde(default)]
    pub policy: Option<ApprovalPolicy>,
    /// Approvals counting now.
    pub counted: u32,
    /// Canceled if not started by then, Unix seconds.
    #[serde(default)]
    pub deadline_at: Option<i64>,
    /// The target servers an approval must name (sorted).
    pub targets: Vec<String>,
    /// Every approval and decline, oldest first.
    pub approvals: Vec<ApprovalRecord>,
}

/// One entry of `GET /v1/approvals`: a deployment waiting for the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// The deployment.
    pub deployment: Deployment,
    /// Package digest of its release (what a statement must name).
    pub package_sha256: String,
    /// Approvals needed.
    pub quorum: u32,
    /// Approvals counting now.
    pub counted: u32,
    /// Canceled if not started by then, Unix seconds.
    pub deadline_at: i64,
    /// The caller already has an approval that counts.
    pub approved_by_me: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_defaults_and_unknown_fields() {
        let p: SetApprovalPolicy = serde_json::from_str(r#"{"group":"g"}"#).unwrap();
        assert_eq!(p.quorum, 1);
        assert!(!p.allow_self_approval);
        assert_eq!(p.window_seconds, DEFAULT_WINDOW_SECONDS);
        assert!(serde_json::from_str::<SetApprovalPolicy>(r#"{"group":"g","x":1}"#).is_err());
        let a: ApproveDeployment = serde_json::from_str(r#"{"statement":{}}"#).unwrap();
        assert!(!a.deploy);
        assert!(serde_json::from_str::<DeclineDeployment>(r#"{}"#).is_err());
    }
}
