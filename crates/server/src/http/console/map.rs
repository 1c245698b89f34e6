//! A map without tiles (no tile server is reachable, and the console never loads anything from
//! another site): points on an equirectangular projection fitted to their bounds, drawn as SVG.

use maud::{Markup, PreEscaped, html};

/// A point to draw: latitude, longitude.
pub(super) type LatLng = (f64, f64);

/// The bounds of `points` with a margin, and the horizontal scale of their mid-latitude.
fn bounds(points: &[LatLng]) -> Option<(f64, f64, f64, f64)> {
    let mut it = points
        .iter()
        .filter(|(a, b)| a.is_finite() && b.is_finite());
    let first = it.next()?;
    let (mut s, mut n, mut w, mut e) = (first.0, first.0, first.1, first.1);
    for (lat, lng) in it {
        s = s.min(*lat);
        n = n.max(*lat);
        w = w.min(*lng);
        e = e.max(*lng);
    }
    let pad_lat = ((n - s) * 0.05).max(0.005);
    let pad_lng = ((e - w) * 0.05).max(0.005);
    Some((s - pad_lat, n + pad_lat, w - pad_lng, e + pad_lng))
}

/// Trip start points (`trips`) over the feed's stops (`stops`), fitted to the trips (or to the
/// stops when there are no trips), `w`×`h` pixels.
pub(super) fn draw(trips: &[LatLng], stops: &[LatLng], w: f64, h: f64) -> Markup {
    let fit = if trips.is_empty() { stops } else { trips };
    let Some((s, n, west, east)) = bounds(fit) else {
        return html! { p.note { "Nothing to draw yet: no completed trips and no GTFS stops." } };
    };
    // Equirectangular: a degree of longitude is cos(lat) of a degree of latitude.
    let k = ((s + n) / 2.0).to_radians().cos().max(0.01);
    let (span_x, span_y) = ((east - west) * k, n - s);
    let scale = (w / span_x).min(h / span_y);
    // Centred in the frame along the axis with room to spare.
    let (dx, dy) = ((w - span_x * scale) / 2.0, (h - span_y * scale) / 2.0);
    let x = |lng: f64| dx + (lng - west) * k * scale;
    let y = |lat: f64| dy + (n - lat) * scale;
    let inside = |(lat, lng): &&LatLng| *lat >= s && *lat <= n && *lng >= west && *lng <= east;
    let mut svg = String::new();
    for p in stops.iter().filter(inside) {
        svg.push_str(&format!(
            r#"<circle class="stop" cx="{:.1}" cy="{:.1}" r="1.5"/>"#,
            x(p.1),
            y(p.0)
        ));
    }
    for p in trips.iter().filter(inside) {
        svg.push_str(&format!(
            r#"<circle class="trip" cx="{:.1}" cy="{:.1}" r="3"/>"#,
            x(p.1),
            y(p.0)
        ));
    }
    let label = format!(
        "{} trip starts and {} stops between {s:.3}..{n:.3} N and {west:.3}..{east:.3} E",
        trips.len(),
        stops.len()
    );
    html! {
        svg.map width=(w) height=(h) viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(label) data-trips=(trips.len()) data-stops=(stops.len()) {
            title { (label) }
            rect.sea x="0" y="0" width=(w) height=(h) {}
            (PreEscaped(svg))
        }
        p.note { (label) "." }
    }
}
