//! The coordinator's TOML configuration: typed, `deny_unknown_fields`,
//! validated once at start. `coordinator/examples/coordinator.toml` is the
//! annotated example (tested to parse).

use crate::error::{Error, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// API listen address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Prometheus `/metrics` listen address (plain HTTP); keep it on loopback.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: SocketAddr,
    /// Database, keys, certificates.
    pub state_dir: PathBuf,
    /// Local artifact store; default `STATE_DIR/artifacts`.
    #[serde(default)]
    pub artifact_dir: Option<PathBuf>,
    /// URL agents use to reach this coordinator (artifact URLs); default from `listen`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// TLS files; default the ones `init` made in the state dir.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// Serve plain HTTP (only allowed on a loopback address).
    #[serde(default)]
    pub insecure_plain_http: bool,
    /// Job timing.
    #[serde(default)]
    pub jobs: JobsConfig,
    /// Agent liveness.
    #[serde(default)]
    pub agents: AgentsConfig,
    /// Sizes.
    #[serde(default)]
    pub limits: Limits,
    /// Failed-authentication limit.
    #[serde(default)]
    pub auth_rate_limit: RateLimitConfig,
    /// Outgoing email (SMTP). Absent: no email is sent; webhooks still are.
    #[serde(default)]
    pub email: Option<EmailConfig>,
    /// Delivery of notifications (email and webhooks) from the outbox.
    #[serde(default)]
    pub notifications: NotificationsConfig,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required); default port 587.
    Starttls,
    /// TLS from the first byte (SMTPS); default port 465.
    Tls,
    /// No TLS at all: only to a loopback address (a local relay); default port 25.
    Plain,
}

/// SMTP settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Mail server host name (checked against its certificate) or address.
    pub host: String,
    /// Port; default from `security`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default), `tls`, or `plain` (loopback only).
    #[serde(default = "default_security")]
    pub security: SmtpSecurity,
    /// Sender, e.g. `Custody <custody@example.com>`.
    pub from: String,
    /// File holding the SMTP user name on its first line and the password
    /// on its second; must not be readable by group or others.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// PEM file of the CA certificates to trust for the mail server;
    /// default `notifications.ca_file`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Seconds one delivery attempt may take.
    #[serde(default = "d10")]
    pub timeout_seconds: u64,
}

impl EmailConfig {
    /// The port in use.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::Plain => 25,
        })
    }
}

/// Outbox delivery: retries with exponential backoff, timeouts, links.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Delay before the first retry, milliseconds; doubles on every retry.
    #[serde(default = "d5000")]
    pub retry_initial_ms: u64,
    /// Longest delay between retries, milliseconds.
    #[serde(default = "d600000")]
    pub retry_max_ms: u64,
    /// Attempts before a notification is given up (`failed`).
    #[serde(default = "d12")]
    pub max_attempts: u32,
    /// How often the outbox is looked at when nothing woke it, milliseconds.
    #[serde(default = "d2000")]
    pub poll_interval_ms: u64,
    /// Seconds one webhook request may take.
    #[serde(default = "d10")]
    pub webhook_timeout_seconds: u64,
    /// Base URL of the deployment links in notifications
    /// (`{console_url}/deployments/{id}`); default `public_url`.
    #[serde(default)]
    pub console_url: Option<String>,
    /// PEM file of the CA certificates trusted for `https` webhooks (and
    /// SMTP unless `email.ca_file` is set).
    #[serde(default = "default_ca_file")]
    pub ca_file: PathBuf,
}

fn default_security() -> SmtpSecurity {
    SmtpSecurity::Starttls
}
fn default_ca_file() -> PathBuf {
    PathBuf::from("/etc/ssl/certs/ca-certificates.crt")
}
fn d10() -> u64 {
    10
}
fn d12() -> u32 {
    12
}
fn d2000() -> u64 {
    2000
}
fn d5000() -> u64 {
    5000
}
fn d600000() -> u64 {
    600_000
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            retry_initial_ms: d5000(),
            retry_max_ms: d600000(),
            max_attempts: d12(),
            poll_interval_ms: d2000(),
            webhook_timeout_seconds: d10(),
            console_url: None,
            ca_file: default_ca_file(),
        }
    }
}

/// True for `localhost` and loopback IP addresses.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Server certificate chain (leaf first; include the CA so clients can pin it).
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// Job deadlines and retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// Seconds a key manager has to answer before the job goes to another.
    #[serde(default = "d30")]
    pub key_manager_deadline_seconds: u64,
    /// Seconds a target has to finish a deploy before it is re-issued.
    #[serde(default = "d600")]
    pub deploy_deadline_seconds: u64,
    /// Hand-outs before a job fails for good.
    #[serde(default = "d5")]
    pub max_attempts: u32,
    /// How often leases are checked, milliseconds.
    #[serde(default = "d500")]
    pub sweep_interval_ms: u64,
}

/// Agent liveness.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsConfig {
    /// Seconds since the last request within which an agent counts as live.
    #[serde(default = "d45")]
    pub liveness_window_seconds: u64,
    /// Heartbeat interval told to agents at enrollment.
    #[serde(default = "d15")]
    pub heartbeat_interval_seconds: u64,
    /// Longest long-poll wait, seconds.
    #[serde(default = "d30")]
    pub max_poll_wait_seconds: u64,
}

/// Size limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// JSON request bodies, bytes.
    #[serde(default = "d1m")]
    pub max_json_body_bytes: usize,
    /// Package uploads, bytes.
    #[serde(default = "d10g")]
    pub max_package_bytes: u64,
    /// Deploy log lines per batch.
    #[serde(default = "d1000")]
    pub max_log_lines_per_batch: usize,
}

