//! Lifecycle: SIGTERM/SIGINT start a graceful drain; `sd_notify` READY,
//! WATCHDOG and STOPPING when `NOTIFY_SOCKET` is set (systemd `Type=notify`,
//! `WatchdogSec=`).

use crate::store::Store;
use std::time::Duration;
use tokio::sync::watch;

/// Sends one `sd_notify` state line; does nothing without `NOTIFY_SOCKET`.
pub fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "sd_notify: socket");
            return;
        }
    };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let r = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// Flips `tx` to true on SIGTERM or SIGINT.
pub async fn on_signal(tx: watch::Sender<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = int.recv() => tracing::info!("SIGINT: draining"),
    }
    sd_notify("STOPPING=1");
    let _ = tx.send(true);
}

/// How often systemd wants `WATCHDOG=1`: half of `WATCHDOG_USEC`, when it
/// is set for this process (`WATCHDOG_PID` unset or ours).
pub fn watchdog_interval() -> Option<Duration> {
    std::env::var_os("NOTIFY_SOCKET")?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.trim() != std::process::id().to_string()
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Sends `WATCHDOG=1` every `every` for as long as the database writer
/// answers within that time: a coordinator whose writer is wedged stops
/// pinging, and systemd restarts it (no queued job is lost across that).
pub async fn watchdog(store: Store, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        let probe = sqlx::query("SELECT 1").execute(&store.write);
        match tokio::time::timeout(every, probe).await {
            Ok(Ok(_)) => sd_notify("WATCHDOG=1"),
            Ok(Err(e)) => tracing::warn!(error = %e, "watchdog: database writer failed"),
            Err(_) => tracing::warn!("watchdog: database writer did not answer in time"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}
