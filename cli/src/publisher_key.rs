//! The publisher signing key file that `custody keygen` writes and
//! `custody push` signs release descriptors with.
//!
//! Format: an Ed25519 private key as unencrypted PKCS#8 (RFC 8410 §7) in
//! PEM, label `PRIVATE KEY` — the same file `openssl genpkey -algorithm
//! ed25519` writes, so either tool can make it and
//! `openssl pkey -in FILE -pubout` can read it. The DER is exactly 48
//! bytes: the fixed prefix [`PKCS8_PREFIX`] then the 32-byte seed. Nothing
//! else (no encryption, no attributes, no embedded public key) is accepted.
//!
//! The file is created 0600 and refused when group or others can read it.
//! Targets pin the public half as 64 hexadecimal digits
//! (`[target] publisher_keys` in the agent configuration).

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use custody_envelope::descriptor::PublisherKey;
use ed25519_dalek::SigningKey;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use zeroize::Zeroizing;

/// DER prefix of an RFC 8410 Ed25519 `PrivateKeyInfo` (version 0,
/// algorithm id-Ed25519 1.3.101.112, an OCTET STRING holding the 32-byte
/// seed as an OCTET STRING).
pub const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const END: &str = "-----END PRIVATE KEY-----";
/// Largest key file read.
const MAX_FILE_LEN: u64 = 4096;

/// The public half as the agent configuration pins it: 64 hex digits.
pub fn public_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().as_bytes())
}

/// The key id a signed descriptor names (base64url SHA-256 of the public key).
pub fn key_id(key: &SigningKey) -> String {
    PublisherKey::new(key.verifying_key()).key_id
}

/// A fresh key from the operating system's generator.
pub fn generate() -> Result<SigningKey> {
    let mut seed = Zeroizing::new([0u8; 32]);
    custody_envelope::rng::fill(seed.as_mut()).context("generating the key")?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The PEM text of `key` (secret: the caller writes it 0600).
pub fn to_pem(key: &SigningKey) -> Zeroizing<String> {
    let mut der = Zeroizing::new(Vec::with_capacity(48));
    der.extend_from_slice(&PKCS8_PREFIX);
    der.extend_from_slice(key.as_bytes());
    let b64 = Zeroizing::new(STANDARD.encode(der.as_slice()));
    Zeroizing::new(format!("{BEGIN}\n{}\n{END}\n", b64.as_str()))
}

/// Parses the PEM text.
pub fn from_pem(text: &str) -> Result<SigningKey> {
    let text = text.trim();
    let body = text
        .strip_prefix(BEGIN)
        .and_then(|t| t.strip_suffix(END))
        .context("not a PEM `PRIVATE KEY` (PKCS#8) file")?;
    let b64: Zeroizing<String> = Zeroizing::new(body.split_whitespace().collect());
    let der = Zeroizing::new(
        STANDARD
            .decode(b64.as_bytes())
            .ok()
            .context("the PEM body is not base64")?,
    );
    if der.len() != 48 || der[..16] != PKCS8_PREFIX {
        bail!("not an unencrypted Ed25519 PKCS#8 key (RFC 8410)");
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&der[16..]);
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads a key file, refusing one that group or others can read.
pub fn load(path: &Path) -> Result<SigningKey> {
    let f = std::fs::File::open(path).with_context(|| {
        format!(
            "cannot open the publisher key {} (make one with `custody keygen`)",
            path.display()
        )
    })?;
    let mode = f
        .metadata()
        .with_context(|| format!("cannot stat {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "the publisher key {} is readable by others (mode {:04o}): chmod 600 it",
            path.display(),
            mode & 0o7777
        );
    }
    let mut text = Zeroizing::new(String::new());
    f.take(MAX_FILE_LEN)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    from_pem(&text).with_context(|| format!("publisher key {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_and_refusals() {
        let k = SigningKey::from_bytes(&[0x5e; 32]);
        let pem = to_pem(&k);
        assert!(pem.starts_with(BEGIN));
        let back = from_pem(&pem).unwrap();
        assert_eq!(back.as_bytes(), k.as_bytes());
        // FORMAT.md's descriptor vector: seed 5e×32.
        assert_eq!(
            public_hex(&k),
            "8146640f02493af4fbc54fe33388e75dc2c937ae0b7727cc2b2afb1b75199a3e"
        );
        assert_eq!(key_id(&k), "i4HIYmgbcSs1QXcPyudIqTHW7zw7gX_m9xuNrSDpbQc");
        // Another algorithm's OID (X25519, 1.3.101.110) is refused.
        let mut der = PKCS8_PREFIX.to_vec();
        der[11] = 0x6e;
        der.extend_from_slice(&[1; 32]);
        let x = format!("{BEGIN}\n{}\n{END}\n", STANDARD.encode(&der));
        assert!(from_pem(&x).is_err());
        assert!(from_pem("-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----").is_err());
        assert!(from_pem(&format!("{BEGIN}\n!!\n{END}")).is_err());
    }

    #[test]
    fn reads_what_openssl_writes() {
        // `openssl genpkey -algorithm ed25519` output for a known seed.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEIF5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5e\n\
                   -----END PRIVATE KEY-----\n";
        assert_eq!(from_pem(pem).unwrap().as_bytes(), &[0x5e; 32]);
    }

    #[test]
    fn load_refuses_readable_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.pem");
        std::fs::write(&p, to_pem(&SigningKey::from_bytes(&[1; 32])).as_bytes()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(&p).is_err());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load(&p).unwrap().as_bytes(), &[1; 32]);
    }
}
