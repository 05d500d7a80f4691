//! Connecting to the TPM and the commands run at start: flush stale
//! transient objects, re-create the storage primary, create or load the
//! server key, open the authorization session.

use std::str::FromStr;

use rsa::{BigUint, RsaPublicKey};
use tss_esapi::Context;
use tss_esapi::attributes::SessionAttributesBuilder;
use tss_esapi::constants::CapabilityType;
use tss_esapi::constants::SessionType;
use tss_esapi::constants::tss::{TPM2_TRANSIENT_FIRST, TPM2_TRANSIENT_LAST};
use tss_esapi::handles::{KeyHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Auth, CapabilityData, Data, HashScheme, Public, PublicKeyRsa, RsaDecryptionScheme,
    SymmetricDefinition,
};
use tss_esapi::tcti_ldr::TctiNameConf;

use super::blobs::{AUTH_LEN, KeyBlobs};
use super::templates;
use crate::keystore::{KeyStoreError, TpmOp};
use crate::rng;

fn tpm_err(op: TpmOp) -> impl Fn(tss_esapi::Error) -> KeyStoreError {
    move |source| KeyStoreError::Tpm { op, source }
}

/// Opens the TCTI and an ESAPI context.
pub fn connect(tcti: &str) -> Result<Context, KeyStoreError> {
    let unreachable = |source| KeyStoreError::TpmUnreachable {
        tcti: tcti.to_owned(),
        source,
    };
    let conf = TctiNameConf::from_str(tcti).map_err(unreachable)?;
    Context::new(conf).map_err(unreachable)
}

/// Flushes every transient object in the TPM: a process that crashed
/// leaves its objects loaded, and the TPM has only a few slots. (Through
/// the kernel's resource manager, `/dev/tpmrm0`, a process sees only its
/// own objects, so this never touches another program's keys.)
pub fn flush_stale(context: &mut Context) -> Result<usize, KeyStoreError> {
    let (data, _more) = context
        .get_capability(
            CapabilityType::Handles,
            TPM2_TRANSIENT_FIRST,
            TPM2_TRANSIENT_LAST - TPM2_TRANSIENT_FIRST,
        )
        .map_err(tpm_err(TpmOp::FlushStale))?;
    let CapabilityData::Handles(list) = data else {
        return Ok(0);
    };
    let mut flushed = 0;
    for handle in list.into_inner() {
        if let TpmHandle::Transient(_) = handle {
            let object = context
                .tr_from_tpm_public(handle)
                .map_err(tpm_err(TpmOp::FlushStale))?;
            context
                .flush_context(object)
                .map_err(tpm_err(TpmOp::FlushStale))?;
            flushed += 1;
        }
    }
    if flushed > 0 {
        tracing::info!(flushed, "flushed stale transient objects from the TPM");
    }
    Ok(flushed)
}

/// Starts the HMAC session every command with the server key runs in. Its
/// responses are encrypted (so the unwrapped key does not cross the TPM bus
/// in clear) and it is kept open for the worker's lifetime.
pub fn start_session(context: &mut Context) -> Result<AuthSession, KeyStoreError> {
    let session = context
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Hmac,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .map_err(tpm_err(TpmOp::StartSession))?
        .ok_or(KeyStoreError::Tpm {
            op: TpmOp::StartSession,
            source: tss_esapi::Error::WrapperError(tss_esapi::WrapperErrorKind::WrongValueFromTpm),
        })?;
    let (attributes, mask) = SessionAttributesBuilder::new()
        .with_continue_session(true)
        .with_decrypt(true)
        .with_encrypt(true)
        .build();
    context
        .tr_sess_set_attributes(session, attributes, mask)
        .map_err(tpm_err(TpmOp::StartSession))?;
    Ok(session)
}

/// Re-creates the storage primary from [`templates::storage_primary`].
pub fn create_primary(
    context: &mut Context,
    session: AuthSession,
) -> Result<KeyHandle, KeyStoreError> {
    let template = templates::storage_primary().map_err(tpm_err(TpmOp::CreatePrimary))?;
    context
        .execute_with_session(Some(session), |ctx| {
            ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
        })
        .map(|r| r.key_handle)
        .map_err(tpm_err(TpmOp::CreatePrimary))
}

