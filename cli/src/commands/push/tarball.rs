//! The release tar: `custody.toml` first, then every file the manifest
//! selects in byte order of their paths, each a regular-file entry with
//! the manifest's mode, mtime 0, uid/gid 0 and no user or group names —
//! so the same tree always gives the same bytes. Parent directories are
//! not stored (the installer creates them with the manifest's `dir_mode`).
//!
//! The tar is produced on a thread and handed to the encryptor through an
//! in-memory channel ([`spawn`]): plaintext never touches the disk.

use anyhow::{Context, Result, bail};
use custody_envelope::manifest::{self, MANIFEST_NAME, MAX_MANIFEST_LEN, Manifest};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Mode of `custody.toml` in the tar.
const MANIFEST_MODE: u32 = 0o644;
/// Bytes per message between the tar thread and the encryptor.
const PIECE: usize = 1024 * 1024;
/// Messages in flight (bounds memory to a few MiB).
const DEPTH: usize = 4;

/// What `custody push` packages.
pub struct Selection {
    /// The directory.
    pub dir: PathBuf,
    /// `custody.toml` exactly as read (it goes into the tar as is).
    pub manifest_bytes: Vec<u8>,
    /// It, parsed.
    pub manifest: Manifest,
    /// Selected files, relative, `/`-separated, sorted.
    pub files: Vec<String>,
    /// Sum of their sizes when listed.
    pub total_bytes: u64,
}

impl Selection {
    /// Reads and checks `DIR/custody.toml` and lists the files it selects.
    pub fn read(dir: &Path) -> Result<Selection> {
        let mpath = dir.join(MANIFEST_NAME);
        let f = File::open(&mpath).with_context(|| format!("cannot open {}", mpath.display()))?;
        let mut manifest_bytes = Vec::new();
        f.take(MAX_MANIFEST_LEN as u64 + 1)
            .read_to_end(&mut manifest_bytes)
            .with_context(|| format!("cannot read {}", mpath.display()))?;
        let manifest = Manifest::from_bytes(&manifest_bytes)
            .with_context(|| format!("{} is not valid", mpath.display()))?;
        let files = manifest::list_files(dir, &manifest)
            .with_context(|| format!("selecting the files of {}", dir.display()))?;
        if files.is_empty() {
            bail!(
                "{}: `include` selects no files in {}",
                mpath.display(),
                dir.display()
            );
        }
        let mut total_bytes = 0u64;
        for rel in &files {
            let p = dir.join(rel);
            let m = std::fs::symlink_metadata(&p)
                .with_context(|| format!("cannot stat {}", p.display()))?;
            total_bytes = total_bytes.saturating_add(m.len());
        }
        Ok(Selection {
            dir: dir.to_path_buf(),
            manifest_bytes,
            manifest,
            files,
            total_bytes,
        })
    }

