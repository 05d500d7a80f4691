//! Exactly-once installs: one record per (deployment, target) — the deploy
//! job's `idempotency_key` — in `<state.dir>/installs/`.
//!
//! Before the installer starts, a marker `<h>.installing` is written; when
//! it finished, `<h>.installed` replaces it (both 0600, atomic, `h` =
//! SHA-256 of the key). A re-delivered deploy that finds `.installed` is
//! answered "already installed" without installing; one that finds only
//! `.installing` (the agent stopped while the installer ran) is refused
//! rather than risk installing twice.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::credential::write_private_atomic;

/// What the records say about a deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallState {
    /// Never installed here.
    New,
    /// Installed; the record.
    Installed(InstallRecord),
    /// An attempt stopped while the installer ran.
    Interrupted,
}

/// The `.installed` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallRecord {
    /// The deploy's idempotency key (`DEPLOYMENT:SERVER`).
    pub idempotency_key: String,
    /// Deployment id.
    pub deployment_id: String,
    /// App.
    pub app: String,
    /// Release id.
    pub release_id: String,
    /// Unix milliseconds.
    pub installed_at_ms: i64,
}

/// The records directory.
#[derive(Debug, Clone)]
pub struct Records {
    dir: PathBuf,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Records {
    /// Records under `dir` (created 0700 when missing).
    pub fn open(dir: &Path) -> std::io::Result<Records> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        Ok(Records {
            dir: dir.to_owned(),
        })
    }

    fn base(&self, key: &str) -> PathBuf {
        self.dir.join(hex::encode(Sha256::digest(key.as_bytes())))
    }

    fn path(&self, key: &str, ext: &str) -> PathBuf {
        let mut p = self.base(key).into_os_string();
        p.push(ext);
        PathBuf::from(p)
    }

    /// What is recorded for `key`.
    pub fn state(&self, key: &str) -> std::io::Result<InstallState> {
        match std::fs::read(self.path(key, ".installed")) {
            Ok(bytes) => {
                let rec: InstallRecord = serde_json::from_slice(&bytes)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                if rec.idempotency_key != key {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "install record of another key",
                    ));
                }
                return Ok(InstallState::Installed(rec));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match std::fs::symlink_metadata(self.path(key, ".installing")) {
            Ok(_) => Ok(InstallState::Interrupted),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(InstallState::New),
            Err(e) => Err(e),
        }
    }

    /// Writes the `.installing` marker (before the installer starts).
    pub fn begin(&self, key: &str) -> std::io::Result<()> {
        write_private_atomic(&self.path(key, ".installing"), key.as_bytes())
    }

    /// Removes the marker (the installer failed cleanly: a later deploy may
    /// try again).
    pub fn abort(&self, key: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(key, ".installing")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Records a finished install and removes the marker.
    pub fn finish(
        &self,
        key: &str,
        deployment_id: &str,
        app: &str,
        release_id: &str,
    ) -> std::io::Result<InstallRecord> {
        let rec = InstallRecord {
            idempotency_key: key.to_owned(),
            deployment_id: deployment_id.to_owned(),
            app: app.to_owned(),
            release_id: release_id.to_owned(),
            installed_at_ms: now_ms(),
        };
        let json = serde_json::to_vec_pretty(&rec)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        write_private_atomic(&self.path(key, ".installed"), &json)?;
        self.abort(key)?;
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_installing_installed() {
        let dir = tempfile::tempdir().unwrap();
        let r = Records::open(&dir.path().join("installs")).unwrap();
        let key = "dep_1:srv_1";
        assert_eq!(r.state(key).unwrap(), InstallState::New);
        r.begin(key).unwrap();
        assert_eq!(r.state(key).unwrap(), InstallState::Interrupted);
        r.abort(key).unwrap();
        assert_eq!(r.state(key).unwrap(), InstallState::New);
        r.begin(key).unwrap();
        let rec = r.finish(key, "dep_1", "web", "rel_1").unwrap();
        assert_eq!(r.state(key).unwrap(), InstallState::Installed(rec));
        assert_eq!(r.state("dep_2:srv_1").unwrap(), InstallState::New);
        // Only the one record is left.
        assert_eq!(
            std::fs::read_dir(dir.path().join("installs"))
                .unwrap()
                .count(),
            1
        );
    }
}
