//! Small envelopes: JWE compact serialization (RFC 7516).
//!
//! - [`wrap`]: `RSA-OAEP-256` (or `RSA-OAEP` for SHA-1-only hardware) +
//!   `A256GCM`, to an RSA public key. Opening ([`open_wrapped`]) takes a
//!   caller-supplied unwrap function: the private-key operation happens in
//!   the HSM/TPM, never here.
//! - [`seal`]: `dir` + `A256GCM` under a [`SymmetricKey`](crate::SymmetricKey).
//!
//! Both carry their binding in the protected header: `kid` (the recipient's
//! RFC 7638 thumbprint for `wrap`, the key's id for `seal`) and a
//! `custody` member, listed in `crit`, with the format version, the purpose
//! and the ids the object belongs to. Opening checks all of them against
//! what the caller expects *before* any key operation, and every part's
//! size before decoding it.

pub mod content;
mod header;
mod seal;
mod wrap;

pub use header::{Binding, ProtectedHeader, Purpose};
pub use seal::{open_sealed, seal};
pub use wrap::{OpenError, open_wrapped, thumbprint, wrap};

use crate::EnvelopeError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Longest compact JWE accepted, in bytes (checked before anything else).
pub const MAX_JWE_LEN: usize = 2 * 1024 * 1024;
/// Longest plaintext `wrap`/`seal` accept (1 MiB).
pub const MAX_PLAINTEXT_LEN: usize = 1024 * 1024;
/// Longest encoded protected header.
pub const MAX_HEADER_B64_LEN: usize = 4096;
/// Longest encoded encrypted key (RSA up to 8192 bits).
pub const MAX_EK_B64_LEN: usize = 1366;
const IV_B64_LEN: usize = 16;
const TAG_B64_LEN: usize = 22;
const MAX_CT_B64_LEN: usize = MAX_PLAINTEXT_LEN.div_ceil(3) * 4;

/// `enc` of every Custody JWE.
pub const ENC: &str = "A256GCM";
/// `alg` of a sealed JWE.
pub const ALG_DIR: &str = "dir";
/// The one critical header parameter.
pub const CRIT: &str = "custody";

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn unb64(part: &'static str, s: &str) -> Result<Vec<u8>, EnvelopeError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| EnvelopeError::JweMalformed(part))
}

/// The five parts of a compact JWE, size-checked, header decoded and parsed.
pub(crate) struct Parts<'a> {
    pub header_b64: &'a str,
    pub header: ProtectedHeader,
    pub encrypted_key: Vec<u8>,
    pub iv: [u8; content::IV_LEN],
    pub ciphertext: Vec<u8>,
    pub tag: [u8; content::TAG_LEN],
}

pub(crate) fn split(jwe: &str) -> Result<Parts<'_>, EnvelopeError> {
    if jwe.len() > MAX_JWE_LEN {
        return Err(EnvelopeError::JweTooLarge("JWE"));
    }
    let mut it = jwe.split('.');
    let (Some(h), Some(ek), Some(iv), Some(ct), Some(tag), None) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return Err(EnvelopeError::JweMalformed("not five dot-separated parts"));
    };
    if h.len() > MAX_HEADER_B64_LEN {
        return Err(EnvelopeError::JweTooLarge("protected header"));
    }
    if ek.len() > MAX_EK_B64_LEN {
        return Err(EnvelopeError::JweTooLarge("encrypted key"));
    }
    if ct.len() > MAX_CT_B64_LEN {
        return Err(EnvelopeError::JweTooLarge("ciphertext"));
    }
    if iv.len() != IV_B64_LEN {
        return Err(EnvelopeError::JweMalformed("IV length"));
    }
    if tag.len() != TAG_B64_LEN {
        return Err(EnvelopeError::JweMalformed("tag length"));
    }
    let header = ProtectedHeader::parse(&unb64("protected header", h)?)?;
    let mut iv_b = [0u8; content::IV_LEN];
    iv_b.copy_from_slice(
        unb64("IV", iv)?
            .get(..content::IV_LEN)
            .ok_or(EnvelopeError::JweMalformed("IV length"))?,
    );
    let mut tag_b = [0u8; content::TAG_LEN];
    tag_b.copy_from_slice(
        unb64("tag", tag)?
            .get(..content::TAG_LEN)
            .ok_or(EnvelopeError::JweMalformed("tag length"))?,
    );
    Ok(Parts {
        header_b64: h,
        header,
        encrypted_key: unb64("encrypted key", ek)?,
        iv: iv_b,
        ciphertext: unb64("ciphertext", ct)?,
        tag: tag_b,
    })
}

pub(crate) fn join(header_b64: &str, ek: &[u8], iv: &[u8], ct: &[u8], tag: &[u8]) -> String {
    let mut s = String::with_capacity(header_b64.len() + (ek.len() + ct.len()) * 4 / 3 + 48);
    s.push_str(header_b64);
    for part in [ek, iv, ct, tag] {
        s.push('.');
        s.push_str(&b64(part));
    }
    s
}

/// Parses a JWE's protected header without checking or decrypting anything
/// (for routing and inspection: nothing in it is trusted yet).
pub fn peek(jwe: &str) -> Result<ProtectedHeader, EnvelopeError> {
    Ok(split(jwe)?.header)
}

/// Common checks of `enc`, `crit` and the binding.
pub(crate) fn check_common(h: &ProtectedHeader, expected: &Binding) -> Result<(), EnvelopeError> {
    if h.enc != ENC {
        return Err(EnvelopeError::JweAlgorithm);
    }
    if h.crit.len() != 1 || h.crit[0] != CRIT {
        return Err(EnvelopeError::JweCrit);
    }
    if &h.binding != expected {
        return Err(EnvelopeError::JweBinding);
    }
    Ok(())
}
