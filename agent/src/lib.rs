//! Custody's agent: a key manager (private key in a PKCS#11 token, a TPM 2.0
//! or, for development, a soft file) and a deploy target.
//!
//! `custody-agent run` takes these steps in order, each its own module:
//! parse the command line ([`cli`]) → load and validate the configuration
//! ([`config`]) → read the credential ([`credential`]) → acquire privileged
//! resources without starting a thread (open the keystore:
//! [`keystore::open`]; resolve the coordinator: [`link`]) → apply the
//! sandbox ([`main_plan`], [`sandbox`]) → start worker threads
//! ([`keystore::OpenedKeyStore::start`]) → run ([`daemon`], with the jobs
//! in [`roles`]). See [`commands::run`].
#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod credential;
pub mod daemon;
pub mod installer;
pub mod keystore;
pub mod link;
pub mod logging;
pub mod main_plan;
pub mod notify;
pub mod rng;
pub mod roles;
pub mod sandbox;
