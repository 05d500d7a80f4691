//! Signed approval statements: what an approver vouches for when they
//! approve (or decline) one deployment, signed with their own Ed25519 key.
//!
//! Statement (canonical JSON, `docs/FORMAT.md` §7):
//! `{"account":…,"app":…,"approver":…,"decision":"approve"|"decline","deployment":…,"environment":…,"expires_at":<unix s>,"package_sha256":"<hex>","release":…,"targets":[…sorted…],"v":1}`
//!
//! Signed form (canonical JSON):
//! `{"key_id":"<b64u SHA-256 of the public key>","signature":"<b64u 64 bytes>","statement":{…}}`
//!
//! The signature is pure Ed25519 over `"custody.approval.v1\0"` ‖
//! canonical(statement), verified strictly. Anyone holding the approver's
//! public key can check a statement; whether it has expired is the
//! caller's question (this crate has no clock): [`ApprovalStatement::expired_at`].

use crate::keylist::{hex_lower, parse_hex32};
use crate::{EnvelopeError, canonical, ident};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// Statement format version.
pub const APPROVAL_VERSION: u32 = 1;
/// Domain-separation prefix of the signed message.
pub const SIGNING_CONTEXT: &[u8] = b"custody.approval.v1\0";
/// Longest signed statement accepted, in bytes.
pub const MAX_SIGNED_LEN: usize = 64 * 1024;
/// Most target servers one statement may name.
pub const MAX_TARGETS: usize = 1024;

/// Why a statement was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// The statement or its signed form is not valid: a field is out of
    /// its limits, targets are unsorted or repeated, a digest or the
    /// signature is not in its encoding, or it is too large.
    #[error("approval statement: {0}")]
    Invalid(&'static str),
    /// The encoding is not canonical JSON, an identifier is not valid, or
    /// the version is unknown.
    #[error("approval statement: {0}")]
    Format(#[from] EnvelopeError),
    /// The statement names another key than the one it was checked with.
    #[error("approval statement: signed by another key (key_id mismatch)")]
    WrongKey,
    /// The signature does not verify with the approver's key.
    #[error("approval statement: signature invalid")]
    Signature,
}

/// What the approver decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The deployment may go ahead (counts toward the quorum).
    Approve,
    /// The deployment must not go ahead.
    Decline,
}

impl Decision {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Decline => "decline",
        }
    }
}

