//! The server key's files in `<state.dir>/tpm/`: the public area, the
//! private area (encrypted by the TPM under the storage primary; useless off
//! this TPM) and the random authValue, each 0600.

use std::path::{Path, PathBuf};

use tss_esapi::structures::{Auth, Private, Public};
use tss_esapi::traits::{Marshall, UnMarshall};
use zeroize::Zeroizing;

use crate::keystore::{KeyStoreError, ensure_private_dir, read_private_file, write_private_file};

/// Length of the random authValue.
pub const AUTH_LEN: usize = 32;

/// Where the key's three files live.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    /// Marshalled `TPMT_PUBLIC`.
    pub public: PathBuf,
    /// `TPM2B_PRIVATE` contents.
    pub private: PathBuf,
    /// The authValue.
    pub auth: PathBuf,
}

/// The loaded contents of [`KeyFiles`].
pub struct KeyBlobs {
    /// Public area.
    pub public: Public,
    /// Private area (TPM-encrypted).
    pub private: Private,
    /// authValue.
    pub auth: Auth,
}

impl KeyFiles {
    /// The files of key `name` under `state_dir/tpm/`.
    pub fn new(state_dir: &Path, name: &str) -> Self {
        let dir = state_dir.join("tpm");
        Self {
            public: dir.join(format!("{name}.pub")),
            private: dir.join(format!("{name}.priv")),
            auth: dir.join(format!("{name}.auth")),
        }
    }

    fn all(&self) -> [&Path; 3] {
        [&self.public, &self.private, &self.auth]
    }

    /// `Some(true)` when all three exist, `Some(false)` when none does;
    /// anything in between is corrupt state (never silently replaced: the
    /// registered key would be lost).
    pub fn exist(&self) -> Result<bool, KeyStoreError> {
        let present = self.all().iter().filter(|p| p.exists()).count();
        match present {
            0 => Ok(false),
            3 => Ok(true),
            _ => Err(KeyStoreError::CorruptState {
                path: self.public.clone(),
                reason: "some but not all of the key's .pub/.priv/.auth files exist",
            }),
        }
    }

    /// Reads and parses the three files.
    pub fn read(&self) -> Result<KeyBlobs, KeyStoreError> {
        let corrupt = |path: &Path, reason| KeyStoreError::CorruptState {
            path: path.to_owned(),
            reason,
        };
        let public = read_private_file(&self.public)?;
        let public = Public::unmarshall(&public)
            .map_err(|_| corrupt(&self.public, "not a marshalled TPMT_PUBLIC"))?;
        let private = read_private_file(&self.private)?;
        let private = Private::try_from(private.to_vec())
            .map_err(|_| corrupt(&self.private, "not a TPM2B_PRIVATE"))?;
        let auth = read_private_file(&self.auth)?;
        if auth.len() != AUTH_LEN {
            return Err(corrupt(&self.auth, "authValue has the wrong length"));
        }
        let auth =
            Auth::try_from(auth.to_vec()).map_err(|_| corrupt(&self.auth, "bad authValue"))?;
        Ok(KeyBlobs {
            public,
            private,
            auth,
        })
    }

    /// Writes the three files (0600, directory 0700). The authValue is
    /// written last, so a crash leaves at most an incomplete set, which
    /// [`KeyFiles::exist`] reports.
    pub fn write(&self, blobs: &KeyBlobs) -> Result<(), KeyStoreError> {
        if let Some(dir) = self.public.parent() {
            ensure_private_dir(dir)?;
        }
        let public = blobs
            .public
            .marshall()
            .map_err(|_| KeyStoreError::CorruptState {
                path: self.public.clone(),
                reason: "cannot marshall the public area",
            })?;
        write_private_file(&self.public, &public)?;
        write_private_file(&self.private, blobs.private.value())?;
        let auth = Zeroizing::new(blobs.auth.value().to_vec());
        write_private_file(&self.auth, &auth)
    }
}
