//! Readiness is polled, never slept for.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{E2eError, Result};

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(100);

/// Polls `f` until it returns `Some`, at most `secs` seconds; an error from
/// `f` ends the wait at once.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(E2eError::Timeout {
                what: what.to_owned(),
                secs,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Runs `fut` until it ends or the process gets SIGINT or SIGTERM; then
/// `fut` is dropped, and with it every process it started (coordinators,
/// agents, simulators stop on drop), and the signal is returned as an
/// error. For the bench binaries, which a person stops with Ctrl-C.
pub async fn until_interrupted<T>(fut: impl Future<Output = T>) -> std::result::Result<T, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut int, mut term) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        // Without handlers a signal kills the process as before.
        _ => return Ok(fut.await),
    };
    tokio::select! {
        v = fut => Ok(v),
        _ = int.recv() => Err("interrupted (SIGINT); stopped every process it started".to_owned()),
        _ = term.recv() => Err("terminated (SIGTERM); stopped every process it started".to_owned()),
    }
}
