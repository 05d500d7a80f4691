//! The release descriptor: what a publisher vouches for, signed with
//! Ed25519. Targets pin publisher keys and verify before installing.
//!
//! Descriptor (canonical JSON):
//! `{"account":…,"app":…,"header":{<package header>},"manifest_sha256":"<hex>","package_sha256":"<hex>","release":…,"v":1}`
//!
//! Signed form (canonical JSON):
//! `{"descriptor":{…},"key_id":"<base64url SHA-256 of the public key>","signature":"<base64url 64 bytes>"}`
//!
//! The signature is pure Ed25519 over
//! `"custody.release-descriptor.v1\0"` ‖ canonical(descriptor).

use crate::keylist::{hex_lower, parse_hex32};
use crate::package::Header;
use crate::{EnvelopeError, canonical, ident};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// Descriptor format version.
pub const DESCRIPTOR_VERSION: u32 = 1;
/// Domain-separation prefix of the signed message.
pub const SIGNING_CONTEXT: &[u8] = b"custody.release-descriptor.v1\0";
/// Longest signed descriptor accepted, in bytes.
pub const MAX_SIGNED_LEN: usize = 16 * 1024;

/// What a release is: its ids, its package header and the digests of the
/// package file and of its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseDescriptor {
    /// Account id.
    pub account: String,
    /// Application name.
    pub app: String,
    /// Release id.
    pub release: String,
    /// The package header (must carry the same ids).
    pub header: Header,
    /// SHA-256 of the whole package file, 64 lower-case hex digits.
    pub package_sha256: String,
    /// SHA-256 of the release manifest, 64 lower-case hex digits.
    pub manifest_sha256: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireDescriptor {
    v: u32,
    account: String,
    app: String,
    release: String,
    header: Header,
    package_sha256: String,
    manifest_sha256: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSigned {
    descriptor: WireDescriptor,
    key_id: String,
    signature: String,
}

impl ReleaseDescriptor {
    /// Builds a descriptor from a package header and digests.
    pub fn new(
        header: Header,
        package_sha256: &[u8; 32],
        manifest_sha256: &[u8; 32],
    ) -> Result<Self, EnvelopeError> {
        let d = ReleaseDescriptor {
            account: header.account.clone(),
            app: header.app.clone(),
            release: header.release.clone(),
            header,
            package_sha256: hex_lower(package_sha256),
            manifest_sha256: hex_lower(manifest_sha256),
        };
        d.validate()?;
        Ok(d)
    }

    /// Checks ids, that the header carries the same ids, and the digests.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        ident::check("account", &self.account)?;
        ident::check("app", &self.app)?;
        ident::check("release", &self.release)?;
        self.header.validate()?;
        if self.header.account != self.account
            || self.header.app != self.app
            || self.header.release != self.release
        {
            return Err(EnvelopeError::Descriptor(
                "header ids differ from the descriptor's",
            ));
        }
        if parse_hex32(&self.package_sha256).is_none()
            || parse_hex32(&self.manifest_sha256).is_none()
        {
            return Err(EnvelopeError::Descriptor("digest is not 64 lower-case hex"));
        }
        Ok(())
    }

    /// The package digest as bytes.
    pub fn package_digest(&self) -> Result<[u8; 32], EnvelopeError> {
        parse_hex32(&self.package_sha256)
            .ok_or(EnvelopeError::Descriptor("digest is not 64 lower-case hex"))
    }

    fn wire(&self) -> WireDescriptor {
        WireDescriptor {
            v: DESCRIPTOR_VERSION,
            account: self.account.clone(),
            app: self.app.clone(),
            release: self.release.clone(),
            header: self.header.clone(),
            package_sha256: self.package_sha256.clone(),
            manifest_sha256: self.manifest_sha256.clone(),
        }
    }

    fn from_wire(w: WireDescriptor) -> Result<Self, EnvelopeError> {
        if w.v != DESCRIPTOR_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(u64::from(w.v)));
        }
        let d = ReleaseDescriptor {
            account: w.account,
            app: w.app,
            release: w.release,
            header: w.header,
            package_sha256: w.package_sha256,
            manifest_sha256: w.manifest_sha256,
        };
        d.validate()?;
        Ok(d)
    }

    /// Canonical JSON of the descriptor (what is signed, after the context).
    pub fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        self.validate()?;
        canonical::to_vec(&self.wire())
    }

    /// Signs the descriptor with a publisher key.
    pub fn sign(&self, key: &SigningKey) -> Result<SignedDescriptor, EnvelopeError> {
        let msg = signed_message(&self.encode()?);
        let signature = key.sign(&msg);
        Ok(SignedDescriptor {
            descriptor: self.clone(),
            key_id: PublisherKey::new(key.verifying_key()).key_id,
            signature: signature.to_bytes(),
        })
    }
}

fn signed_message(descriptor: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_CONTEXT.len() + descriptor.len());
    m.extend_from_slice(SIGNING_CONTEXT);
    m.extend_from_slice(descriptor);
    m
}

/// A pinned publisher public key and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherKey {
    /// base64url(SHA-256(raw 32-byte public key)).
    pub key_id: String,
    /// The Ed25519 public key.
    pub key: VerifyingKey,
}

