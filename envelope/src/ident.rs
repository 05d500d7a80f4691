//! Rules for the identifiers bound into every format: account, app,
//! release, deployment, key ids, secret variable names.

use crate::EnvelopeError;

/// Longest identifier accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;

/// An identifier is 1..=256 bytes of UTF-8 without control characters.
pub fn check(field: &'static str, s: &str) -> Result<(), EnvelopeError> {
    if s.is_empty() || s.len() > MAX_ID_LEN || s.chars().any(char::is_control) {
        return Err(EnvelopeError::Identifier(field));
    }
    Ok(())
}

/// [`check`] for an optional identifier.
pub fn check_opt(field: &'static str, s: Option<&str>) -> Result<(), EnvelopeError> {
    s.map_or(Ok(()), |s| check(field, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert!(check("app", "web-1.2_ü").is_ok());
        assert!(check("app", &"a".repeat(256)).is_ok());
        for bad in ["", "a\nb", "\u{7f}", "\u{85}", &"a".repeat(257)] {
            assert!(matches!(
                check("app", bad),
                Err(EnvelopeError::Identifier("app"))
            ));
        }
    }
}
