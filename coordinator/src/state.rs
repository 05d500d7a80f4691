//! Shared state of a running coordinator, and [`Tx`]: the one way to
//! change it (a write transaction that carries its audit entries, signs a
//! checkpoint at commit and wakes the agents it queued work for).

use crate::artifacts::ArtifactStore;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::ratelimit::RateLimiter;
use crate::store::Store;
use sqlx::{Sqlite, Transaction};
use std::sync::Arc;
use tokio::sync::watch;

/// Everything a handler or a background task needs.
pub struct AppState {
    /// Validated configuration.
    pub config: Config,
    /// Database.
    pub store: Store,
    /// This coordinator's account id.
    pub account: String,
    /// Audit checkpoint signing key.
    pub audit_key: ed25519_dalek::SigningKey,
    /// Package storage.
    pub artifacts: Arc<dyn ArtifactStore>,
    /// Agent liveness and wake-ups.
    pub presence: Presence,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Failed-auth limiter.
    pub limiter: RateLimiter,
    /// Base URL agents reach us at (artifact URLs).
    pub public_url: String,
    /// Flips to true when shutdown starts.
    pub shutdown: watch::Receiver<bool>,
    /// Email and webhook senders (the outbox drainers' side).
    pub notifier: Arc<crate::notify::Notifier>,
}

impl AppState {
    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx<'_>> {
        Ok(Tx {
            c: self.store.begin().await?,
            state: self,
            audited: false,
            head: None,
            saved: None,
            kept_savepoint: false,
            wake: Vec::new(),
            outbox: false,
        })
    }
}

/// A write transaction with its audit entries and wake-ups.
pub struct Tx<'a> {
    /// The database transaction (`&mut *tx.c` is a connection).
    pub c: Transaction<'static, Sqlite>,
    state: &'a AppState,
    audited: bool,
    /// The audit chain's head as this transaction left it (read once).
    head: Option<crate::audit::Head>,
    /// `(audited, head)` when the open savepoint was taken.
    saved: Option<(bool, Option<crate::audit::Head>)>,
    /// A savepoint was kept and is still to be released.
    kept_savepoint: bool,
    wake: Vec<String>,
    outbox: bool,
}

impl<'a> Tx<'a> {
    /// Appends an audit entry in this transaction (must-log-or-fail: if it
    /// cannot be written, the caller's action fails with it).
    pub async fn audit(
        &mut self,
        actor: &str,
        action: &str,
        object: &str,
        result: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        crate::audit::append(
            &mut self.c,
            &mut self.head,
            actor,
            action,
            object,
            result,
            detail,
        )
        .await?;
        self.audited = true;
        Ok(())
    }

    /// Wakes `server_id`'s long poll after commit.
    pub fn wake(&mut self, server_id: &str) {
        self.wake.push(server_id.to_string());
    }

    /// Wakes the notification senders after commit (outbox rows queued).
    pub fn wake_outbox(&mut self) {
        self.outbox = true;
    }

    /// The state this transaction belongs to.
    pub fn state(&self) -> &'a AppState {
        self.state
    }

    /// Opens a savepoint (one at a time): what follows can be undone by
    /// [`Tx::rollback_to_savepoint`] without losing the rest of the
    /// transaction.
    pub async fn savepoint(&mut self) -> Result<()> {
        // A kept savepoint is released together with opening the next:
        // one round trip to the database thread instead of two.
        let sql = if self.kept_savepoint {
            "RELEASE SAVEPOINT part; SAVEPOINT part"
        } else {
            "SAVEPOINT part"
        };
        self.exec(sql).await?;
        self.kept_savepoint = false;
        self.saved = Some((self.audited, self.head.clone()));
        Ok(())
    }

    /// Keeps what was done since [`Tx::savepoint`]. (The savepoint is
    /// released with the next one, or by the commit.)
    pub fn keep_savepoint(&mut self) {
        self.kept_savepoint = self.saved.take().is_some();
    }

    /// Undoes everything since [`Tx::savepoint`], audit entries included.
    pub async fn rollback_to_savepoint(&mut self) -> Result<()> {
        self.exec("ROLLBACK TO SAVEPOINT part; RELEASE SAVEPOINT part")
            .await?;
        if let Some((audited, head)) = self.saved.take() {
            self.audited = audited;
            self.head = head;
        }
        Ok(())
    }

    async fn exec(&mut self, sql: &'static str) -> Result<()> {
        sqlx::query(sql)
            .execute(&mut *self.c)
            .await
            .map_err(Error::db("savepoint"))?;
        Ok(())
    }

    /// Signs a checkpoint if entries were added, commits, then wakes agents.
    pub async fn commit(mut self) -> Result<()> {
        if self.audited {
            crate::audit::checkpoint(&mut self.c, self.head.as_ref(), &self.state.audit_key)
                .await?;
        }
        self.c.commit().await.map_err(|e| {
            if self.audited {
                Error::Audit(format!("commit: {e}"))
            } else {
                Error::Db {
                    op: "commit",
                    source: e,
                }
            }
        })?;
        for s in &self.wake {
            self.state.presence.wake(s);
        }
        if self.outbox {
            self.state.notifier.wake();
        }
        Ok(())
    }
}
