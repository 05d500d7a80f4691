//! Encrypting the release tar into a package file: the tar streams from
//! its thread through the parallel encryptor into a temporary file (only
//! ciphertext is written), hashed on the way.

use super::tarball::{self, Selection};
use crate::progress::Bar;
use anyhow::{Context, Result};
use custody_envelope::SymmetricKey;
use custody_envelope::package::Header;
use custody_envelope::stream;
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::sync::Arc;

/// The encrypted package, in a temporary file removed on drop.
pub struct Package {
    /// The file.
    pub file: tempfile::TempPath,
    /// SHA-256 of the whole file.
    pub sha256: [u8; 32],
    /// Its size.
    pub size: u64,
}

/// Hashes and counts what passes through to the file.
struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Counts plaintext bytes for the progress bar.
struct Counting<R> {
    inner: R,
    bar: Bar,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// Builds the package of `sel` under `key` and `header`.
pub fn encrypt(sel: Arc<Selection>, key: &SymmetricKey, header: &Header) -> Result<Package> {
    let tmp = tempfile::Builder::new()
        .prefix(".custody-push-")
        .suffix(".pkg")
        .tempfile()
        .context("creating a temporary file for the package (set TMPDIR to choose where)")?;
    let (file, path) = tmp.into_parts();
    let bar = Bar::new("packaging", sel.total_bytes);
    let reader = Counting {
        inner: tarball::spawn(sel)?,
        bar: bar.clone(),
    };
    let mut out = HashingWriter {
        inner: io::BufWriter::with_capacity(1024 * 1024, file),
        hash: Sha256::new(),
        size: 0,
    };
    let result = stream::encrypt_parallel(key, header, reader, &mut out, 0);
    bar.finish();
    if let Err(e) = result {
        // A tar error (a file changed, unreadable) arrives as a read error.
        return Err(match e {
            custody_envelope::EnvelopeError::Read(io) => {
                anyhow::Error::new(io).context("packaging the release")
            }
            other => anyhow::Error::new(other).context("encrypting the package"),
        });
    }
    out.flush().context("writing the package")?;
    let HashingWriter { inner, hash, size } = out;
    let file = inner
        .into_inner()
        .map_err(|e| e.into_error())
        .context("writing the package")?;
    file.sync_all().context("writing the package")?;
    Ok(Package {
        file: path,
        sha256: hash.finalize().into(),
        size,
    })
}
