//! The `A256GCM` content layer every JWE here uses (RFC 7518 §5.3):
//! AES-256-GCM, 96-bit IV, 128-bit tag, AAD = ASCII(BASE64URL(protected header)).

use crate::{EnvelopeError, SymmetricKey};
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit, inout::InOutBuf};
use zeroize::Zeroizing;

/// IV length.
pub const IV_LEN: usize = 12;
/// Tag length.
pub const TAG_LEN: usize = 16;

fn cipher(key: &SymmetricKey) -> Result<Aes256Gcm, EnvelopeError> {
    Aes256Gcm::new_from_slice(key.as_bytes()).map_err(|_| EnvelopeError::KeyLength {
        expected: crate::KEY_LEN,
        got: key.as_bytes().len(),
    })
}

/// Encrypts `plaintext`; returns ciphertext and tag.
pub fn encrypt(
    key: &SymmetricKey,
    iv: &[u8; IV_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<(Vec<u8>, [u8; TAG_LEN]), EnvelopeError> {
    let mut buf = plaintext.to_vec();
    let tag = cipher(key)?
        .encrypt_inout_detached(&(*iv).into(), aad, InOutBuf::from(&mut buf[..]))
        .map_err(|_| EnvelopeError::JweTooLarge("plaintext"))?;
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&tag);
    Ok((buf, t))
}

/// Decrypts and verifies; one indistinguishable error for every failure.
pub fn decrypt(
    key: &SymmetricKey,
    iv: &[u8; IV_LEN],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8; TAG_LEN],
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let ok = cipher(key)?
        .decrypt_inout_detached(
            &(*iv).into(),
            aad,
            InOutBuf::from(&mut buf[..]),
            &(*tag).into(),
        )
        .is_ok();
    if ok {
        Ok(buf)
    } else {
        Err(EnvelopeError::JweDecrypt)
    }
}
