//! `GET /console/events`: the live feed (`live`) as Server-Sent Events to one page, for as
//! long as the page stays, its session stands and the process runs.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Extension, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};

use super::live::{RECHECK_EVERY, snapshot};
use super::viewer::Viewer;
use crate::app::App;
use crate::http::state::AppState;

/// Resolves once the session behind `token` has ended (logout, revocation, a demotion that
/// bumped its generation, expiry), asked every [`RECHECK_EVERY`]; a store that cannot answer
/// ends the stream too, as a request would be refused then.
async fn session_ended(app: App, token: String) {
    loop {
        tokio::time::sleep(RECHECK_EVERY).await;
        match app.auth().still_valid(&token).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "console stream closed: its session could not be checked");
                return;
            }
        }
    }
}

/// `GET /console/events`: the feed as Server-Sent Events (`overview` and `job` events), until
/// the page goes away or its session ends.
pub(super) async fn events(
    State(s): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // The stream ends with the session or with the process, whichever is first.
    let ended = futures::future::select(
        Box::pin(session_ended(s.app.clone(), viewer.token.clone())),
        Box::pin(s.closing()),
    );
    let rx = s.console.subscribe().await;
    let first = snapshot(&s.console).await;
    let stream = futures::stream::once(async move {
        Ok(Event::default().event("overview").data(first.to_string()))
    })
    .chain(
        tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|m| async move {
            // A page that fell behind skips what it missed; the next sample repairs it.
            m.ok()
                .map(|m| Ok(Event::default().event(m.kind).data(m.data)))
        }),
    )
    .take_until(Box::pin(ended));
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
