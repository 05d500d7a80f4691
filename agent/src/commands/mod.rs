//! The agent's commands. Each takes an opened keystore and writes its
//! report to `out`.

mod selftest;

use std::io::Write;

use rsa::RsaPublicKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};

use crate::cli::Command;
use crate::config::ConfigError;
use crate::keystore::{KeyStoreError, OpenedKeyStore};
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
}

/// Runs `command` with the opened keystore.
pub fn run(
    command: &Command,
    keystore: OpenedKeyStore,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    match command {
        Command::Init => init(&keystore, out),
        Command::Pubkey => pubkey(keystore.public_key(), out),
        Command::Selftest { jwe: None } => selftest(keystore, out),
        Command::Selftest { jwe: Some(path) } => selftest::open_file(keystore, path, out),
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
