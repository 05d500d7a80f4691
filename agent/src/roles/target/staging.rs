//! The private staging directory: `<state.dir>/staging/` (0700), one
//! subdirectory per deployment holding the downloaded ciphertext
//! (`package.custody`, kept across attempts so a download resumes with
//! `Range`; never synced, so a resumed file that fails the package digest
//! is fetched once more from the start) and, only once every chunk
//! verified, the plaintext
//! (`package.tar`; written as `package.tar.partial` and renamed). The
//! subdirectory is removed after every deploy, whatever its outcome, and
//! plaintext left by a crash is removed at start.

use std::io::Read as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use custody_client::Client;
use sha2::{Digest, Sha256};

use super::error::DeployError;
use crate::link::backoff::Backoff;

/// The ciphertext's name in a deployment's staging dir.
pub const CIPHERTEXT: &str = "package.custody";
/// The verified plaintext's name.
pub const PLAINTEXT: &str = "package.tar";
/// The plaintext while it is being written.
pub const PLAINTEXT_PARTIAL: &str = "package.tar.partial";

/// How often one attempt resumes an interrupted download.
const DOWNLOAD_TRIES: u32 = 5;

fn staging_err(action: &'static str) -> impl FnOnce(std::io::Error) -> DeployError {
    move |source| DeployError::Staging { action, source }
}

/// Whether `id` is safe as one path component (ids are `dep_…`).
pub fn safe_component(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The staging root.
#[derive(Debug, Clone)]
pub struct Staging {
    root: PathBuf,
}

impl Staging {
    /// Creates the root (0700) and removes plaintext a crashed deploy left.
    pub fn open(root: &Path) -> std::io::Result<Staging> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)?;
        let s = Staging {
            root: root.to_owned(),
        };
        for entry in std::fs::read_dir(root)? {
            let dir = entry?.path();
            for name in [PLAINTEXT, PLAINTEXT_PARTIAL] {
                let p = dir.join(name);
                if p.exists() {
                    tracing::warn!(path = %p.display(), "removing plaintext left by an interrupted deploy");
                    std::fs::remove_file(&p)?;
                }
            }
        }
        Ok(s)
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The deployment's directory (created 0700), without plaintext in it.
    pub fn prepare(&self, deployment: &str) -> Result<PathBuf, DeployError> {
        if !safe_component(deployment) {
            return Err(DeployError::DeploymentId);
        }
        let dir = self.root.join(deployment);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(staging_err("create the deployment's staging directory"))?;
        for name in [PLAINTEXT, PLAINTEXT_PARTIAL] {
            match std::fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(staging_err("remove old plaintext")(e));
                }
                _ => {}
            }
        }
        Ok(dir)
    }

    /// Removes the deployment's directory and everything in it.
    pub fn remove(&self, deployment: &str) {
        if !safe_component(deployment) {
            return;
        }
        let dir = self.root.join(deployment);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!(path = %dir.display(), error = %e, "cannot empty the staging directory");
        }
    }
}

/// Downloads the package into `dest`, resuming a partial file with `Range`
/// (a few times within this attempt, and after a crash since the file
/// stays). A file longer than `size` (when known, i.e. not 0) is discarded
/// and fetched again.
pub async fn download(
    client: &Client,
    sha256: &str,
    size: u64,
    dest: &Path,
) -> Result<u64, DeployError> {
    let path = format!("/v1/agent/artifacts/{sha256}");
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    let mut last = String::new();
    for _ in 0..DOWNLOAD_TRIES {
        if let Ok(m) = tokio::fs::metadata(dest).await
            && size > 0
            && m.len() > size
        {
            let _ = tokio::fs::remove_file(dest).await;
        }
        match client.download_to(&path, dest).await {
            Ok(n) => return Ok(n),
            Err(e) => {
                last = crate::link::describe_plain(&e);
                // A refusal (not found, forbidden) will not change.
                if e.status()
                    .is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429)
                {
                    break;
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
    Err(DeployError::Download(last))
}

/// SHA-256 of a whole file, streamed (blocking).
pub fn sha256_file(path: &Path) -> Result<[u8; 32], DeployError> {
    let mut f = std::fs::File::open(path).map_err(staging_err("read the package"))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(staging_err("read the package"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components() {
        assert!(safe_component("dep_0192f0a0-c0de"));
        for bad in ["", ".", "..", "a/b", "a\0b", &"x".repeat(65)] {
            assert!(!safe_component(bad), "{bad:?}");
        }
    }

    #[test]
    fn prepare_removes_plaintext_and_remove_empties() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("staging");
        let s = Staging::open(&root).unwrap();
        let d = s.prepare("dep_1").unwrap();
        std::fs::write(d.join(CIPHERTEXT), b"c").unwrap();
        std::fs::write(d.join(PLAINTEXT), b"p").unwrap();
        let d = s.prepare("dep_1").unwrap();
        assert!(d.join(CIPHERTEXT).exists());
        assert!(!d.join(PLAINTEXT).exists());
        std::fs::write(d.join(PLAINTEXT_PARTIAL), b"p").unwrap();
        // A restart removes leftover plaintext too.
        let s = Staging::open(&root).unwrap();
        assert!(!d.join(PLAINTEXT_PARTIAL).exists());
        s.remove("dep_1");
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
        assert!(matches!(s.prepare("../x"), Err(DeployError::DeploymentId)));
    }
}
