//! The one error type of the envelope crate.
//!
//! Every variant names the operation that failed. None carries secret
//! material, and none echoes attacker-chosen bytes: a reason is a
//! `&'static str` chosen by this crate.

use std::io;

/// Everything that can go wrong while building or opening a Custody format.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The operating system's random number generator failed.
    #[error("random number generation failed")]
    Random,

    /// A key had the wrong length.
    #[error("key has {got} bytes, expected {expected}")]
    KeyLength {
        /// Bytes required.
        expected: usize,
        /// Bytes given.
        got: usize,
    },

    /// JSON did not follow the canonical (RFC 8785) form, or uses a value
    /// outside the subset Custody allows (no floats, no null, integers within ±2^53).
    #[error("canonical JSON: {0}")]
    Canonical(&'static str),

    /// The file does not start with the `CUSTODY\0` magic.
    #[error("package: not a Custody package (bad magic)")]
    PackageMagic,

    /// The package header's length field is zero or over the limit.
    #[error("package header: length {len} is outside 1..={max}")]
    HeaderLength {
        /// The length found.
        len: usize,
        /// The largest length accepted.
        max: usize,
    },

    /// The package header is not valid: bad JSON, missing or unknown
    /// fields, or a field outside its limits.
    #[error("package header: {0}")]
    Header(&'static str),

    /// The package (or another versioned object) has a format version this
    /// reader does not know.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u64),

    /// The package names an algorithm this reader does not know.
    #[error("package header: unsupported algorithm")]
    UnsupportedAlgorithm,

    /// An identifier (account, app, release, deployment, key id, name) is
    /// empty, too long or contains control characters.
    #[error("invalid identifier in field `{0}`")]
    Identifier(&'static str),

    /// The key commitment does not match: the key is wrong, or the body
    /// was encrypted under another header (context). No chunk was opened.
    #[error("package body: key commitment mismatch (wrong key, or body belongs to another header)")]
    Commitment,

    /// A chunk failed authentication (modified, reordered, spliced or
    /// followed by trailing data). Nothing of this chunk was released.
    #[error("package body: chunk {index} failed authentication")]
    ChunkAuthentication {
        /// Zero-based chunk number.
        index: u64,
    },

    /// The ciphertext ends before its short final chunk, or inside the
    /// salt/commitment prefix, or inside the package header.
    #[error("package: truncated")]
    Truncated,

    /// The message would exceed 2^38 chunks (4 PiB).
    #[error("package body: too many chunks")]
    TooManyChunks,

    /// Reading the input failed.
    #[error("reading input failed")]
    Read(#[source] io::Error),

    /// Writing the output failed.
    #[error("writing output failed")]
    Write(#[source] io::Error),

    /// A worker thread of the parallel driver could not be started or died.
    #[error("parallel driver: {0}")]
    Worker(&'static str),

    /// A JWE is malformed: wrong number of parts, bad base64, bad JSON,
    /// unknown or missing header fields.
    #[error("JWE: malformed ({0})")]
    JweMalformed(&'static str),

    /// A JWE (or one of its parts) exceeds its size limit; it was not decoded.
    #[error("JWE: {0} exceeds its size limit")]
    JweTooLarge(&'static str),

    /// A JWE uses an `alg` / `enc` this operation does not accept.
    #[error("JWE: unsupported algorithm for this operation")]
    JweAlgorithm,

    /// A JWE's `crit` is not exactly `["custody"]`.
    #[error("JWE: crit must be exactly [\"custody\"]")]
    JweCrit,

    /// A JWE's `kid` is not the expected recipient or key.
    #[error("JWE: addressed to another key (kid mismatch)")]
    JweKid,

    /// A JWE's binding (purpose, account, app, release, deployment, name)
    /// differs from the one the caller expected.
    #[error("JWE: bound to another purpose or object")]
    JweBinding,

    /// A JWE's content failed to decrypt (wrong key or modified). One
    /// indistinguishable error for every cause.
    #[error("JWE: decryption failed")]
    JweDecrypt,

    /// RSA-OAEP encryption to the recipient's public key failed (e.g. the
    /// key is too small).
    #[error("JWE: RSA-OAEP wrap failed")]
    Wrap,

    /// A key list is not valid.
    #[error("key list: {0}")]
    KeyList(&'static str),

    /// A release descriptor is not valid.
    #[error("release descriptor: {0}")]
    Descriptor(&'static str),

    /// A release descriptor was signed by a key that is not pinned.
    #[error("release descriptor: signed by an unknown publisher key")]
    UnknownPublisher,

    /// A release descriptor's signature does not verify.
    #[error("release descriptor: signature invalid")]
    Signature,
}
