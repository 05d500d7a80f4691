//! Which OAEP hashes the token really takes, found by trying: SoftHSM2 2.6
//! lists `CKM_RSA_PKCS_OAEP` but only does it with SHA-1 (SHA-256 gives
//! `CKR_ARGUMENTS_BAD`), so the mechanism list alone would mislead.

use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use custody_envelope::OaepHash;
use rsa::{Oaep, RsaPublicKey};

use super::decrypt::oaep_decrypt;
use crate::keystore::{KeyStoreError, Pkcs11Op};
use crate::rng::{self, OsRng};

/// Encrypts a random value to `public` with each hash (SHA-256 first) and
/// asks the token to decrypt it. Returns the hashes that round-tripped.
pub fn detect_oaep_hashes(
    session: &Session,
    key: ObjectHandle,
    public: &RsaPublicKey,
) -> Result<Vec<OaepHash>, KeyStoreError> {
    let mut supported = Vec::new();
    for hash in OaepHash::PREFERENCE {
        let mut probe = [0u8; 32];
        rng::fill(&mut probe);
        let padding = match hash {
            OaepHash::Sha256 => Oaep::new::<rsa::sha2::Sha256>(),
            OaepHash::Sha1 => Oaep::new::<sha1::Sha1>(),
        };
        let ct =
            public
                .encrypt(&mut OsRng, padding, &probe)
                .map_err(|_| KeyStoreError::Pkcs11 {
                    op: Pkcs11Op::DetectHashes,
                    source: cryptoki::error::Error::InvalidValue,
                })?;
        let ok =
            oaep_decrypt(session, key, public, hash, &ct).is_ok_and(|pt| pt.as_slice() == probe);
        if ok {
            supported.push(hash);
        }
    }
    if supported.is_empty() {
        return Err(KeyStoreError::NoOaepHash);
    }
    Ok(supported)
}
