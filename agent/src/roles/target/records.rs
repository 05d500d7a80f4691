//! Exactly-once installs: one record per (deployment, target) — the deploy
//! job's `idempotency_key` — in `<state.dir>/installs/`.
//!
//! Before the installer starts, a marker `<h>.installing` is written; once
//! the files are in place, `<h>.installed` replaces it (both 0600, atomic,
//! `h` = SHA-256 of the key), recording the outcome: succeeded, or failed
//! because `post_install` failed after the files were moved. A re-delivered
//! deploy that finds `.installed` is answered from it without installing —
//! "already installed", or the recorded failure; one that finds only
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
    /// How the install ended (records written before outcomes were kept
    /// are successes).
    #[serde(default)]
    pub outcome: InstallOutcomeRecord,
}

/// How a recorded install ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum InstallOutcomeRecord {
    /// The files are in place and every hook succeeded.
    #[default]
    Succeeded,
    /// The files are in place but `post_install` failed.
    Failed {
        /// The failure as reported the first time (no secrets: hook
        /// output is not part of it).
        message: String,
    },
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
        self.record(
            key,
            deployment_id,
            app,
            release_id,
            InstallOutcomeRecord::Succeeded,
        )
    }

    /// Records an install whose files were moved into place but whose
    /// `post_install` failed, and removes the marker: a re-delivery is
    /// answered with this failure, not installed again.
    pub fn finish_failed(
        &self,
        key: &str,
        deployment_id: &str,
        app: &str,
        release_id: &str,
        message: &str,
    ) -> std::io::Result<InstallRecord> {
        self.record(
            key,
            deployment_id,
            app,
            release_id,
            InstallOutcomeRecord::Failed {
                message: message.to_owned(),
            },
        )
    }

    fn record(
        &self,
        key: &str,
        deployment_id: &str,
        app: &str,
        release_id: &str,
        outcome: InstallOutcomeRecord,
    ) -> std::io::Result<InstallRecord> {
        let rec = InstallRecord {
            idempotency_key: key.to_owned(),
            deployment_id: deployment_id.to_owned(),
            app: app.to_owned(),
            release_id: release_id.to_owned(),
            installed_at_ms: now_ms(),
            outcome,
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
        // A failed post_install is recorded as such, replacing the marker.
        r.begin("dep_2:srv_1").unwrap();
        let failed = r
            .finish_failed(
                "dep_2:srv_1",
                "dep_2",
                "web",
                "rel_1",
                "post_install failed",
            )
            .unwrap();
        assert_eq!(
            failed.outcome,
            InstallOutcomeRecord::Failed {
                message: "post_install failed".into()
            }
        );
        assert_eq!(
            r.state("dep_2:srv_1").unwrap(),
            InstallState::Installed(failed)
        );
        std::fs::remove_file(r.path("dep_2:srv_1", ".installed")).unwrap();
        // A record written before outcomes were kept reads as a success.
        let old = br#"{"idempotency_key":"k","deployment_id":"d","app":"a","release_id":"r","installed_at_ms":1}"#;
        let rec: InstallRecord = serde_json::from_slice(old).unwrap();
        assert_eq!(rec.outcome, InstallOutcomeRecord::Succeeded);
        // Only the one record is left.
        assert_eq!(
            std::fs::read_dir(dir.path().join("installs"))
                .unwrap()
                .count(),
            1
        );
    }
}
