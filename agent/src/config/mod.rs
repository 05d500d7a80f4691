//! The agent's configuration: `/etc/custody/agent.toml` plus drop-ins in
//! `/etc/custody/agent.toml.d/*.toml` (merged in name order), or the file
//! given with `--config` (and its own `.d/` drop-ins).
//!
//! Every table denies unknown fields. The file is loaded and validated once,
//! at start ([`load`]); each way it can be wrong has its own [`ConfigError`]
//! variant. Later parts of the agent (sandbox, roles, installer, client) read
//! their own section and add fields here.

mod load;
mod validate;

use std::path::PathBuf;

use serde::Deserialize;

pub use crate::keystore::config::{KeyStoreConfig, PinSource, Pkcs11Config, SoftConfig, TpmConfig};
pub use load::{DEFAULT_CONFIG_PATH, load, load_str};
pub use validate::{coordinator as validate_coordinator, parse_publisher_key};

/// The whole agent configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Where the server's private key lives.
    pub keystore: KeyStoreConfig,
    /// The coordinator this agent talks to (outbound only). Not needed by
    /// `init`, `pubkey` and `selftest`.
    #[serde(default)]
    pub coordinator: Option<CoordinatorConfig>,
    /// The agent's private state directory.
    #[serde(default)]
    pub state: StateConfig,
    /// Deploy-target settings.
    #[serde(default)]
    pub target: TargetConfig,
    /// Process hardening.
    #[serde(default)]
    pub sandbox: SandboxConfig,
    /// How the agent takes jobs from the coordinator.
    #[serde(default)]
    pub jobs: JobsConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

/// `[coordinator]`: where to connect and how to recognise it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// Base URL, `https://host[:port][/prefix]`.
    pub url: String,
    /// SHA-256 fingerprint (64 hex digits, `:` separators allowed) of the CA
    /// certificate the coordinator's TLS certificate must chain to.
    pub ca_fingerprint: String,
}

/// `[state]`: the agent's private state (TPM key blobs, credentials).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Absolute path; created 0700 when missing.
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/custody")
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: default_state_dir(),
        }
    }
}

impl StateConfig {
    /// The enrollment credential: `<dir>/credential.json` (mode 0600).
    pub fn credential_path(&self) -> PathBuf {
        self.dir.join("credential.json")
    }

    /// The private staging directory (0700): one subdirectory per
    /// deployment while it is downloaded, verified and decrypted; emptied
    /// after every deploy.
    pub fn staging_dir(&self) -> PathBuf {
        self.dir.join("staging")
    }

    /// Where a target records the deployments it installed (exactly once).
    pub fn installs_dir(&self) -> PathBuf {
        self.dir.join("installs")
    }
}

/// `[target]`: what a deploy may touch on this server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Absolute directories the administrator granted to the agent's user;
    /// releases install only beneath these. Empty: this server is no target.
    #[serde(default)]
    pub install_roots: Vec<PathBuf>,
    /// Ed25519 public keys (64 hex digits each) of the publishers whose
    /// signed release descriptors this target accepts. A deploy of a
    /// release signed by any other key is refused.
    #[serde(default)]
    pub publisher_keys: Vec<String>,
    /// Largest total size of a release's files, in bytes (default 4 GiB).
    #[serde(default = "default_max_total_bytes")]
    pub max_total_bytes: u64,
    /// Most entries (files and directories) in a release (default 100000).
    #[serde(default = "default_max_files")]
    pub max_files: u64,
    /// Largest single file of a release, in bytes (default 1 GiB); at most
    /// `max_total_bytes`.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// A hook's time limit when its manifest gives none, in seconds
    /// (default 300, at most 86400).
    #[serde(default = "default_hook_timeout_secs")]
    pub hook_timeout_secs: u64,
}

