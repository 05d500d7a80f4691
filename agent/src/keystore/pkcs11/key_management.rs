//! Finding the server key pair by label, or generating it with a template
//! that keeps the private half inside the token.

use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use rsa::{BigUint, RsaPublicKey};

use crate::keystore::{KeyStoreError, Pkcs11Op};

/// The key pair's handles.
#[derive(Debug, Clone, Copy)]
pub struct KeyPair {
    /// The private key (never leaves the token).
    pub private: ObjectHandle,
}

/// Attributes of the private key: on the token, private, sensitive, never
/// extractable, not modifiable, decrypt only (no sign, no unwrap, no
/// derive), and only RSA-OAEP allowed so raw RSA (`CKM_RSA_X_509`) and
/// PKCS#1 v1.5 (`CKM_RSA_PKCS`) are refused.
pub fn private_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Decrypt(true),
        Attribute::Sign(false),
        Attribute::SignRecover(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Modifiable(false),
        Attribute::AllowedMechanisms(vec![MechanismType::RSA_PKCS_OAEP]),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(label.as_bytes().to_vec()),
    ]
}

/// Attributes of the public key: on the token, public, encrypt only.
pub fn public_template(label: &str, bits: u32) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Encrypt(true),
        Attribute::Verify(false),
        Attribute::VerifyRecover(false),
        Attribute::Wrap(false),
        Attribute::Modifiable(false),
        Attribute::ModulusBits(u64::from(bits).into()),
        Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(label.as_bytes().to_vec()),
    ]
}

fn find(
    session: &Session,
    class: ObjectClass,
    label: &str,
) -> Result<Vec<ObjectHandle>, KeyStoreError> {
    session
        .find_objects(&[
            Attribute::Class(class),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .map_err(|source| KeyStoreError::Pkcs11 {
            op: Pkcs11Op::FindKey,
            source,
        })
}

/// Finds the private key labelled `label`, generating the pair (RSA of
/// `bits`) when there is none. More than one is an error: the agent will
/// not guess which one is registered with the coordinator.
pub fn find_or_generate(
    session: &Session,
    label: &str,
    bits: u32,
) -> Result<KeyPair, KeyStoreError> {
    let found = find(session, ObjectClass::PRIVATE_KEY, label)?;
    match found.as_slice() {
        [one] => Ok(KeyPair { private: *one }),
        [] => {
            let (_public, private) = session
                .generate_key_pair(
                    &Mechanism::RsaPkcsKeyPairGen,
                    &public_template(label, bits),
                    &private_template(label),
                )
                .map_err(|source| KeyStoreError::Pkcs11 {
                    op: Pkcs11Op::GenerateKey,
                    source,
                })?;
            tracing::info!(label, bits, "generated the server key in the PKCS#11 token");
            Ok(KeyPair { private })
        }
        many => Err(KeyStoreError::DuplicateKey {
            label: label.to_owned(),
            count: many.len(),
        }),
    }
}

/// Reads the public key labelled `label` (modulus and exponent).
pub fn read_public_key(session: &Session, label: &str) -> Result<RsaPublicKey, KeyStoreError> {
    let found = find(session, ObjectClass::PUBLIC_KEY, label)?;
    let handle = match found.as_slice() {
        [one] => *one,
        [] => {
            return Err(KeyStoreError::Pkcs11 {
                op: Pkcs11Op::ReadPublicKey,
                source: cryptoki::error::Error::InvalidValue,
            });
        }
        many => {
            return Err(KeyStoreError::DuplicateKey {
                label: label.to_owned(),
                count: many.len(),
            });
        }
    };
    public_key_of(session, handle)
}

/// The RSA public key held in (or derivable from) object `handle`.
pub fn public_key_of(
    session: &Session,
    handle: ObjectHandle,
) -> Result<RsaPublicKey, KeyStoreError> {
    let attrs = session
        .get_attributes(
            handle,
            &[AttributeType::Modulus, AttributeType::PublicExponent],
        )
        .map_err(|source| KeyStoreError::Pkcs11 {
            op: Pkcs11Op::ReadPublicKey,
            source,
        })?;
    let (mut n, mut e) = (None, None);
    for a in attrs {
        match a {
            Attribute::Modulus(m) => n = Some(m),
            Attribute::PublicExponent(x) => e = Some(x),
            _ => {}
        }
    }
    let (Some(n), Some(e)) = (n, e) else {
        return Err(KeyStoreError::InvalidPublicKey);
    };
    RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
        .map_err(|_| KeyStoreError::InvalidPublicKey)
}
