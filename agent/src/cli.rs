//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use custody_proto::servers::AgentRole;

/// Custody agent: key manager and deploy target.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// Configuration file (default /etc/custody/agent.toml); drop-ins are
    /// read from `<FILE>.d/*.toml`.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The agent's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the server key (or load it) and print its fingerprint.
    Init,
    /// Print the server's public key (PEM, SubjectPublicKeyInfo).
    Pubkey,
    /// Wrap a random key to the server's public key and unwrap it through
    /// the keystore; print OK or the error.
    Selftest {
        /// Instead, open this wrapped JWE (compact serialization) through
        /// the keystore, expecting the binding in its own header; prints
        /// only whether it opened, never the key.
        #[arg(long, value_name = "FILE")]
        jwe: Option<std::path::PathBuf>,
    },
    /// Create or load the server key, register it with the coordinator
    /// using a one-time join token, and store the credential (0600) in the
    /// state directory.
    Enroll {
        /// The coordinator's base URL, `https://host[:port]`.
        #[arg(long, value_name = "URL")]
        coordinator: String,
        /// SHA-256 fingerprint of the coordinator's CA certificate (as
        /// printed by `custody-coordinator init`).
        #[arg(long, value_name = "HEX")]
        ca_fingerprint: String,
        /// The one-time join token (`cjt_…`). Also read from
        /// `CUSTODY_JOIN_TOKEN`, which keeps it out of the process list.
        #[arg(
            long,
            value_name = "TOKEN",
            env = "CUSTODY_JOIN_TOKEN",
            hide_env_values = true
        )]
        join_token: String,
        /// Roles to offer, comma-separated: `key_manager`, `target`.
        /// Default: key_manager, plus target when `[target] install_roots`
        /// is set.
        #[arg(long, value_name = "ROLES", value_delimiter = ',', value_parser = parse_role)]
        roles: Option<Vec<AgentRole>>,
        /// The server's name for people (default: the host name).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// Run the agent: connect to the coordinator (outbound only), take
    /// jobs, heartbeat. Applies the sandbox before any thread starts.
    Run {
        /// Key-manager jobs at once (overrides `[jobs] parallelism`).
        #[arg(long, value_name = "N")]
        jobs_parallelism: Option<usize>,
    },
    /// Apply the main process's sandbox plan in probe processes and try
    /// what must fail (and what must work); print a table. Exit 0 only when
    /// everything is as it must be.
    SandboxCheck,
    /// Internal: one `sandbox-check` probe.
    #[command(hide = true)]
    SandboxProbe,
    /// Internal: the installer child (started by `run`, socket on stdin).
    #[command(hide = true)]
    Installer,
}

fn parse_role(s: &str) -> Result<AgentRole, String> {
    match s.trim() {
        "key_manager" | "key-manager" => Ok(AgentRole::KeyManager),
        "target" => Ok(AgentRole::Target),
        other => Err(format!("unknown role {other:?} (key_manager, target)")),
    }
}