/// Default of `[target] max_total_bytes`: 4 GiB.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 4 << 30;
/// Default of `[target] max_files`.
pub const DEFAULT_MAX_FILES: u64 = 100_000;
/// Default of `[target] max_file_bytes`: 1 GiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 1 << 30;
/// Default of `[target] hook_timeout_secs`: 5 minutes.
pub const DEFAULT_HOOK_TIMEOUT_SECS: u64 = 300;
/// Longest hook time limit `[target] hook_timeout_secs` accepts: one day.
pub const MAX_HOOK_TIMEOUT_SECS: u64 = 86_400;

fn default_max_total_bytes() -> u64 {
    DEFAULT_MAX_TOTAL_BYTES
}

fn default_max_files() -> u64 {
    DEFAULT_MAX_FILES
}

fn default_max_file_bytes() -> u64 {
    DEFAULT_MAX_FILE_BYTES
}

fn default_hook_timeout_secs() -> u64 {
    DEFAULT_HOOK_TIMEOUT_SECS
}

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            install_roots: Default::default(),
            publisher_keys: Default::default(),
            max_total_bytes: default_max_total_bytes(),
            max_files: default_max_files(),
            max_file_bytes: default_max_file_bytes(),
            hook_timeout_secs: default_hook_timeout_secs(),
        }
    }
}

/// `[sandbox]`: process hardening (see `docs/HARDENING.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// Apply the in-process sandbox at `run`. `false` only for development;
    /// the agent then refuses to run as root.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Refuse to run when a part of the sandbox cannot be applied (kernel
    /// without Landlock, or older than `landlock_min_abi`). `false` only for
    /// development: what is not enforced is then logged as a warning.
    #[serde(default = "default_true")]
    pub require: bool,
    /// The service user to run as. Default: the user the agent was started
    /// as when that is not root (systemd's `User=`), else `custody-agent`.
    #[serde(default)]
    pub user: Option<String>,
    /// The primary group, when it is not the user's own.
    #[serde(default)]
    pub group: Option<String>,
    /// The lowest Landlock ABI accepted. Default: 4, the first with TCP
    /// rules. 2 accepts a stock Debian bookworm kernel, where the unit's
    /// `IPAddressAllow=` limits the network instead.
    #[serde(default)]
    pub landlock_min_abi: Option<u32>,
    /// Extra paths the main process may read (absolute).
    #[serde(default)]
    pub read: Vec<PathBuf>,
    /// Extra paths the main process may read and write (absolute), e.g. a
    /// PKCS#11 module's token store that the agent cannot detect.
    #[serde(default)]
    pub read_write: Vec<PathBuf>,
}

fn default_true() -> bool {
    true
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            require: true,
            user: None,
            group: None,
            landlock_min_abi: None,
            read: Vec::new(),
            read_write: Vec::new(),
        }
    }
}

/// `[jobs]`: how the agent takes jobs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// How many key-manager jobs use the keystore at once: the agent
    /// starts this many keystore threads, and holds up to 32 times as many
    /// jobs, fetched and reported in batches, so the next one is at hand
    /// while one unwraps.
    /// Default: what the keystore can unwrap concurrently (the PKCS#11
    /// session count; 1 for a TPM; the CPU count for the soft keystore).
    #[serde(default)]
    pub parallelism: Option<usize>,
    /// Seconds a long poll waits for a job (the coordinator caps it).
    /// Default 25.
    #[serde(default)]
    pub poll_wait_seconds: Option<u64>,
}

/// Most jobs an agent runs at once.
pub const MAX_PARALLELISM: usize = 64;

/// `[log]`: logging (to stderr, which systemd sends to the journal).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// One of `error`, `warn`, `info`, `debug`, `trace`.
    #[serde(default = "default_level")]
    pub level: String,
}

fn default_level() -> String {
    "info".to_owned()
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: default_level(),
        }
    }
}

