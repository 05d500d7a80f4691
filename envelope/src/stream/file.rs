//! Files to files with positional I/O: every worker thread reads its own
//! batch (`pread`), encrypts or decrypts it in its own buffers and writes
//! it at its final offset (`pwrite`). Chunk positions are fixed by the
//! format, so batches need no ordering, and the kernel's copies — on tmpfs
//! and in the page cache they cost more than AES-GCM — run on every core
//! instead of one.
//!
//! Decryption writes only batches whose chunks all verified, but possibly
//! out of order: the output must be a staged file that the caller renames
//! into place only on `Ok` and removes otherwise (as the CLI does).

use super::buf::SecretBuf;
use super::{BATCH_CHUNKS, new_salt};
use crate::chunked::{BodyKey, CHUNK_LEN, PREFIX_LEN, SEALED_CHUNK_LEN};
use crate::package::{self, Header, LEAD_LEN};
use crate::{EnvelopeError, SymmetricKey};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Reads at `offset` until `buf` is full or the file ends.
fn read_at_full(f: &File, buf: &mut [u8], offset: u64) -> Result<usize, EnvelopeError> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(EnvelopeError::Read(e)),
        }
    }
    Ok(n)
}

fn file_len(f: &File) -> Result<u64, EnvelopeError> {
    f.metadata().map(|m| m.len()).map_err(EnvelopeError::Read)
}

fn changed() -> EnvelopeError {
    EnvelopeError::Read(std::io::Error::other("input changed while it was read"))
}

/// One run over a body: `batches` batches of `in_batch` input bytes from
/// `in_base`, output at `out_base` in steps of `out_batch`.
struct Plan<'a> {
    key: &'a BodyKey,
    input: &'a File,
    output: &'a File,
    seal: bool,
    in_base: u64,
    in_len: u64,
    out_base: u64,
    batches: u64,
    progress: &'a (dyn Fn(u64) + Sync),
}

/// A progress callback: called with the input bytes each finished batch covered.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

fn no_progress(_: u64) {}

impl Plan<'_> {
    fn in_batch(&self) -> u64 {
        (BATCH_CHUNKS
            * if self.seal {
                CHUNK_LEN
            } else {
                SEALED_CHUNK_LEN
            }) as u64
    }
    fn out_batch(&self) -> u64 {
        (BATCH_CHUNKS
            * if self.seal {
                SEALED_CHUNK_LEN
            } else {
                CHUNK_LEN
            }) as u64
    }

    /// Does batch `k`; returns the plaintext bytes it covered.
    fn batch(
        &self,
        k: u64,
        inb: &mut SecretBuf,
        outb: &mut SecretBuf,
    ) -> Result<u64, EnvelopeError> {
        let start = k * self.in_batch();
        let len = usize::try_from(self.in_len.saturating_sub(start).min(self.in_batch()))
            .map_err(|_| EnvelopeError::TooManyChunks)?;
        let n = inb.fill(|b| read_at_full(self.input, &mut b[..len], self.in_base + start))?;
        if n < len {
            return Err(if self.seal {
                changed()
            } else {
                EnvelopeError::Truncated
            });
        }
        let last = k + 1 == self.batches;
        let first_chunk = k * BATCH_CHUNKS as u64;
        let input = inb.get(n);
        let w = if self.seal {
            outb.fill_verified(|o| self.key.seal_run(first_chunk, input, o, last))?
        } else {
            outb.fill_verified(|o| self.key.open_run(first_chunk, input, o, last))?
        };
        self.output
            .write_all_at(outb.get(w), self.out_base + k * self.out_batch())
            .map_err(EnvelopeError::Write)?;
        (self.progress)(n as u64);
        Ok(if self.seal { n as u64 } else { w as u64 })
    }

    /// Runs all batches on `threads` threads (the caller's included).
    /// Reports the error of the lowest failing batch.
    fn run(&self, threads: usize) -> Result<u64, EnvelopeError> {
        let next = AtomicU64::new(0);
        let stop = AtomicBool::new(false);
        let total = AtomicU64::new(0);
        let first_error: Mutex<Option<(u64, EnvelopeError)>> = Mutex::new(None);
        let worker = || {
            let mut inb = SecretBuf::new(self.in_batch() as usize);
            let mut outb = SecretBuf::new(self.out_batch() as usize);
            while !stop.load(Ordering::Relaxed) {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= self.batches {
                    break;
                }
                match self.batch(k, &mut inb, &mut outb) {
                    Ok(n) => {
                        total.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        if let Ok(mut slot) = first_error.lock()
                            && slot.as_ref().is_none_or(|(j, _)| k < *j)
                        {
                            *slot = Some((k, e));
                        }
                        break;
                    }
                }
            }
        };
        std::thread::scope(|s| {
            for _ in 1..threads.max(1) {
                s.spawn(worker);
            }
            worker();
        });
        match first_error.into_inner() {
            Ok(Some((_, e))) => Err(e),
            Ok(None) => Ok(total.into_inner()),
            Err(_) => Err(EnvelopeError::Worker("a worker thread panicked")),
        }
    }
}

