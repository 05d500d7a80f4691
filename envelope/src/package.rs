//! The package file: `"CUSTODY\0"` ‖ u16 BE header length ‖ canonical-JSON
//! header ‖ Cobblestone-256 body whose context is exactly the header bytes.
//!
//! This module is pure (whole buffers). `crate::stream` does the same in
//! constant memory and in parallel.

use crate::chunked::{self, PREFIX_LEN, SALT_LEN};
use crate::{EnvelopeError, SymmetricKey, canonical, ident};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The 8 magic bytes every package starts with.
pub const MAGIC: &[u8; 8] = b"CUSTODY\0";
/// The only package format version this crate reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// The only body algorithm: C2SP chunked encryption, Cobblestone-256.
pub const ALG: &str = "cobblestone-256";
/// Largest header accepted, in bytes.
pub const MAX_HEADER_LEN: usize = 4096;
/// Bytes before the header: magic and the u16 length.
pub const LEAD_LEN: usize = MAGIC.len() + 2;

/// A package header: format version, algorithm and the release binding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Format version; 1.
    pub v: u32,
    /// Body algorithm; `"cobblestone-256"`.
    pub alg: String,
    /// Account id.
    pub account: String,
    /// Application name.
    pub app: String,
    /// Release id.
    pub release: String,
}

impl Header {
    /// A version-1 header for a release, validated.
    pub fn new(
        account: impl Into<String>,
        app: impl Into<String>,
        release: impl Into<String>,
    ) -> Result<Header, EnvelopeError> {
        let h = Header {
            v: FORMAT_VERSION,
            alg: ALG.to_owned(),
            account: account.into(),
            app: app.into(),
            release: release.into(),
        };
        h.validate()?;
        Ok(h)
    }

    /// Checks version, algorithm, identifiers and encoded size.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        if self.v != FORMAT_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(u64::from(self.v)));
        }
        if self.alg != ALG {
            return Err(EnvelopeError::UnsupportedAlgorithm);
        }
        ident::check("account", &self.account)?;
        ident::check("app", &self.app)?;
        ident::check("release", &self.release)?;
        let len = self.encode().len();
        if len > MAX_HEADER_LEN {
            return Err(EnvelopeError::HeaderLength {
                len,
                max: MAX_HEADER_LEN,
            });
        }
        Ok(())
    }

    /// The canonical (RFC 8785) encoding: the header bytes in the file and
    /// the chunked-encryption context.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        out.extend_from_slice(b"{\"account\":");
        canonical::write_str(&mut out, &self.account);
        out.extend_from_slice(b",\"alg\":");
        canonical::write_str(&mut out, &self.alg);
        out.extend_from_slice(b",\"app\":");
        canonical::write_str(&mut out, &self.app);
        out.extend_from_slice(b",\"release\":");
        canonical::write_str(&mut out, &self.release);
        out.extend_from_slice(b",\"v\":");
        out.extend_from_slice(self.v.to_string().as_bytes());
        out.push(b'}');
        out
    }

    /// Parses header bytes: size limit, canonical form, known version and
    /// algorithm, exactly the known fields, valid identifiers.
    pub fn parse(bytes: &[u8]) -> Result<Header, EnvelopeError> {
        if bytes.is_empty() || bytes.len() > MAX_HEADER_LEN {
            return Err(EnvelopeError::HeaderLength {
                len: bytes.len(),
                max: MAX_HEADER_LEN,
            });
        }
        let value = canonical::validate(bytes)?;
        let obj = value
            .as_object()
            .ok_or(EnvelopeError::Header("not a JSON object"))?;
        let v = obj
            .get("v")
            .and_then(serde_json::Value::as_u64)
            .ok_or(EnvelopeError::Header("missing or non-integer `v`"))?;
        if v != u64::from(FORMAT_VERSION) {
            return Err(EnvelopeError::UnsupportedVersion(v));
        }
        if obj.get("alg").and_then(serde_json::Value::as_str) != Some(ALG) {
            return Err(EnvelopeError::UnsupportedAlgorithm);
        }
        let h: Header = serde_json::from_value(value)
            .map_err(|_| EnvelopeError::Header("missing, unknown or mistyped fields"))?;
        h.validate()?;
        Ok(h)
    }

    /// The bytes before the body: magic ‖ u16 BE length ‖ header.
    pub fn lead(&self) -> Result<Vec<u8>, EnvelopeError> {
        self.validate()?;
        let enc = self.encode();
        let len = u16::try_from(enc.len()).map_err(|_| EnvelopeError::HeaderLength {
            len: enc.len(),
            max: MAX_HEADER_LEN,
        })?;
        let mut out = Vec::with_capacity(LEAD_LEN + enc.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&enc);
        Ok(out)
    }
}

/// Reads the header length from the first [`LEAD_LEN`] bytes of a package.
pub fn header_len(lead: &[u8; LEAD_LEN]) -> Result<usize, EnvelopeError> {
    if &lead[..MAGIC.len()] != MAGIC {
        return Err(EnvelopeError::PackageMagic);
    }
    let len = usize::from(u16::from_be_bytes([lead[8], lead[9]]));
    if len == 0 || len > MAX_HEADER_LEN {
        return Err(EnvelopeError::HeaderLength {
            len,
            max: MAX_HEADER_LEN,
        });
    }
    Ok(len)
}

