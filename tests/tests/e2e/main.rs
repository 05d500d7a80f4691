//! Custody end to end, across real processes on loopback: the coordinator
//! binary, sandboxed agents on SoftHSM2 / swtpm / soft keystores, the
//! `custody` command line (see `custody_e2e` for the harness). One test
//! binary, so that libtest runs the scenarios in parallel; each has its own
//! coordinator, agents, tokens and TPMs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Users, approval keys and signed statements for the approval scenario,
// shared with the coordinator's and the CLI's approval tests.
#[path = "../../../coordinator/tests/approval_support/mod.rs"]
mod approval_support;
#[path = "../../../coordinator/tests/common/mod.rs"]
mod common;

mod approvals;
mod failover;
mod happy_path;
mod keystore_lost;
mod no_plaintext;
mod redelivery;
mod rotation;
mod sandbox;
mod tampering;
mod unpacking;
