//! `custody-agent run` once the process is sandboxed and its runtime
//! started: long polls for jobs, runs them, heartbeats, pings the systemd
//! watchdog, reloads on SIGHUP, drains on SIGTERM.
//!
//! - **Polling.** The agent holds at most `32 × parallelism` jobs at once
//!   (`in_hand` permits). Two pollers each wait for room, take all the
//!   room there is and long-poll for that many jobs
//!   (`GET /v1/agent/jobs?wait=…&max=…`), so a busy key manager fetches
//!   the jobs queued for it in batches instead of one round trip each.
//!   Key-manager jobs queue for `parallelism` keystore threads (the
//!   keystore's session count by default), started once: a thread that
//!   finishes a job takes the next at once, so the keystore does not sit
//!   idle through round trips or task wake-ups. Their results go to one
//!   reporter, which posts them in batches (`POST /v1/agent/results`):
//!   what queued up while its last request was in flight, after waiting up
//!   to 10 ms for half the room in hand. A deploy is handed to the one
//!   deploy worker (deploys run one at a time) and frees its room at once.
//! - **Reconnecting.** A failed poll waits with exponential backoff and
//!   jitter (1 s doubling to 60 s) before the next; a success resets it.
//! - **Results** are posted until the coordinator acknowledges them (the
//!   job's `idempotency_key` and `attempt` make a repeat harmless:
//!   `duplicate: true`).
//! - **SIGTERM / SIGINT** drain: `STOPPING=1`, no new polls, the running
//!   jobs finish and report; deploys queued but not started are left to
//!   the coordinator's re-delivery.
//! - **A lost keystore** (the token's session or login, or the TPM
//!   connection, gone: `KeyStoreError::Lost`) fails the job that met it
//!   as retryable, so the coordinator hands it to another key manager (or
//!   re-delivers the deploy), then drains as on SIGTERM and exits with a
//!   failure: systemd's `Restart=on-failure` starts the agent again, and
//!   it opens the keystore afresh, sandboxed as at every start. Nothing in
//!   the sandboxed process tries to reopen a device it may no longer reach.
//! - **SIGHUP** re-reads the configuration file and applies what can change
//!   while running: the log level and `[target] publisher_keys`. Everything
//!   else (keystore, coordinator, sandbox, state dir, parallelism) needs a
//!   restart, and the agent says so when it changed.

mod heartbeat;
mod keystore_threads;
mod lifecycle;
mod poller;
mod results;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use custody_client::Client;
use tokio::sync::{mpsc, watch};

use crate::keystore::KeyStore;
use crate::logging::LogHandle;
use crate::notify::Notifier;
use crate::roles::target::Target;

/// Counters, for logs and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    /// Key-manager jobs that succeeded.
    pub km_succeeded: AtomicU64,
    /// Key-manager jobs that failed.
    pub km_failed: AtomicU64,
    /// Deploys that succeeded (including already-installed answers).
    pub deploys_succeeded: AtomicU64,
    /// Deploys that failed.
    pub deploys_failed: AtomicU64,
}

/// Everything the running agent shares between its tasks.
pub struct Context {
    /// The authenticated coordinator client.
    pub client: Client,
    /// This server's id.
    pub server_id: String,
    /// Its account.
    pub account: String,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// Long-poll wait.
    pub poll_wait: Duration,
    /// The `parallelism` threads that run key-manager jobs, one job each
    /// at a time.
    pub keystore_threads: keystore_threads::KeystoreThreads,
    /// `IN_HAND_PER_THREAD × parallelism` permits: a job holds one from
    /// the poll that fetched it until its result is posted.
    pub in_hand: Arc<tokio::sync::Semaphore>,
    /// The deploy target, when this agent is one.
    pub target: Option<Arc<Target>>,
    /// systemd notifications.
    pub notifier: Notifier,
    /// The log level handle (SIGHUP).
    pub log: LogHandle,
    /// The configuration file (SIGHUP re-reads it).
    pub config_path: PathBuf,
    /// Counters.
    pub stats: Stats,
    online: AtomicBool,
    /// Why the keystore was lost, once it is; [`run`] waits for it.
    keystore_lost: watch::Sender<Option<String>>,
}

/// Why [`run`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// SIGTERM or SIGINT.
    Asked,
    /// The keystore stopped serving this process (the reason, no secret).
    KeystoreLost(String),
}

