//! Starting a coordinator: open the state, spawn the background tasks,
//! bind the API (TLS, or plain HTTP on loopback when configured) and the
//! metrics listener; drain on shutdown.

use crate::api;
use crate::artifacts::LocalDirStore;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::ratelimit::RateLimiter;
use crate::state::AppState;
use crate::store::Store;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// A running coordinator.
pub struct Running {
    /// API address actually bound.
    pub addr: SocketAddr,
    /// Metrics address actually bound.
    pub metrics_addr: SocketAddr,
    /// Shared state (tests inspect it).
    pub state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// A sender that starts the drain when set to true.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// Starts the drain and waits for the tasks (at most [`DRAIN`]).
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.wait().await;
    }

    /// Runs until the drain starts (a signal, [`Running::stop`], or one of
    /// the coordinator's tasks ending on its own, which starts it), then
    /// gives the tasks at most [`DRAIN`] to finish. Returns false when a
    /// task had ended on its own: the caller exits non-zero, so systemd
    /// restarts the service.
    pub async fn wait(self) -> bool {
        wait_for_drain(self.shutdown, self.tasks, DRAIN).await
    }
}

/// How long the tasks get to finish once the drain started.
pub const DRAIN: Duration = Duration::from_secs(10);

/// See [`Running::wait`].
async fn wait_for_drain(
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    drain: Duration,
) -> bool {
    let mut draining = shutdown.subscribe();
    let mut healthy = true;
    loop {
        tokio::select! {
            _ = draining.wait_for(|v| *v) => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if tasks.iter().any(JoinHandle::is_finished) {
                    tracing::error!("a coordinator task ended on its own; stopping");
                    healthy = false;
                    let _ = shutdown.send(true);
                    break;
                }
            }
        }
    }
    let deadline = tokio::time::Instant::now() + drain;
    for t in tasks {
        if tokio::time::timeout_at(deadline, t).await.is_err() {
            tracing::warn!("drain: a task did not finish in time");
            break;
        }
    }
    healthy
}

async fn read_account(store: &Store) -> Result<String> {
    sqlx::query_scalar::<_, String>("SELECT id FROM account LIMIT 1")
        .fetch_optional(&store.read)
        .await
        .map_err(Error::db("read account"))?
        .ok_or_else(|| {
            Error::Internal(
                "the state dir is not initialised; run `custody-coordinator init`".into(),
            )
        })
}

