//! The TPM object templates Custody uses.

use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::interface_types::algorithm::{
    HashingAlgorithm, PublicAlgorithm, RsaSchemeAlgorithm,
};
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::structures::{
    Public, PublicBuilder, PublicKeyRsa, PublicRsaParametersBuilder, RsaExponent, RsaScheme,
    SymmetricDefinitionObject,
};

/// The TCG storage root key template ("SRK", TCG TPM v2.0 Provisioning
/// Guidance): RSA-2048 restricted decryption key with AES-128-CFB, no
/// authValue, unique field zero-filled. Created from this template the
/// primary is the same key every time for the same owner seed, so nothing
/// needs to be persisted in NV memory and it survives TPM resets.
pub fn storage_primary() -> Result<Public, tss_esapi::Error> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Rsa)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_rsa_parameters(
            PublicRsaParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                RsaKeyBits::Rsa2048,
                RsaExponent::ZERO_EXPONENT,
            )
            .build()?,
        )
        .with_rsa_unique_identifier(PublicKeyRsa::new_empty_with_size(RsaKeyBits::Rsa2048))
        .build()
}

/// The server key: an RSA decryption key bound to this TPM and this parent
/// (fixedTPM, fixedParent), generated inside it (sensitiveDataOrigin), used
/// with its authValue (userWithAuth), decrypt only (no sign), not restricted
/// (it decrypts caller data, not TPM-formatted secrets), and its scheme
/// pinned to OAEP-SHA256 so the TPM itself refuses OAEP-SHA1, PKCS#1 v1.5
/// and raw RSA with this key.
pub fn server_key(bits: RsaKeyBits) -> Result<Public, tss_esapi::Error> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_decrypt(true)
        .with_sign_encrypt(false)
        .with_restricted(false)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Rsa)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_rsa_parameters(
            PublicRsaParametersBuilder::new()
                .with_scheme(RsaScheme::create(
                    RsaSchemeAlgorithm::Oaep,
                    Some(HashingAlgorithm::Sha256),
                )?)
                .with_key_bits(bits)
                .with_exponent(RsaExponent::ZERO_EXPONENT)
                .with_is_decryption_key(true)
                .with_is_signing_key(false)
                .with_restricted(false)
                .build()?,
        )
        .with_rsa_unique_identifier(PublicKeyRsa::default())
        .build()
}
