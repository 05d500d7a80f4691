//! Failed-authentication rate limit, per source address and per token
//! prefix: after `max_failures` failures inside `window`, further attempts
//! from that source (or with that prefix) get 429 until the window passes.
//! Memory is bounded: at most `MAX_KEYS` keys are tracked; stale ones are
//! pruned when the map is full.

use crate::error::{Error, Result};
use custody_proto::ErrorCode;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_KEYS: usize = 100_000;

#[derive(Hash, PartialEq, Eq, Clone)]
enum Key {
    Ip(IpAddr),
    Prefix(String),
}

/// The limiter.
pub struct RateLimiter {
    max_failures: u32,
    window: Duration,
    map: Mutex<HashMap<Key, (Instant, u32)>>,
}

impl RateLimiter {
    /// `max_failures` per `window`; 0 disables the limit.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        RateLimiter {
            max_failures,
            window,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn keys(ip: Option<IpAddr>, prefix: Option<&str>) -> Vec<Key> {
        let mut k = Vec::with_capacity(2);
        if let Some(ip) = ip {
            k.push(Key::Ip(ip));
        }
        if let Some(p) = prefix {
            k.push(Key::Prefix(p.to_string()));
        }
        k
    }

    /// Refuses with 429 while the source or the prefix is over the limit.
    pub fn check(&self, ip: Option<IpAddr>, prefix: Option<&str>) -> Result<()> {
        if self.max_failures == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let map = self
            .map
            .lock()
            .map_err(|_| Error::Internal("rate limiter lock".into()))?;
        for k in Self::keys(ip, prefix) {
            if let Some((start, n)) = map.get(&k)
                && now.duration_since(*start) < self.window
                && *n >= self.max_failures
            {
                return Err(Error::api(
                    ErrorCode::RateLimited,
                    "too many failed authentications; try again later",
                ));
            }
        }
        Ok(())
    }

    /// Counts a failure.
    pub fn fail(&self, ip: Option<IpAddr>, prefix: Option<&str>) {
        if self.max_failures == 0 {
            return;
        }
        let now = Instant::now();
        let Ok(mut map) = self.map.lock() else { return };
        if map.len() >= MAX_KEYS {
            let window = self.window;
            map.retain(|_, (start, _)| now.duration_since(*start) < window);
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        for k in Self::keys(ip, prefix) {
            let e = map.entry(k).or_insert((now, 0));
            if now.duration_since(e.0) >= self.window {
                *e = (now, 0);
            }
            e.1 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_source_and_prefix() {
        let l = RateLimiter::new(3, Duration::from_secs(60));
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            l.check(Some(ip), Some("cst_aaaaaaaa")).unwrap();
            l.fail(Some(ip), Some("cst_aaaaaaaa"));
        }
        assert!(l.check(Some(ip), None).is_err());
        // Another source with the same prefix is also refused.
        assert!(
            l.check(Some("127.0.0.3".parse().unwrap()), Some("cst_aaaaaaaa"))
                .is_err()
        );
        // Another source with another prefix is fine.
        assert!(
            l.check(Some("127.0.0.3".parse().unwrap()), Some("cst_bbbbbbbb"))
                .is_ok()
        );
    }
}
