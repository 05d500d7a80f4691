//! Opaque identifiers and names: what a valid one looks like.
//!
//! Ids are made by the coordinator (a short kind prefix and a UUIDv7,
//! e.g. `srv_0192…`); clients treat them as opaque. Names are chosen by
//! people. Both are limited in length and alphabet so they are safe in
//! URLs, logs and file names.

/// Longest id or name accepted anywhere.
pub const MAX_ID_LEN: usize = 64;

/// Why an id or a name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Empty string.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// Longer than [`MAX_ID_LEN`].
    #[error("{0} is longer than {MAX_ID_LEN} characters")]
    TooLong(&'static str),
    /// A character outside `A-Z a-z 0-9 _ - .` (or a leading `.`).
    #[error("{0} may contain only letters, digits, '_', '-' and '.' (not leading)")]
    BadCharacter(&'static str),
}

/// Checks an id or a name; `what` names it in the error.
pub fn validate(what: &'static str, s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty(what));
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong(what));
    }
    if s.starts_with('.')
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(IdError::BadCharacter(what));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses() {
        assert_eq!(validate("app", "securekeys-dev_1.2"), Ok(()));
        assert_eq!(validate("app", ""), Err(IdError::Empty("app")));
        assert_eq!(
            validate("app", &"a".repeat(65)),
            Err(IdError::TooLong("app"))
        );
        assert_eq!(validate("app", "../etc"), Err(IdError::BadCharacter("app")));
        assert_eq!(validate("app", "a b"), Err(IdError::BadCharacter("app")));
        assert_eq!(
            validate("app", ".hidden"),
            Err(IdError::BadCharacter("app"))
        );
    }
}
