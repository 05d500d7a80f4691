//! `TPM2_RSA_Decrypt` with OAEP-SHA256, the key's pinned scheme.

use tss_esapi::Context;
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Data, HashScheme, PublicKeyRsa, RsaDecryptionScheme};
use zeroize::Zeroizing;

use crate::keystore::KeyStoreError;

/// Decrypts `ciphertext` (empty label). Every failure is
/// [`KeyStoreError::Unwrap`].
pub fn oaep_sha256_decrypt(
    context: &mut Context,
    session: AuthSession,
    key: KeyHandle,
    modulus_len: usize,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
    if ciphertext.len() != modulus_len {
        return Err(KeyStoreError::Unwrap);
    }
    let ct = PublicKeyRsa::try_from(ciphertext.to_vec()).map_err(|_| KeyStoreError::Unwrap)?;
    let scheme = RsaDecryptionScheme::Oaep(HashScheme::new(HashingAlgorithm::Sha256));
    context
        .execute_with_session(Some(session), |ctx| {
            ctx.rsa_decrypt(key, ct, scheme, Data::default())
        })
        .map(|pt| Zeroizing::new(pt.value().to_vec()))
        .map_err(|_| KeyStoreError::Unwrap)
}
