//! Logging to stderr (the journal, under systemd), at the configured level.

use std::io::IsTerminal;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Registry, reload};

use crate::config::LogConfig;

/// The configured level as a filter.
pub fn level(config: &LogConfig) -> LevelFilter {
    match config.level.as_str() {
        "error" => LevelFilter::ERROR,
        "warn" => LevelFilter::WARN,
        "debug" => LevelFilter::DEBUG,
        "trace" => LevelFilter::TRACE,
        _ => LevelFilter::INFO,
    }
}

/// Changes the level of the running subscriber (SIGHUP reload).
#[derive(Debug, Clone)]
pub struct LogHandle(Option<reload::Handle<Targets, Registry>>);

impl LogHandle {
    /// Applies `config`'s level. Returns whether it could.
    pub fn set_level(&self, config: &LogConfig) -> bool {
        self.0
            .as_ref()
            .is_some_and(|h| h.reload(filter(config)).is_ok())
    }
}

fn filter(config: &LogConfig) -> Targets {
    Targets::new()
        .with_default(level(config))
        .with_target("tss_esapi", LevelFilter::OFF)
        .with_target("cryptoki", LevelFilter::OFF)
}

/// Installs the global subscriber. `RUST_LOG` is not consulted: the level
/// comes from the validated configuration only (and changes with it on
/// SIGHUP, through the returned handle).
///
/// The hardware crates' own log records are silenced: `tss-esapi` logs an
/// error for every failed TPM command — including every unwrap of a bad
/// ciphertext, which an attacker chooses — and the agent's typed errors
/// already say which operation failed.
pub fn init(config: &LogConfig) -> LogHandle {
    let (filter, handle) = reload::Layer::new(filter(config));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time();
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok();
    LogHandle(installed.then_some(handle))
}
