//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
}