/// Opens the state and starts serving.
pub async fn start(config: Config) -> Result<Running> {
    let store = Store::open(&config.database_path()).await?;
    let account = read_account(&store).await?;
    let audit_key = crate::audit::load_or_create_key(&config.state_dir.join("audit.key"), false)?;
    let artifacts = Arc::new(LocalDirStore::new(config.artifact_dir())?);
    let presence = Presence::new((config.agents.liveness_window_seconds * 1000) as i64);
    for s in crate::store::servers::list(&store.read).await? {
        if let Some(t) = s.last_seen_at_ms {
            presence.restore(&s.id, t);
        }
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(Error::io("bind API listener"))?;
    let addr = listener.local_addr().map_err(Error::io("API address"))?;
    let metrics_listener = TcpListener::bind(config.metrics_listen)
        .await
        .map_err(Error::io("bind metrics listener"))?;
    let metrics_addr = metrics_listener
        .local_addr()
        .map_err(Error::io("metrics address"))?;
    let tls = if config.insecure_plain_http {
        None
    } else {
        let (cert, key) = config.tls_files();
        Some(tokio_rustls::TlsAcceptor::from(crate::tls::server_config(
            &cert, &key,
        )?))
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let limiter = RateLimiter::new(
        config.auth_rate_limit.max_failures,
        Duration::from_secs(config.auth_rate_limit.window_seconds),
    );
    let public_url = public_url.trim_end_matches('/').to_string();
    let notifier = Arc::new(crate::notify::Notifier::new(&config, &public_url)?);
    let state = Arc::new(AppState {
        config,
        store,
        account,
        audit_key,
        artifacts,
        presence,
        metrics: Metrics::default(),
        limiter,
        public_url,
        shutdown: shutdown_rx,
        notifier,
    });
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(crate::routing::sweeper(state.clone())));
    tasks.push(tokio::spawn(flush_presence(state.clone())));
    tasks.push(tokio::spawn(crate::approvals::window_sweeper(
        state.clone(),
    )));
    for channel in [
        crate::store::outbox::Channel::Email,
        crate::store::outbox::Channel::Webhook,
    ] {
        tasks.push(tokio::spawn(crate::notify::drain(state.clone(), channel)));
    }
    tasks.push(tokio::spawn(serve_api(
        listener,
        tls,
        api::router(state.clone()),
        state.shutdown.clone(),
    )));
    let mut mshut = state.shutdown.clone();
    let metrics_app = api::metrics_router(state.clone());
    tasks.push(tokio::spawn(async move {
        let _ = axum::serve(metrics_listener, metrics_app)
            .with_graceful_shutdown(async move {
                let _ = mshut.wait_for(|v| *v).await;
            })
            .await;
    }));
    tracing::info!(%addr, %metrics_addr, "coordinator listening");
    Ok(Running {
        addr,
        metrics_addr,
        state,
        shutdown: shutdown_tx,
        tasks,
    })
}

async fn flush_presence(state: Arc<AppState>) {
    let mut shutdown = state.shutdown.clone();
    loop {
        let stop = tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => false,
            _ = shutdown.changed() => true,
        };
        let seen = state.presence.snapshot(stop);
        if !seen.is_empty() {
            let r = async {
                let mut tx = state.begin().await?;
                crate::store::servers::flush_last_seen(&mut tx.c, &seen).await?;
                tx.commit().await
            }
            .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "flushing last-seen times failed");
            }
        }
        if stop {
            return;
        }
    }
}

async fn serve_api(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => { tracing::warn!(error = %e, "accept failed"); tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = async { let _ = shutdown.wait_for(|v| *v).await; } => break,
        };
        let _ = sock.set_nodelay(true);
        let router = router.clone();
        let tls = tls.clone();
        let conn_shutdown = shutdown.clone();
        conns.spawn(async move {
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    router.clone().oneshot(req)
                },
            );
            match tls {
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(sock)).await
                    else {
                        return;
                    };
                    serve_conn(TokioIo::new(stream), svc, conn_shutdown).await;
                }
                None => serve_conn(TokioIo::new(sock), svc, conn_shutdown).await,
            }
        });
        while conns.try_join_next().is_some() {}
    }
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(8), drain)
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period; closing");
    }
}

async fn serve_conn<I, S>(io: I, svc: S, mut shutdown: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = async { let _ = shutdown.wait_for(|v| *v).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forever() -> JoinHandle<()> {
        tokio::spawn(std::future::pending())
    }

    #[tokio::test(start_paused = true)]
    async fn runs_until_the_drain_starts_then_waits_at_most_the_drain_time() {
        let (tx, _rx) = watch::channel(false);
        let stop = tx.clone();
        let waiting = tokio::spawn(wait_for_drain(tx, vec![forever(), forever()], DRAIN));
        // A day of (paused, auto-advanced) time: still running.
        tokio::time::sleep(Duration::from_secs(86_400)).await;
        assert!(!waiting.is_finished());
        let started = tokio::time::Instant::now();
        stop.send(true).unwrap();
        assert!(waiting.await.unwrap(), "a clean drain");
        let took = started.elapsed();
        assert!(
            took >= DRAIN && took < DRAIN + Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ends_on_its_own_starts_the_drain_and_reports_it() {
        let (tx, rx) = watch::channel(false);
        let done = tokio::spawn(async {});
        let healthy = wait_for_drain(tx, vec![forever(), done], DRAIN).await;
        assert!(!healthy);
        assert!(*rx.borrow(), "the drain was started for the other tasks");
    }
}
