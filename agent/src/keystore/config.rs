//! `[keystore]`: which backend holds the server key, and how to reach it.

use std::path::PathBuf;

use serde::Deserialize;

/// The `[keystore]` table, chosen by `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum KeyStoreConfig {
    /// A PKCS#11 token (an HSM; SoftHSM2 in tests).
    Pkcs11(Pkcs11Config),
    /// A TPM 2.0 (swtpm in tests).
    Tpm(TpmConfig),
    /// A PEM file on disk. Development only.
    Soft(SoftConfig),
}

impl KeyStoreConfig {
    /// `pkcs11`, `tpm` or `soft`.
    pub fn kind(&self) -> &'static str {
        match self {
            KeyStoreConfig::Pkcs11(_) => "pkcs11",
            KeyStoreConfig::Tpm(_) => "tpm",
            KeyStoreConfig::Soft(_) => "soft",
        }
    }
}

/// `kind = "pkcs11"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// Absolute path of the PKCS#11 module (`.so`).
    pub module: PathBuf,
    /// Label of the token (slots move; labels do not).
    pub token_label: String,
    /// Label of the server key pair inside the token.
    #[serde(default = "default_key_label")]
    pub key_label: String,
    /// Where the user PIN comes from. Never the PIN itself.
    pub pin: PinSource,
    /// RSA modulus size for a new key: 3072 (default) or 2048.
    #[serde(default = "default_pkcs11_bits")]
    pub key_bits: u32,
    /// Sessions in the pool: how many unwraps may run at once.
    #[serde(default = "default_sessions")]
    pub sessions: usize,
}

fn default_key_label() -> String {
    "custody-server-key".to_owned()
}
fn default_pkcs11_bits() -> u32 {
    3072
}
fn default_sessions() -> usize {
    4
}

/// Where a PIN is read from. Written `pin = { file = "/path" }` or
/// `pin = { credential = "name" }` (a systemd credential, read from
/// `$CREDENTIALS_DIRECTORY/name`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinSource {
    /// A file readable only by the agent's user (mode 0600 or stricter).
    File(PathBuf),
    /// A systemd credential (`LoadCredential=` / `LoadCredentialEncrypted=`).
    Credential(String),
}

/// `kind = "tpm"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmConfig {
    /// TCTI: `device:/dev/tpmrm0` in production, `swtpm:host=…,port=…` in tests.
    pub tcti: String,
    /// RSA modulus size. Unset: 3072 when the TPM offers it, else 2048.
    #[serde(default)]
    pub key_bits: Option<u32>,
    /// Base name of the key's files under `<state.dir>/tpm/`.
    #[serde(default = "default_key_name")]
    pub key_name: String,
}

fn default_key_name() -> String {
    "server-key".to_owned()
}

/// `kind = "soft"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftConfig {
    /// The PEM (PKCS#8) file; created 0600 when missing. Default:
    /// `<state.dir>/soft-key.pem`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// RSA modulus size for a new key: 3072 (default) or 2048.
    #[serde(default = "default_pkcs11_bits")]
    pub key_bits: u32,
}
