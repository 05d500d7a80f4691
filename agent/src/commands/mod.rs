//! The agent's commands. Each takes an opened keystore and writes its
//! report to `out`.

pub mod enroll;
pub mod run;
mod sandbox_check;
mod selftest;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use rsa::RsaPublicKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};

use crate::cli::{Cli, Command};
use crate::config::{self, ConfigError, DEFAULT_CONFIG_PATH};
use crate::keystore::{self, KeyStoreError, OpenedKeyStore};
use crate::logging;
pub use enroll::{EnrollArgs, EnrollError};
pub use run::{RunError, RunOptions};
pub use sandbox_check::sandbox_check;
pub use selftest::selftest;

/// The key's fingerprint as the coordinator knows it: the RFC 7638 JWK
/// thumbprint (also the `kid` of every JWE wrapped to it).
pub fn fingerprint(public: &RsaPublicKey) -> String {
    custody_envelope::jwe::thumbprint(public)
}

/// Why a command failed. Its `Display` is one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The configuration was refused.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The keystore failed.
    #[error("keystore: {0}")]
    KeyStore(#[from] KeyStoreError),
    /// The self-test unwrapped something other than what it wrapped.
    #[error("selftest: the unwrapped key differs from the wrapped one")]
    SelftestMismatch,
    /// The key has no OAEP hash the wrapping side supports.
    #[error("selftest: no OAEP hash in common with the keystore")]
    NoCommonHash,
    /// Wrapping to the public key failed.
    #[error("selftest: wrapping to the public key failed: {0}")]
    Wrap(String),
    /// The envelope was refused (malformed, wrong kid, binding …).
    #[error("selftest: the envelope was refused: {0}")]
    Envelope(#[source] custody_envelope::EnvelopeError),
    /// The envelope did not open for another reason.
    #[error("selftest: the envelope did not open: {0}")]
    Open(String),
    /// The `--jwe` file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadJwe {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The public key could not be encoded.
    #[error("cannot encode the public key")]
    EncodePublicKey,
    /// Writing the report failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// Enrollment failed.
    #[error("enroll: {0}")]
    Enroll(#[from] EnrollError),
    /// The agent could not start.
    #[error("run: {0}")]
    Run(#[from] RunError),
    /// `sandbox-check` could not run its probes.
    #[error("sandbox-check: {0}")]
    SandboxCheck(std::io::Error),
}

/// Loads the configuration and runs the command (everything but the
/// internal `sandbox-probe`, which `main` runs before anything else).
pub fn dispatch(cli: &Cli, out: &mut dyn Write) -> Result<ExitCode, CommandError> {
    let path = cli
        .config
        .clone()
        .unwrap_or_else(|| Path::new(DEFAULT_CONFIG_PATH).to_owned());
    let config = config::load(Some(&path))?;
    let log = logging::init(&config.log);
    match &cli.command {
        Command::Init | Command::Pubkey | Command::Selftest { .. } => {
            let opened = keystore::open(&config.keystore, &config.state.dir)?;
            key_command(&cli.command, opened, out)?;
        }
        Command::Enroll {
            coordinator,
            ca_fingerprint,
            join_token,
            roles,
            name,
        } => {
            let args = EnrollArgs {
                coordinator: coordinator.clone(),
                ca_fingerprint: ca_fingerprint.clone(),
                join_token: zeroize::Zeroizing::new(join_token.clone()),
                roles: roles.clone(),
                name: name.clone(),
            };
            enroll::enroll(&config, &args, out)?;
        }
        Command::Run { jobs_parallelism } => {
            let options = RunOptions {
                jobs_parallelism: *jobs_parallelism,
            };
            run::run(config, &path, log, &options)?;
        }
        Command::SandboxCheck => {
            let code = sandbox_check(&config, &path, out).map_err(CommandError::SandboxCheck)?;
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        Command::SandboxProbe => {
            std::process::exit(crate::sandbox::check::probe_main());
        }
        Command::Installer => return Ok(crate::installer::child_main()),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a key command (`init`, `pubkey`, `selftest`) with the opened keystore.
pub fn key_command(
    command: &Command,
    keystore: OpenedKeyStore,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    match command {
        Command::Pubkey => pubkey(keystore.public_key(), out),
        Command::Selftest { jwe: None } => selftest(keystore, out),
        Command::Selftest { jwe: Some(path) } => selftest::open_file(keystore, path, out),
        _ => init(&keystore, out),
    }
}

/// `init`: the key now exists (open created it when needed); print what it is.
fn init(keystore: &OpenedKeyStore, out: &mut dyn Write) -> Result<(), CommandError> {
    let public = keystore.public_key();
    let hashes: Vec<&str> = keystore
        .supported_hashes()
        .iter()
        .map(|h| h.jwe_alg())
        .collect();
    writeln!(
        out,
        "key {} rsa-{} oaep={}",
        fingerprint(public),
        rsa::traits::PublicKeyParts::size(public) * 8,
        hashes.join(",")
    )?;
    Ok(())
}

/// `pubkey`: PEM SubjectPublicKeyInfo.
fn pubkey(public: &RsaPublicKey, out: &mut dyn Write) -> Result<(), CommandError> {
    let pem = public
        .to_public_key_pem(LineEnding::LF)
        .map_err(|_| CommandError::EncodePublicKey)?;
    out.write_all(pem.as_bytes())?;
    Ok(())
}
