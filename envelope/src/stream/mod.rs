//! `std::io` adapters over the pure core: constant-memory streaming
//! encryption and decryption of packages and bare chunked-encryption
//! bodies, single-threaded or on a pool of std threads.
//!
//! Decryption writes plaintext only of chunks that verified, in order, and
//! stops at the first failure. It cannot un-write what an earlier batch
//! released, so a caller stages output (temp file) and publishes it only
//! when the call returned `Ok` — the CLI and the agent do exactly that.

mod buf;
mod file;
mod parallel;
mod serial;

use crate::chunked::{BodyKey, PREFIX_LEN, SALT_LEN};
use crate::package::{self, Header, LEAD_LEN};
use crate::{EnvelopeError, SymmetricKey};
use std::io::{Read, Write};

pub use file::{
    Progress, decrypt_file, decrypt_file_with_progress, encrypt_file, encrypt_file_with_progress,
};
pub use parallel::default_threads;

/// Chunks per batch: 64 × 16 KiB = 1 MiB of plaintext, the unit a worker
/// thread encrypts and the unit of each read and write.
pub const BATCH_CHUNKS: usize = 64;

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> Result<usize, EnvelopeError> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(EnvelopeError::Read(e)),
        }
    }
    Ok(n)
}

fn write_all<W: Write>(output: &mut W, bytes: &[u8]) -> Result<(), EnvelopeError> {
    output.write_all(bytes).map_err(EnvelopeError::Write)
}

fn new_salt() -> Result<[u8; SALT_LEN], EnvelopeError> {
    let mut salt = [0u8; SALT_LEN];
    crate::rng::fill(&mut salt)?;
    Ok(salt)
}

fn start_body<W: Write>(
    key: &SymmetricKey,
    salt: &[u8; SALT_LEN],
    context: &[u8],
    output: &mut W,
) -> Result<BodyKey, EnvelopeError> {
    let (body_key, commitment) = BodyKey::derive(key, salt, context);
    write_all(output, salt)?;
    write_all(output, &commitment)?;
    Ok(body_key)
}

fn open_body<R: Read>(
    key: &SymmetricKey,
    context: &[u8],
    input: &mut R,
) -> Result<BodyKey, EnvelopeError> {
    let mut prefix = [0u8; PREFIX_LEN];
    if read_full(input, &mut prefix)? < PREFIX_LEN {
        return Err(EnvelopeError::Truncated);
    }
    BodyKey::open_prefix(key, &prefix, context)
}

/// Number of worker threads to use: `threads` if non-zero, else the
/// machine's available parallelism.
fn workers(threads: usize) -> usize {
    if threads == 0 {
        default_threads()
    } else {
        threads
    }
}

// ---- bare bodies (arbitrary context): the C2SP scheme itself ----

/// Encrypts a chunked-encryption body (salt ‖ commitment ‖ chunks) with a
/// caller-chosen salt, single-threaded. Test vectors only: never reuse a salt.
pub fn encrypt_body_with_salt<R: Read, W: Write>(
    key: &SymmetricKey,
    salt: &[u8; SALT_LEN],
    context: &[u8],
    mut input: R,
    mut output: W,
) -> Result<u64, EnvelopeError> {
    let body_key = start_body(key, salt, context, &mut output)?;
    serial::seal(&body_key, &mut input, &mut output)
}

/// Encrypts a chunked-encryption body under a fresh salt, single-threaded.
/// Returns the plaintext length.
pub fn encrypt_body<R: Read, W: Write>(
    key: &SymmetricKey,
    context: &[u8],
    input: R,
    output: W,
) -> Result<u64, EnvelopeError> {
    encrypt_body_with_salt(key, &new_salt()?, context, input, output)
}

/// Encrypts a chunked-encryption body on `threads` workers (0 = all cores).
pub fn encrypt_body_parallel<R: Read, W: Write>(
    key: &SymmetricKey,
    context: &[u8],
    mut input: R,
    mut output: W,
    threads: usize,
) -> Result<u64, EnvelopeError> {
    let body_key = start_body(key, &new_salt()?, context, &mut output)?;
    parallel::run(
        &body_key,
        &mut input,
        &mut output,
        workers(threads),
        parallel::Op::Seal,
    )
}

/// Decrypts a chunked-encryption body, single-threaded: commitment first,
/// then chunk by chunk. Returns the plaintext length.
pub fn decrypt_body<R: Read, W: Write>(
    key: &SymmetricKey,
    context: &[u8],
    mut input: R,
    mut output: W,
) -> Result<u64, EnvelopeError> {
    let body_key = open_body(key, context, &mut input)?;
    serial::open(&body_key, &mut input, &mut output)
}

/// Decrypts a chunked-encryption body on `threads` workers (0 = all cores).
pub fn decrypt_body_parallel<R: Read, W: Write>(
    key: &SymmetricKey,
    context: &[u8],
    mut input: R,
    mut output: W,
    threads: usize,
) -> Result<u64, EnvelopeError> {
    let body_key = open_body(key, context, &mut input)?;
    parallel::run(
        &body_key,
        &mut input,
        &mut output,
        workers(threads),
        parallel::Op::Open,
    )
}

// ---- packages ----

/// Reads and parses a package's magic, length and header from a stream.
/// Returns the header and its exact bytes (the body's context).
pub fn read_header<R: Read>(input: &mut R) -> Result<(Header, Vec<u8>), EnvelopeError> {
    let mut lead = [0u8; LEAD_LEN];
    let n = read_full(input, &mut lead)?;
    if n >= package::MAGIC.len() && &lead[..package::MAGIC.len()] != package::MAGIC {
        return Err(EnvelopeError::PackageMagic);
    }
    if n < LEAD_LEN {
        return Err(EnvelopeError::Truncated);
    }
    let len = package::header_len(&lead)?;
    let mut bytes = vec![0u8; len];
    if read_full(input, &mut bytes)? < len {
        return Err(EnvelopeError::Truncated);
    }
    Ok((Header::parse(&bytes)?, bytes))
}

/// Encrypts a package single-threaded. Returns the plaintext length.
pub fn encrypt_stream<R: Read, W: Write>(
    key: &SymmetricKey,
    header: &Header,
    input: R,
    mut output: W,
) -> Result<u64, EnvelopeError> {
    write_all(&mut output, &header.lead()?)?;
    encrypt_body(key, &header.encode(), input, output)
}

/// Encrypts a package on `threads` workers (0 = all cores).
pub fn encrypt_parallel<R: Read, W: Write>(
    key: &SymmetricKey,
    header: &Header,
    input: R,
    mut output: W,
    threads: usize,
) -> Result<u64, EnvelopeError> {
    write_all(&mut output, &header.lead()?)?;
    encrypt_body_parallel(key, &header.encode(), input, output, threads)
}

/// Decrypts a package single-threaded. Returns its header; the caller
/// checks it is the release it expected.
pub fn decrypt_stream<R: Read, W: Write>(
    key: &SymmetricKey,
    mut input: R,
    output: W,
) -> Result<Header, EnvelopeError> {
    let (header, context) = read_header(&mut input)?;
    decrypt_body(key, &context, input, output)?;
    Ok(header)
}

/// Decrypts a package on `threads` workers (0 = all cores).
pub fn decrypt_parallel<R: Read, W: Write>(
    key: &SymmetricKey,
    mut input: R,
    output: W,
    threads: usize,
) -> Result<Header, EnvelopeError> {
    let (header, context) = read_header(&mut input)?;
    decrypt_body_parallel(key, &context, input, output, threads)?;
    Ok(header)
}
