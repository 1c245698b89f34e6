//! Waiting for a state, bounded: the one way tests wait (a sleep is never synchronisation). A
//! check is asked again, sooner at first, until it holds or the limit passes; then the test
//! fails naming what it waited for and the last state it saw.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// The first pause between two checks; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause between two checks.
const MAX_PAUSE: Duration = Duration::from_millis(100);

fn next(pause: Duration) -> Duration {
    (pause * 2).min(MAX_PAUSE)
}

/// Asks `check` until it answers `Ok`, within `limit`; its `Err` is the state seen meanwhile.
///
/// # Panics
/// When `limit` passes first, naming `what` and the last state.
pub async fn eventually<T, S, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    S: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, S>>,
{
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(seen) => assert!(
                started.elapsed() < limit,
                "{what}: not within {limit:?}; last seen: {seen:?}"
            ),
        }
        tokio::time::sleep(pause).await;
        pause = next(pause);
    }
}

/// [`eventually`] for a condition with nothing to report.
pub async fn until<F, Fut>(what: &str, limit: Duration, mut holds: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually(what, limit, || {
        let fut = holds();
        async move { if fut.await { Ok(()) } else { Err("no") } }
    })
    .await
}

/// [`eventually`] on a thread that is not async (tests of spawned processes).
///
/// # Panics
/// When `limit` passes first, naming `what` and the last state.
pub fn eventually_blocking<T, S: Debug>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<T, S>,
) -> T {
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        match check() {
            Ok(v) => return v,
            Err(seen) => assert!(
                started.elapsed() < limit,
                "{what}: not within {limit:?}; last seen: {seen:?}"
            ),
        }
        std::thread::sleep(pause);
        pause = next(pause);
    }
}