/// Why the configuration was refused. Each variant names the file or field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A configuration file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The drop-in directory exists but could not be listed.
    #[error("cannot list drop-in directory {path}: {source}")]
    ReadDropIns {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not valid TOML.
    #[error("{path} is not valid TOML: {}", one_line(source))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: Box<toml::de::Error>,
    },
    /// A top-level section this agent does not know.
    #[error("unknown section [{section}]")]
    UnknownSection {
        /// Its name.
        section: String,
    },
    /// A section that must be present is missing.
    #[error("missing section [{section}]")]
    MissingSection {
        /// Its name.
        section: &'static str,
    },
    /// `[keystore] kind` is missing or not one of pkcs11, tpm, soft.
    #[error("[keystore] kind must be \"pkcs11\", \"tpm\" or \"soft\" (got {kind:?})")]
    UnknownKeyStoreKind {
        /// What was given (empty when missing).
        kind: String,
    },
    /// A field is unknown, missing or of the wrong type.
    #[error("invalid configuration: {}", one_line(source))]
    Schema {
        /// serde's description (names the field).
        source: Box<toml::de::Error>,
    },
    /// A path that must be absolute is not.
    #[error("{field} must be an absolute path (got {path})")]
    RelativePath {
        /// The field.
        field: String,
        /// The value.
        path: PathBuf,
    },
    /// An RSA key size this backend does not offer.
    #[error("{field} must be 2048 or 3072 (got {bits})")]
    KeyBits {
        /// The field.
        field: &'static str,
        /// The value.
        bits: u32,
    },
    /// `[keystore] sessions` is out of range.
    #[error("[keystore] sessions must be between 1 and {max} (got {sessions})")]
    Sessions {
        /// The value.
        sessions: usize,
        /// The upper bound.
        max: usize,
    },
    /// A label is empty or longer than PKCS#11 allows (32 bytes).
    #[error("{field} must be 1 to 32 bytes (got {len})")]
    Label {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A systemd credential name is empty or contains `/`.
    #[error("credential name {name:?} must be a plain file name")]
    CredentialName {
        /// The value.
        name: String,
    },
    /// The TCTI string names no TCTI this agent accepts.
    #[error("[keystore] tcti must start with device:, swtpm:, mssim: or tabrmd (got {tcti:?})")]
    Tcti {
        /// The value.
        tcti: String,
    },
    /// The TPM key name cannot be used as a file name.
    #[error("[keystore] key_name {name:?} must be letters, digits, '-' or '_'")]
    KeyName {
        /// The value.
        name: String,
    },
    /// The coordinator URL is not `https://host…`.
    #[error("[coordinator] url must be https://host[:port][/path] (got {url:?})")]
    CoordinatorUrl {
        /// The value.
        url: String,
    },
    /// The CA fingerprint is not 64 hex digits.
    #[error("[coordinator] ca_fingerprint must be a SHA-256 fingerprint, 64 hex digits")]
    CaFingerprint,
    /// A `[target] publisher_keys` entry is not an Ed25519 public key.
    #[error("[target] publisher_keys[{index}] must be an Ed25519 public key, 64 hex digits")]
    PublisherKey {
        /// Position in the list.
        index: usize,
    },
    /// A `[sandbox]` setting is out of range.
    #[error("[sandbox] {field}: {reason}")]
    Sandbox {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A `[jobs]` setting is out of range.
    #[error("[jobs] {field} must be between 1 and {max} (got {value})")]
    Jobs {
        /// The field.
        field: &'static str,
        /// The value.
        value: u64,
        /// The upper bound.
        max: u64,
    },
    /// The log level is not one tracing knows.
    #[error("[log] level must be error, warn, info, debug or trace (got {level:?})")]
    LogLevel {
        /// The value.
        level: String,
    },
    /// An install root is `/`, or not a plain absolute path (`.` or `..`
    /// components).
    #[error("[target] install_roots: {path} {reason}")]
    InstallRoot {
        /// The root as written.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `[target]` size cap or time limit is out of range.
    #[error("[target] {field} {reason}")]
    TargetLimit {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// toml's messages span several lines (with a source excerpt); the agent
/// reports errors on one line.
fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
