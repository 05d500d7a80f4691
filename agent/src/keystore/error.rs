//! The keystore's one error type.

use std::path::PathBuf;

use custody_envelope::OaepHash;

/// A PKCS#11 operation, named in [`KeyStoreError::Pkcs11`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pkcs11Op {
    /// `C_Initialize`.
    Initialize,
    /// Listing slots and reading token information.
    FindToken,
    /// `C_OpenSession`.
    OpenSession,
    /// `C_Login`.
    Login,
    /// Searching the token for the key pair.
    FindKey,
    /// `C_GenerateKeyPair`.
    GenerateKey,
    /// Reading the public key's modulus and exponent.
    ReadPublicKey,
    /// Trying which OAEP hashes the token accepts.
    DetectHashes,
}

/// A TPM operation, named in [`KeyStoreError::Tpm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TpmOp {
    /// Opening the TCTI and the ESAPI context.
    Connect,
    /// Listing and flushing transient objects left by a crashed process.
    FlushStale,
    /// Asking which RSA key sizes the TPM has.
    Capabilities,
    /// `TPM2_CreatePrimary` of the storage key.
    CreatePrimary,
    /// `TPM2_Create` of the server key.
    CreateKey,
    /// `TPM2_Load` of the server key's blobs.
    LoadKey,
    /// `TPM2_ReadPublic` / converting the public area.
    ReadPublic,
    /// Starting an authorization session.
    StartSession,
    /// Decrypting a probe with the loaded key (proves the authValue and the
    /// key work before the agent goes on).
    SelfCheck,
}

/// Why a keystore operation failed. Messages never carry a PIN, key bytes or
/// plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// The PIN file or systemd credential could not be read.
    #[error("cannot read the PIN from {path}: {source}")]
    ReadPin {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The PIN file can be read by other users.
    #[error("PIN file {path} has mode {mode:o}; it must not be readable by group or others")]
    PinFileMode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The PIN file is empty.
    #[error("PIN file {path} is empty")]
    EmptyPin {
        /// The file.
        path: PathBuf,
    },
    /// A systemd credential was configured but `$CREDENTIALS_DIRECTORY` is unset.
    #[error("credential {name:?} configured but $CREDENTIALS_DIRECTORY is not set")]
    NoCredentialsDirectory {
        /// The credential's name.
        name: String,
    },
    /// The PKCS#11 module could not be loaded.
    #[error("cannot load PKCS#11 module {module}: {source}")]
    LoadModule {
        /// The module path.
        module: PathBuf,
        /// cryptoki's error.
        source: cryptoki::error::Error,
    },
    /// No token carries the configured label.
    #[error("no PKCS#11 token labelled {label:?}")]
    TokenNotFound {
        /// The label.
        label: String,
    },
    /// The token refused the PIN. The agent does not retry (a retry storm
    /// would lock the token).
    #[error("the token refused the PIN (not retrying, to avoid locking it)")]
    PinIncorrect,
    /// The token's user PIN is locked.
    #[error("the token's user PIN is locked")]
    PinLocked,
    /// More than one key pair carries the configured label.
    #[error("{count} private keys carry the label {label:?}; expected one")]
    DuplicateKey {
        /// The label.
        label: String,
        /// How many.
        count: usize,
    },
    /// A PKCS#11 call failed.
    #[error("PKCS#11 {op:?} failed: {source}")]
    Pkcs11 {
        /// Which operation.
        op: Pkcs11Op,
        /// cryptoki's error (names the function and return value).
        source: cryptoki::error::Error,
    },
    /// The key in the hardware accepts none of the OAEP hashes Custody uses.
    #[error("the key accepts neither RSA-OAEP-SHA256 nor RSA-OAEP-SHA1")]
    NoOaepHash,
    /// The TPM could not be reached (not running, no device, no permission).
    #[error("cannot reach the TPM at {tcti:?}: {source}")]
    TpmUnreachable {
        /// The TCTI string.
        tcti: String,
        /// tss-esapi's error.
        source: tss_esapi::Error,
    },
    /// A TPM command failed.
    #[error("TPM {op:?} failed: {source}")]
    Tpm {
        /// Which operation.
        op: TpmOp,
        /// tss-esapi's error (names the response code).
        source: tss_esapi::Error,
    },
    /// The TPM offers neither RSA-2048 nor RSA-3072 decryption keys.
    #[error("the TPM has no RSA key size Custody can use")]
    TpmNoRsa,
    /// A key blob, auth value or key file in the state directory is malformed.
    #[error("{path} is corrupt: {reason}")]
    CorruptState {
        /// The file.
        path: PathBuf,
        /// What is wrong (no secret material).
        reason: &'static str,
    },
    /// A state file or directory could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    StateIo {
        /// `read`, `write`, `create directory` …
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key file can be read by other users.
    #[error("{path} has mode {mode:o}; it must not be readable by group or others")]
    KeyFileMode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Generating the soft key failed.
    #[error("cannot generate the RSA key: {0}")]
    SoftGenerate(rsa::Error),
    /// The hardware returned a public key that is not a valid RSA key.
    #[error("the public key read from the keystore is not a valid RSA key")]
    InvalidPublicKey,
    /// The unwrap asked for an OAEP hash this keystore's key does not take.
    #[error("this keystore does not unwrap with {hash:?}")]
    UnsupportedHash {
        /// The hash asked for.
        hash: OaepHash,
    },
    /// The ciphertext did not decrypt. Deliberately says nothing more:
    /// every decryption failure (bad padding, wrong key, wrong length,
    /// hardware refusal) is this one variant, so callers cannot be used as a
    /// padding oracle.
    #[error("unwrap failed")]
    Unwrap,
    /// The token or TPM no longer serves this process: its session, login
    /// or connection is gone (device removed, HSM or TPM restarted). Only
    /// answers a ciphertext cannot cause are sorted here, so this says
    /// nothing about the ciphertext. The agent then exits, for its service
    /// manager to start it again and open the keystore afresh.
    #[error("stopped serving this process ({0}); it must be opened again")]
    Lost(String),
    /// The TPM worker thread could not be started.
    #[error("cannot start the keystore worker thread: {0}")]
    StartWorker(std::io::Error),
    /// The TPM worker thread has stopped.
    #[error("the keystore worker thread has stopped")]
    WorkerGone,
}
