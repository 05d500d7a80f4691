//! Symmetric keys (AES-256): the account master key, release keys and
//! deployment keys.

use crate::EnvelopeError;
use std::fmt;
use zeroize::Zeroizing;

/// Length of every Custody symmetric key, in bytes.
pub const KEY_LEN: usize = 32;

/// A 32-byte AES-256 key. The bytes are zeroized on drop and never printed.
///
/// It is deliberately not `Clone`: a copy is an explicit
/// `SymmetricKey::from_bytes(*k.as_bytes())`.
pub struct SymmetricKey(Zeroizing<[u8; KEY_LEN]>);

impl SymmetricKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, EnvelopeError> {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        crate::rng::fill(k.as_mut())?;
        Ok(SymmetricKey(k))
    }

    /// Wraps existing key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SymmetricKey(Zeroizing::new(bytes))
    }

    /// Wraps existing key bytes, checking the length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() != KEY_LEN {
            return Err(EnvelopeError::KeyLength {
                expected: KEY_LEN,
                got: bytes.len(),
            });
        }
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        k.copy_from_slice(bytes);
        Ok(SymmetricKey(k))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SymmetricKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_bytes() {
        let k = SymmetricKey::from_bytes([0xab; 32]);
        let s = format!("{k:?}");
        assert!(!s.contains("ab") && !s.contains("171"), "{s}");
    }

    #[test]
    fn from_slice_checks_length() {
        assert!(matches!(
            SymmetricKey::from_slice(&[0; 31]),
            Err(EnvelopeError::KeyLength {
                expected: 32,
                got: 31
            })
        ));
        assert_eq!(
            SymmetricKey::from_slice(&[7; 32]).unwrap().as_bytes(),
            &[7; 32]
        );
    }

    #[test]
    fn generated_keys_differ() {
        let a = SymmetricKey::generate().unwrap();
        let b = SymmetricKey::generate().unwrap();
        assert_ne!(a.as_bytes(), b.as_bytes());
    }
}
