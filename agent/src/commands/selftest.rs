//! `selftest`: wrap a fresh random key to our own public key and unwrap it
//! through the keystore.

use std::io::Write;

use custody_envelope::OaepHash;
use rsa::Oaep;

use super::{CommandError, fingerprint};
use crate::keystore::OpenedKeyStore;
use crate::rng::{self, OsRng};

/// Starts the keystore, round-trips a random 32-byte key with the strongest
/// OAEP hash it takes, and prints one line.
pub fn selftest(keystore: OpenedKeyStore, out: &mut dyn Write) -> Result<(), CommandError> {
    let keystore = keystore.start()?;
    let public = keystore.public_key();
    let hash =
        OaepHash::best_common(keystore.supported_hashes()).ok_or(CommandError::NoCommonHash)?;
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    rng::fill(secret.as_mut());
    let padding = match hash {
        OaepHash::Sha256 => Oaep::new::<rsa::sha2::Sha256>(),
        OaepHash::Sha1 => Oaep::new::<sha1::Sha1>(),
    };
    let wrapped = public
        .encrypt(&mut OsRng, padding, secret.as_ref())
        .map_err(|e| CommandError::Wrap(e.to_string()))?;
    let unwrapped = keystore.unwrap(hash, &wrapped)?;
    if unwrapped.as_slice() != secret.as_ref() {
        return Err(CommandError::SelftestMismatch);
    }
    writeln!(
        out,
        "selftest OK: {} keystore, key {}, {}",
        keystore.kind(),
        fingerprint(public)?,
        hash.jwe_alg()
    )?;
    Ok(())
}
