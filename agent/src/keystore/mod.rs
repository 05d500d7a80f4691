//! Where the server's RSA private key lives, and the one operation Custody
//! needs from it: RSA-OAEP unwrap.
//!
//! Backends: [`pkcs11`] (an HSM), [`tpm`] (a TPM 2.0), [`soft`] (a PEM file,
//! development only). Chosen by [`KeyStoreConfig`].
//!
//! # Two steps: open, then start
//!
//! [`open`] acquires everything privileged — loads the PKCS#11 module and
//! logs in, connects to the TPM, reads key files, creates the key when it
//! does not exist — **without starting a thread**. The agent then applies its
//! sandbox (Landlock, seccomp and capability drops bind the calling thread
//! and its later children, not threads that already exist) and only then
//! calls [`OpenedKeyStore::start`], which starts what the backend needs to
//! serve unwraps concurrently: the PKCS#11 session pool, the TPM-owning
//! worker thread.

pub mod config;
mod error;
pub mod pin;
pub mod pkcs11;
pub mod soft;
pub mod tpm;

use std::path::Path;
use std::sync::Arc;

use custody_envelope::OaepHash;
use rsa::RsaPublicKey;
use zeroize::Zeroizing;

pub use config::KeyStoreConfig;
pub use error::{KeyStoreError, Pkcs11Op, TpmOp};

/// A started keystore: unwraps OAEP ciphertexts with the server's private
/// key, which never leaves it (except for [`soft`]).
pub trait KeyStore: Send + Sync {
    /// `pkcs11`, `tpm` or `soft`.
    fn kind(&self) -> &'static str;

    /// The server key's public half (what the coordinator calls `P_i`).
    fn public_key(&self) -> &RsaPublicKey;

    /// The OAEP hashes this key can unwrap, strongest first, as detected from
    /// the hardware.
    fn supported_hashes(&self) -> &[OaepHash];

    /// Decrypts an RSA-OAEP ciphertext (empty label). Every decryption
    /// failure is [`KeyStoreError::Unwrap`]; a hash the key does not take is
    /// [`KeyStoreError::UnsupportedHash`]; a lost worker is
    /// [`KeyStoreError::WorkerGone`].
    fn unwrap(
        &self,
        hash: OaepHash,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyStoreError>;
}

/// A keystore that is open (module loaded, logged in, key present) but has
/// started no thread. Call [`OpenedKeyStore::start`] after the sandbox.
pub enum OpenedKeyStore {
    /// An opened PKCS#11 token.
    Pkcs11(pkcs11::OpenedPkcs11),
    /// An opened TPM.
    Tpm(tpm::OpenedTpm),
    /// An opened soft key file.
    Soft(soft::SoftKeyStore),
}

impl OpenedKeyStore {
    /// The server key's public half.
    pub fn public_key(&self) -> &RsaPublicKey {
        match self {
            OpenedKeyStore::Pkcs11(k) => k.public_key(),
            OpenedKeyStore::Tpm(k) => k.public_key(),
            OpenedKeyStore::Soft(k) => KeyStore::public_key(k),
        }
    }

    /// The OAEP hashes the key takes, strongest first.
    pub fn supported_hashes(&self) -> &[OaepHash] {
        match self {
            OpenedKeyStore::Pkcs11(k) => k.supported_hashes(),
            OpenedKeyStore::Tpm(k) => k.supported_hashes(),
            OpenedKeyStore::Soft(k) => KeyStore::supported_hashes(k),
        }
    }

    /// Starts what the backend needs to serve unwraps (session pool, TPM
    /// worker thread). Run this after the sandbox is in place.
    pub fn start(self) -> Result<Arc<dyn KeyStore>, KeyStoreError> {
        Ok(match self {
            OpenedKeyStore::Pkcs11(k) => Arc::new(k.start()?),
            OpenedKeyStore::Tpm(k) => Arc::new(k.start()?),
            OpenedKeyStore::Soft(k) => Arc::new(k),
        })
    }
}

/// Opens the configured keystore, creating the server key when it does not
/// exist. Starts no thread. `state_dir` holds the TPM's key blobs and the
/// default soft key file.
pub fn open(config: &KeyStoreConfig, state_dir: &Path) -> Result<OpenedKeyStore, KeyStoreError> {
    Ok(match config {
        KeyStoreConfig::Pkcs11(c) => OpenedKeyStore::Pkcs11(pkcs11::OpenedPkcs11::open(c)?),
        KeyStoreConfig::Tpm(c) => OpenedKeyStore::Tpm(tpm::OpenedTpm::open(c, state_dir)?),
        KeyStoreConfig::Soft(c) => OpenedKeyStore::Soft(soft::SoftKeyStore::open(c, state_dir)?),
    })
}

/// Creates `dir` (and parents) with mode 0700 when missing.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), KeyStoreError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| KeyStoreError::StateIo {
            action: "create directory",
            path: dir.to_owned(),
            source,
        })
}

/// Writes `bytes` to a new file `path` with mode 0600 (via a temporary file
/// and rename, so a crash leaves no half-written key).
pub(crate) fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), KeyStoreError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |action, source| KeyStoreError::StateIo {
        action,
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("write", e))?;
    f.write_all(bytes).map_err(|e| io("write", e))?;
    f.sync_all().map_err(|e| io("write", e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io("write", e))
}

/// Reads a file that must not be readable by group or others.
pub(crate) fn read_private_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let io = |source| KeyStoreError::StateIo {
        action: "read",
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mode = f.metadata().map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyStoreError::KeyFileMode {
            path: path.to_owned(),
            mode,
        });
    }
    let mut buf = Zeroizing::new(Vec::new());
    f.read_to_end(&mut buf).map_err(io)?;
    Ok(buf)
}
