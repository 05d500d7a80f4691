//! Key material while a job holds it, and the envelope operations every
//! key-manager job shares: unwrap through the keystore, open and seal under
//! a symmetric key, wrap to another server's public key.
//!
//! `MK`, `RK` and `DK` live in [`KeyMaterial`]: locked, non-dumpable pages
//! (`sandbox::secure_mem`), zeroized when the job drops them. A
//! `SymmetricKey` is made from them only for the duration of one seal or
//! open.

use std::sync::atomic::{AtomicBool, Ordering};

use custody_envelope::jwe::{self, Binding, OpenError, Purpose};
use custody_envelope::{KEY_LEN, OaepHash, SymmetricKey};
use custody_proto::servers::KeyManagerKey;
use rsa::RsaPublicKey;
use rsa::pkcs8::DecodePublicKey as _;
use zeroize::Zeroizing;

use crate::keystore::{KeyStore, KeyStoreError};
use crate::roles::JobError;
use crate::sandbox::secure_mem::SecretBuffer;

static LOCK_WARNED: AtomicBool = AtomicBool::new(false);

enum Store {
    Locked(SecretBuffer),
    Heap(Zeroizing<Vec<u8>>),
}

/// A 32-byte key held for one job. Locked in memory and excluded from core
/// dumps when the process may lock pages; otherwise (`RLIMIT_MEMLOCK`
/// exhausted) zeroizing heap memory, with a warning logged once.
pub struct KeyMaterial(Store);

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyMaterial(..)")
    }
}

impl KeyMaterial {
    fn zeroed() -> Result<Self, JobError> {
        match SecretBuffer::new(KEY_LEN) {
            Ok(b) => Ok(KeyMaterial(Store::Locked(b))),
            Err(e) => {
                if !LOCK_WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %e,
                        "key material cannot be locked in memory; using ordinary zeroized memory \
                         (raise LimitMEMLOCK)"
                    );
                }
                Ok(KeyMaterial(Store::Heap(Zeroizing::new(vec![0u8; KEY_LEN]))))
            }
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.0 {
            Store::Locked(b) => b.expose_mut(),
            Store::Heap(b) => b.as_mut_slice(),
        }
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8] {
        match &self.0 {
            Store::Locked(b) => b.expose(),
            Store::Heap(b) => b.as_slice(),
        }
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, JobError> {
        let mut k = Self::zeroed()?;
        crate::rng::fill(k.bytes_mut());
        Ok(k)
    }

    /// Moves unwrapped bytes (which must be 32) into key material; the
    /// source buffer is zeroized when dropped.
    pub fn from_plaintext(what: &'static str, bytes: &[u8]) -> Result<Self, JobError> {
        if bytes.len() != KEY_LEN {
            return Err(JobError::InvalidJob(format!(
                "{what} does not hold a 32-byte key"
            )));
        }
        let mut k = Self::zeroed()?;
        k.bytes_mut().copy_from_slice(bytes);
        Ok(k)
    }

    /// Runs `f` with a `SymmetricKey` made from this material; the copy is
    /// zeroized when `f` returns.
    pub fn with_key<R>(&self, f: impl FnOnce(&SymmetricKey) -> R) -> R {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(self.expose());
        let key = SymmetricKey::from_bytes(*bytes);
        f(&key)
    }
}

/// The bindings of every JWE the key managers and targets exchange
/// (`docs/FORMAT.md` §3, and the fixtures in `docs/fixtures/`).
pub mod binding {
    use super::{Binding, Purpose};

    fn base(purpose: Purpose, account: &str) -> Binding {
        Binding {
            purpose,
            account: account.to_owned(),
            app: None,
            release: None,
            deployment: None,
            name: None,
            environment: None,
        }
    }

    /// `wrap(P_i, MK)`: the account only.
    pub fn master_key(account: &str) -> Binding {
        base(Purpose::MasterKey, account)
    }

    /// `wrap(P_k, RK)` and `seal(MK, RK)`: account, app, release.
    pub fn release_key(account: &str, app: &str, release: &str) -> Binding {
        Binding {
            app: Some(app.to_owned()),
            release: Some(release.to_owned()),
            ..base(Purpose::ReleaseKey, account)
        }
    }

    /// `wrap(P_k, value)` and `seal(MK, value)`: account, app, environment, name.
    pub fn secret_var(account: &str, app: &str, environment: &str, name: &str) -> Binding {
        Binding {
            app: Some(app.to_owned()),
            environment: Some(environment.to_owned()),
            name: Some(name.to_owned()),
            ..base(Purpose::SecretVar, account)
        }
    }

