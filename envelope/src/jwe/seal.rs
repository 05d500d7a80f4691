//! `seal`: `dir` + `A256GCM` under a symmetric key with a known id.

use super::{Binding, ProtectedHeader, content};
use crate::{EnvelopeError, SymmetricKey, ident};
use zeroize::Zeroizing;

/// Encrypts `plaintext` under `key` (whose id is `key_id`), bound to `binding`.
pub fn seal(
    key: &SymmetricKey,
    key_id: &str,
    binding: &Binding,
    plaintext: &[u8],
) -> Result<String, EnvelopeError> {
    ident::check("kid", key_id)?;
    binding.validate()?;
    if plaintext.len() > super::MAX_PLAINTEXT_LEN {
        return Err(EnvelopeError::JweTooLarge("plaintext"));
    }
    let header = ProtectedHeader {
        alg: super::ALG_DIR.to_owned(),
        enc: super::ENC.to_owned(),
        kid: key_id.to_owned(),
        crit: vec![super::CRIT.to_owned()],
        binding: binding.clone(),
    };
    let header_b64 = super::b64(&header.encode()?);
    let mut iv = [0u8; content::IV_LEN];
    crate::rng::fill(&mut iv)?;
    let (ct, tag) = content::encrypt(key, &iv, header_b64.as_bytes(), plaintext)?;
    Ok(super::join(&header_b64, &[], &iv, &ct, &tag))
}

/// Opens a sealed JWE: size limits, `alg` `dir`, `enc`, `crit`, `kid` ==
/// `key_id`, binding == `expected`, empty encrypted key; then decrypts.
pub fn open_sealed(
    jwe: &str,
    key: &SymmetricKey,
    key_id: &str,
    expected: &Binding,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let parts = super::split(jwe)?;
    let h = &parts.header;
    if h.alg != super::ALG_DIR {
        return Err(EnvelopeError::JweAlgorithm);
    }
    if h.kid != key_id {
        return Err(EnvelopeError::JweKid);
    }
    super::check_common(h, expected)?;
    if !parts.encrypted_key.is_empty() {
        return Err(EnvelopeError::JweMalformed("dir JWE with an encrypted key"));
    }
    content::decrypt(
        key,
        &parts.iv,
        parts.header_b64.as_bytes(),
        &parts.ciphertext,
        &parts.tag,
    )
}
