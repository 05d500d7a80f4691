//! The key list a key manager builds for a deployment and seals under the
//! deployment key `DK`: release id, release key, package digest and the
//! environment's secret variables.
//!
//! Wire form (canonical JSON, members in this order):
//! `{"package_sha256":"<hex>","release":"…","release_key":"<base64url>","secrets":[{"name":"…","value":"…"}],"v":1}`.
//! Serialization writes into one pre-sized `Zeroizing` buffer; parsing
//! moves secret strings straight into `Zeroizing` values.

use crate::{EnvelopeError, SymmetricKey, canonical, ident};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer};
use std::fmt;
use zeroize::Zeroizing;

/// Key list format version.
pub const KEYLIST_VERSION: u32 = 1;
/// Most secret variables in one key list.
pub const MAX_SECRETS: usize = 1024;
/// Longest secret value, in bytes.
pub const MAX_SECRET_LEN: usize = 64 * 1024;
/// Longest serialized key list (the JWE plaintext limit).
pub const MAX_KEYLIST_LEN: usize = crate::jwe::MAX_PLAINTEXT_LEN;

/// One secret environment variable.
pub struct SecretVar {
    /// Variable name: `[A-Za-z_][A-Za-z0-9_]*`, at most 256 bytes.
    pub name: String,
    /// The value; zeroized on drop, never printed.
    pub value: Zeroizing<String>,
}

impl fmt::Debug for SecretVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretVar")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// What a target needs to decrypt and install one release.
pub struct KeyList {
    /// Release id.
    pub release: String,
    /// The release key `RK`.
    pub release_key: SymmetricKey,
    /// SHA-256 of the whole package file.
    pub package_sha256: [u8; 32],
    /// Secret variables for the hooks.
    pub secrets: Vec<SecretVar>,
}

impl fmt::Debug for KeyList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyList")
            .field("release", &self.release)
            .field("release_key", &self.release_key)
            .field("package_sha256", &hex_lower(&self.package_sha256))
            .field("secrets", &self.secrets)
            .finish()
    }
}

pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

pub(crate) fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nib(b[2 * i])? << 4) | nib(b[2 * i + 1])?;
    }
    Some(out)
}

fn check_var_name(name: &str) -> Result<(), EnvelopeError> {
    ident::check("name", name)?;
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(EnvelopeError::Identifier("name"));
    }
    Ok(())
}

impl KeyList {
    /// Checks ids, names (unique, environment-variable syntax), values
    /// (no NUL, size) and counts.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        ident::check("release", &self.release)?;
        if self.secrets.len() > MAX_SECRETS {
            return Err(EnvelopeError::KeyList("too many secrets"));
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &self.secrets {
            check_var_name(&s.name)?;
            if s.value.len() > MAX_SECRET_LEN || s.value.contains('\0') {
                return Err(EnvelopeError::KeyList(
                    "secret value too long or contains NUL",
                ));
            }
            if !names.insert(s.name.as_str()) {
                return Err(EnvelopeError::KeyList("duplicate secret name"));
            }
        }
        Ok(())
    }

