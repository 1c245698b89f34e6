//! Retrying the worker's own Redis calls: what must happen (acknowledgements, returning
//! leases) is retried until it does; the rest backs off.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use crate::error::QueueError;

/// Retries a queue operation until it succeeds (Redis down or reconnecting), with backoff.
pub(super) async fn persist<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, QueueError>>,
{
    let mut delay = Duration::from_millis(50);
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::warn!(error = %e, "{what} failed; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// [`persist`] for at most `attempts` tries: the last error when none succeeded.
pub(super) async fn persist_bounded<T, F, Fut>(
    what: &str,
    attempts: u32,
    mut op: F,
) -> Result<T, QueueError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, QueueError>>,
{
    let mut delay = Duration::from_millis(50);
    let mut tried = 0;
    loop {
        tried += 1;
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if tried >= attempts.max(1) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "{what} failed (try {tried} of {attempts}); retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Waits `delay` after a failed Redis call (less if the worker is stopping), then doubles it,
/// up to 2 s.
pub(super) async fn back_off(delay: &mut Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(*delay) => {}
        _ = stop.changed() => {}
    }
    *delay = (*delay * 2).min(Duration::from_secs(2));
}