impl Context {
    /// A context; see the fields. Starts the keystore threads, which own
    /// `keystore` from then on.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        keystore: Arc<dyn KeyStore>,
        server_id: String,
        account: String,
        heartbeat_interval: Duration,
        poll_wait: Duration,
        parallelism: usize,
        target: Option<Arc<Target>>,
        notifier: Notifier,
        log: LogHandle,
        config_path: PathBuf,
    ) -> std::io::Result<Self> {
        let keystore_threads =
            keystore_threads::KeystoreThreads::start(keystore, &account, &server_id, parallelism)?;
        Ok(Context {
            client,
            server_id,
            account,
            heartbeat_interval,
            poll_wait,
            in_hand: Arc::new(tokio::sync::Semaphore::new(in_hand_room(
                keystore_threads.count(),
            ))),
            keystore_threads,
            target,
            notifier,
            log,
            config_path,
            stats: Stats::default(),
            online: AtomicBool::new(false),
            keystore_lost: watch::Sender::new(None),
        })
    }

    /// Records that the keystore stopped serving this process (the first
    /// reason is kept); [`run`] then drains and stops.
    pub(crate) fn keystore_lost(&self, reason: &str) {
        self.keystore_lost.send_if_modified(|lost| {
            if lost.is_some() {
                return false;
            }
            tracing::error!(error = %reason, "the keystore stopped serving this agent; stopping, to be restarted and open it again");
            self.notifier
                .status("keystore lost; stopping to be restarted");
            *lost = Some(reason.to_owned());
            true
        });
    }

    /// How many jobs the agent holds at most.
    pub fn in_hand_room(&self) -> usize {
        in_hand_room(self.keystore_threads.count())
    }

    /// Records whether the coordinator answers, logging each change once.
    pub(crate) fn set_online(&self, online: bool, detail: &str) {
        if self.online.swap(online, Ordering::Relaxed) != online {
            if online {
                tracing::info!("connected to the coordinator");
                self.notifier.status("connected to the coordinator");
            } else {
                tracing::warn!(error = %detail, "lost the coordinator; reconnecting with backoff");
                self.notifier.status("reconnecting to the coordinator");
            }
        }
    }
}

/// Jobs held per keystore thread: one unwrapping, the others fetched and
/// waiting or done and being reported. A job's room is free only once the
/// coordinator has its result, so the room must cover a result's round
/// trip and the next poll's at the keystore's rate, and let results go in
/// batches (docs/BENCHMARKS.md has the figures for 2 to 64). The last job
/// in hand waits for the 31 before it: at a TPM's 10 unwraps/s (2 per
/// job) about 6 s, well inside a key-manager job's lease (30 s by
/// default); a keystore slower than 2 unwraps/s per thread needs a longer
/// `[jobs] key_manager_deadline_seconds` on the coordinator.
const IN_HAND_PER_THREAD: usize = 32;

fn in_hand_room(threads: usize) -> usize {
    IN_HAND_PER_THREAD * threads
}

/// Long polls at once: while one waits for the coordinator's answer, the
/// other can fetch the room that jobs finishing meanwhile free.
const POLLERS: usize = 2;

/// Runs the agent until SIGTERM/SIGINT or a lost keystore, then drains.
/// Must run inside the runtime.
pub async fn run(ctx: Arc<Context>) -> Stopped {
    let (drain_tx, drain_rx) = watch::channel(false);
    let (deploy_tx, deploy_rx) = mpsc::unbounded_channel();
    let (report_tx, report_rx) = mpsc::unbounded_channel();

    let signals = match lifecycle::Signals::install() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers; SIGTERM stops without draining");
            None
        }
    };

    let mut tasks = tokio::task::JoinSet::new();
    for slot in 0..POLLERS {
        tasks.spawn(poller::run(
            ctx.clone(),
            slot,
            drain_rx.clone(),
            deploy_tx.clone(),
            report_tx.clone(),
        ));
    }
    drop(deploy_tx);
    // Ends once the pollers and every job they started have reported.
    drop(report_tx);
    tasks.spawn(results::reporter(ctx.clone(), report_rx));
    tasks.spawn(poller::deploy_worker(
        ctx.clone(),
        deploy_rx,
        drain_rx.clone(),
    ));
    let background = [
        tokio::spawn(heartbeat::run(ctx.clone(), drain_rx.clone())),
        tokio::spawn(lifecycle::watchdog(ctx.clone(), drain_rx.clone())),
    ];
    ctx.notifier.ready("running; connecting to the coordinator");
    tracing::info!(
        server = %ctx.server_id,
        parallelism = ctx.keystore_threads.count(),
        target = ctx.target.is_some(),
        "agent running"
    );

    let asked = async {
        if let Some(mut signals) = signals {
            signals.wait_for_stop(&ctx).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let mut lost = ctx.keystore_lost.subscribe();
    let stopped = tokio::select! {
        () = asked => Stopped::Asked,
        Ok(reason) = lost.wait_for(Option::is_some) => {
            Stopped::KeystoreLost(reason.clone().unwrap_or_default())
        }
    };
    ctx.notifier.stopping();
    tracing::info!("stopping: no new jobs; finishing the running ones");
    let _ = drain_tx.send(true);
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            tracing::error!(error = %e, "a worker task ended abnormally");
        }
    }
    for b in background {
        b.abort();
    }
    let s = &ctx.stats;
    tracing::info!(
        km_succeeded = s.km_succeeded.load(Ordering::Relaxed),
        km_failed = s.km_failed.load(Ordering::Relaxed),
        deploys_succeeded = s.deploys_succeeded.load(Ordering::Relaxed),
        deploys_failed = s.deploys_failed.load(Ordering::Relaxed),
        "stopped"
    );
    stopped
}