    /// SHA-256 of `custody.toml` (the descriptor's `manifest_sha256`).
    pub fn manifest_sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.manifest_bytes).into()
    }
}

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Reads exactly `len` bytes of `inner`, failing if it is shorter or longer
/// (a file that changed while it was packaged).
struct Exact<R> {
    inner: R,
    left: u64,
    path: String,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? != 0 {
                return Err(changed(&self.path));
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(changed(&self.path));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn changed(path: &str) -> io::Error {
    io::Error::other(format!("{path} changed while it was packaged"))
}

/// Writes the whole tar to `out`.
pub fn write<W: Write>(sel: &Selection, out: W) -> io::Result<W> {
    let mut b = tar::Builder::new(out);
    let mut h = header(sel.manifest_bytes.len() as u64, MANIFEST_MODE);
    b.append_data(&mut h, MANIFEST_NAME, sel.manifest_bytes.as_slice())?;
    for rel in &sel.files {
        let p = sel.dir.join(rel);
        let io_ctx = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
        if !std::fs::symlink_metadata(&p).map_err(io_ctx)?.is_file() {
            return Err(io::Error::other(format!(
                "{} is no longer a regular file",
                p.display()
            )));
        }
        let f = File::open(&p).map_err(io_ctx)?;
        let m = f.metadata().map_err(io_ctx)?;
        if !m.is_file() || m.nlink() == 0 {
            return Err(changed(rel));
        }
        let mode = sel.manifest.file_policy(rel).mode;
        let mut h = header(m.len(), mode);
        let data = Exact {
            inner: f,
            left: m.len(),
            path: rel.clone(),
        };
        b.append_data(&mut h, rel, data)?;
    }
    b.into_inner()
}

/// The sending half: buffers [`PIECE`]s and sends them.
struct ChannelWriter {
    tx: SyncSender<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
        self.tx
            .send(Ok(piece))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the encryptor stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(PIECE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIECE {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The receiving half: a `Read` over the pieces; an error sent by the tar
/// thread is returned from `read`, and end of stream comes only after the
/// thread finished the tar.
pub struct ChannelReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    piece: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.piece.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(p)) if p.is_empty() => self.done = true,
                Ok(Ok(p)) => {
                    self.piece = p;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the tar writer stopped early",
                    ));
                }
            }
        }
        let n = out.len().min(self.piece.len() - self.pos);
        out[..n].copy_from_slice(&self.piece[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Starts writing the tar on a thread; returns the reader of its bytes.
/// An empty piece marks the end, so a thread that dies without finishing
/// cannot pass for a complete tar.
pub fn spawn(sel: std::sync::Arc<Selection>) -> Result<ChannelReader> {
    let (tx, rx) = sync_channel(DEPTH);
    let err_tx = tx.clone();
    std::thread::Builder::new()
        .name("custody-tar".into())
        .spawn(move || {
            let w = ChannelWriter {
                tx,
                buf: Vec::with_capacity(PIECE),
            };
            let result = write(&sel, w).and_then(|mut w| {
                w.send()?;
                w.tx.send(Ok(Vec::new()))
                    .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the encryptor stopped"))
            });
            if let Err(e) = result {
                let _ = err_tx.send(Err(e));
            }
        })
        .context("starting the tar thread")?;
    Ok(ChannelReader {
        rx,
        piece: Vec::new(),
        pos: 0,
        done: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("custody.toml"),
            "version = 1\ndestination = \"/srv/app\"\ninclude = [\"**\"]\nexclude = [\"skip\"]\n\
             [[files]]\npattern = \"bin/*\"\nmode = \"0755\"\n[[files]]\npattern = \"*.cred\"\nsecret = true\n",
        )
        .unwrap();
        std::fs::create_dir_all(d.path().join("bin")).unwrap();
        std::fs::create_dir_all(d.path().join("skip")).unwrap();
        std::fs::write(d.path().join("bin/run"), b"#!/bin/sh\n").unwrap();
        std::fs::write(d.path().join("b.cred"), b"secret").unwrap();
        std::fs::write(d.path().join("a.txt"), vec![7u8; 70_000]).unwrap();
        std::fs::write(d.path().join("skip/x"), b"no").unwrap();
        d
    }

    fn entries(tar_bytes: &[u8]) -> Vec<(String, u32, u64, Vec<u8>)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    data,
                )
            })
            .collect()
    }

    #[test]
    fn deterministic_ordered_with_manifest_modes() {
        let d = tree();
        let sel = Selection::read(d.path()).unwrap();
        let one = write(&sel, Vec::new()).unwrap();
        let two = write(&sel, Vec::new()).unwrap();
        assert_eq!(one, two);
        let es = entries(&one);
        let names: Vec<&str> = es.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["custody.toml", "a.txt", "b.cred", "bin/run"]);
        let modes: Vec<u32> = es.iter().map(|e| e.1).collect();
        assert_eq!(modes, [0o644, 0o644, 0o600, 0o755]);
        assert!(es.iter().all(|e| e.2 == 0));
        assert_eq!(es[1].3, vec![7u8; 70_000]);
        assert_eq!(es[0].3, sel.manifest_bytes);
    }

    #[test]
    fn channel_gives_the_same_bytes() {
        let d = tree();
        let sel = std::sync::Arc::new(Selection::read(d.path()).unwrap());
        let mut via = Vec::new();
        spawn(sel.clone()).unwrap().read_to_end(&mut via).unwrap();
        assert_eq!(via, write(&sel, Vec::new()).unwrap());
    }

    #[test]
    fn a_file_that_vanished_is_an_error_not_a_short_tar() {
        let d = tree();
        let sel = std::sync::Arc::new(Selection::read(d.path()).unwrap());
        std::fs::remove_file(d.path().join("bin/run")).unwrap();
        let mut via = Vec::new();
        assert!(spawn(sel).unwrap().read_to_end(&mut via).is_err());
    }

    #[test]
    fn the_securekeys_example_packages() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/securekeys");
        let sel = Selection::read(&dir).unwrap();
        let es = entries(&write(&sel, Vec::new()).unwrap());
        let names: Vec<(&str, u32)> = es.iter().map(|e| (e.0.as_str(), e.1)).collect();
        assert_eq!(
            names,
            [
                ("custody.toml", 0o644),
                ("README.md", 0o644),
                ("secret.cred.dev", 0o600),
                ("secret.cred.prod", 0o600),
                ("secret.cred.stage", 0o600),
            ]
        );
    }

    #[test]
    fn bad_manifests_are_refused() {
        let d = tree();
        std::fs::write(d.path().join("custody.toml"), "version = 2\n").unwrap();
        let e = Selection::read(d.path()).err().unwrap();
        assert!(format!("{e:#}").contains("unsupported version 2"), "{e:#}");
        std::fs::write(
            d.path().join("custody.toml"),
            "version = 1\ndestination = \"/srv\"\ninclude = [\"nothing-*\"]\n",
        )
        .unwrap();
        assert!(Selection::read(d.path()).is_err());
        std::fs::remove_file(d.path().join("custody.toml")).unwrap();
        assert!(Selection::read(d.path()).is_err());
    }
}
