//! Custody's coordinator: the HTTP API, the SQLite store, job routing to key
//! managers and targets, master-key bookkeeping, releases, deployments and
//! the hash-chained audit log. It stores only ciphertext (JWE strings) and
//! public keys; it never holds a plaintext release, deploy or master key.
//!
//! `main.rs` is the thin binary; tests and benches start a coordinator
//! in-process with [`server::start`].
#![forbid(unsafe_code)]

pub mod api;
pub mod approvals;
pub mod artifacts;
pub mod audit;
pub mod auth;
pub mod config;
pub mod deployments;
pub mod envelopes;
pub mod error;
pub mod init;
pub mod jobspec;
pub mod keys;
pub mod masterkey;
pub mod metrics;
pub mod notify;
pub mod presence;
pub mod ratelimit;
pub mod releases;
pub mod routing;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod tls;

pub use config::Config;
pub use error::Error;