impl PublisherKey {
    /// Wraps a verifying key, computing its id.
    pub fn new(key: VerifyingKey) -> Self {
        let key_id = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(key.as_bytes()));
        PublisherKey { key_id, key }
    }

    /// From the raw 32-byte public key.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, EnvelopeError> {
        VerifyingKey::from_bytes(bytes)
            .map(Self::new)
            .map_err(|_| EnvelopeError::Descriptor("not an Ed25519 public key"))
    }
}

/// A descriptor with its publisher's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDescriptor {
    /// The descriptor (not trusted until [`SignedDescriptor::verify`] returned it).
    pub descriptor: ReleaseDescriptor,
    /// Which publisher key signed it.
    pub key_id: String,
    /// The Ed25519 signature.
    pub signature: [u8; 64],
}

impl SignedDescriptor {
    /// Canonical JSON of the signed form.
    pub fn to_json(&self) -> Result<Vec<u8>, EnvelopeError> {
        self.descriptor.validate()?;
        canonical::to_vec(&WireSigned {
            descriptor: self.descriptor.wire(),
            key_id: self.key_id.clone(),
            signature: URL_SAFE_NO_PAD.encode(self.signature),
        })
    }

    /// Parses the signed form: size limit, canonical JSON, known version and
    /// fields, consistent ids. Does not verify the signature.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() > MAX_SIGNED_LEN {
            return Err(EnvelopeError::Descriptor("too large"));
        }
        let w: WireSigned = canonical::from_slice(bytes)?;
        ident::check("key_id", &w.key_id)?;
        let sig = URL_SAFE_NO_PAD
            .decode(&w.signature)
            .ok()
            .and_then(|s| <[u8; 64]>::try_from(s).ok())
            .ok_or(EnvelopeError::Descriptor(
                "signature is not 64 base64url bytes",
            ))?;
        Ok(SignedDescriptor {
            descriptor: ReleaseDescriptor::from_wire(w.descriptor)?,
            key_id: w.key_id,
            signature: sig,
        })
    }

    /// Verifies the signature with the pinned key of the same id (strict
    /// Ed25519: no malleable or small-order forms). Returns the descriptor.
    pub fn verify(&self, keys: &[PublisherKey]) -> Result<&ReleaseDescriptor, EnvelopeError> {
        let key = keys
            .iter()
            .find(|k| k.key_id == self.key_id)
            .ok_or(EnvelopeError::UnknownPublisher)?;
        let msg = signed_message(&self.descriptor.encode()?);
        key.key
            .verify_strict(&msg, &Signature::from_bytes(&self.signature))
            .map_err(|_| EnvelopeError::Signature)?;
        Ok(&self.descriptor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ReleaseDescriptor {
        let h = Header::new("acme", "web", "r1").unwrap();
        ReleaseDescriptor::new(h, &[0xab; 32], &[0xcd; 32]).unwrap()
    }

    #[test]
    fn sign_verify_and_refusals() {
        let sk = SigningKey::from_bytes(&[9; 32]);
        let other = SigningKey::from_bytes(&[10; 32]);
        let pinned = [PublisherKey::new(sk.verifying_key())];
        let signed = sample().sign(&sk).unwrap();
        let json = signed.to_json().unwrap();
        canonical::validate(&json).unwrap();
        let back = SignedDescriptor::from_json(&json).unwrap();
        assert_eq!(back.verify(&pinned).unwrap(), &sample());

        assert!(matches!(
            back.verify(&[PublisherKey::new(other.verifying_key())]),
            Err(EnvelopeError::UnknownPublisher)
        ));
        // Same key id, other key: signature fails.
        let impostor = [PublisherKey {
            key_id: pinned[0].key_id.clone(),
            key: other.verifying_key(),
        }];
        assert!(matches!(
            back.verify(&impostor),
            Err(EnvelopeError::Signature)
        ));
        let mut changed = back.clone();
        changed.descriptor.manifest_sha256 = hex_lower(&[3; 32]);
        assert!(matches!(
            changed.verify(&pinned),
            Err(EnvelopeError::Signature)
        ));
    }

    #[test]
    fn parse_refusals() {
        let sk = SigningKey::from_bytes(&[9; 32]);
        let json = String::from_utf8(sample().sign(&sk).unwrap().to_json().unwrap()).unwrap();
        let mismatched = json.replacen("\"app\":\"web\"", "\"app\":\"api\"", 1);
        assert!(matches!(
            SignedDescriptor::from_json(mismatched.as_bytes()),
            Err(EnvelopeError::Descriptor(_))
        ));
        let v2 = json.replace("\"release\":\"r1\",\"v\":1", "\"release\":\"r1\",\"v\":2");
        assert!(matches!(
            SignedDescriptor::from_json(v2.as_bytes()),
            Err(EnvelopeError::UnsupportedVersion(2))
        ));
        let spaced = json.replacen(':', ": ", 1);
        assert!(matches!(
            SignedDescriptor::from_json(spaced.as_bytes()),
            Err(EnvelopeError::Canonical(_))
        ));
        let upper = json.replace(
            &hex_lower(&[0xab; 32]),
            &hex_lower(&[0xab; 32]).to_uppercase(),
        );
        assert!(SignedDescriptor::from_json(upper.as_bytes()).is_err());
    }
}
