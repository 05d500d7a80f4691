//! `kind = "soft"`: the server key in a 0600 PEM (PKCS#8) file.
//!
//! For development and demos only: the private key is in the agent's memory
//! and on disk. A warning is logged at every start. This module is the only
//! place in Custody allowed to call `rsa::RsaPrivateKey::decrypt`.

use std::path::{Path, PathBuf};

use custody_envelope::OaepHash;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use sha1::Sha1;
use zeroize::Zeroizing;

use super::config::SoftConfig;
use super::{KeyStore, KeyStoreError, ensure_private_dir, read_private_file, write_private_file};
use crate::rng::OsRng;

/// The soft keystore. Needs no thread, so opening it also starts it.
pub struct SoftKeyStore {
    private: RsaPrivateKey,
    public: RsaPublicKey,
    path: PathBuf,
}

impl SoftKeyStore {
    /// Loads the key file, or generates a key of `key_bits` and writes it
    /// (0600) when the file does not exist. Logs a warning either way.
    pub fn open(config: &SoftConfig, state_dir: &Path) -> Result<Self, KeyStoreError> {
        let path = config
            .key_file
            .clone()
            .unwrap_or_else(|| state_dir.join("soft-key.pem"));
        let private = if path.exists() {
            let pem = read_private_file(&path)?;
            let pem = std::str::from_utf8(&pem).map_err(|_| KeyStoreError::CorruptState {
                path: path.clone(),
                reason: "not a PEM file",
            })?;
            RsaPrivateKey::from_pkcs8_pem(pem).map_err(|_| KeyStoreError::CorruptState {
                path: path.clone(),
                reason: "not a PKCS#8 RSA private key",
            })?
        } else {
            let bits = usize::try_from(config.key_bits).unwrap_or(3072);
            let key = RsaPrivateKey::new(&mut OsRng, bits).map_err(KeyStoreError::SoftGenerate)?;
            let pem =
                key.to_pkcs8_pem(LineEnding::LF)
                    .map_err(|_| KeyStoreError::CorruptState {
                        path: path.clone(),
                        reason: "cannot encode the new key",
                    })?;
            if let Some(parent) = path.parent() {
                ensure_private_dir(parent)?;
            }
            write_private_file(&path, pem.as_bytes())?;
            key
        };
        tracing::warn!(
            key_file = %path.display(),
            "keystore kind \"soft\": the server's private key is a file on disk; use it for development only"
        );
        let public = private.to_public_key();
        Ok(Self {
            private,
            public,
            path,
        })
    }

    /// The key file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl KeyStore for SoftKeyStore {
    fn kind(&self) -> &'static str {
        "soft"
    }

    fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    fn supported_hashes(&self) -> &[OaepHash] {
        &OaepHash::PREFERENCE
    }

    #[allow(clippy::disallowed_methods)] // the soft keystore is the one allowed place
    fn unwrap(
        &self,
        hash: OaepHash,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        let padding = match hash {
            OaepHash::Sha256 => Oaep::new::<rsa::sha2::Sha256>(),
            OaepHash::Sha1 => Oaep::new::<Sha1>(),
        };
        self.private
            .decrypt(padding, ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| KeyStoreError::Unwrap)
    }
}
