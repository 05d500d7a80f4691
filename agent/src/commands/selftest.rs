//! `selftest`: wrap a fresh random key to our own public key with
//! `custody-envelope`'s JWE `wrap` and open it through the keystore — the
//! same path a key-manager job takes.

use std::io::Write;

use custody_envelope::jwe::{self, Binding, OpenError, Purpose};
use custody_envelope::{OaepHash, SymmetricKey};

use super::CommandError;
use crate::keystore::OpenedKeyStore;

/// The binding of the self-test envelope.
fn binding() -> Binding {
    Binding {
        purpose: Purpose::DeployKey,
        account: "custody-agent-selftest".to_owned(),
        app: None,
        release: None,
        deployment: Some("selftest".to_owned()),
        name: None,
        environment: None,
    }
}

fn open_error(e: OpenError<crate::keystore::KeyStoreError>) -> CommandError {
    match e {
        OpenError::Unwrap(k) => CommandError::KeyStore(k),
        OpenError::Envelope(e) => CommandError::Envelope(e),
        other => CommandError::Open(other.to_string()),
    }
}

/// `selftest --jwe FILE`: opens a JWE wrapped to this server through the
/// keystore (binding taken from its own header) and reports whether it
/// opened. The plaintext is dropped (zeroized), never printed.
pub fn open_file(
    keystore: OpenedKeyStore,
    path: &std::path::Path,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let text = std::fs::read_to_string(path).map_err(|source| CommandError::ReadJwe {
        path: path.to_owned(),
        source,
    })?;
    let text = text.trim();
    let header = jwe::peek(text).map_err(CommandError::Envelope)?;
    let keystore = keystore.start()?;
    let public = keystore.public_key();
    let opened = jwe::open_wrapped(text, public, &header.binding, |h, ek| {
        keystore.unwrap(h, ek)
    })
    .map_err(open_error)?;
    writeln!(
        out,
        "selftest OK: {} keystore opened a {} JWE (purpose {:?}, {} bytes)",
        keystore.kind(),
        header.alg,
        header.binding.purpose,
        opened.len()
    )?;
    Ok(())
}

/// Starts the keystore, wraps a random AES-256 key with the strongest OAEP
/// hash the key takes, unwraps it through the keystore, compares, and
/// prints one line.
pub fn selftest(keystore: OpenedKeyStore, out: &mut dyn Write) -> Result<(), CommandError> {
    let keystore = keystore.start()?;
    let public = keystore.public_key();
    let hash =
        OaepHash::best_common(keystore.supported_hashes()).ok_or(CommandError::NoCommonHash)?;
    let key = SymmetricKey::generate().map_err(|e| CommandError::Wrap(e.to_string()))?;
    let wrapped = jwe::wrap(public, hash, &binding(), key.as_bytes())
        .map_err(|e| CommandError::Wrap(e.to_string()))?;
    let opened = jwe::open_wrapped(&wrapped, public, &binding(), |h, ek| keystore.unwrap(h, ek))
        .map_err(open_error)?;
    if opened.as_slice() != key.as_bytes() {
        return Err(CommandError::SelftestMismatch);
    }
    writeln!(
        out,
        "selftest OK: {} keystore, key {}, {}",
        keystore.kind(),
        jwe::thumbprint(public),
        hash.jwe_alg()
    )?;
    Ok(())
}
