//! The coordinator's one error type and its mapping to HTTP status and a
//! stable error code (`custody_proto::ErrorCode`). Internal detail goes to
//! the log, never into the response.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use custody_proto::error::{ApiError, ErrorBody, ErrorCode};

/// What went wrong while serving a request or running a background step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A refusal the client can act on: code, message and optional details.
    #[error("{message} ({code})")]
    Api {
        /// Stable code.
        code: ErrorCode,
        /// One line for people.
        message: String,
        /// Code-specific JSON.
        details: Option<serde_json::Value>,
    },
    /// The database failed during `op`.
    #[error("database error during {op}: {source}")]
    Db {
        /// The operation.
        op: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The audit log could not be written; the action was not done.
    #[error("audit log write failed: {0}")]
    Audit(String),
    /// Local I/O failed during `op` (artifact store, state dir).
    #[error("I/O error during {op}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// Anything else internal.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A client-facing refusal.
    pub fn api(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Api {
            code,
            message: message.into(),
            details: None,
        }
    }

    /// A client-facing refusal with details.
    pub fn api_with(
        code: ErrorCode,
        message: impl Into<String>,
        details: serde_json::Value,
    ) -> Self {
        Error::Api {
            code,
            message: message.into(),
            details: Some(details),
        }
    }

    /// 404 for `what`.
    pub fn not_found(what: &str) -> Self {
        Self::api(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// 400 invalid input.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::api(ErrorCode::InvalidInput, message)
    }

    /// 409 invalid state.
    pub fn state(message: impl Into<String>) -> Self {
        Self::api(ErrorCode::InvalidState, message)
    }

    /// Maps a database error, naming the operation.
    pub fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Error::Db { op, source }
    }

    /// Maps an I/O error, naming the operation.
    pub fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Error::Io { op, source }
    }

    /// The stable code this error is reported with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Api { code, .. } => *code,
            Error::Audit(_) => ErrorCode::AuditUnavailable,
            Error::Db { .. } | Error::Io { .. } | Error::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<custody_proto::ids::IdError> for Error {
    fn from(e: custody_proto::ids::IdError) -> Self {
        Error::invalid(e.to_string())
    }
}

impl Error {
    /// The body an API error answers with (the generic message for
    /// internal errors, which are logged where they are answered).
    pub fn to_api(&self) -> custody_proto::ApiError {
        let (message, details) = match self {
            Error::Api {
                message, details, ..
            } => (message.clone(), details.clone()),
            _ => ("internal error; see the coordinator log".into(), None),
        };
        custody_proto::ApiError {
            code: self.code(),
            message,
            details,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let code = self.code();
        let (message, details) = match self {
            Error::Api {
                message, details, ..
            } => (message, details),
            Error::Audit(detail) => {
                tracing::error!(%detail, "audit log write failed; action refused");
                (
                    "the audit log could not be written, so the action was not done".into(),
                    None,
                )
            }
            other => {
                tracing::error!(error = %other, "internal error");
                ("internal error; see the coordinator log".into(), None)
            }
        };
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ApiError {
                code,
                message,
                details,
            },
        };
        (status, axum::Json(body)).into_response()
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
