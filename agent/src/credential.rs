//! The agent's enrollment credential: `<state.dir>/credential.json`, mode
//! 0600, written atomically (temporary file, `fsync`, rename).
//!
//! It holds the server id, the bearer credential the coordinator issued,
//! the account, the heartbeat interval, and the coordinator URL and CA
//! fingerprint the agent enrolled with (used when the configuration has no
//! `[coordinator]` section). The credential is a secret: zeroized on drop,
//! never printed by `Debug`.

use std::fmt;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Current file format.
const VERSION: u32 = 1;
/// Longest credential file accepted.
const MAX_LEN: u64 = 64 * 1024;

/// What enrollment left behind.
#[derive(Clone)]
pub struct Credential {
    /// File format version (1).
    pub v: u32,
    /// This server's id at the coordinator (`srv_…`).
    pub server_id: String,
    /// The bearer credential. Secret.
    pub credential: Zeroizing<String>,
    /// The account the server joined.
    pub account: String,
    /// How often to heartbeat, seconds.
    pub heartbeat_interval_seconds: u64,
    /// The coordinator's base URL at enrollment.
    pub coordinator_url: String,
    /// The pinned CA fingerprint at enrollment (64 hex digits).
    pub ca_fingerprint: String,
    /// The RFC 7638 thumbprint of the keystore key the server enrolled
    /// with: `run` refuses another key. `None` in a credential written
    /// before it was recorded.
    pub key_thumbprint: Option<String>,
}

/// The file's JSON. Its `credential` string is zeroized on drop.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u32,
    server_id: String,
    credential: String,
    account: String,
    heartbeat_interval_seconds: u64,
    coordinator_url: String,
    ca_fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_thumbprint: Option<String>,
}

impl Drop for Wire {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.credential);
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("server_id", &self.server_id)
            .field("account", &self.account)
            .field("coordinator_url", &self.coordinator_url)
            .finish_non_exhaustive()
    }
}

/// Why the credential could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// There is no credential: the agent has not enrolled.
    #[error("no credential at {path}: run `custody-agent enroll` first")]
    Missing {
        /// The expected file.
        path: PathBuf,
    },
    /// Reading or writing failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// `read`, `write` …
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file can be read by group or others.
    #[error("{path} has mode {mode:o}; it must not be readable by group or others")]
    Mode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a credential this agent understands.
    #[error("{path} is not a valid credential file")]
    Corrupt {
        /// The file.
        path: PathBuf,
    },
}

impl Credential {
    /// Reads the credential (refusing a group- or world-readable file).
    pub fn load(path: &Path) -> Result<Credential, CredentialError> {
        let io = |source| CredentialError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        };
        let f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CredentialError::Missing {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(io(e)),
        };
        let mode = f.metadata().map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CredentialError::Mode {
                path: path.to_owned(),
                mode,
            });
        }
        let mut bytes = Zeroizing::new(Vec::new());
        f.take(MAX_LEN).read_to_end(&mut bytes).map_err(io)?;
        let mut w: Wire = serde_json::from_slice(&bytes).map_err(|_| CredentialError::Corrupt {
            path: path.to_owned(),
        })?;
        let c = Credential {
            v: w.v,
            server_id: std::mem::take(&mut w.server_id),
            credential: Zeroizing::new(std::mem::take(&mut w.credential)),
            account: std::mem::take(&mut w.account),
            heartbeat_interval_seconds: w.heartbeat_interval_seconds,
            coordinator_url: std::mem::take(&mut w.coordinator_url),
            ca_fingerprint: std::mem::take(&mut w.ca_fingerprint),
            key_thumbprint: w.key_thumbprint.take(),
        };
        if c.v != VERSION || c.server_id.is_empty() || c.credential.is_empty() {
            return Err(CredentialError::Corrupt {
                path: path.to_owned(),
            });
        }
        Ok(c)
    }

    /// Writes the credential with mode 0600: a temporary file in the same
    /// directory, `fsync`, rename over `path`, `fsync` of the directory.
    pub fn save(&self, path: &Path) -> Result<(), CredentialError> {
        let wire = Wire {
            v: self.v,
            server_id: self.server_id.clone(),
            credential: self.credential.as_str().to_owned(),
            account: self.account.clone(),
            heartbeat_interval_seconds: self.heartbeat_interval_seconds,
            coordinator_url: self.coordinator_url.clone(),
            ca_fingerprint: self.ca_fingerprint.clone(),
            key_thumbprint: self.key_thumbprint.clone(),
        };
        // Sized up front so no reallocation leaves a copy of the secret behind.
        let mut json = Zeroizing::new(Vec::with_capacity(8 * 1024));
        serde_json::to_writer_pretty(&mut *json, &wire).map_err(|_| CredentialError::Corrupt {
            path: path.to_owned(),
        })?;
        write_private_atomic(path, &json).map_err(|source| CredentialError::Io {
            action: "write",
            path: path.to_owned(),
            source,
        })
    }

    /// A credential from an enrollment answer.
    pub fn from_enrollment(
        answer: &custody_proto::servers::EnrollResponse,
        coordinator_url: &str,
        ca_fingerprint: &str,
        key_thumbprint: &str,
    ) -> Credential {
        Credential {
            v: VERSION,
            server_id: answer.server_id.clone(),
            credential: Zeroizing::new(answer.credential.clone()),
            account: answer.account.clone(),
            heartbeat_interval_seconds: answer.heartbeat_interval_seconds,
            coordinator_url: coordinator_url.to_owned(),
            ca_fingerprint: ca_fingerprint.to_owned(),
            key_thumbprint: Some(key_thumbprint.to_owned()),
        }
    }
}

/// Writes `bytes` to `path` with mode 0600 atomically: a fresh temporary
/// file next to it, `fsync`, rename, `fsync` of the directory. A crash
/// leaves the old file or the new one, never half of one.
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut suffix = [0u8; 8];
    crate::rng::fill(&mut suffix);
    let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(suffix)));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Credential {
        Credential {
            v: VERSION,
            server_id: "srv_1".into(),
            credential: Zeroizing::new("cst_secret-value".into()),
            account: "acc_1".into(),
            heartbeat_interval_seconds: 15,
            coordinator_url: "https://c:8443".into(),
            ca_fingerprint: "ab".repeat(32),
            key_thumbprint: Some("kid-of-the-server-key".into()),
        }
    }

    #[test]
    fn round_trip_is_0600_and_debug_hides_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credential.json");
        sample().save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = Credential::load(&path).unwrap();
        assert_eq!(back.credential.as_str(), "cst_secret-value");
        assert_eq!(back.server_id, "srv_1");
        assert!(!format!("{back:?}").contains("secret-value"));
        // Overwriting leaves no temporary file behind.
        sample().save(&path).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn refuses_missing_readable_and_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credential.json");
        assert!(matches!(
            Credential::load(&path),
            Err(CredentialError::Missing { .. })
        ));
        sample().save(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Credential::load(&path),
            Err(CredentialError::Mode { mode: 0o644, .. })
        ));
        std::fs::write(&path, b"{not json").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            Credential::load(&path),
            Err(CredentialError::Corrupt { .. })
        ));
    }
}
