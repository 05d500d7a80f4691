//! `wrap`: RSA-OAEP to a public key (`RSA-OAEP-256`, or `RSA-OAEP` with
//! SHA-1 for hardware that has nothing better) + `A256GCM` content.

use super::{Binding, ProtectedHeader, content};
use crate::{EnvelopeError, OaepHash, SymmetricKey, rng::OsRng};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPublicKey};
use sha2::Digest;
use zeroize::Zeroizing;

/// RFC 7638 JWK thumbprint of an RSA public key: base64url(SHA-256 of
/// `{"e":…,"kty":"RSA","n":…}` with e and n as unpadded base64url of their
/// minimal big-endian bytes).
pub fn thumbprint(pk: &RsaPublicKey) -> String {
    let json = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        super::b64(&pk.e().to_bytes_be()),
        super::b64(&pk.n().to_bytes_be())
    );
    super::b64(&sha2::Sha256::digest(json.as_bytes()))
}

fn oaep(hash: OaepHash) -> Oaep {
    match hash {
        OaepHash::Sha256 => Oaep::new::<rsa::sha2::Sha256>(),
        OaepHash::Sha1 => Oaep::new::<sha1::Sha1>(),
    }
}

/// Encrypts `plaintext` (a key, usually) to `recipient`, bound to `binding`.
pub fn wrap(
    recipient: &RsaPublicKey,
    hash: OaepHash,
    binding: &Binding,
    plaintext: &[u8],
) -> Result<String, EnvelopeError> {
    binding.validate()?;
    if plaintext.len() > super::MAX_PLAINTEXT_LEN {
        return Err(EnvelopeError::JweTooLarge("plaintext"));
    }
    let header = ProtectedHeader {
        alg: hash.jwe_alg().to_owned(),
        enc: super::ENC.to_owned(),
        kid: thumbprint(recipient),
        crit: vec![super::CRIT.to_owned()],
        binding: binding.clone(),
    };
    let header_b64 = super::b64(&header.encode()?);
    let cek = SymmetricKey::generate()?;
    let mut iv = [0u8; content::IV_LEN];
    crate::rng::fill(&mut iv)?;
    let ek = recipient
        .encrypt(&mut OsRng, oaep(hash), cek.as_bytes())
        .map_err(|_| EnvelopeError::Wrap)?;
    let (ct, tag) = content::encrypt(&cek, &iv, header_b64.as_bytes(), plaintext)?;
    Ok(super::join(&header_b64, &ek, &iv, &ct, &tag))
}

/// Why opening a wrapped JWE failed: the envelope itself, or the
/// keystore's unwrap operation (its own error, passed through).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError<E> {
    /// The JWE was refused (malformed, wrong kid/alg/binding, or its content
    /// failed to decrypt).
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The caller's unwrap function (HSM/TPM) failed.
    #[error("key unwrap failed")]
    Unwrap(#[source] E),
}

/// Opens a wrapped JWE. Checks size limits, `alg`, `enc`, `crit`, that
/// `kid` is `recipient`'s thumbprint, the binding and the encrypted key's
/// length — all before calling `unwrap(hash, encrypted_key)`, which performs
/// the RSA-OAEP decryption in the keystore and returns the content key.
pub fn open_wrapped<E>(
    jwe: &str,
    recipient: &RsaPublicKey,
    expected: &Binding,
    unwrap: impl FnOnce(OaepHash, &[u8]) -> Result<Zeroizing<Vec<u8>>, E>,
) -> Result<Zeroizing<Vec<u8>>, OpenError<E>> {
    let parts = super::split(jwe)?;
    let h = &parts.header;
    let hash = OaepHash::from_jwe_alg(&h.alg).ok_or(EnvelopeError::JweAlgorithm)?;
    if h.kid != thumbprint(recipient) {
        return Err(EnvelopeError::JweKid.into());
    }
    super::check_common(h, expected)?;
    if parts.encrypted_key.len() != recipient.size() {
        return Err(EnvelopeError::JweMalformed("encrypted key length").into());
    }
    let cek = unwrap(hash, &parts.encrypted_key).map_err(OpenError::Unwrap)?;
    let cek = SymmetricKey::from_slice(&cek).map_err(|_| EnvelopeError::JweDecrypt)?;
    Ok(content::decrypt(
        &cek,
        &parts.iv,
        parts.header_b64.as_bytes(),
        &parts.ciphertext,
        &parts.tag,
    )?)
}
