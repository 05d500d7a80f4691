//! `C_Decrypt` with `CKM_RSA_PKCS_OAEP`.

use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use custody_envelope::OaepHash;
use rsa::RsaPublicKey;
use rsa::traits::PublicKeyParts;
use zeroize::Zeroizing;

use crate::keystore::KeyStoreError;

/// The OAEP mechanism for `hash` (hash and MGF1 alike, empty label).
pub fn oaep_mechanism(hash: OaepHash) -> Mechanism<'static> {
    let (h, mgf) = match hash {
        OaepHash::Sha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
        OaepHash::Sha1 => (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1),
    };
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(h, mgf, PkcsOaepSource::empty()))
}

/// Answers that mean the session, the login or the token itself is gone:
/// checked before the mechanism looks at the data, so no ciphertext can
/// cause them. (`CKR_DEVICE_ERROR` and `CKR_FUNCTION_FAILED` are not here:
/// some tokens use them for bad padding.)
fn token_lost(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::UserNotLoggedIn
            | RvError::KeyHandleInvalid
            | RvError::ObjectHandleInvalid
            | RvError::CryptokiNotInitialized
    )
}

/// Decrypts `ciphertext` with `key`. Any failure — wrong length, bad
/// padding, a key that is not ours, the token refusing — is the single
/// [`KeyStoreError::Unwrap`], except a lost session, login or token
/// ([`KeyStoreError::Lost`]).
pub fn oaep_decrypt(
    session: &Session,
    key: ObjectHandle,
    public: &RsaPublicKey,
    hash: OaepHash,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
    if ciphertext.len() != public.size() {
        return Err(KeyStoreError::Unwrap);
    }
    session
        .decrypt(&oaep_mechanism(hash), key, ciphertext)
        .map(Zeroizing::new)
        .map_err(|e| match e {
            Error::Pkcs11(rv, function) if token_lost(rv) => {
                KeyStoreError::Lost(format!("C_{function:?}: {rv:?}"))
            }
            _ => KeyStoreError::Unwrap,
        })
}