/// Parses the start of a package: returns the header and the offset where
/// the body (salt ‖ commitment ‖ chunks) starts. Nothing here is trusted
/// until the body's commitment has been checked under the right key.
pub fn parse_lead(package: &[u8]) -> Result<(Header, usize), EnvelopeError> {
    let lead = package.first_chunk::<LEAD_LEN>().ok_or(
        if package.len() >= MAGIC.len() && &package[..MAGIC.len()] != MAGIC {
            EnvelopeError::PackageMagic
        } else {
            EnvelopeError::Truncated
        },
    )?;
    let len = header_len(lead)?;
    let end = LEAD_LEN + len;
    let bytes = package.get(LEAD_LEN..end).ok_or(EnvelopeError::Truncated)?;
    Ok((Header::parse(bytes)?, end))
}

/// Encrypts a whole package under a fresh random salt.
pub fn encrypt(
    key: &SymmetricKey,
    header: &Header,
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let mut salt = [0u8; SALT_LEN];
    crate::rng::fill(&mut salt)?;
    encrypt_with_salt(key, &salt, header, plaintext)
}

/// Encrypts a whole package with a caller-chosen salt (test vectors only:
/// a salt must never repeat under one key).
pub fn encrypt_with_salt(
    key: &SymmetricKey,
    salt: &[u8; SALT_LEN],
    header: &Header,
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let mut out = header.lead()?;
    let body = chunked::seal_with_salt(key, salt, &header.encode(), plaintext)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decrypts a whole package: header checks, then the commitment, then every
/// chunk. Plaintext is returned only when all of it verified.
pub fn decrypt(
    key: &SymmetricKey,
    package: &[u8],
) -> Result<(Header, Zeroizing<Vec<u8>>), EnvelopeError> {
    let (header, body_at) = parse_lead(package)?;
    let body = &package[body_at..];
    if body.len() < PREFIX_LEN {
        return Err(EnvelopeError::Truncated);
    }
    let plain = chunked::open(key, &package[LEAD_LEN..body_at], body)?;
    Ok((header, plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header::new("acme", "web", "r-1").unwrap()
    }

    #[test]
    fn header_encoding_is_canonical_and_parses_back() {
        let h = header();
        let enc = h.encode();
        assert_eq!(
            enc,
            br#"{"account":"acme","alg":"cobblestone-256","app":"web","release":"r-1","v":1}"#
        );
        assert_eq!(canonical::to_vec(&h).unwrap(), enc);
        assert_eq!(Header::parse(&enc).unwrap(), h);
    }

    #[test]
    fn header_refusals() {
        type Check = fn(&EnvelopeError) -> bool;
        let cases: [(&[u8], Check); 6] = [
            (
                br#"{"account":"a","alg":"cobblestone-256","app":"b","release":"c","v":2}"#,
                |e| matches!(e, EnvelopeError::UnsupportedVersion(2)),
            ),
            (
                br#"{"account":"a","alg":"cobblestone-128","app":"b","release":"c","v":1}"#,
                |e| matches!(e, EnvelopeError::UnsupportedAlgorithm),
            ),
            (
                br#"{"alg":"cobblestone-256","account":"a","app":"b","release":"c","v":1}"#,
                |e| matches!(e, EnvelopeError::Canonical(_)),
            ),
            (
                br#"{"account":"a","alg":"cobblestone-256","app":"b","release":"c","v":1,"x":"y"}"#,
                |e| matches!(e, EnvelopeError::Header(_)),
            ),
            (
                br#"{"account":"a","alg":"cobblestone-256","app":"b","v":1}"#,
                |e| matches!(e, EnvelopeError::Header(_)),
            ),
            (
                br#"{"account":"","alg":"cobblestone-256","app":"b","release":"c","v":1}"#,
                |e| matches!(e, EnvelopeError::Identifier("account")),
            ),
        ];
        for (bytes, want) in cases {
            let e = Header::parse(bytes).unwrap_err();
            assert!(want(&e), "{}: {e:?}", String::from_utf8_lossy(bytes));
        }
        let big = format!(
            r#"{{"account":"{}","alg":"cobblestone-256","app":"b","release":"c","v":1}}"#,
            "a".repeat(5000)
        );
        assert!(matches!(
            Header::parse(big.as_bytes()),
            Err(EnvelopeError::HeaderLength { .. })
        ));
    }

    #[test]
    fn lead_parsing() {
        let k = SymmetricKey::from_bytes([5; 32]);
        let pkg = encrypt(&k, &header(), b"data").unwrap();
        let (h, at) = parse_lead(&pkg).unwrap();
        assert_eq!(h, header());
        assert_eq!(at, LEAD_LEN + header().encode().len());
        let mut bad = pkg.clone();
        bad[0] ^= 1;
        assert!(matches!(parse_lead(&bad), Err(EnvelopeError::PackageMagic)));
        let mut zero = pkg.clone();
        zero[8] = 0;
        zero[9] = 0;
        assert!(matches!(
            parse_lead(&zero),
            Err(EnvelopeError::HeaderLength { len: 0, .. })
        ));
        assert!(matches!(
            parse_lead(&pkg[..5]),
            Err(EnvelopeError::Truncated)
        ));
        let (h2, p) = decrypt(&k, &pkg).unwrap();
        assert_eq!((h2, &p[..]), (header(), &b"data"[..]));
    }
}