/// After a run: the input must still be exactly `len` bytes long.
fn check_unchanged(input: &File, len: u64) -> Result<(), EnvelopeError> {
    let mut probe = [0u8; 1];
    if file_len(input)? != len || read_at_full(input, &mut probe, len)? != 0 {
        return Err(changed());
    }
    Ok(())
}

/// Encrypts the file `input` into the package file `output` (written from
/// offset 0 and set to its final length) on `threads` threads (0 = all
/// cores). Returns the plaintext length.
pub fn encrypt_file(
    key: &SymmetricKey,
    header: &Header,
    input: &File,
    output: &File,
    threads: usize,
) -> Result<u64, EnvelopeError> {
    encrypt_file_with_progress(key, header, input, output, threads, &no_progress)
}

/// [`encrypt_file`], reporting progress.
pub fn encrypt_file_with_progress(
    key: &SymmetricKey,
    header: &Header,
    input: &File,
    output: &File,
    threads: usize,
    progress: Progress<'_>,
) -> Result<u64, EnvelopeError> {
    let mut head = header.lead()?;
    let salt = new_salt()?;
    let (body_key, commitment) = BodyKey::derive(key, &salt, &header.encode());
    head.extend_from_slice(&salt);
    head.extend_from_slice(&commitment);
    let in_len = file_len(input)?;
    let total_len = (head.len() - PREFIX_LEN) as u64 + crate::chunked::sealed_len(in_len);
    output.set_len(total_len).map_err(EnvelopeError::Write)?;
    output
        .write_all_at(&head, 0)
        .map_err(EnvelopeError::Write)?;
    let plan = Plan {
        key: &body_key,
        input,
        output,
        seal: true,
        in_base: 0,
        in_len,
        out_base: head.len() as u64,
        batches: in_len / (BATCH_CHUNKS * CHUNK_LEN) as u64 + 1,
        progress,
    };
    plan.run(super::workers(threads))?;
    check_unchanged(input, in_len)?;
    Ok(in_len)
}

/// Decrypts the package file `input` into `output` (a staged file: see the
/// module docs) on `threads` threads (0 = all cores). Header checks and
/// the key commitment come first; returns the header.
pub fn decrypt_file(
    key: &SymmetricKey,
    input: &File,
    output: &File,
    threads: usize,
) -> Result<Header, EnvelopeError> {
    decrypt_file_with_progress(key, input, output, threads, &no_progress)
}

/// [`decrypt_file`], reporting progress.
pub fn decrypt_file_with_progress(
    key: &SymmetricKey,
    input: &File,
    output: &File,
    threads: usize,
    progress: Progress<'_>,
) -> Result<Header, EnvelopeError> {
    let in_len = file_len(input)?;
    let mut lead = [0u8; LEAD_LEN];
    let n = read_at_full(input, &mut lead, 0)?;
    if n >= package::MAGIC.len() && &lead[..package::MAGIC.len()] != package::MAGIC {
        return Err(EnvelopeError::PackageMagic);
    }
    if n < LEAD_LEN {
        return Err(EnvelopeError::Truncated);
    }
    let h_len = package::header_len(&lead)?;
    let mut rest = vec![0u8; h_len + PREFIX_LEN];
    if read_at_full(input, &mut rest, LEAD_LEN as u64)? < rest.len() {
        return Err(EnvelopeError::Truncated);
    }
    let (header_bytes, prefix) = rest.split_at(h_len);
    let header = Header::parse(header_bytes)?;
    let prefix: &[u8; PREFIX_LEN] = prefix.try_into().map_err(|_| EnvelopeError::Truncated)?;
    let body_key = BodyKey::open_prefix(key, prefix, header_bytes)?;
    let in_base = (LEAD_LEN + h_len + PREFIX_LEN) as u64;
    let body_len = in_len
        .checked_sub(in_base)
        .ok_or(EnvelopeError::Truncated)?;
    let out_len =
        body_len - (body_len / SEALED_CHUNK_LEN as u64) * (SEALED_CHUNK_LEN - CHUNK_LEN) as u64;
    output
        .set_len(out_len.saturating_sub(crate::chunked::TAG_LEN as u64))
        .map_err(EnvelopeError::Write)?;
    let plan = Plan {
        key: &body_key,
        input,
        output,
        seal: false,
        in_base,
        in_len: body_len,
        out_base: 0,
        batches: body_len / (BATCH_CHUNKS * SEALED_CHUNK_LEN) as u64 + 1,
        progress,
    };
    let written = plan.run(super::workers(threads))?;
    check_unchanged(input, in_len)?;
    output.set_len(written).map_err(EnvelopeError::Write)?;
    Ok(header)
}
