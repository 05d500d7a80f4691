//! The protected header and the `custody` binding it carries.

use crate::{EnvelopeError, canonical, ident};
use serde::{Deserialize, Serialize};

/// Version of the `custody` header member.
pub const BINDING_VERSION: u32 = 1;

/// What a JWE holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// The account master key `MK`.
    MasterKey,
    /// A release key `RK`.
    ReleaseKey,
    /// A deployment key `DK`.
    DeployKey,
    /// A key list (sealed under `DK`).
    KeyList,
    /// One secret variable's value.
    SecretVar,
}

/// What a JWE is bound to: its purpose and the ids of the object it
/// belongs to. Opening refuses a JWE whose binding differs in any field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// What the JWE holds.
    pub purpose: Purpose,
    /// Account id.
    pub account: String,
    /// Application name, when the object belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Release id, when the object belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Deployment id, when the object belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Secret variable name (purpose `secret-var`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Environment name (purpose `secret-var`: a secret sealed for one
    /// environment cannot be moved to another of the same app).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl Binding {
    /// Checks every identifier.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        ident::check("account", &self.account)?;
        ident::check_opt("app", self.app.as_deref())?;
        ident::check_opt("release", self.release.as_deref())?;
        ident::check_opt("deployment", self.deployment.as_deref())?;
        ident::check_opt("name", self.name.as_deref())?;
        ident::check_opt("environment", self.environment.as_deref())?;
        Ok(())
    }
}

/// The `custody` member as it appears on the wire: version + binding.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBinding {
    v: u32,
    purpose: Purpose,
    account: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deployment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    environment: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireHeader {
    alg: String,
    enc: String,
    kid: String,
    crit: Vec<String>,
    custody: WireBinding,
}

/// A JWE protected header as Custody writes and reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedHeader {
    /// `RSA-OAEP-256`, `RSA-OAEP` or `dir`.
    pub alg: String,
    /// Always `A256GCM`.
    pub enc: String,
    /// Recipient thumbprint (`wrap`) or key id (`seal`).
    pub kid: String,
    /// Always `["custody"]`.
    pub crit: Vec<String>,
    /// The binding from the `custody` member.
    pub binding: Binding,
}

impl ProtectedHeader {
    /// Canonical JSON of the header (what is base64url-encoded).
    pub fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        let b = &self.binding;
        canonical::to_vec(&WireHeader {
            alg: self.alg.clone(),
            enc: self.enc.clone(),
            kid: self.kid.clone(),
            crit: self.crit.clone(),
            custody: WireBinding {
                v: BINDING_VERSION,
                purpose: b.purpose,
                account: b.account.clone(),
                app: b.app.clone(),
                release: b.release.clone(),
                deployment: b.deployment.clone(),
                name: b.name.clone(),
                environment: b.environment.clone(),
            },
        })
    }

    /// Parses decoded header JSON. Any valid JSON member order is accepted
    /// (other JOSE libraries may re-serialize); unknown or duplicate
    /// members, unknown versions and invalid ids are refused.
    pub fn parse(json: &[u8]) -> Result<ProtectedHeader, EnvelopeError> {
        let w: WireHeader = serde_json::from_slice(json)
            .map_err(|_| EnvelopeError::JweMalformed("protected header JSON"))?;
        if w.custody.v != BINDING_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(u64::from(w.custody.v)));
        }
        ident::check("kid", &w.kid)?;
        let c = w.custody;
        let binding = Binding {
            purpose: c.purpose,
            account: c.account,
            app: c.app,
            release: c.release,
            deployment: c.deployment,
            name: c.name,
            environment: c.environment,
        };
        binding.validate()?;
        Ok(ProtectedHeader {
            alg: w.alg,
            enc: w.enc,
            kid: w.kid,
            crit: w.crit,
            binding,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purpose_names() {
        let s = serde_json::to_string(&[
            Purpose::MasterKey,
            Purpose::ReleaseKey,
            Purpose::DeployKey,
            Purpose::KeyList,
            Purpose::SecretVar,
        ])
        .unwrap();
        assert_eq!(
            s,
            r#"["master-key","release-key","deploy-key","key-list","secret-var"]"#
        );
    }

    #[test]
    fn header_round_trip_and_refusals() {
        let h = ProtectedHeader {
            alg: "dir".into(),
            enc: "A256GCM".into(),
            kid: "mk-1".into(),
            crit: vec!["custody".into()],
            binding: Binding {
                purpose: Purpose::ReleaseKey,
                account: "acme".into(),
                app: Some("web".into()),
                release: Some("r1".into()),
                deployment: None,
                name: None,
                environment: None,
            },
        };
        let enc = h.encode().unwrap();
        assert_eq!(
            String::from_utf8(enc.clone()).unwrap(),
            r#"{"alg":"dir","crit":["custody"],"custody":{"account":"acme","app":"web","purpose":"release-key","release":"r1","v":1},"enc":"A256GCM","kid":"mk-1"}"#
        );
        assert_eq!(ProtectedHeader::parse(&enc).unwrap(), h);
        let v2 = String::from_utf8(enc.clone())
            .unwrap()
            .replace("\"v\":1", "\"v\":2");
        assert!(matches!(
            ProtectedHeader::parse(v2.as_bytes()),
            Err(EnvelopeError::UnsupportedVersion(2))
        ));
        let extra = String::from_utf8(enc.clone())
            .unwrap()
            .replace("\"enc\"", "\"zip\":\"DEF\",\"enc\"");
        assert!(matches!(
            ProtectedHeader::parse(extra.as_bytes()),
            Err(EnvelopeError::JweMalformed(_))
        ));
        let dup = String::from_utf8(enc)
            .unwrap()
            .replace("\"enc\"", "\"alg\":\"dir\",\"enc\"");
        assert!(matches!(
            ProtectedHeader::parse(dup.as_bytes()),
            Err(EnvelopeError::JweMalformed(_))
        ));
    }
}