    /// `seal(MK, DK)` and `wrap(P_t, DK)`: account, deployment.
    pub fn deploy_key(account: &str, deployment: &str) -> Binding {
        Binding {
            deployment: Some(deployment.to_owned()),
            ..base(Purpose::DeployKey, account)
        }
    }

    /// `seal(DK, keylist)`: account, app, release, deployment.
    pub fn key_list(account: &str, app: &str, release: &str, deployment: &str) -> Binding {
        Binding {
            app: Some(app.to_owned()),
            release: Some(release.to_owned()),
            deployment: Some(deployment.to_owned()),
            ..base(Purpose::KeyList, account)
        }
    }

    /// The `kid` of `seal(DK, keylist)`.
    pub fn key_list_kid(deployment: &str) -> String {
        format!("dk-{deployment}")
    }
}

/// Opens a JWE wrapped to this server through the keystore, expecting
/// exactly `expected` in its header.
pub fn unwrap_jwe(
    keystore: &dyn KeyStore,
    what: &'static str,
    jwe_text: &str,
    expected: &Binding,
) -> Result<Zeroizing<Vec<u8>>, JobError> {
    jwe::open_wrapped(jwe_text, keystore.public_key(), expected, |hash, ek| {
        keystore.unwrap(hash, ek)
    })
    .map_err(|e| match e {
        OpenError::Envelope(source) => JobError::Envelope { what, source },
        OpenError::Unwrap(KeyStoreError::Unwrap | KeyStoreError::UnsupportedHash { .. }) => {
            JobError::Unwrap { what }
        }
        OpenError::Unwrap(other) => JobError::KeyStore(other),
        _ => JobError::Unwrap { what },
    })
}

/// [`unwrap_jwe`] of a 32-byte key into [`KeyMaterial`].
pub fn unwrap_key(
    keystore: &dyn KeyStore,
    what: &'static str,
    jwe_text: &str,
    expected: &Binding,
) -> Result<KeyMaterial, JobError> {
    let plain = unwrap_jwe(keystore, what, jwe_text, expected)?;
    KeyMaterial::from_plaintext(what, &plain)
}

/// Opens `seal(key, …)` named `kid`, expecting `expected`.
pub fn open_sealed(
    what: &'static str,
    jwe_text: &str,
    key: &KeyMaterial,
    kid: &str,
    expected: &Binding,
) -> Result<Zeroizing<Vec<u8>>, JobError> {
    key.with_key(|k| jwe::open_sealed(jwe_text, k, kid, expected))
        .map_err(|source| JobError::Envelope { what, source })
}

/// Seals `plaintext` under `key` named `kid`.
pub fn seal(
    what: &'static str,
    key: &KeyMaterial,
    kid: &str,
    binding: &Binding,
    plaintext: &[u8],
) -> Result<String, JobError> {
    key.with_key(|k| jwe::seal(k, kid, binding, plaintext))
        .map_err(|source| JobError::Build { what, source })
}

/// A recipient's public key, checked against the fingerprint the
/// coordinator gave for it.
pub fn recipient_key(recipient: &KeyManagerKey) -> Result<RsaPublicKey, JobError> {
    let key = RsaPublicKey::from_public_key_pem(&recipient.public_key_pem).map_err(|_| {
        JobError::InvalidJob(format!(
            "the public key of server {} is not an RSA SubjectPublicKeyInfo",
            recipient.server_id
        ))
    })?;
    if jwe::thumbprint(&key) != recipient.fingerprint {
        return Err(JobError::InvalidJob(format!(
            "the fingerprint given for server {} is not its key's",
            recipient.server_id
        )));
    }
    Ok(key)
}

/// Wraps `plaintext` to `recipient` with the strongest OAEP hash it
/// registered.
pub fn wrap_to(
    what: &'static str,
    recipient: &KeyManagerKey,
    binding: &Binding,
    plaintext: &[u8],
) -> Result<String, JobError> {
    let key = recipient_key(recipient)?;
    let hash =
        OaepHash::best_common(&recipient.oaep_hashes).ok_or_else(|| JobError::NoCommonHash {
            server_id: recipient.server_id.clone(),
        })?;
    jwe::wrap(&key, hash, binding, plaintext).map_err(|source| JobError::Build { what, source })
}
