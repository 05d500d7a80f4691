//! Shared by the installer tests: crafted tars (raw headers, so that the
//! tar crate's own path checks cannot stop a malicious entry from being
//! written), directories owned by the sandbox tests' `custody-test` user,
//! and a real installer child (this test binary re-executed with the
//! argument `installer`, as `custody-agent installer` is).
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use custody_agent::installer::{
    InstallReport, InstallRequest, InstallerError, InstallerHandle, InstallerSettings, LogLine,
    LogStream, Variable,
};
use custody_agent::sandbox::{LANDLOCK_ABI_NETWORK, LandlockRequirement, kernel_abi};
use tar::{EntryType, Header};
use zeroize::Zeroizing;

pub use crate::sandbox_common::{TEST_USER, run_cases, test_user};

/// A tar built entry by entry from raw headers.
#[derive(Default)]
pub struct Tar {
    buf: Vec<u8>,
}

fn pad(buf: &mut Vec<u8>) {
    let rem = buf.len() % 512;
    if rem != 0 {
        buf.resize(buf.len() + 512 - rem, 0);
    }
}

impl Tar {
    pub fn new() -> Self {
        Tar::default()
    }

    /// `custody.toml` as the first entry.
    pub fn manifest(self, text: &str) -> Self {
        self.file("custody.toml", text.as_bytes())
    }

    /// A regular file, mode 0644.
    pub fn file(self, name: &str, data: &[u8]) -> Self {
        self.raw(name.as_bytes(), EntryType::Regular, 0o644, data, b"", None)
    }

    /// A directory entry.
    pub fn dir(self, name: &str) -> Self {
        self.raw(name.as_bytes(), EntryType::Directory, 0o755, b"", b"", None)
    }

    /// Any entry, header fields written raw. `size` overrides the header's
    /// size field (data is written as given).
    pub fn raw(
        mut self,
        name: &[u8],
        ty: EntryType,
        mode: u32,
        data: &[u8],
        link: &[u8],
        size: Option<u64>,
    ) -> Self {
        let mut h = Header::new_gnu();
        {
            let b = h.as_mut_bytes();
            let n = name.len().min(100);
            b[..n].copy_from_slice(&name[..n]);
            let l = link.len().min(100);
            b[157..157 + l].copy_from_slice(&link[..l]);
        }
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(size.unwrap_or(data.len() as u64));
        h.set_entry_type(ty);
        if matches!(ty, EntryType::Char | EntryType::Block) {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        self.buf.extend_from_slice(h.as_bytes());
        self.buf.extend_from_slice(data);
        pad(&mut self.buf);
        self
    }

    /// A GNU long-name (`L`) entry for the next entry.
    pub fn long_name(self, name: &[u8]) -> Self {
        let mut data = name.to_vec();
        data.push(0);
        self.raw(
            b"././@LongLink",
            EntryType::GNULongName,
            0o644,
            &data,
            b"",
            None,
        )
    }

    /// A PAX extended header (`x`) for the next entry.
    pub fn pax(self, records: &[(&str, &[u8])]) -> Self {
        let mut data = Vec::new();
        for (k, v) in records {
            // "len key=value\n", len counting itself.
            let body = k.len() + v.len() + 3;
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        self.raw(
            b"./PaxHeaders/x",
            EntryType::XHeader,
            0o644,
            &data,
            b"",
            None,
        )
    }

    /// The archive, with its two zero blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.resize(self.buf.len() + 1024, 0);
        self.buf
    }
}

/// Directories for one test, under a fresh temp dir (0755): an install
/// root and a staging dir owned by the test user, and an `outside` dir
/// (world-writable, sticky) nothing may be written to.
pub struct Dirs {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub staging: PathBuf,
    pub outside: PathBuf,
}

pub fn dirs() -> Dirs {
    let (uid, gid) = test_user();
    let tmp = tempfile::Builder::new()
        .prefix("custody-installer-test.")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mk = |name: &str, mode: u32, owned: bool| {
        let p = tmp.path().join(name);
        std::fs::create_dir(&p).unwrap();
        if owned {
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    };
    let root = mk("root", 0o755, true);
    let staging = mk("staging", 0o700, true);
    let outside = mk("outside", 0o1777, false);
    Dirs {
        tmp,
        root,
        staging,
        outside,
    }
}

/// Landlock as the installer plan needs it, or what this kernel has.
pub fn requirement() -> LandlockRequirement {
    LandlockRequirement {
        require: true,
        min_abi: Some(kernel_abi().unwrap_or(0).min(LANDLOCK_ABI_NETWORK)),
    }
}

pub fn settings(d: &Dirs) -> InstallerSettings {
    InstallerSettings {
        install_roots: vec![d.root.clone()],
        staging_dir: d.staging.clone(),
        max_total_bytes: 1 << 20,
        max_files: 64,
        max_file_bytes: 256 * 1024,
        hook_timeout: Duration::from_secs(30),
        user: TEST_USER.into(),
        group: None,
        landlock: requirement(),
        log_level: "warn".into(),
    }
}

pub fn spawn(settings: &InstallerSettings) -> InstallerHandle {
    InstallerHandle::spawn(settings).unwrap_or_else(|e| panic!("spawning the installer: {e}"))
}

/// Writes `tar` into staging as the main process would (the service
/// user's file, 0600) and returns its path.
pub fn stage(d: &Dirs, name: &str, tar: &[u8]) -> PathBuf {
    let (uid, gid) = test_user();
    let p = d.staging.join(name);
    std::fs::write(&p, tar).unwrap();
    std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

pub fn var(name: &str, value: &str, secret: bool) -> Variable {
    Variable {
        name: name.into(),
        value: Zeroizing::new(value.into()),
        secret,
    }
}

/// Stages `tar` and installs it; returns the result and every log line.
pub fn install(
    h: &InstallerHandle,
    d: &Dirs,
    id: &str,
    tar: &[u8],
    variables: Vec<Variable>,
) -> (Result<InstallReport, InstallerError>, Vec<LogLine>) {
    let package_tar = stage(d, &format!("{id}.tar"), tar);
    let req = InstallRequest {
        deployment_id: id.into(),
        package_tar: package_tar.clone(),
        variables,
    };
    let mut lines = Vec::new();
    let r = h.install(&req, &mut |l| lines.push(l));
    assert!(
        !package_tar.exists(),
        "{id}: the plaintext package must be deleted"
    );
    (r, lines)
}

/// The lines of one stream.
pub fn stream(lines: &[LogLine], s: LogStream) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l.stream == s)
        .map(|l| l.line.as_str())
        .collect()
}

/// Names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A manifest installing `include` into `dest`, plus `extra` TOML.
pub fn manifest(dest: &Path, include: &str, extra: &str) -> String {
    format!(
        "version = 1\ndestination = \"{}\"\ninclude = [{include}]\n{extra}",
        dest.display()
    )
}