/// Failed-authentication limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Failures allowed per window per source and per token prefix (0 = off).
    #[serde(default = "d20u32")]
    pub max_failures: u32,
    /// Window, seconds.
    #[serde(default = "d60")]
    pub window_seconds: u64,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8443))
}
fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}
fn d5() -> u32 {
    5
}
fn d15() -> u64 {
    15
}
fn d20u32() -> u32 {
    20
}
fn d30() -> u64 {
    30
}
fn d45() -> u64 {
    45
}
fn d60() -> u64 {
    60
}
fn d500() -> u64 {
    500
}
fn d600() -> u64 {
    600
}
fn d1000() -> usize {
    1000
}
fn d1m() -> usize {
    1024 * 1024
}
fn d10g() -> u64 {
    10 * 1024 * 1024 * 1024
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            key_manager_deadline_seconds: d30(),
            deploy_deadline_seconds: d600(),
            max_attempts: d5(),
            sweep_interval_ms: d500(),
        }
    }
}
impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            liveness_window_seconds: d45(),
            heartbeat_interval_seconds: d15(),
            max_poll_wait_seconds: d30(),
        }
    }
}
impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_json_body_bytes: d1m(),
            max_package_bytes: d10g(),
            max_log_lines_per_batch: d1000(),
        }
    }
}
impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            max_failures: d20u32(),
            window_seconds: d60(),
        }
    }
}

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
    /// Not valid TOML for [`Config`] (unknown keys included).
    #[error("parsing {path}: {source}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Error.
        source: Box<toml::de::Error>,
    },
    /// Plain HTTP on a non-loopback address.
    #[error("insecure_plain_http is only allowed on a loopback listen address, not {0}")]
    PlainHttpNotLoopback(SocketAddr),
    /// `/metrics` would be public without TLS or auth.
    #[error("metrics_listen {0} is not a loopback address")]
    MetricsNotLoopback(SocketAddr),
    /// A numeric setting is out of range.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// SMTP without TLS to a host that is not a loopback address.
    #[error("email.security = \"plain\" is only allowed to a loopback host, not {0}")]
    PlainSmtpNotLoopback(String),
}

impl Config {
    /// Parses TOML text and validates it.
    pub fn parse(text: &str, path: &Path) -> std::result::Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> std::result::Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// A config for `state_dir` with every default.
    pub fn with_state_dir(state_dir: PathBuf) -> Self {
        Config {
            listen: default_listen(),
            metrics_listen: default_metrics_listen(),
            state_dir,
            artifact_dir: None,
            public_url: None,
            tls: None,
            insecure_plain_http: false,
            jobs: JobsConfig::default(),
            agents: AgentsConfig::default(),
            limits: Limits::default(),
            auth_rate_limit: RateLimitConfig::default(),
            email: None,
            notifications: NotificationsConfig::default(),
        }
    }

    /// Checks the rules that types cannot express.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        if self.insecure_plain_http && !self.listen.ip().is_loopback() {
            return Err(ConfigError::PlainHttpNotLoopback(self.listen));
        }
        if !self.metrics_listen.ip().is_loopback() {
            return Err(ConfigError::MetricsNotLoopback(self.metrics_listen));
        }
        if let Some(e) = &self.email
            && e.security == SmtpSecurity::Plain
            && !is_loopback_host(&e.host)
        {
            return Err(ConfigError::PlainSmtpNotLoopback(e.host.clone()));
        }
        for (v, name) in [
            (
                self.jobs.key_manager_deadline_seconds,
                "jobs.key_manager_deadline_seconds",
            ),
            (
                self.jobs.deploy_deadline_seconds,
                "jobs.deploy_deadline_seconds",
            ),
            (u64::from(self.jobs.max_attempts), "jobs.max_attempts"),
            (self.jobs.sweep_interval_ms, "jobs.sweep_interval_ms"),
            (
                self.agents.liveness_window_seconds,
                "agents.liveness_window_seconds",
            ),
            (
                self.agents.max_poll_wait_seconds,
                "agents.max_poll_wait_seconds",
            ),
            (
                self.notifications.retry_initial_ms,
                "notifications.retry_initial_ms",
            ),
            (
                self.notifications.retry_max_ms,
                "notifications.retry_max_ms",
            ),
            (
                u64::from(self.notifications.max_attempts),
                "notifications.max_attempts",
            ),
            (
                self.notifications.poll_interval_ms,
                "notifications.poll_interval_ms",
            ),
            (
                self.notifications.webhook_timeout_seconds,
                "notifications.webhook_timeout_seconds",
            ),
            (
                self.email.as_ref().map_or(1, |e| e.timeout_seconds),
                "email.timeout_seconds",
            ),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        Ok(())
    }

    /// The artifact directory.
    pub fn artifact_dir(&self) -> PathBuf {
        self.artifact_dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("artifacts"))
    }

    /// The database file.
    pub fn database_path(&self) -> PathBuf {
        self.state_dir.join("coordinator.db")
    }

    /// TLS certificate and key paths.
    pub fn tls_files(&self) -> (PathBuf, PathBuf) {
        match &self.tls {
            Some(t) => (t.cert.clone(), t.key.clone()),
            None => (
                self.state_dir.join("server.pem"),
                self.state_dir.join("server.key"),
            ),
        }
    }
}

/// Writes a file readable only by its owner (0600), replacing any old one.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::io("create private file"))?;
    f.write_all(data).map_err(Error::io("write private file"))?;
    f.sync_all().map_err(Error::io("sync private file"))?;
    Ok(())
}
