//! Custody's agent: a key manager (private key in a PKCS#11 token, a TPM 2.0
//! or, for development, a soft file) and a deploy target.
//!
//! The binary's `main` runs these steps in order, each its own module:
//! parse the command line ([`cli`]) → load and validate the configuration
//! ([`config`]) → acquire privileged resources (open the keystore, no threads:
//! [`keystore::open`]) → (later: apply the sandbox) → start worker threads
//! ([`keystore::OpenedKeyStore::start`]) → run the command ([`commands`]).
#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod installer;
pub mod keystore;
pub mod logging;
pub mod rng;
pub mod sandbox;
