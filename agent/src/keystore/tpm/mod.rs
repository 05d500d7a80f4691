//! `kind = "tpm"`: the server key in a TPM 2.0 (swtpm in tests).
//!
//! The key is a child of the storage primary, which is re-created from the
//! standard template at every start (so nothing lives in NV memory). Its
//! public and TPM-encrypted private areas and its random authValue are kept
//! in `<state.dir>/tpm/` (0600); loading them back works after an agent
//! restart and after a TPM reset — saved contexts would not.
//!
//! [`OpenedTpm::open`] connects on the calling thread, flushes stale
//! transient objects, creates or loads the key, reads its public half and
//! disconnects: a `tss_esapi::Context` cannot move to another thread.
//! [`OpenedTpm::start`] then starts the one thread that owns the TPM; it
//! reconnects and loads the key (so the sandbox must still allow opening the
//! TCTI: `/dev/tpmrm0` read-write, or the swtpm socket).

pub mod blobs;
pub mod context;
pub mod decrypt;
pub mod templates;
mod worker;

use std::path::Path;

use custody_envelope::OaepHash;
use rsa::RsaPublicKey;
use rsa::traits::PublicKeyParts;
use zeroize::Zeroizing;

use super::config::TpmConfig;
use super::{KeyStore, KeyStoreError};
use blobs::{KeyBlobs, KeyFiles};
use worker::Worker;

/// The TPM key is pinned to OAEP-SHA256 (see [`templates::server_key`]).
const HASHES: [OaepHash; 1] = [OaepHash::Sha256];

/// An opened TPM keystore: key present and loadable, no thread, no open
/// connection.
pub struct OpenedTpm {
    tcti: String,
    blobs: KeyBlobs,
    public: RsaPublicKey,
    files: KeyFiles,
}

impl OpenedTpm {
    /// Connects, flushes stale transients, re-creates the primary, creates
    /// the server key when its files do not exist (or loads it to prove it
    /// belongs to this TPM), reads the public key, disconnects.
    pub fn open(config: &TpmConfig, state_dir: &Path) -> Result<Self, KeyStoreError> {
        let files = KeyFiles::new(state_dir, &config.key_name);
        let exists = files.exist()?;
        let mut ctx = context::connect(&config.tcti)?;
        context::flush_stale(&mut ctx)?;
        let session = context::start_session(&mut ctx)?;
        let primary = context::create_primary(&mut ctx, session)?;
        let blobs = if exists {
            files.read()?
        } else {
            let b = context::create_key(&mut ctx, session, primary, config.key_bits)?;
            files.write(&b)?;
            b
        };
        let key = context::load_key(&mut ctx, session, primary, &blobs)?;
        let public = context::rsa_public(&blobs.public)?;
        let checked = context::self_check(&mut ctx, session, key, &public);
        let _ = ctx.flush_context(key.into());
        let _ = ctx.flush_context(primary.into());
        let _ = ctx.flush_context(tss_esapi::handles::SessionHandle::from(session).into());
        checked?;
        Ok(Self {
            tcti: config.tcti.clone(),
            blobs,
            public,
            files,
        })
    }

    /// The server key's public half.
    pub fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    /// OAEP hashes the key takes: SHA-256 only.
    pub fn supported_hashes(&self) -> &[OaepHash] {
        &HASHES
    }

    /// The key's files.
    pub fn files(&self) -> &KeyFiles {
        &self.files
    }

    /// Starts the TPM-owning thread.
    pub fn start(self) -> Result<TpmKeyStore, KeyStoreError> {
        let worker = Worker::start(self.tcti, self.blobs, self.public.size())?;
        Ok(TpmKeyStore {
            worker,
            public: self.public,
        })
    }
}

/// A started TPM keystore.
pub struct TpmKeyStore {
    worker: Worker,
    public: RsaPublicKey,
}

impl KeyStore for TpmKeyStore {
    fn kind(&self) -> &'static str {
        "tpm"
    }

    fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    fn supported_hashes(&self) -> &[OaepHash] {
        &HASHES
    }

    fn unwrap(
        &self,
        hash: OaepHash,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        if hash != OaepHash::Sha256 {
            return Err(KeyStoreError::UnsupportedHash { hash });
        }
        self.worker.unwrap(ciphertext)
    }
}
