//! Small charts drawn as inline SVG on the server (no chart library, no script): job throughput
//! per minute over the last hour and trips per hour today, from the `job_execution` points the
//! workers write (docs/queue.md#records).

use std::collections::BTreeMap;

use maud::{Markup, PreEscaped, html};

use super::error::{ConsoleError, Unavailable};
use crate::app::App;

/// Counts per time bucket, per series name ("completed", "dead"), oldest bucket first.
#[derive(Debug, Default, Clone)]
pub(super) struct Series {
    /// Bucket start times (Unix ms).
    pub(super) times: Vec<i64>,
    /// Per series, one count per bucket.
    pub(super) counts: BTreeMap<String, Vec<f64>>,
}

impl Series {
    /// The sum of series `name`.
    pub(super) fn total(&self, name: &str) -> f64 {
        self.counts.get(name).map(|c| c.iter().sum()).unwrap_or(0.0)
    }
}

/// `job_execution` counts per queue and outcome, per minute over the last hour, or why there
/// are none (records off, Influx down: said on the page, never a blank chart).
pub(super) async fn throughput(app: &App) -> Result<BTreeMap<String, Series>, ConsoleError> {
    let q = "SELECT count(duration_ms) FROM job_execution WHERE time > now() - 1h \
             GROUP BY time(1m), \"queue\", \"outcome\" fill(0)";
    query(app, q, "queue", "outcome").await
}

/// Dead `trip.complete` jobs per hour since `since_ms`.
pub(super) async fn dead_trips(app: &App, since_ms: i64) -> Result<Series, ConsoleError> {
    let q = format!(
        "SELECT count(duration_ms) FROM job_execution WHERE job_type = 'trip.complete' \
         AND outcome = 'dead' AND time >= {since_ms}ms GROUP BY time(1h), \"outcome\" fill(0)"
    );
    let mut by = query(app, &q, "job_type", "outcome").await?;
    Ok(by.remove("").unwrap_or_default())
}

/// Runs `q` on the record database: series grouped by tag `group` (key, "" when absent), named
/// by tag `name`.
async fn query(
    app: &App,
    q: &str,
    group: &str,
    name: &str,
) -> Result<BTreeMap<String, Series>, ConsoleError> {
    let Some(influx) = &app.stores().records.influx else {
        return Err(ConsoleError::Off(Unavailable {
            what: "job records to InfluxDB",
            key: "queue.records.influx",
        }));
    };
    let writer = influx.writer();
    let body = influx.query_v1(writer.target(), q).await?;
    let mut out: BTreeMap<String, Series> = BTreeMap::new();
    let series = body
        .pointer("/results/0/series")
        .and_then(|s| s.as_array())
        .cloned()
        .unwrap_or_default();
    for s in series {
        let tag = |t: &str| {
            s.pointer(&format!("/tags/{t}"))
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let entry = out.entry(tag(group)).or_default();
        let values = s["values"].as_array().cloned().unwrap_or_default();
        let times: Vec<i64> = values
            .iter()
            .filter_map(|v| v[0].as_str())
            .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis())
            .collect();
        if entry.times.len() < times.len() {
            entry.times = times;
        }
        let counts = values
            .iter()
            .map(|v| v[1].as_f64().unwrap_or(0.0))
            .collect();
        entry.counts.insert(tag(name), counts);
    }
    Ok(out)
}

/// A bar chart of `series` (stacked per bucket, in the given colour classes), `w`×`h` pixels,
/// with a text alternative.
pub(super) fn bars(series: &Series, names: &[(&str, &str)], w: f64, h: f64, label: &str) -> Markup {
    let n = series.times.len().max(1);
    let totals: Vec<f64> = (0..n)
        .map(|i| {
            names
                .iter()
                .map(|(k, _)| series.counts.get(*k).and_then(|c| c.get(i)).unwrap_or(&0.0))
                .sum()
        })
        .collect();
    let max = totals.iter().cloned().fold(0.0, f64::max).max(1.0);
    let bw = w / n as f64;
    let mut svg = String::new();
    for i in 0..n {
        let mut y = h;
        for (k, class) in names {
            let v = series
                .counts
                .get(*k)
                .and_then(|c| c.get(i))
                .copied()
                .unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let bh = v / max * (h - 2.0);
            y -= bh;
            svg.push_str(&format!(
                r#"<rect class="{class}" x="{:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}"/>"#,
                i as f64 * bw,
                (bw - 1.0).max(1.0)
            ));
        }
    }
    // The first and last buckets' times under the axis (UTC, HH:MM).
    let hhmm = |ms: Option<&i64>| {
        ms.and_then(|t| chrono::DateTime::from_timestamp_millis(*t))
            .map(|t| t.format("%H:%M").to_string())
            .unwrap_or_default()
    };
    let full = h + 14.0;
    html! {
        svg.chart width=(w) height=(full) viewBox=(format!("0 0 {w} {full}")) role="img" aria-label=(label) {
            title { (label) }
            line.axis x1="0" y1=(h) x2=(w) y2=(h) {}
            (PreEscaped(svg))
            text.tick x="0" y=(full - 2.0) { (hhmm(series.times.first())) }
            text.tick x=(w) y=(full - 2.0) text-anchor="end" { (hhmm(series.times.last())) }
        }
    }
}
