//! `TPM2_RSA_Decrypt` with OAEP-SHA256, the key's pinned scheme.

use tss_esapi::Context;
use tss_esapi::constants::response_code::Tss2ResponseCode;
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Data, HashScheme, PublicKeyRsa, RsaDecryptionScheme};
use zeroize::Zeroizing;

use crate::keystore::KeyStoreError;

/// The TSS layer of the transport (`TSS2_TCTI_RC_LAYER`) and of the
/// resource managers (`TSS2_RESMGR_RC_LAYER`, `TSS2_RESMGR_TPM_RC_LAYER`).
const LOST_LAYERS: [u32; 3] = [10, 11, 12];
/// `TPM_RC_INITIALIZE`: the TPM was reset and not started since.
const TPM_RC_INITIALIZE: u32 = 0x100;

/// Whether `e` means the connection to the TPM, or the TPM's state, is
/// gone: the transport failed, a resource manager gave up, or the TPM was
/// reset. A ciphertext cannot cause these; TPM answers about the data
/// (`TPM_RC_VALUE`, `TPM_RC_SIZE` …) are in layer 0 and stay `Unwrap`.
fn tpm_lost(e: &tss_esapi::Error) -> Option<u32> {
    let tss_esapi::Error::Tss2Error(rc) = e else {
        return None;
    };
    let raw = match rc {
        Tss2ResponseCode::Success => return None,
        Tss2ResponseCode::FormatZero(z) => z.0,
        Tss2ResponseCode::FormatOne(o) => o.0,
    };
    (LOST_LAYERS.contains(&((raw >> 16) & 0xff)) || raw == TPM_RC_INITIALIZE).then_some(raw)
}

/// Decrypts `ciphertext` (empty label). Every failure is
/// [`KeyStoreError::Unwrap`], except a lost connection or a reset TPM
/// ([`KeyStoreError::Lost`]).
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
        .map_err(|e| match tpm_lost(&e) {
            Some(raw) => KeyStoreError::Lost(format!("TPM2_RSA_Decrypt: response code {raw:#x}")),
            None => KeyStoreError::Unwrap,
        })
}

#[cfg(test)]
mod tests {
    use super::tpm_lost;
    use tss_esapi::constants::response_code::{
        FormatOneResponseCode, FormatZeroResponseCode, Tss2ResponseCode,
    };

    fn zero(raw: u32) -> tss_esapi::Error {
        tss_esapi::Error::Tss2Error(Tss2ResponseCode::FormatZero(FormatZeroResponseCode(raw)))
    }

    fn one(raw: u32) -> tss_esapi::Error {
        tss_esapi::Error::Tss2Error(Tss2ResponseCode::FormatOne(FormatOneResponseCode(raw)))
    }

    #[test]
    fn transport_resource_manager_and_reset_answers_are_lost() {
        // TSS2_TCTI_RC_IO_ERROR, TSS2_TCTI_RC_NO_CONNECTION.
        assert_eq!(tpm_lost(&zero(0x000a_000a)), Some(0x000a_000a));
        assert_eq!(tpm_lost(&zero(0x000a_000f)), Some(0x000a_000f));
        // A resource manager's own failure.
        assert_eq!(tpm_lost(&zero(0x000b_0001)), Some(0x000b_0001));
        assert_eq!(tpm_lost(&zero(0x100)), Some(0x100), "TPM_RC_INITIALIZE");
    }

    #[test]
    fn answers_about_the_data_are_not_lost() {
        // TPM_RC_VALUE and TPM_RC_SIZE of parameter 1, as a bad padding or
        // a wrong-length ciphertext gives them.
        assert_eq!(tpm_lost(&one(0x1c4)), None);
        assert_eq!(tpm_lost(&one(0x1d5)), None);
        // TPM_RC_FAILURE, an ESAPI-layer error, and no TSS error at all.
        assert_eq!(tpm_lost(&zero(0x101)), None);
        assert_eq!(tpm_lost(&zero(0x0007_0001)), None);
        assert_eq!(
            tpm_lost(&tss_esapi::Error::WrapperError(
                tss_esapi::WrapperErrorKind::InvalidParam
            )),
            None
        );
    }
}
