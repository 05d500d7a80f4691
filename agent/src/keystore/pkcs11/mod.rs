//! `kind = "pkcs11"`: the server key in a PKCS#11 token (an HSM; SoftHSM2 in
//! tests).
//!
//! [`OpenedPkcs11::open`] loads the module (telling it it may not create
//! threads), finds the token by label, opens the pool's sessions, logs in
//! once, finds or generates the key pair and detects which OAEP hashes the
//! key takes. [`OpenedPkcs11::start`] turns the sessions into the pool that
//! serves unwraps; PKCS#11 needs no thread of its own.

pub mod decrypt;
pub mod key_management;
mod mechanisms;
mod session_pool;
mod token;

use cryptoki::context::Pkcs11;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use custody_envelope::OaepHash;
use rsa::RsaPublicKey;
use zeroize::Zeroizing;

use super::config::Pkcs11Config;
use super::{KeyStore, KeyStoreError, pin};
pub use decrypt::oaep_mechanism;
use session_pool::SessionPool;

/// An opened token: logged in, key present, sessions open, no threads.
pub struct OpenedPkcs11 {
    context: Pkcs11,
    sessions: Vec<Session>,
    key: ObjectHandle,
    public: RsaPublicKey,
    hashes: Vec<OaepHash>,
}

impl OpenedPkcs11 {
    /// Opens the module and token, logs in, finds or creates the key.
    pub fn open(config: &Pkcs11Config) -> Result<Self, KeyStoreError> {
        let pin = pin::read_pin(&config.pin)?;
        let context = token::load_module(&config.module)?;
        let slot = token::find_token(&context, &config.token_label)?;
        let mut sessions = Vec::with_capacity(config.sessions);
        for _ in 0..config.sessions.max(1) {
            sessions.push(token::open_session(&context, slot)?);
        }
        let first = sessions.first().ok_or(KeyStoreError::Pkcs11 {
            op: super::Pkcs11Op::OpenSession,
            source: cryptoki::error::Error::InvalidValue,
        })?;
        token::login(first, &pin)?;
        drop(pin);
        let key = key_management::find_or_generate(first, &config.key_label, config.key_bits)?;
        let public = key_management::read_public_key(first, &config.key_label)?;
        let hashes = mechanisms::detect_oaep_hashes(first, key.private, &public)?;
        Ok(Self {
            context,
            sessions,
            key: key.private,
            public,
            hashes,
        })
    }

    /// The server key's public half.
    pub fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    /// OAEP hashes the key takes, strongest first.
    pub fn supported_hashes(&self) -> &[OaepHash] {
        &self.hashes
    }

    /// Builds the session pool. Starts no thread: callers' threads borrow a
    /// session for each unwrap.
    pub fn start(self) -> Result<Pkcs11KeyStore, KeyStoreError> {
        Ok(Pkcs11KeyStore {
            _context: self.context,
            pool: SessionPool::new(self.sessions),
            key: self.key,
            public: self.public,
            hashes: self.hashes,
        })
    }
}

/// A started PKCS#11 keystore.
pub struct Pkcs11KeyStore {
    _context: Pkcs11,
    pool: SessionPool,
    key: ObjectHandle,
    public: RsaPublicKey,
    hashes: Vec<OaepHash>,
}

impl KeyStore for Pkcs11KeyStore {
    fn kind(&self) -> &'static str {
        "pkcs11"
    }

    fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    fn supported_hashes(&self) -> &[OaepHash] {
        &self.hashes
    }

    fn unwrap(
        &self,
        hash: OaepHash,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        if !self.hashes.contains(&hash) {
            return Err(KeyStoreError::UnsupportedHash { hash });
        }
        self.pool.with(|session| {
            decrypt::oaep_decrypt(session, self.key, &self.public, hash, ciphertext)
        })
    }
}
