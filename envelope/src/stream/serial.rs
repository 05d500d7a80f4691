//! Single-threaded streaming over reused 1 MiB buffers.

use super::buf::SecretBuf;
use super::{BATCH_CHUNKS, read_full, write_all};
use crate::EnvelopeError;
use crate::chunked::{BodyKey, CHUNK_LEN, SEALED_CHUNK_LEN};
use std::io::{Read, Write};

/// Encrypts everything `input` yields as chunks 0, 1, …; the last chunk is
/// short (possibly empty). Returns the plaintext length.
pub(super) fn seal<R: Read, W: Write>(
    key: &BodyKey,
    input: &mut R,
    output: &mut W,
) -> Result<u64, EnvelopeError> {
    let mut plain = SecretBuf::new(BATCH_CHUNKS * CHUNK_LEN);
    let mut sealed = vec![0u8; BATCH_CHUNKS * SEALED_CHUNK_LEN];
    let mut index = 0u64;
    let mut total = 0u64;
    loop {
        let n = plain.fill(|b| read_full(input, b))?;
        let last = n < plain.len();
        let w = key.seal_run(index, plain.get(n), &mut sealed, last)?;
        write_all(output, &sealed[..w])?;
        index += (n / CHUNK_LEN) as u64;
        total += n as u64;
        if last {
            return Ok(total);
        }
    }
}

/// Decrypts chunks 0, 1, … until the short final chunk; writes each batch
/// only after all of its chunks verified. Returns the plaintext length.
pub(super) fn open<R: Read, W: Write>(
    key: &BodyKey,
    input: &mut R,
    output: &mut W,
) -> Result<u64, EnvelopeError> {
    let mut sealed = vec![0u8; BATCH_CHUNKS * SEALED_CHUNK_LEN];
    let mut plain = SecretBuf::new(BATCH_CHUNKS * CHUNK_LEN);
    let mut index = 0u64;
    let mut total = 0u64;
    loop {
        let n = read_full(input, &mut sealed)?;
        let last = n < sealed.len();
        let w = plain.fill_verified(|b| key.open_run(index, &sealed[..n], b, last))?;
        write_all(output, plain.get(w))?;
        index += (n / SEALED_CHUNK_LEN) as u64;
        total += w as u64;
        if last {
            return Ok(total);
        }
    }
}
