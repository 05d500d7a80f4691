//! Directory-relative file operations that never follow a symbolic link:
//! every path below an install root is opened one component at a time with
//! `openat(…, O_NOFOLLOW)` from a directory descriptor, so a link planted
//! anywhere below the root cannot redirect a write outside it.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    AtFlags, CWD, Dir, FileType, Mode, OFlags, RenameFlags, fchmod, fsync, mkdirat, openat,
    renameat_with, statat, unlinkat,
};

/// Prefix of the installer's temporary directories in an install root.
pub(crate) const TEMP_PREFIX: &str = ".custody-install.";

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Opens a configured directory (an install root, the staging dir). The
/// administrator's path may itself go through symlinks; what is below it
/// is opened with [`open_dir`].
pub(crate) fn open_configured_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(openat(
        CWD,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens directory `name` in `parent`, refusing a symlink (`ELOOP`) or a
/// non-directory (`ENOTDIR`).
pub(crate) fn open_dir(parent: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    Ok(openat(parent, name, dir_flags(), Mode::empty())?)
}

/// Creates directory `name` in `parent` with `mode` (then set exactly,
/// whatever the umask) and opens it.
pub(crate) fn make_dir(parent: BorrowedFd<'_>, name: &str, mode: u32) -> io::Result<OwnedFd> {
    mkdirat(parent, name, Mode::from_raw_mode(mode))?;
    let fd = open_dir(parent, name)?;
    fchmod(&fd, Mode::from_raw_mode(mode))?;
    Ok(fd)
}

/// Creates a new regular file `name` in `parent` (it must not exist),
/// writable only by its owner until [`finish_file`] sets its mode.
pub(crate) fn create_file(parent: BorrowedFd<'_>, name: &str) -> io::Result<std::fs::File> {
    let fd = openat(
        parent,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(std::fs::File::from(fd))
}

/// Sets a written file's mode and flushes it to disk.
pub(crate) fn finish_file(file: &std::fs::File, mode: u32) -> io::Result<()> {
    fchmod(file, Mode::from_raw_mode(mode))?;
    fsync(file)?;
    Ok(())
}

/// Sets a directory's mode and flushes its entries to disk.
pub(crate) fn finish_dir(dir: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    fchmod(dir, Mode::from_raw_mode(mode))?;
    fsync(dir)?;
    Ok(())
}

/// Flushes a directory's entries (after a rename into it).
pub(crate) fn sync_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    Ok(fsync(dir)?)
}

/// What is at `name` in `parent`, without following a symlink; `None`
/// when nothing is.
pub(crate) fn kind_at(parent: BorrowedFd<'_>, name: &str) -> io::Result<Option<FileType>> {
    match statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Moves `from` (in `from_dir`) to `to` (in `to_dir`): atomically swapped
/// with what is there when `exchange`, else only if nothing is there.
pub(crate) fn rename(
    from_dir: BorrowedFd<'_>,
    from: &str,
    to_dir: BorrowedFd<'_>,
    to: &str,
    exchange: bool,
) -> io::Result<()> {
    let flags = if exchange {
        RenameFlags::EXCHANGE
    } else {
        RenameFlags::NOREPLACE
    };
    Ok(renameat_with(from_dir, from, to_dir, to, flags)?)
}

/// Removes `name` in `parent` and everything below it, never following a
/// symlink (a link is removed, not its target). Directories whose mode
/// stops their owner from emptying them (a hook's `chmod 555`) are made
/// writable first.
pub(crate) fn remove_tree<P: rustix::path::Arg + Copy>(
    parent: BorrowedFd<'_>,
    name: P,
) -> io::Result<()> {
    let kind = match statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => FileType::from_raw_mode(st.st_mode),
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if kind == FileType::Directory {
        let dir = openat(parent, name, dir_flags(), Mode::empty())?;
        let _ = fchmod(&dir, Mode::from_raw_mode(0o700));
        empty_dir(dir.as_fd())?;
        Ok(unlinkat(parent, name, AtFlags::REMOVEDIR)?)
    } else {
        Ok(unlinkat(parent, name, AtFlags::empty())?)
    }
}

fn empty_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    // Collect first: removing while reading may skip entries. Names made by
    // hooks may be any bytes, so they stay C strings.
    let mut names: Vec<CString> = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name: &CStr = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push(name.to_owned());
        }
    }
    for name in &names {
        remove_tree(dir, name.as_c_str())?;
    }
    Ok(())
}

/// The names in `dir` starting with `prefix`.
pub(crate) fn names_with_prefix(dir: BorrowedFd<'_>, prefix: &str) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        if let Ok(name) = entry.file_name().to_str()
            && name.starts_with(prefix)
        {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// A random directory name with [`TEMP_PREFIX`].
pub(crate) fn temp_name() -> io::Result<String> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    let mut name = String::from(TEMP_PREFIX);
    for b in bytes {
        name.push_str(&format!("{b:02x}"));
    }
    Ok(name)
}

/// Opens (and with `create`, makes, with `mode`) each directory of
/// `components` below `root`, one at a time, never following a link.
/// Returns the last one's descriptor and the directories it created.
pub(crate) fn walk_dirs(
    root: BorrowedFd<'_>,
    components: &[&str],
    create: Option<u32>,
) -> io::Result<(OwnedFd, usize)> {
    let mut current = rustix::io::dup(root)?;
    let mut created = 0;
    for name in components {
        let next = match open_dir(current.as_fd(), name) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => match create {
                Some(mode) => {
                    created += 1;
                    make_dir(current.as_fd(), name, mode)?
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        current = next;
    }
    Ok((current, created))
}
