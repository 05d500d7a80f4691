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
