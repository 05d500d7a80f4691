//! `C_Decrypt` with `CKM_RSA_PKCS_OAEP`.

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

/// Decrypts `ciphertext` with `key`. Any failure — wrong length, bad
/// padding, a key that is not ours, the token refusing — is the single
/// [`KeyStoreError::Unwrap`].
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
        .map_err(|_| KeyStoreError::Unwrap)
}
