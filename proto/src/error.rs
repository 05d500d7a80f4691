//! The error schema every non-2xx response carries.
//!
//! ```json
//! {"error": {"code": "not_enough_key_managers", "message": "…", "details": {"live": 1, "required": 2}}}
//! ```
//! `code` is stable and documented in `docs/API.md`; `message` is for people
//! and may change; `details` is optional, code-specific JSON.

use serde::{Deserialize, Serialize};

/// Stable error codes. Clients match on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 401: no credential, an unknown, revoked or expired one, or a removed server's.
    Unauthenticated,
    /// 403: authenticated, but the role does not allow this.
    Forbidden,
    /// 404: no such object (or not visible to the caller).
    NotFound,
    /// 400: the body is not valid JSON for this endpoint.
    MalformedJson,
    /// 400: a field is present but invalid (bad id, empty name, bad PEM …).
    InvalidInput,
    /// 413: the body exceeds the configured limit.
    PayloadTooLarge,
    /// 409: the object already exists.
    AlreadyExists,
    /// 409: the object is not in a state that allows this.
    InvalidState,
    /// 409: fewer live key managers than the action needs (`details.live`, `details.required`).
    NotEnoughKeyManagers,
    /// 409: no live key manager holds the account master key yet.
    NoMasterKey,
    /// 409: the release was sealed under a master key that has been lost.
    MasterKeyLost,
    /// 422: the uploaded package's SHA-256 does not match the claimed one.
    DigestMismatch,
    /// 400: an approval statement's signature does not verify with the
    /// approver's registered key (or names another key).
    InvalidSignature,
    /// 400: an approval statement does not match the deployment (ids,
    /// release, digest, environment, targets), the caller, or has expired;
    /// `details.field` names the first mismatch.
    StatementMismatch,
    /// 400: the join token is unknown, used or expired.
    JoinTokenInvalid,
    /// 400: the agent speaks a protocol version this coordinator does not.
    UnsupportedProtocolVersion,
    /// 416: the requested byte range is outside the artifact.
    RangeNotSatisfiable,
    /// 429: too many failed authentications from this source or token prefix.
    RateLimited,
    /// 503: the audit log could not be written, so the action was not done.
    AuditUnavailable,
    /// 503: the coordinator is shutting down or not ready.
    Unavailable,
    /// 500: an internal error; the coordinator's log has the detail.
    Internal,
    /// A code this client does not know (a newer coordinator).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code's wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::NotEnoughKeyManagers => "not_enough_key_managers",
            ErrorCode::NoMasterKey => "no_master_key",
            ErrorCode::MasterKeyLost => "master_key_lost",
            ErrorCode::DigestMismatch => "digest_mismatch",
            ErrorCode::InvalidSignature => "invalid_signature",
            ErrorCode::StatementMismatch => "statement_mismatch",
            ErrorCode::JoinTokenInvalid => "join_token_invalid",
            ErrorCode::UnsupportedProtocolVersion => "unsupported_protocol_version",
            ErrorCode::RangeNotSatisfiable => "range_not_satisfiable",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::AuditUnavailable => "audit_unavailable",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// The HTTP status the coordinator answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MalformedJson
            | ErrorCode::InvalidInput
            | ErrorCode::JoinTokenInvalid
            | ErrorCode::UnsupportedProtocolVersion
            | ErrorCode::InvalidSignature
            | ErrorCode::StatementMismatch => 400,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::AlreadyExists
            | ErrorCode::InvalidState
            | ErrorCode::NotEnoughKeyManagers
            | ErrorCode::NoMasterKey
            | ErrorCode::MasterKeyLost => 409,
            ErrorCode::DigestMismatch => 422,
            ErrorCode::RangeNotSatisfiable => 416,
            ErrorCode::RateLimited => 429,
            ErrorCode::AuditUnavailable | ErrorCode::Unavailable => 503,
            ErrorCode::Internal | ErrorCode::Unknown => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of the `error` member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable code.
    pub code: ErrorCode,
    /// One line for people.
    pub message: String,
    /// Code-specific detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// The whole error response body: `{"error": ApiError}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ApiError,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}
