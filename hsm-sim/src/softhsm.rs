//! SoftHSM2: a token directory, its own `SOFTHSM2_CONF`, initialised tokens.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::error::{SimError, io};
use crate::random_hex;

/// Where Debian (and others) install the SoftHSM2 PKCS#11 module.
const MODULE_CANDIDATES: [&str; 3] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
];

/// The installed SoftHSM2 module.
pub fn find_softhsm_module() -> Result<PathBuf, SimError> {
    MODULE_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| SimError::NoSoftHsmModule {
            looked: MODULE_CANDIDATES.iter().map(PathBuf::from).collect(),
        })
}

/// One initialised token.
#[derive(Debug, Clone)]
pub struct Token {
    /// Its label (find it by this: slots move).
    pub label: String,
    /// The user PIN, for tests (throw-away tokens only).
    pub user_pin: String,
    /// A 0600 file holding the user PIN.
    pub pin_file: PathBuf,
}

/// A SoftHSM2 configuration with its own token directory and a first token.
/// Dropping it deletes the directory when it was a temporary one.
#[derive(Debug)]
pub struct SoftHsm {
    _temp: Option<TempDir>,
    dir: PathBuf,
    conf: PathBuf,
    module: PathBuf,
    token: Token,
}

impl SoftHsm {
    /// In a new temporary directory, with a token labelled `custody-<random>`.
    pub fn start() -> Result<Self, SimError> {
        let temp = tempfile::Builder::new()
            .prefix("hsm-sim-softhsm-")
            .tempdir()
            .map_err(io("create", std::env::temp_dir()))?;
        let dir = temp.path().to_owned();
        let mut hsm = Self::start_in(&dir)?;
        hsm._temp = Some(temp);
        Ok(hsm)
    }

    /// In `dir` (created if missing, kept on drop). Reuses the
    /// configuration and first token when `dir` already holds them.
    pub fn start_in(dir: &Path) -> Result<Self, SimError> {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let dir = dir.canonicalize().map_err(io("resolve", dir))?;
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).map_err(io("create", &tokens))?;
        let conf = dir.join("softhsm2.conf");
        let text = format!(
            "# written by hsm-sim\ndirectories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        );
        std::fs::write(&conf, text).map_err(io("write", &conf))?;
        let module = find_softhsm_module()?;
        let saved = dir.join("first-token");
        let mut hsm = Self {
            _temp: None,
            dir: dir.clone(),
            conf,
            module,
            token: Token {
                label: String::new(),
                user_pin: String::new(),
                pin_file: PathBuf::new(),
            },
        };
        hsm.token = match std::fs::read_to_string(&saved) {
            Ok(label) if !label.trim().is_empty() => hsm.token_from_files(label.trim())?,
            _ => {
                let t = hsm.add_token(&format!("custody-{}", random_hex(8)))?;
                std::fs::write(&saved, &t.label).map_err(io("write", &saved))?;
                t
            }
        };
        Ok(hsm)
    }

    fn token_from_files(&self, label: &str) -> Result<Token, SimError> {
        let pin_file = self.dir.join(format!("{label}.pin"));
        let user_pin = std::fs::read_to_string(&pin_file).map_err(io("read", &pin_file))?;
        Ok(Token {
            label: label.to_owned(),
            user_pin: user_pin.trim().to_owned(),
            pin_file,
        })
    }

    /// Initialises another token (random PINs) in this configuration, with
    /// `softhsm2-util --init-token --free`.
    pub fn add_token(&self, label: &str) -> Result<Token, SimError> {
        let user_pin = random_hex(12);
        let so_pin = random_hex(12);
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &self.conf)
            .args([
                "--init-token",
                "--free",
                "--label",
                label,
                "--so-pin",
                &so_pin,
                "--pin",
                &user_pin,
            ])
            .output()
            .map_err(|source| SimError::Spawn {
                program: "softhsm2-util",
                source,
            })?;
        if !out.status.success() {
            return Err(SimError::Failed {
                program: "softhsm2-util",
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        let pin_file = self.dir.join(format!("{label}.pin"));
        std::fs::write(&pin_file, format!("{user_pin}\n")).map_err(io("write", &pin_file))?;
        std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600))
            .map_err(io("chmod", &pin_file))?;
        Ok(Token {
            label: label.to_owned(),
            user_pin,
            pin_file,
        })
    }

    /// The PKCS#11 module to load.
    pub fn module(&self) -> &Path {
        &self.module
    }

    /// The `SOFTHSM2_CONF` file (read once per process, at `C_Initialize`).
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The directory holding the configuration, tokens and PIN files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The first token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The first token's label.
    pub fn token_label(&self) -> &str {
        &self.token.label
    }

    /// The first token's user PIN file (mode 0600).
    pub fn pin_file(&self) -> &Path {
        &self.token.pin_file
    }

    /// Environment a process using this token needs: `SOFTHSM2_CONF`.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![("SOFTHSM2_CONF", self.conf.clone().into_os_string())]
    }
}
