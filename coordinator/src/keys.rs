//! Public-key checks for enrolled servers: parse the PEM SPKI, insist on
//! RSA of at least 2048 bits, and compute the RFC 7638 JWK thumbprint that
//! the API lists as the key's fingerprint. Public-key work only.

use crate::error::{Error, Result};
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;

/// Smallest accepted modulus, bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Longest accepted PEM text.
const MAX_PEM_LEN: usize = 8192;

/// Parses and checks a server key; returns its thumbprint.
pub fn fingerprint_of_pem(pem: &str) -> Result<String> {
    if pem.len() > MAX_PEM_LEN {
        return Err(Error::invalid("public_key_pem is too long"));
    }
    let key = rsa::RsaPublicKey::from_public_key_pem(pem.trim())
        .map_err(|_| Error::invalid("public_key_pem is not an RSA SubjectPublicKeyInfo in PEM"))?;
    if key.size() * 8 < MIN_RSA_BITS {
        return Err(Error::invalid(format!(
            "RSA keys must have at least {MIN_RSA_BITS} bits"
        )));
    }
    Ok(thumbprint(&key))
}

/// RFC 7638 thumbprint (custody-envelope's, so the API lists what `kid` holds).
pub fn thumbprint(key: &rsa::RsaPublicKey) -> String {
    custody_envelope::jwe::thumbprint(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn rfc7638_example_thumbprint() {
        // RFC 7638 §3.1 example key.
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw").unwrap();
        let key = rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(&n),
            rsa::BigUint::from(65537u32),
        )
        .unwrap();
        assert_eq!(
            thumbprint(&key),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
