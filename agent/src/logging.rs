//! Logging to stderr (the journal, under systemd), at the configured level.

use crate::config::LogConfig;

/// Installs the global subscriber. `RUST_LOG` is not consulted: the level
/// comes from the validated configuration only.
pub fn init(config: &LogConfig) {
    let level = match config.level.as_str() {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}
