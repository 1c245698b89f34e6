//! Trips today (UTC): completed trips and points awarded per hour from MySQL `dataset.trips`,
//! dead `trip.complete` jobs per hour from the job records, compensations pending, and a map of
//! recent trip start points over the live GTFS feed's stops.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{TimeZone, Timelike, Utc};
use maud::{Markup, html};

use super::chart::{self, Series};
use super::error::ConsoleError;
use super::map::{self, LatLng};
use super::page;
use super::viewer::Viewer;
use crate::http::state::AppState;

/// How many recent trip starts the map shows.
const MAP_TRIPS: u32 = 300;

/// Today's midnight, UTC, in Unix ms.
fn midnight_ms() -> i64 {
    let today = Utc::now().date_naive();
    Utc.from_utc_datetime(&today.and_hms_opt(0, 0, 0).unwrap_or_default())
        .timestamp_millis()
}

/// Completed trips and points per hour today: (hour, trips, points).
async fn completed_by_hour(s: &AppState, since: i64) -> Result<Vec<(u32, i64, i64)>, ConsoleError> {
    let since = chrono::DateTime::from_timestamp_millis(since)
        .unwrap_or_default()
        .naive_utc();
    Ok(s.app.trips().completed_by_hour(since).await?)
}

async fn recent_starts(s: &AppState) -> Result<Vec<LatLng>, ConsoleError> {
    Ok(s.app.trips().recent_starts(MAP_TRIPS).await?)
}

async fn stops(s: &AppState) -> Vec<LatLng> {
    match s.app.gtfs().stops(None).await {
        Ok((_, _, stops)) => stops
            .into_iter()
            .filter_map(|st| Some((st.lat?, st.lng?)))
            .collect(),
        Err(_) => Vec::new(), // no feed imported: the map shows trips alone
    }
}

/// The hours with anything in them: completed trips, points and dead trip jobs.
fn hourly(rows: &[(u32, i64, i64)], dead: Option<&Series>) -> Markup {
    let dead_at = |h: u32| -> i64 {
        dead.and_then(|d| {
            let i = d.times.iter().position(|t| {
                chrono::DateTime::from_timestamp_millis(*t).map(|x| x.hour()) == Some(h)
            })?;
            d.counts.get("dead")?.get(i).map(|v| *v as i64)
        })
        .unwrap_or(0)
    };
    let hours: std::collections::BTreeSet<u32> = rows
        .iter()
        .map(|r| r.0)
        .chain((0..24).filter(|h| dead_at(*h) > 0))
        .collect();
    html! {
        table.hourly {
            thead { tr { th { "Hour (UTC)" } th { "Completed trips" } th { "Points awarded" } th { "Dead trip jobs" } } }
            tbody {
                @if hours.is_empty() { tr { td colspan="4" { "Nothing yet today." } } }
                @for h in &hours {
                    @let row = rows.iter().find(|r| r.0 == *h);
                    tr data-hour=(h) {
                        td { (format!("{h:02}:00")) }
                        td.num { (row.map(|r| r.1).unwrap_or(0)) }
                        td.num { (row.map(|r| r.2).unwrap_or(0)) }
                        td.num { (dead_at(*h)) }
                    }
                }
            }
        }
    }
}

/// `GET /console/trips`.
pub(super) async fn show(
    State(s): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Response {
    let since = midnight_ms();
    let trips_queue = s.app.hub().config().trips.queue.clone();
    let pending = async {
        let q = s.app.queue(&trips_queue)?;
        Ok::<_, ConsoleError>(q.counts().await?.dead_unhandled)
    };
    let (hours, dead, starts, stop_points, pending) = tokio::join!(
        completed_by_hour(&s, since),
        chart::dead_trips(&s.app, since),
        recent_starts(&s),
        stops(&s),
        pending
    );
    // No dead jobs today is a series without buckets: draw it on the day's hours all the same.
    let dead = dead.map(|mut d| {
        if d.times.is_empty() {
            d.times = (0..24).map(|h| since + h * 3_600_000).collect();
        }
        d
    });
    let mut per_hour = Series {
        times: (0..24).map(|h| since + h * 3_600_000).collect(),
        ..Series::default()
    };
    if let Ok(rows) = &hours {
        let mut trips = vec![0.0; 24];
        for (h, n, _) in rows {
            if let Some(slot) = trips.get_mut(*h as usize) {
                *slot = *n as f64;
            }
        }
        per_hour.counts.insert("completed".into(), trips);
    }
    let (total_trips, total_points) = hours
        .as_ref()
        .map(|r| {
            r.iter()
                .fold((0, 0), |(t, p), (_, n, pts)| (t + n, p + pts))
        })
        .unwrap_or((0, 0));
    let body = html! {
        h1 { "Trips today (UTC)" }
        @match &hours {
            Ok(_) => {
                p.figures {
                    span { strong data-figure="trips" { (total_trips) } " completed trips" } " · "
                    span { strong data-figure="points" { (total_points) } " points awarded" } " · "
                    span { strong data-figure="dead" { (dead.as_ref().map(|d| d.total("dead") as i64).unwrap_or(0)) } " dead trip jobs" } " · "
                    span { strong data-figure="compensations" { (pending.as_ref().map(|p| p.to_string()).unwrap_or_else(|e| e.to_string())) } " compensations pending" }
                }
                h2 { "Completed trips per hour" }
                (chart::bars(&per_hour, &[("completed", "ok")], 480.0, 80.0, "completed trips per hour"))
            }
            Err(e) => { p.error { "Trips cannot be read: " (e) } }
        }
        h2 { "Dead trip jobs per hour" }
        @match &dead {
            Ok(d) => (chart::bars(d, &[("dead", "bad")], 480.0, 60.0, "dead trip jobs per hour")),
            Err(e) => p.note { "No chart: " (e) },
        }
        h2 { "Hour by hour" }
        (hourly(hours.as_deref().unwrap_or(&[]), dead.as_ref().ok()))
        h2 { "Recent trip starts" }
        @match &starts {
            Ok(points) => (map::draw(points, &stop_points, 720.0, 420.0)),
            Err(e) => p.error { "Trip starts cannot be read: " (e) },
        }
    };
    page::answer(StatusCode::OK, page::frame("Trips", Some(&viewer), body))
}
