//! Agent liveness and long-poll wake-ups, in memory.
//!
//! Every authenticated agent request marks the server seen; a server is live
//! while its last request is within the liveness window. Each agent has a
//! `Notify` that job assignment pokes, so an idle long poll costs one
//! parked future. `last_seen` is flushed to the database periodically (and
//! read back at start), not written on every poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

struct Entry {
    last_seen_ms: i64,
    /// `last_seen_ms` as last written to the database.
    flushed_ms: i64,
    notify: Arc<Notify>,
}

/// A last-seen time is written to the database again only after it moved
/// this much, so 1,000 polling agents do not turn into 1,000 writes per flush.
const FLUSH_GRANULARITY_MS: i64 = 10_000;

/// The registry.
pub struct Presence {
    window_ms: i64,
    map: Mutex<HashMap<String, Entry>>,
}

impl Presence {
    /// Liveness window in milliseconds.
    pub fn new(window_ms: i64) -> Self {
        Presence {
            window_ms,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Entry>) -> R) -> Option<R> {
        self.map.lock().ok().map(|mut m| f(&mut m))
    }

    fn entry<'m>(m: &'m mut HashMap<String, Entry>, id: &str) -> &'m mut Entry {
        m.entry(id.to_string()).or_insert_with(|| Entry {
            last_seen_ms: 0,
            flushed_ms: 0,
            notify: Arc::new(Notify::new()),
        })
    }

    /// Marks a server seen now.
    pub fn seen(&self, id: &str) {
        let now = crate::store::now_ms();
        self.with(|m| Self::entry(m, id).last_seen_ms = now);
    }

    /// Restores a last-seen time (at start-up).
    pub fn restore(&self, id: &str, last_seen_ms: i64) {
        self.with(|m| {
            let e = Self::entry(m, id);
            e.last_seen_ms = e.last_seen_ms.max(last_seen_ms);
            e.flushed_ms = e.last_seen_ms;
        });
    }

    /// Seen within the window.
    pub fn is_live(&self, id: &str) -> bool {
        let now = crate::store::now_ms();
        self.with(|m| {
            m.get(id)
                .is_some_and(|e| now - e.last_seen_ms <= self.window_ms)
        })
        .unwrap_or(false)
    }

    /// Last seen, Unix ms.
    pub fn last_seen(&self, id: &str) -> Option<i64> {
        self.with(|m| m.get(id).map(|e| e.last_seen_ms))
            .flatten()
            .filter(|t| *t > 0)
    }

    /// The wake-up handle of a server.
    pub fn notifier(&self, id: &str) -> Arc<Notify> {
        self.with(|m| Self::entry(m, id).notify.clone())
            .unwrap_or_else(|| Arc::new(Notify::new()))
    }

    /// Wakes a server's long poll (or the next one, if none is waiting).
    pub fn wake(&self, id: &str) {
        self.with(|m| Self::entry(m, id).notify.notify_one());
    }

    /// Forgets a removed server.
    pub fn forget(&self, id: &str) {
        self.with(|m| {
            if let Some(e) = m.remove(id) {
                e.notify.notify_waiters();
            }
        });
    }

    /// Number of live servers.
    pub fn live_count(&self) -> usize {
        let now = crate::store::now_ms();
        self.with(|m| {
            m.values()
                .filter(|e| now - e.last_seen_ms <= self.window_ms)
                .count()
        })
        .unwrap_or(0)
    }

    /// (id, last seen) of the servers whose last-seen time moved by at
    /// least the flush granularity since the last call (or all, `force`).
    pub fn snapshot(&self, force: bool) -> Vec<(String, i64)> {
        self.with(|m| {
            m.iter_mut()
                .filter(|(_, e)| {
                    e.last_seen_ms > e.flushed_ms
                        && (force || e.last_seen_ms - e.flushed_ms >= FLUSH_GRANULARITY_MS)
                })
                .map(|(k, e)| {
                    e.flushed_ms = e.last_seen_ms;
                    (k.clone(), e.last_seen_ms)
                })
                .collect()
        })
        .unwrap_or_default()
    }
}