    /// Canonical JSON, in a zeroizing buffer sized up front (no
    /// reallocation leaves copies of secrets behind).
    pub fn to_json(&self) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        self.validate()?;
        // Worst case every byte escapes to 6 bytes.
        let cap = 256
            + 6 * self.release.len()
            + self
                .secrets
                .iter()
                .map(|s| 32 + 6 * (s.name.len() + s.value.len()))
                .sum::<usize>();
        let mut out = Zeroizing::new(Vec::with_capacity(cap));
        out.extend_from_slice(b"{\"package_sha256\":\"");
        out.extend_from_slice(hex_lower(&self.package_sha256).as_bytes());
        out.extend_from_slice(b"\",\"release\":");
        canonical::write_str(&mut out, &self.release);
        out.extend_from_slice(b",\"release_key\":\"");
        let mut key_b64 = Zeroizing::new([0u8; 43]);
        URL_SAFE_NO_PAD
            .encode_slice(self.release_key.as_bytes(), &mut key_b64[..])
            .map_err(|_| EnvelopeError::KeyList("release key encoding"))?;
        out.extend_from_slice(&key_b64[..]);
        out.extend_from_slice(b"\",\"secrets\":[");
        for (i, s) in self.secrets.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"name\":");
            canonical::write_str(&mut out, &s.name);
            out.extend_from_slice(b",\"value\":");
            canonical::write_str(&mut out, &s.value);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"v\":");
        out.extend_from_slice(KEYLIST_VERSION.to_string().as_bytes());
        out.push(b'}');
        if out.len() > MAX_KEYLIST_LEN {
            return Err(EnvelopeError::KeyList("too large"));
        }
        Ok(out)
    }

    /// Parses a key list (from an opened, authenticated JWE).
    pub fn from_json(bytes: &[u8]) -> Result<KeyList, EnvelopeError> {
        if bytes.len() > MAX_KEYLIST_LEN {
            return Err(EnvelopeError::KeyList("too large"));
        }
        let w: Wire = serde_json::from_slice(bytes)
            .map_err(|_| EnvelopeError::KeyList("malformed JSON or unknown fields"))?;
        if w.v != KEYLIST_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(u64::from(w.v)));
        }
        let key_bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(w.release_key.0.as_bytes())
                .map_err(|_| EnvelopeError::KeyList("release_key is not base64url"))?,
        );
        let release_key = SymmetricKey::from_slice(&key_bytes)
            .map_err(|_| EnvelopeError::KeyList("release_key is not 32 bytes"))?;
        let package_sha256 = parse_hex32(&w.package_sha256).ok_or(EnvelopeError::KeyList(
            "package_sha256 is not 64 lower-case hex",
        ))?;
        let kl = KeyList {
            release: w.release,
            release_key,
            package_sha256,
            secrets: w
                .secrets
                .into_iter()
                .map(|s| SecretVar {
                    name: s.name,
                    value: s.value.0,
                })
                .collect(),
        };
        kl.validate()?;
        Ok(kl)
    }
}

/// A string deserialized straight into a zeroizing container.
struct SecretStr(Zeroizing<String>);

impl<'de> Deserialize<'de> for SecretStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| SecretStr(Zeroizing::new(s)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSecret {
    name: String,
    value: SecretStr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u32,
    release: String,
    release_key: SecretStr,
    package_sha256: String,
    secrets: Vec<WireSecret>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> KeyList {
        KeyList {
            release: "rel-1".into(),
            release_key: SymmetricKey::from_bytes([0x42; 32]),
            package_sha256: [0xab; 32],
            secrets: vec![SecretVar {
                name: "DB_PASSWORD".into(),
                value: Zeroizing::new("p\"w\nd".into()),
            }],
        }
    }

    #[test]
    fn canonical_and_round_trips() {
        let j = sample().to_json().unwrap();
        canonical::validate(&j).unwrap();
        let back = KeyList::from_json(&j).unwrap();
        assert_eq!(back.release, "rel-1");
        assert_eq!(back.release_key.as_bytes(), &[0x42; 32]);
        assert_eq!(back.package_sha256, [0xab; 32]);
        assert_eq!(&*back.secrets[0].value, "p\"w\nd");
    }

    #[test]
    fn debug_redacts() {
        let d = format!("{:?}", sample());
        assert!(d.contains("DB_PASSWORD") && !d.contains("p\\\"w"), "{d}");
    }

    #[test]
    fn refusals() {
        let mut kl = sample();
        kl.secrets.push(SecretVar {
            name: "DB_PASSWORD".into(),
            value: Zeroizing::new("x".into()),
        });
        assert!(matches!(kl.to_json(), Err(EnvelopeError::KeyList(_))));
        for bad in ["1X", "A-B", "A B", ""] {
            let mut kl = sample();
            kl.secrets[0].name = bad.into();
            assert!(matches!(
                kl.to_json(),
                Err(EnvelopeError::Identifier("name"))
            ));
        }
        let j = String::from_utf8(sample().to_json().unwrap().to_vec()).unwrap();
        let v2 = j.replace("\"v\":1", "\"v\":2");
        assert!(matches!(
            KeyList::from_json(v2.as_bytes()),
            Err(EnvelopeError::UnsupportedVersion(2))
        ));
        let extra = j.replace("\"v\":1", "\"v\":1,\"x\":1");
        assert!(matches!(
            KeyList::from_json(extra.as_bytes()),
            Err(EnvelopeError::KeyList(_))
        ));
        let short_key = j.replace("\"release_key\":\"", "\"release_key\":\"AAAA");
        assert!(KeyList::from_json(short_key.as_bytes()).is_err());
    }
}
