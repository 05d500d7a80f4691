//! The JSON types of Custody's HTTP API and agent job protocol.
//!
//! `docs/API.md` is the prose version of this crate: every endpoint, the
//! error schema with its stable codes, and the agent job protocol. The JSON
//! fixtures under `docs/fixtures/` are loaded by tests on both sides
//! ([`fixtures`]) and must round-trip through these types.
//!
//! Conventions: timestamps are Unix seconds (`*_at`) or Unix milliseconds
//! (`*_at_ms`); ids are opaque strings ([`ids`]); request bodies refuse
//! unknown fields, responses tolerate them (a newer coordinator may add some).
#![forbid(unsafe_code)]

pub mod admin;
pub mod approvals;
pub mod apps;
pub mod audit;
pub mod error;
pub mod fixtures;
pub mod ids;
pub mod jobs;
pub mod notify;
pub mod servers;

pub use custody_envelope::OaepHash;
pub use error::{ApiError, ErrorCode};

/// The agent job protocol version this build speaks. Every agent request
/// carries it; the coordinator refuses any other with
/// [`ErrorCode::UnsupportedProtocolVersion`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Header that carries [`PROTOCOL_VERSION`] on agent requests without a body.
pub const PROTOCOL_HEADER: &str = "custody-protocol";

/// Header on a package upload carrying the client's SHA-256 (hex) of the
/// whole file; the upload is refused and discarded when it does not match.
pub const SHA256_HEADER: &str = "custody-sha256";

/// `GET /v1/info`: what a client pins at login.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Info {
    /// The account this coordinator serves.
    pub account: String,
    /// The coordinator's version.
    pub version: String,
    /// [`PROTOCOL_VERSION`] of the coordinator.
    pub protocol: u32,
    /// The coordinator's Ed25519 audit checkpoint key, hex (32 bytes).
    pub audit_public_key: String,
}
