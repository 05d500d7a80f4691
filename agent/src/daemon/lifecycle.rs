//! Signals (SIGTERM/SIGINT drain, SIGHUP reload) and the systemd watchdog.

use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use super::Context;
use crate::config;

/// The signal streams the agent listens to.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installs the handlers (inside the runtime).
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Handles SIGHUP (reload) until SIGTERM or SIGINT arrives.
    pub async fn wait_for_stop(&mut self, ctx: &Arc<Context>) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => reload(ctx),
            }
        }
    }
}

/// SIGHUP: re-reads the configuration and applies the log level and the
/// pinned publisher keys. Other changes need a restart; a configuration
/// that no longer validates changes nothing.
pub fn reload(ctx: &Context) {
    ctx.notifier.notify("RELOADING=1");
    let fresh = match config::load(Some(&ctx.config_path)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "reload refused: the configuration is invalid; nothing changed");
            ctx.notifier.notify("READY=1");
            return;
        }
    };
    let level = ctx.log.set_level(&fresh.log);
    let keys = ctx
        .target
        .as_ref()
        .map(|t| t.set_publisher_keys(&fresh.target.publisher_keys));
    tracing::info!(
        log_level = %fresh.log.level,
        log_level_applied = level,
        publisher_keys = keys.unwrap_or(0),
        "configuration reloaded (log level, publisher keys); other settings apply at restart"
    );
    ctx.notifier.notify("READY=1");
}

/// Sends `WATCHDOG=1` at half of `WATCHDOG_USEC` while the runtime runs.
pub async fn watchdog(ctx: Arc<Context>, mut drain: watch::Receiver<bool>) {
    let Some(every) = ctx.notifier.watchdog_interval() else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => ctx.notifier.watchdog(),
            _ = drain.changed() => {
                // Keep pinging while jobs drain.
                loop {
                    tick.tick().await;
                    ctx.notifier.watchdog();
                }
            }
        }
    }
}
