//! Reading a release key file: exactly 32 raw bytes, or 64 hexadecimal
//! characters (surrounding whitespace allowed).

use anyhow::{Context, bail};
use custody_envelope::SymmetricKey;
use std::io::Read;
use std::path::Path;
use zeroize::Zeroizing;

pub fn load(path: &Path) -> anyhow::Result<SymmetricKey> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("cannot open key file {}", path.display()))?;
    let mut buf = Zeroizing::new(Vec::with_capacity(130));
    f.take(129)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    parse(&buf).with_context(|| format!("key file {}", path.display()))
}

pub fn parse(bytes: &[u8]) -> anyhow::Result<SymmetricKey> {
    if bytes.len() == 32 {
        return Ok(SymmetricKey::from_slice(bytes)?);
    }
    let text = bytes.trim_ascii();
    if text.len() == 64 {
        let mut key = Zeroizing::new([0u8; 32]);
        if hex::decode_to_slice(text, &mut key[..]).is_ok() {
            return Ok(SymmetricKey::from_bytes(*key));
        }
    }
    bail!("must hold 32 raw bytes or 64 hex characters")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_hex() {
        assert_eq!(parse(&[7u8; 32]).unwrap().as_bytes(), &[7u8; 32]);
        let hex = format!("{}\n", "ab".repeat(32));
        assert_eq!(parse(hex.as_bytes()).unwrap().as_bytes(), &[0xab; 32]);
        assert!(parse(&[7u8; 31]).is_err());
        assert!(parse("zz".repeat(32).as_bytes()).is_err());
        assert!(parse(&[]).is_err());
    }
}