/// Creates the server key under `primary` with a fresh random authValue:
/// `bits` when given, else 3072 when the TPM has it, else 2048.
pub fn create_key(
    context: &mut Context,
    session: AuthSession,
    primary: KeyHandle,
    bits: Option<u32>,
) -> Result<KeyBlobs, KeyStoreError> {
    let mut auth_bytes = zeroize::Zeroizing::new(vec![0u8; AUTH_LEN]);
    rng::fill(&mut auth_bytes);
    let auth = Auth::try_from(auth_bytes.to_vec()).map_err(tpm_err(TpmOp::CreateKey))?;
    let sizes: &[RsaKeyBits] = match bits {
        Some(2048) => &[RsaKeyBits::Rsa2048],
        Some(_) => &[RsaKeyBits::Rsa3072],
        None => &[RsaKeyBits::Rsa3072, RsaKeyBits::Rsa2048],
    };
    let mut last = None;
    for &size in sizes {
        let template = templates::server_key(size).map_err(tpm_err(TpmOp::CreateKey))?;
        let created = context.execute_with_session(Some(session), |ctx| {
            ctx.create(primary, template, Some(auth.clone()), None, None, None)
        });
        match created {
            Ok(r) => {
                tracing::info!(
                    bits = u32::from(size as u16),
                    "created the server key in the TPM"
                );
                return Ok(KeyBlobs {
                    public: r.out_public,
                    private: r.out_private,
                    auth,
                });
            }
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(source) => Err(KeyStoreError::Tpm {
            op: TpmOp::CreateKey,
            source,
        }),
        None => Err(KeyStoreError::TpmNoRsa),
    }
}

/// Loads the server key's blobs under `primary` and sets its authValue.
pub fn load_key(
    context: &mut Context,
    session: AuthSession,
    primary: KeyHandle,
    blobs: &KeyBlobs,
) -> Result<KeyHandle, KeyStoreError> {
    let key = context
        .execute_with_session(Some(session), |ctx| {
            ctx.load(primary, blobs.private.clone(), blobs.public.clone())
        })
        .map_err(tpm_err(TpmOp::LoadKey))?;
    context
        .tr_set_auth(key.into(), blobs.auth.clone())
        .map_err(tpm_err(TpmOp::LoadKey))?;
    Ok(key)
}

/// Encrypts a random probe to `public` and has the TPM decrypt it with
/// `key`: a wrong authValue or a key that does not match its public half
/// shows up here, at start, rather than as unwrap failures later.
pub fn self_check(
    context: &mut Context,
    session: AuthSession,
    key: KeyHandle,
    public: &RsaPublicKey,
) -> Result<(), KeyStoreError> {
    let mut probe = [0u8; 32];
    rng::fill(&mut probe);
    let failed = |reason| KeyStoreError::CorruptState {
        path: std::path::PathBuf::from("<tpm key>"),
        reason,
    };
    let ct = public
        .encrypt(
            &mut rng::OsRng,
            rsa::Oaep::new::<rsa::sha2::Sha256>(),
            &probe,
        )
        .map_err(|_| failed("cannot encrypt the probe"))?;
    let ct = PublicKeyRsa::try_from(ct).map_err(tpm_err(TpmOp::SelfCheck))?;
    let scheme = RsaDecryptionScheme::Oaep(HashScheme::new(HashingAlgorithm::Sha256));
    let pt = context
        .execute_with_session(Some(session), |ctx| {
            ctx.rsa_decrypt(key, ct, scheme, Data::default())
        })
        .map_err(tpm_err(TpmOp::SelfCheck))?;
    if pt.value() != probe {
        return Err(failed("the key decrypts the probe wrongly"));
    }
    Ok(())
}

/// The RSA public key in a TPM public area.
pub fn rsa_public(public: &Public) -> Result<RsaPublicKey, KeyStoreError> {
    let Public::Rsa {
        parameters, unique, ..
    } = public
    else {
        return Err(KeyStoreError::InvalidPublicKey);
    };
    let e = match parameters.exponent().value() {
        0 => 65537,
        e => e,
    };
    RsaPublicKey::new(BigUint::from_bytes_be(unique.value()), BigUint::from(e))
        .map_err(|_| KeyStoreError::InvalidPublicKey)
}