/// Exactly what one approver approves: one deployment of one release
/// (by package digest) to one environment's named target servers, until
/// `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalStatement {
    /// Account id.
    pub account: String,
    /// Deployment id.
    pub deployment: String,
    /// Application name.
    pub app: String,
    /// Release id.
    pub release: String,
    /// SHA-256 of the whole package file, 64 lower-case hex digits.
    pub package_sha256: String,
    /// Environment name.
    pub environment: String,
    /// Target server ids, sorted (byte order), no repeats, at least one.
    pub targets: Vec<String>,
    /// Unix seconds after which the statement no longer counts.
    pub expires_at: u64,
    /// The decision.
    pub decision: Decision,
    /// User id of the approver (the key's owner).
    pub approver: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireStatement {
    v: u32,
    account: String,
    deployment: String,
    app: String,
    release: String,
    package_sha256: String,
    environment: String,
    targets: Vec<String>,
    expires_at: u64,
    decision: Decision,
    approver: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSigned {
    statement: serde_json::Value,
    key_id: String,
    signature: String,
}

impl ApprovalStatement {
    /// Sorts and de-duplicates `targets` (the only order accepted).
    pub fn normalize_targets(targets: &mut Vec<String>) {
        targets.sort_unstable();
        targets.dedup();
    }

    /// Checks identifiers, digest, targets (sorted, unique, 1..=1024) and
    /// that `expires_at` is a canonical-JSON integer.
    pub fn validate(&self) -> Result<(), ApprovalError> {
        ident::check("account", &self.account)?;
        ident::check("deployment", &self.deployment)?;
        ident::check("app", &self.app)?;
        ident::check("release", &self.release)?;
        ident::check("environment", &self.environment)?;
        ident::check("approver", &self.approver)?;
        if parse_hex32(&self.package_sha256).is_none() {
            return Err(ApprovalError::Invalid("digest is not 64 lower-case hex"));
        }
        if self.targets.is_empty() || self.targets.len() > MAX_TARGETS {
            return Err(ApprovalError::Invalid(
                "targets must name 1 to 1024 servers",
            ));
        }
        for t in &self.targets {
            ident::check("targets", t)?;
        }
        if self.targets.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ApprovalError::Invalid(
                "targets must be sorted and without repeats",
            ));
        }
        if self.expires_at > canonical::MAX_SAFE_INTEGER {
            return Err(ApprovalError::Invalid("expires_at out of range"));
        }
        Ok(())
    }

    /// True when the statement no longer counts at `now` (Unix seconds).
    pub fn expired_at(&self, now: u64) -> bool {
        now >= self.expires_at
    }

    /// The package digest as bytes.
    pub fn package_digest(&self) -> Result<[u8; 32], ApprovalError> {
        parse_hex32(&self.package_sha256)
            .ok_or(ApprovalError::Invalid("digest is not 64 lower-case hex"))
    }

    fn wire(&self) -> WireStatement {
        let s = self.clone();
        WireStatement {
            v: APPROVAL_VERSION,
            account: s.account,
            deployment: s.deployment,
            app: s.app,
            release: s.release,
            package_sha256: s.package_sha256,
            environment: s.environment,
            targets: s.targets,
            expires_at: s.expires_at,
            decision: s.decision,
            approver: s.approver,
        }
    }

    /// Canonical JSON of the statement (what is signed, after the context).
    pub fn encode(&self) -> Result<Vec<u8>, ApprovalError> {
        self.validate()?;
        Ok(canonical::to_vec(&self.wire())?)
    }

    /// Signs the statement with the approver's key.
    pub fn sign(&self, key: &SigningKey) -> Result<SignedApproval, ApprovalError> {
        let msg = signed_message(&self.encode()?);
        Ok(SignedApproval {
            statement: self.clone(),
            key_id: key_id(&key.verifying_key()),
            signature: key.sign(&msg).to_bytes(),
        })
    }

    fn from_value(v: serde_json::Value) -> Result<Self, ApprovalError> {
        let version = v
            .get("v")
            .and_then(serde_json::Value::as_u64)
            .ok_or(ApprovalError::Invalid("missing version"))?;
        if version != u64::from(APPROVAL_VERSION) {
            return Err(EnvelopeError::UnsupportedVersion(version).into());
        }
        let w: WireStatement = serde_json::from_value(v)
            .map_err(|_| ApprovalError::Invalid("unknown, missing or mistyped fields"))?;
        let s = ApprovalStatement {
            account: w.account,
            deployment: w.deployment,
            app: w.app,
            release: w.release,
            package_sha256: w.package_sha256,
            environment: w.environment,
            targets: w.targets,
            expires_at: w.expires_at,
            decision: w.decision,
            approver: w.approver,
        };
        s.validate()?;
        Ok(s)
    }
}

fn signed_message(statement: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_CONTEXT.len() + statement.len());
    m.extend_from_slice(SIGNING_CONTEXT);
    m.extend_from_slice(statement);
    m
}

/// An approver key's id: base64url(SHA-256(raw 32-byte public key)), the
/// same scheme as publisher key ids.
pub fn key_id(key: &VerifyingKey) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(key.as_bytes()))
}

/// Parses an approver public key: 64 lower- or upper-case hex digits of
/// the raw 32-byte Ed25519 key (surrounding whitespace allowed). Weak
/// (small-order) keys are refused.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, ApprovalError> {
    let t = text.trim().to_ascii_lowercase();
    let bytes = parse_hex32(&t).ok_or(ApprovalError::Invalid(
        "public key is not 64 hex digits (32 bytes)",
    ))?;
    let k = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| ApprovalError::Invalid("not an Ed25519 public key"))?;
    if k.is_weak() {
        return Err(ApprovalError::Invalid("weak (small-order) public key"));
    }
    Ok(k)
}

/// A public key as 64 lower-case hex digits.
pub fn public_key_hex(key: &VerifyingKey) -> String {
    hex_lower(key.as_bytes())
}

/// A statement with its approver's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedApproval {
    /// The statement (not trusted until [`SignedApproval::verify`] returned it).
    pub statement: ApprovalStatement,
    /// Which approver key signed it.
    pub key_id: String,
    /// The Ed25519 signature.
    pub signature: [u8; 64],
}

impl SignedApproval {
    /// Canonical JSON of the signed form.
    pub fn to_json(&self) -> Result<Vec<u8>, ApprovalError> {
        self.statement.validate()?;
        let statement = serde_json::to_value(self.statement.wire())
            .map_err(|_| ApprovalError::Invalid("not serializable"))?;
        Ok(canonical::to_vec(&WireSigned {
            statement,
            key_id: self.key_id.clone(),
            signature: URL_SAFE_NO_PAD.encode(self.signature),
        })?)
    }

