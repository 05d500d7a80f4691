//! systemd's notification protocol (`sd_notify(3)`), without libsystemd:
//! one datagram per message to the Unix socket named by `NOTIFY_SOCKET`
//! (a path, or `@name` for the abstract namespace).
//!
//! The socket is connected at start-up, before the sandbox, so sending
//! later needs neither file access nor a new connection. `WATCHDOG_USEC`
//! (set by `WatchdogSec=`) says how often systemd expects `WATCHDOG=1`; the
//! agent pings at half that interval. Without `NOTIFY_SOCKET` every send is
//! a no-op.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A connected notification socket, or nothing when not run by systemd.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<UnixDatagram>,
    watchdog: Option<Duration>,
}

fn connect(path: &str) -> std::io::Result<UnixDatagram> {
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt as _;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.connect_addr(&addr)?;
    } else {
        sock.connect(path)?;
    }
    sock.set_nonblocking(true)?;
    Ok(sock)
}

impl Notifier {
    /// Connects to `NOTIFY_SOCKET` if it is set, and reads `WATCHDOG_USEC`
    /// (honoured only when `WATCHDOG_PID` is unset or this process).
    pub fn from_env() -> std::io::Result<Notifier> {
        let socket = match std::env::var("NOTIFY_SOCKET") {
            Ok(p) if !p.is_empty() => Some(connect(&p)?),
            _ => None,
        };
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us && socket.is_some())
            .map(Duration::from_micros);
        Ok(Notifier { socket, watchdog })
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier {
            socket: None,
            watchdog: None,
        }
    }

    /// Whether systemd is listening.
    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, if set.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    /// Sends one message (`READY=1`, `STOPPING=1`, `WATCHDOG=1`,
    /// `STATUS=…`). Errors are ignored: notifications are advisory.
    pub fn notify(&self, message: &str) {
        if let Some(s) = &self.socket
            && let Err(e) = s.send(message.as_bytes())
        {
            tracing::debug!(error = %e, "sd_notify failed");
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={status}"));
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.notify("STOPPING=1");
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) {
        self.notify("WATCHDOG=1");
    }

    /// `STATUS=…`.
    pub fn status(&self, status: &str) {
        self.notify(&format!("STATUS={status}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some(connect(path.to_str().unwrap()).unwrap()),
            watchdog: Some(Duration::from_secs(60)),
        };
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(30)));
        n.ready("connected");
        n.watchdog();
        let mut buf = [0u8; 128];
        let k = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"READY=1\nSTATUS=connected");
        let k = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"WATCHDOG=1");
    }

    #[test]
    fn abstract_sockets_work_and_disabled_sends_nothing() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("custody-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier {
            socket: Some(connect(&format!("@{name}")).unwrap()),
            watchdog: None,
        };
        n.stopping();
        let mut buf = [0u8; 32];
        let k = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"STOPPING=1");
        let d = Notifier::disabled();
        assert!(!d.enabled());
        d.stopping();
        assert_eq!(d.watchdog_interval(), None);
    }
}
