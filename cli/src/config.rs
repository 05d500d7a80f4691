//! The login file: coordinator URL, pinned CA fingerprint, API token and
//! the coordinator's audit key (pinned at login). Written 0600 in a 0700
//! directory; the token never appears in `Debug` output.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What `custody login` saves.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Coordinator base URL.
    pub url: String,
    /// SHA-256 (hex) of the coordinator's CA certificate.
    pub ca_fingerprint: String,
    /// API token.
    pub token: String,
    /// Account id.
    pub account: String,
    /// The coordinator's Ed25519 audit key (hex), pinned at login.
    pub audit_public_key: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("url", &self.url)
            .field("ca_fingerprint", &self.ca_fingerprint)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// The default login file.
pub fn default_path() -> Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("custody/config.toml"));
    }
    let home = std::env::var_os("HOME").context("neither XDG_CONFIG_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".config/custody/config.toml"))
}

/// Reads the login file.
pub fn load(path: &Path) -> Result<Login> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "not logged in ({} missing): run `custody login`",
            path.display()
        )
    })?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid login file", path.display()))
}

/// Writes `data` to `path` with mode 0600 (directory 0700), atomically.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().context("the file has no directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("custody")
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Saves the login file.
pub fn save(path: &Path, login: &Login) -> Result<()> {
    let text = toml::to_string(login).context("serialising the login file")?;
    write_private(path, text.as_bytes())
}
