//! What a target checks before it decrypts: the deploy key opens in its own
//! keystore; the key list opens under it, bound to this account, app,
//! release and deployment; the release descriptor carries a valid signature
//! by a pinned publisher key and names the job's account, app and release;
//! and the package file's SHA-256 equals both the key list's digest and the
//! descriptor's.

use custody_envelope::descriptor::{PublisherKey, ReleaseDescriptor, SignedDescriptor};
use custody_envelope::keylist::KeyList;
use custody_envelope::{EnvelopeError, jwe};

use super::error::DeployError;
use crate::keystore::{KeyStore, KeyStoreError};
use crate::roles::keymanager::keys::{KeyMaterial, binding};

/// The ids a deploy job names.
#[derive(Debug, Clone)]
pub struct DeployIds<'a> {
    /// Account.
    pub account: &'a str,
    /// App.
    pub app: &'a str,
    /// Release.
    pub release: &'a str,
    /// Deployment.
    pub deployment: &'a str,
}

/// Unwraps `DK` (bound to this account and deployment) in the keystore.
pub fn unwrap_deploy_key(
    keystore: &dyn KeyStore,
    ids: &DeployIds<'_>,
    wrapped: &str,
) -> Result<KeyMaterial, DeployError> {
    let b = binding::deploy_key(ids.account, ids.deployment);
    let plain = jwe::open_wrapped(wrapped, keystore.public_key(), &b, |h, ek| {
        keystore.unwrap(h, ek)
    })
    .map_err(|e| match e {
        jwe::OpenError::Envelope(source) => DeployError::Envelope {
            what: "wrapped deploy key",
            source,
        },
        jwe::OpenError::Unwrap(lost @ KeyStoreError::Lost(_)) => DeployError::KeyStoreLost(lost),
        _ => DeployError::Unwrap,
    })?;
    KeyMaterial::from_plaintext("wrapped deploy key", &plain).map_err(|_| DeployError::Envelope {
        what: "wrapped deploy key",
        source: EnvelopeError::KeyLength {
            expected: custody_envelope::KEY_LEN,
            got: plain.len(),
        },
    })
}

/// Opens `seal(DK, keylist)` and checks it is for the job's release.
pub fn open_key_list(
    dk: &KeyMaterial,
    ids: &DeployIds<'_>,
    sealed: &str,
) -> Result<KeyList, DeployError> {
    let b = binding::key_list(ids.account, ids.app, ids.release, ids.deployment);
    let kid = binding::key_list_kid(ids.deployment);
    let json = dk
        .with_key(|k| jwe::open_sealed(sealed, k, &kid, &b))
        .map_err(|source| DeployError::Envelope {
            what: "key list",
            source,
        })?;
    let list = KeyList::from_json(&json).map_err(|source| DeployError::Envelope {
        what: "key list",
        source,
    })?;
    if list.release != ids.release {
        return Err(DeployError::KeyListRelease {
            expected: ids.release.to_owned(),
            got: list.release.clone(),
        });
    }
    Ok(list)
}

fn same(
    what: &'static str,
    field: &'static str,
    expected: &str,
    got: &str,
) -> Result<(), DeployError> {
    if expected == got {
        Ok(())
    } else {
        Err(DeployError::Mismatch {
            what,
            field,
            expected: expected.to_owned(),
            got: got.to_owned(),
        })
    }
}

/// Parses the signed descriptor from the job, verifies it against the
/// pinned publisher keys and checks its ids against the job's.
pub fn verify_descriptor(
    descriptor: &serde_json::Value,
    pinned: &[PublisherKey],
    ids: &DeployIds<'_>,
) -> Result<ReleaseDescriptor, DeployError> {
    let bytes =
        custody_envelope::canonical::encode_value(descriptor).map_err(DeployError::Descriptor)?;
    let signed = SignedDescriptor::from_json(&bytes).map_err(DeployError::Descriptor)?;
    let d = signed.verify(pinned).map_err(|e| match e {
        EnvelopeError::UnknownPublisher => DeployError::UnknownPublisher,
        EnvelopeError::Signature => DeployError::Signature,
        other => DeployError::Descriptor(other),
    })?;
    same("descriptor", "account", ids.account, &d.account)?;
    same("descriptor", "app", ids.app, &d.app)?;
    same("descriptor", "release", ids.release, &d.release)?;
    Ok(d.clone())
}

/// The package file's digest against the key list's and the descriptor's.
pub fn check_digests(
    file: &[u8; 32],
    list: &KeyList,
    descriptor: &ReleaseDescriptor,
) -> Result<(), DeployError> {
    // Digests are public values: a plain comparison is fine.
    if file != &list.package_sha256 {
        return Err(DeployError::Digest {
            against: "key list",
        });
    }
    let d = descriptor
        .package_digest()
        .map_err(DeployError::Descriptor)?;
    if file != &d {
        return Err(DeployError::Digest {
            against: "signed descriptor",
        });
    }
    Ok(())
}

/// Checks the decrypted package's header names the job's release.
pub fn check_header(
    header: &custody_envelope::package::Header,
    ids: &DeployIds<'_>,
) -> Result<(), DeployError> {
    same("package header", "account", ids.account, &header.account)?;
    same("package header", "app", ids.app, &header.app)?;
    same("package header", "release", ids.release, &header.release)
}