    /// Parses the signed form: size limit, canonical JSON, known version
    /// and fields, valid statement. Does not verify the signature.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ApprovalError> {
        if bytes.len() > MAX_SIGNED_LEN {
            return Err(ApprovalError::Invalid("too large"));
        }
        let w: WireSigned = canonical::from_slice(bytes)?;
        ident::check("key_id", &w.key_id)?;
        let signature = URL_SAFE_NO_PAD
            .decode(&w.signature)
            .ok()
            .and_then(|s| <[u8; 64]>::try_from(s).ok())
            .ok_or(ApprovalError::Invalid(
                "signature is not 64 base64url bytes",
            ))?;
        Ok(SignedApproval {
            statement: ApprovalStatement::from_value(w.statement)?,
            key_id: w.key_id,
            signature,
        })
    }

    /// [`SignedApproval::from_json`] of a JSON value (re-encoded canonically:
    /// the signature covers the canonical bytes, not the transport's).
    pub fn from_value(v: &serde_json::Value) -> Result<Self, ApprovalError> {
        let bytes = canonical::encode_value(v)?;
        Self::from_json(&bytes)
    }

    /// Verifies the signature with the approver's public key (strict
    /// Ed25519: no malleable or small-order forms). Returns the statement.
    pub fn verify(&self, key: &VerifyingKey) -> Result<&ApprovalStatement, ApprovalError> {
        if key_id(key) != self.key_id {
            return Err(ApprovalError::WrongKey);
        }
        let msg = signed_message(&self.statement.encode()?);
        key.verify_strict(&msg, &Signature::from_bytes(&self.signature))
            .map_err(|_| ApprovalError::Signature)?;
        Ok(&self.statement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ApprovalStatement {
        ApprovalStatement {
            account: "acme".into(),
            deployment: "dep_1".into(),
            app: "web".into(),
            release: "2024.06.01-1".into(),
            package_sha256: "ab".repeat(32),
            environment: "prod".into(),
            targets: vec!["srv_a".into(), "srv_b".into()],
            expires_at: 1_718_000_000,
            decision: Decision::Approve,
            approver: "usr_alice".into(),
        }
    }

    /// The vector written out in docs/FORMAT.md §7: seed 0x7a × 32.
    const VECTOR_STATEMENT: &str = "{\"account\":\"acme\",\"app\":\"web\",\"approver\":\"usr_alice\",\"decision\":\"approve\",\"deployment\":\"dep_1\",\"environment\":\"prod\",\"expires_at\":1718000000,\"package_sha256\":\"abababababababababababababababababababababababababababababababab\",\"release\":\"2024.06.01-1\",\"targets\":[\"srv_a\",\"srv_b\"],\"v\":1}";
    const VECTOR_PUBLIC_KEY: &str =
        "ba42458e83ba7926ba8b8f3e9ab9caaf0f1c4918dda8c551084f7aeb1065b74b";
    const VECTOR_KEY_ID: &str = "dBwGxjx2SrLvp-3KSBjtHEG6sd80ax7SpRHGZXwaW6Y";
    const VECTOR_SIGNATURE: &str =
        "treW6-LA4egwetH0eOEo3K-3qrryy9o9kH8dDkVcHq_CRBWHGR1MtonqFNvhvzK2F0DghGvmqwIqCdewN46EDA";

    #[test]
    fn test_vector() {
        let sk = SigningKey::from_bytes(&[0x7a; 32]);
        let enc = sample().encode().unwrap();
        assert_eq!(std::str::from_utf8(&enc).unwrap(), VECTOR_STATEMENT);
        let signed = sample().sign(&sk).unwrap();
        let pk = public_key_hex(&sk.verifying_key());
        let sig = URL_SAFE_NO_PAD.encode(signed.signature);
        assert_eq!(pk, VECTOR_PUBLIC_KEY);
        assert_eq!(signed.key_id, VECTOR_KEY_ID);
        assert_eq!(sig, VECTOR_SIGNATURE);
        // The signed form as written in FORMAT.md verifies with the public key alone.
        let doc = format!(
            "{{\"key_id\":\"{VECTOR_KEY_ID}\",\"signature\":\"{VECTOR_SIGNATURE}\",\"statement\":{VECTOR_STATEMENT}}}"
        );
        assert_eq!(signed.to_json().unwrap(), doc.as_bytes());
        let key = parse_public_key(VECTOR_PUBLIC_KEY).unwrap();
        let parsed = SignedApproval::from_json(doc.as_bytes()).unwrap();
        assert_eq!(parsed.verify(&key).unwrap(), &sample());
    }

    #[test]
    fn sign_verify_round_trip_and_refusals() {
        let sk = SigningKey::from_bytes(&[0x7a; 32]);
        let other = SigningKey::from_bytes(&[0x7b; 32]);
        let signed = sample().sign(&sk).unwrap();
        let json = signed.to_json().unwrap();
        canonical::validate(&json).unwrap();
        let back = SignedApproval::from_json(&json).unwrap();
        assert_eq!(back, signed);
        assert_eq!(back.verify(&sk.verifying_key()).unwrap(), &sample());
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(SignedApproval::from_value(&v).unwrap(), signed);

        assert!(matches!(
            back.verify(&other.verifying_key()),
            Err(ApprovalError::WrongKey)
        ));
        // Same key id claimed, other key's signature.
        let forged = SignedApproval {
            signature: sample().sign(&other).unwrap().signature,
            ..signed.clone()
        };
        assert!(matches!(
            forged.verify(&sk.verifying_key()),
            Err(ApprovalError::Signature)
        ));
        // Every field is covered by the signature.
        let edits: [fn(&mut ApprovalStatement); 11] = [
            |s| s.account = "evil".into(),
            |s| s.deployment = "dep_2".into(),
            |s| s.app = "api".into(),
            |s| s.release = "r2".into(),
            |s| s.package_sha256 = "cd".repeat(32),
            |s| s.environment = "dev".into(),
            |s| s.targets = vec!["srv_a".into()],
            |s| s.targets.push("srv_c".into()),
            |s| s.expires_at += 1,
            |s| s.decision = Decision::Decline,
            |s| s.approver = "usr_bob".into(),
        ];
        for edit in edits {
            let mut changed = signed.clone();
            edit(&mut changed.statement);
            assert!(matches!(
                changed.verify(&sk.verifying_key()),
                Err(ApprovalError::Signature)
            ));
        }
    }

    #[test]
    fn parse_refusals() {
        let sk = SigningKey::from_bytes(&[0x7a; 32]);
        let json = String::from_utf8(sample().sign(&sk).unwrap().to_json().unwrap()).unwrap();
        let v2 = json.replace("\"v\":1", "\"v\":2");
        assert!(matches!(
            SignedApproval::from_json(v2.as_bytes()),
            Err(ApprovalError::Format(EnvelopeError::UnsupportedVersion(2)))
        ));
        let spaced = json.replacen(':', ": ", 1);
        assert!(matches!(
            SignedApproval::from_json(spaced.as_bytes()),
            Err(ApprovalError::Format(EnvelopeError::Canonical(_)))
        ));
        let unsorted = json.replace("[\"srv_a\",\"srv_b\"]", "[\"srv_b\",\"srv_a\"]");
        assert!(matches!(
            SignedApproval::from_json(unsorted.as_bytes()),
            Err(ApprovalError::Invalid(_))
        ));
        let repeated = json.replace("[\"srv_a\",\"srv_b\"]", "[\"srv_a\",\"srv_a\"]");
        assert!(matches!(
            SignedApproval::from_json(repeated.as_bytes()),
            Err(ApprovalError::Invalid(_))
        ));
        let empty = json.replace("[\"srv_a\",\"srv_b\"]", "[]");
        assert!(matches!(
            SignedApproval::from_json(empty.as_bytes()),
            Err(ApprovalError::Invalid(_))
        ));
        let extra = json.replace("\"v\":1", "\"v\":1,\"x\":1");
        assert!(SignedApproval::from_json(extra.as_bytes()).is_err());
        let upper = json.replace(&"ab".repeat(32), &"AB".repeat(32));
        assert!(matches!(
            SignedApproval::from_json(upper.as_bytes()),
            Err(ApprovalError::Invalid(_))
        ));
        let bad_decision = json.replace("\"approve\"", "\"maybe\"");
        assert!(matches!(
            SignedApproval::from_json(bad_decision.as_bytes()),
            Err(ApprovalError::Invalid(_))
        ));
        let short_sig = json.replacen("\"signature\":\"", "\"signature\":\"AA", 1);
        assert!(SignedApproval::from_json(short_sig.as_bytes()).is_err());
        let big = vec![b' '; MAX_SIGNED_LEN + 1];
        assert!(matches!(
            SignedApproval::from_json(&big),
            Err(ApprovalError::Invalid("too large"))
        ));
    }

    #[test]
    fn public_keys_and_expiry() {
        let sk = SigningKey::from_bytes(&[0x7a; 32]);
        let hex = public_key_hex(&sk.verifying_key());
        assert_eq!(
            parse_public_key(&format!(" {}\n", hex.to_uppercase())).unwrap(),
            sk.verifying_key()
        );
        assert!(parse_public_key("abcd").is_err());
        // The identity point is a small-order key.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert!(matches!(
            parse_public_key(&hex_lower(&ident)),
            Err(ApprovalError::Invalid(_))
        ));
        let s = sample();
        assert!(!s.expired_at(s.expires_at - 1));
        assert!(s.expired_at(s.expires_at));
        let mut t = vec!["b".to_string(), "a".into(), "b".into()];
        ApprovalStatement::normalize_targets(&mut t);
        assert_eq!(t, ["a", "b"]);
    }
}
