//! Safe unpacking of a package tar into a fresh directory.
//!
//! The `tar` crate only parses headers here, in raw mode: GNU long names
//! (`L`) and PAX extended headers (`x`) are applied by this module, with
//! their own size caps, and PAX keys other than a few harmless ones are
//! refused (a PAX `size` must agree with the header, so no two parsers can
//! disagree on where the next entry starts). Every entry is checked before
//! a byte of it is written:
//!
//! - the path: UTF-8, relative, no `..`, no control characters, at most
//!   4096 bytes and 255 per component (`.` and empty components dropped);
//! - the type: regular files and directories only — symbolic and hard
//!   links are all refused (a release needs none; a hook may create them),
//!   as are devices, FIFOs, sparse files and PAX global headers;
//! - no set-user-id, set-group-id or sticky bit;
//! - the size against the per-file and total caps, the count against the
//!   entry cap (implicitly created parent directories count too);
//! - no path twice, no file where a directory is or below a file;
//! - files must be selected by the manifest's `include`/`exclude`.
//!
//! Writing uses directory descriptors and `O_NOFOLLOW | O_EXCL` only
//! ([`super::tree`]); files are created 0600, then given their final mode
//! and `fsync`ed; directories get the manifest's mode at the end.

use std::collections::HashSet;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use custody_envelope::manifest::{MANIFEST_NAME, MAX_MANIFEST_LEN, Manifest};
use tar::EntryType;

use super::error::InstallerError;
use super::tree;

/// Longest path, in bytes.
const MAX_PATH: usize = 4096;
/// Longest path component, in bytes.
const MAX_NAME: usize = 255;
/// Largest PAX extended header.
const MAX_PAX: u64 = 64 * 1024;
/// PAX keys accepted (all but `path` and `size` are ignored).
const PAX_KEYS: &[&str] = &[
    "path", "linkpath", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname",
    "comment",
];

/// The caps on one package.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_total_bytes: u64,
    pub max_files: u64,
    pub max_file_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
}

/// One logical entry (extension headers applied), checked.
#[derive(Debug)]
pub(crate) struct Meta {
    /// Normalised: `a/b/c`, no leading `/`, no `.`; empty for `./`.
    pub path: String,
    pub kind: Kind,
    pub size: u64,
}

#[derive(Default)]
struct Pending {
    path: Option<Vec<u8>>,
    size: Option<u64>,
    link: bool,
}

fn malformed(reason: impl Into<String>) -> InstallerError {
    InstallerError::Malformed {
        reason: reason.into(),
    }
}

fn read_ext<R: Read>(entry: &mut tar::Entry<'_, R>, cap: u64) -> Result<Vec<u8>, InstallerError> {
    let size = entry.size();
    if size > cap {
        return Err(malformed(format!(
            "an extension header of {size} bytes is over the limit of {cap}"
        )));
    }
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    entry
        .take(cap)
        .read_to_end(&mut data)
        .map_err(|e| malformed(format!("reading an extension header: {e}")))?;
    if data.len() as u64 != size {
        return Err(malformed("truncated extension header"));
    }
    Ok(data)
}

