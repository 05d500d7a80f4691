//! Entry points for the fuzz targets in `fuzz/` (one line each there) and
//! for the test that replays their committed corpus: every parser of
//! untrusted bytes, fed arbitrary input. Each returns the parser's result.

use crate::EnvelopeError;

/// Package lead (magic, length, header) from a buffer and from a stream.
pub fn package_header(data: &[u8]) -> Result<(), EnvelopeError> {
    let from_buffer = crate::package::parse_lead(data).map(|(h, _)| h);
    let mut r = data;
    let from_stream = crate::stream::read_header(&mut r).map(|(h, _)| h);
    match (from_buffer, from_stream) {
        (Ok(a), Ok(b)) if a == b => Ok(()),
        (Ok(_), Ok(_)) => Err(EnvelopeError::Header("buffer and stream parsers disagree")),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// A compact JWE: split, size limits, base64url, protected header.
pub fn jwe(data: &[u8]) -> Result<(), EnvelopeError> {
    let s = std::str::from_utf8(data).map_err(|_| EnvelopeError::JweMalformed("not UTF-8"))?;
    crate::jwe::peek(s).map(|_| ())
}

/// A signed release descriptor; a parsed one must re-encode to the same bytes.
pub fn descriptor(data: &[u8]) -> Result<(), EnvelopeError> {
    let d = crate::descriptor::SignedDescriptor::from_json(data)?;
    if d.to_json()? != data {
        return Err(EnvelopeError::Descriptor("re-encoding differs"));
    }
    Ok(())
}

/// A key list.
pub fn keylist(data: &[u8]) -> Result<(), EnvelopeError> {
    crate::keylist::KeyList::from_json(data).map(|_| ())
}

/// A `custody.toml` manifest (parsed on the target from the package).
pub fn manifest(data: &[u8]) -> Result<(), crate::manifest::ManifestError> {
    crate::manifest::Manifest::from_bytes(data).map(|_| ())
}
