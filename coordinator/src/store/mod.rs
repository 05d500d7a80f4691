//! SQLite storage (WAL) through sqlx: one writer connection, a pool of
//! readers. Every multi-row change runs in one [`WriteTx`]; the audit entries
//! it records commit (and are checkpointed) with it, or nothing does.

pub mod approvals;
pub mod apps;
pub mod deployments;
pub mod envs;
pub mod jobs;
pub mod outbox;
pub mod servers;
pub mod users;

use crate::error::{Error, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// The embedded migrations (`coordinator/migrations/`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Database handles.
#[derive(Clone)]
pub struct Store {
    /// Readers (WAL lets them run beside the writer).
    pub read: SqlitePool,
    /// The single writer connection: writes are serialised here, not by
    /// SQLite's busy handler.
    pub write: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database file and runs migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let url = format!("sqlite://{}", path.display());
        let opts = SqliteConnectOptions::from_str(&url)
            .map_err(Error::db("parse database path"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // The one writer gets a 16 MiB page cache (SQLite's default is
        // 2 MiB per connection): with the default, the CPU a key-manager
        // job costs grew with the database (0.25 ms per job with 1,000
        // jobs in it, 0.42 ms with 3,000: flow_bench (a)); with 16 MiB it
        // stayed at 0.30 ms. The readers keep the default.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone().pragma("cache_size", "-16384"))
            .await
            .map_err(Error::db("open database"))?;
        MIGRATOR
            .run(&write)
            .await
            .map_err(|e| Error::Internal(format!("database migration failed: {e}")))?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.read_only(true))
            .await
            .map_err(Error::db("open database readers"))?;
        Ok(Store { read, write })
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Transaction<'static, Sqlite>> {
        self.write
            .begin()
            .await
            .map_err(Error::db("begin transaction"))
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new opaque id: `prefix_` + UUIDv7 (time-ordered) in hex.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Joins a list for a comma-separated column.
pub fn join_list<T: AsRef<str>>(items: &[T]) -> String {
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(",")
}

/// Splits a comma-separated column.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}