fn pax(data: &[u8], pending: &mut Pending) -> Result<(), InstallerError> {
    for ext in tar::PaxExtensions::new(data) {
        let ext = ext.map_err(|_| malformed("bad PAX record"))?;
        let key = ext.key().map_err(|_| malformed("PAX key not UTF-8"))?;
        if !PAX_KEYS.contains(&key) {
            return Err(InstallerError::UnsupportedEntry {
                entry: "(PAX header)".into(),
                reason: format!("PAX key {key:?}"),
            });
        }
        match key {
            "path" => pending.path = Some(ext.value_bytes().to_vec()),
            "linkpath" => pending.link = true,
            "size" => {
                let v = ext
                    .value()
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| malformed("PAX size is not a number"))?;
                pending.size = Some(v);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks and normalises an entry's path.
pub(crate) fn normalise(raw: &[u8]) -> Result<String, InstallerError> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    let bad = |reason: &str| InstallerError::BadPath {
        entry: shown(),
        reason: reason.into(),
    };
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err(bad("path is not UTF-8"));
    };
    if raw.len() > MAX_PATH {
        return Err(bad("path is longer than 4096 bytes"));
    }
    if text.starts_with('/') {
        return Err(InstallerError::AbsolutePath { entry: shown() });
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(InstallerError::ParentDir { entry: shown() }),
            p if p.len() > MAX_NAME => return Err(bad("a path component is over 255 bytes")),
            p if p.chars().any(char::is_control) => {
                return Err(bad("control characters in the path"));
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The next logical entry and its data reader; `None` at the end.
pub(crate) fn next_entry<'a, R: Read>(
    entries: &mut tar::Entries<'a, R>,
) -> Result<Option<(Meta, tar::Entry<'a, R>)>, InstallerError> {
    let mut pending = Pending::default();
    let mut extension_seen = false;
    loop {
        let Some(entry) = entries.next() else {
            if extension_seen {
                return Err(malformed("an extension header with no entry after it"));
            }
            return Ok(None);
        };
        let mut entry = entry.map_err(|e| malformed(e.to_string()))?;
        let ty = entry.header().entry_type();
        match ty {
            EntryType::GNULongName => {
                if pending.path.is_some() {
                    return Err(malformed("two long names for one entry"));
                }
                let mut name = read_ext(&mut entry, MAX_PATH as u64 + 1)?;
                while name.last() == Some(&0) {
                    name.pop();
                }
                pending.path = Some(name);
                extension_seen = true;
                continue;
            }
            EntryType::GNULongLink => {
                read_ext(&mut entry, MAX_PATH as u64 + 1)?;
                pending.link = true;
                extension_seen = true;
                continue;
            }
            EntryType::XHeader => {
                let data = read_ext(&mut entry, MAX_PAX)?;
                pax(&data, &mut pending)?;
                extension_seen = true;
                continue;
            }
            _ => {}
        }
        let raw_path = match &pending.path {
            Some(p) => p.clone(),
            None => entry.header().path_bytes().into_owned(),
        };
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let kind = match ty {
            EntryType::Regular => Kind::File,
            EntryType::Directory => Kind::Dir,
            EntryType::Symlink => return Err(link(shown, "symlink")),
            EntryType::Link => return Err(link(shown, "hard link")),
            EntryType::Char => return Err(device(shown, "character device")),
            EntryType::Block => return Err(device(shown, "block device")),
            EntryType::Fifo => return Err(device(shown, "fifo")),
            EntryType::XGlobalHeader => return Err(unsupported(shown, "PAX global header")),
            EntryType::GNUSparse => return Err(unsupported(shown, "sparse file")),
            other => {
                return Err(unsupported(
                    shown,
                    &format!("entry type {:?}", char::from(other.as_byte())),
                ));
            }
        };
        if pending.link {
            return Err(link(shown, "link name on a non-link entry"));
        }
        let path = normalise(&raw_path)?;
        if kind == Kind::File && (path.is_empty() || raw_path.ends_with(b"/")) {
            return Err(InstallerError::BadPath {
                entry: shown,
                reason: "a file entry names a directory".into(),
            });
        }
        let mode = entry
            .header()
            .mode()
            .map_err(|_| malformed(format!("entry {shown:?}: bad mode field")))?;
        if mode & 0o7000 != 0 {
            return Err(InstallerError::SetIdBit { entry: path, mode });
        }
        let size = entry
            .header()
            .entry_size()
            .map_err(|_| malformed(format!("entry {shown:?}: bad size field")))?;
        if pending.size.is_some_and(|s| s != size) {
            return Err(malformed(format!(
                "entry {shown:?}: PAX size disagrees with the header"
            )));
        }
        return Ok(Some((Meta { path, kind, size }, entry)));
    }
}

fn link(entry: String, kind: &str) -> InstallerError {
    InstallerError::Link {
        entry,
        kind: kind.into(),
    }
}

fn device(entry: String, kind: &str) -> InstallerError {
    InstallerError::DeviceFile {
        entry,
        kind: kind.into(),
    }
}

fn unsupported(entry: String, reason: &str) -> InstallerError {
    InstallerError::UnsupportedEntry {
        entry,
        reason: reason.into(),
    }
}

/// Reads the manifest, which must be the first entry.
pub(crate) fn read_manifest<R: Read>(
    entries: &mut tar::Entries<'_, R>,
) -> Result<Manifest, InstallerError> {
    let Some((meta, mut entry)) = next_entry(entries)? else {
        return Err(InstallerError::ManifestMissing);
    };
    if meta.kind != Kind::File || meta.path != MANIFEST_NAME || meta.size > MAX_MANIFEST_LEN as u64
    {
        return Err(InstallerError::ManifestMissing);
    }
    let mut bytes = Vec::new();
    (&mut entry)
        .take(MAX_MANIFEST_LEN as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| malformed(format!("reading the manifest: {e}")))?;
    if bytes.len() as u64 != meta.size {
        return Err(malformed("truncated manifest"));
    }
    Manifest::from_bytes(&bytes).map_err(|e| InstallerError::Manifest(e.to_string()))
}

/// What was unpacked.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stats {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
}

/// Writes checked entries below a fresh directory.
pub(crate) struct Unpacker<'m> {
    manifest: &'m Manifest,
    limits: Limits,
    root: OwnedFd,
    files: HashSet<String>,
    dirs: HashSet<String>,
    explicit_dirs: HashSet<String>,
    entries: u64,
    stats: Stats,
    cache: Option<(String, OwnedFd)>,
}

impl<'m> Unpacker<'m> {
    /// `root`: the fresh, empty directory to unpack into.
    pub(crate) fn new(manifest: &'m Manifest, limits: Limits, root: OwnedFd) -> Self {
        Unpacker {
            manifest,
            limits,
            root,
            files: HashSet::new(),
            dirs: HashSet::new(),
            explicit_dirs: HashSet::new(),
            entries: 0,
            stats: Stats::default(),
            cache: None,
        }
    }

    fn count(&mut self) -> Result<(), InstallerError> {
        self.entries += 1;
        if self.entries > self.limits.max_files {
            return Err(InstallerError::TooManyFiles {
                max: self.limits.max_files,
            });
        }
        Ok(())
    }

    fn io(path: &str, op: &str) -> impl FnOnce(std::io::Error) -> InstallerError {
        let (path, op) = (path.to_owned(), op.to_owned());
        move |e| InstallerError::io(op, path, e)
    }

    fn check_ancestors(&self, path: &str) -> Result<(), InstallerError> {
        let clash = path
            .match_indices('/')
            .any(|(i, _)| self.files.contains(&path[..i]));
        if clash {
            return Err(InstallerError::Duplicate {
                entry: path.to_owned(),
            });
        }
        Ok(())
    }

    /// Opens (creating as needed) directory `dir` of the tree.
    fn dir_fd(&mut self, dir: &str) -> Result<&OwnedFd, InstallerError> {
        if self.cache.as_ref().is_none_or(|(p, _)| p != dir) {
            let fd = self.open_tree_dir(dir)?;
            self.cache = Some((dir.to_owned(), fd));
        }
        match &self.cache {
            Some((_, fd)) => Ok(fd),
            None => Err(malformed("internal: directory cache")),
        }
    }

    fn open_tree_dir(&mut self, dir: &str) -> Result<OwnedFd, InstallerError> {
        let mut current = rustix::io::dup(&self.root).map_err(|e| {
            InstallerError::io("opening the unpack directory", "", std::io::Error::from(e))
        })?;
        let mut prefix_len = 0;
        if !dir.is_empty() {
            for part in dir.split('/') {
                prefix_len += part.len();
                let prefix = dir[..prefix_len].to_owned();
                prefix_len += 1;
                let next = if self.dirs.contains(&prefix) {
                    tree::open_dir(current.as_fd(), part).map_err(Self::io(&prefix, "opening"))?
                } else {
                    self.count()?;
                    self.dirs.insert(prefix.clone());
                    self.stats.dirs += 1;
                    tree::make_dir(current.as_fd(), part, 0o700)
                        .map_err(Self::io(&prefix, "creating directory"))?
                };
                current = next;
            }
        }
        Ok(current)
    }

    /// Unpacks one entry, reading its data from `data`.
    pub(crate) fn entry(
        &mut self,
        meta: &Meta,
        data: &mut impl Read,
    ) -> Result<(), InstallerError> {
        let path = meta.path.as_str();
        if path.is_empty() {
            return Ok(()); // `./`: the root itself
        }
        let dup = || InstallerError::Duplicate {
            entry: path.to_owned(),
        };
        self.check_ancestors(path)?;
        match meta.kind {
            Kind::Dir => {
                if self.files.contains(path) || !self.explicit_dirs.insert(path.to_owned()) {
                    return Err(dup());
                }
                self.dir_fd(path)?;
                Ok(())
            }
            Kind::File => {
                if !self.manifest.selects(path) {
                    return Err(InstallerError::NotInManifest {
                        entry: path.to_owned(),
                    });
                }
                if self.files.contains(path) || self.dirs.contains(path) {
                    return Err(dup());
                }
                if meta.size > self.limits.max_file_bytes {
                    return Err(InstallerError::TooLarge {
                        entry: path.to_owned(),
                        what: "file size".into(),
                        size: meta.size,
                        max: self.limits.max_file_bytes,
                    });
                }
                let total = self.stats.bytes.saturating_add(meta.size);
                if total > self.limits.max_total_bytes {
                    return Err(InstallerError::TooLarge {
                        entry: path.to_owned(),
                        what: "total size".into(),
                        size: total,
                        max: self.limits.max_total_bytes,
                    });
                }
                self.count()?;
                self.files.insert(path.to_owned());
                let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
                let parent = self.dir_fd(dir)?;
                let mut file =
                    tree::create_file(parent.as_fd(), name).map_err(Self::io(path, "creating"))?;
                let copied = std::io::copy(&mut data.take(meta.size), &mut file)
                    .map_err(Self::io(path, "writing"))?;
                if copied != meta.size {
                    return Err(malformed(format!("entry {path:?}: truncated data")));
                }
                let policy = self.manifest.file_policy(path);
                tree::finish_file(&file, policy.mode).map_err(Self::io(path, "finishing"))?;
                self.stats.files += 1;
                self.stats.bytes = total;
                Ok(())
            }
        }
    }

    /// Gives every directory the manifest's mode (deepest first) and
    /// flushes it; then the root.
    pub(crate) fn finish(mut self) -> Result<Stats, InstallerError> {
        self.cache = None;
        let mode = self.manifest.dir_mode;
        let mut dirs: Vec<&String> = self.dirs.iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        for dir in dirs {
            let parts: Vec<&str> = dir.split('/').collect();
            let (fd, _) = tree::walk_dirs(self.root.as_fd(), &parts, None)
                .map_err(Self::io(dir, "opening"))?;
            tree::finish_dir(fd.as_fd(), mode).map_err(Self::io(dir, "finishing"))?;
        }
        tree::finish_dir(self.root.as_fd(), mode).map_err(Self::io("", "finishing"))?;
        Ok(self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_or_refused() {
        assert_eq!(normalise(b"./a//b/./c").unwrap(), "a/b/c");
        assert_eq!(normalise(b"./").unwrap(), "");
        assert!(matches!(
            normalise(b"/etc/passwd"),
            Err(InstallerError::AbsolutePath { .. })
        ));
        assert!(matches!(
            normalise(b"a/../../b"),
            Err(InstallerError::ParentDir { .. })
        ));
        assert!(matches!(
            normalise(b"a/\xff"),
            Err(InstallerError::BadPath { .. })
        ));
        assert!(matches!(
            normalise(b"a\nb"),
            Err(InstallerError::BadPath { .. })
        ));
        let long = vec![b'a'; 256];
        assert!(matches!(
            normalise(&long),
            Err(InstallerError::BadPath { .. })
        ));
    }
}
