//! Finding a free pair of consecutive loopback ports.

use std::net::{Ipv4Addr, TcpListener};

/// A port `p` such that `p` and `p + 1` could both be bound just now. The
/// caller retries if another process takes them before swtpm does.
pub fn free_pair() -> Option<u16> {
    for _ in 0..50 {
        let first = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
        let port = first.local_addr().ok()?.port();
        if port == u16::MAX {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1)).is_ok() {
            return Some(port);
        }
    }
    None
}
