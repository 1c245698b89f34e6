//! The GTFS files the import reads, in the order it reads them (each refers only to files read
//! before it), and how each record becomes a row: checked field by field and against the ids
//! of the files before it (docs/gtfs.md#validation).

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use csv::ByteRecord;

use super::row::{Columns, Header, Row};
use super::spec;

/// A column value on its way to MySQL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Date(NaiveDate),
    Null,
}

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}

fn opt_s(v: Option<&str>) -> Value {
    v.map_or(Value::Null, s)
}

fn opt_i(v: Option<i64>) -> Value {
    v.map_or(Value::Null, Value::Int)
}

fn opt_f(v: Option<f64>) -> Value {
    v.map_or(Value::Null, Value::Float)
}

/// What the files read so far define, for the references of the files after them; and what the
/// later files used, for the warnings at the end.
#[derive(Default)]
pub(crate) struct Ids {
    agencies: Vec<String>,
    routes: HashSet<String>,
    services: HashSet<String>,
    shapes: HashSet<String>,
    stops: HashSet<String>,
    /// Stops a vehicle serves (location_type 0): the ones a stop time may name.
    boardable: HashSet<String>,
    parents: Vec<(String, u64, String)>,
    trips: HashSet<String>,
    used_routes: HashSet<String>,
    used_services: HashSet<String>,
    used_stops: HashSet<String>,
    timed_trips: HashSet<String>,
    /// The previous stop_times record: trip, sequence, last time, line.
    previous: Option<(String, i64, Option<u32>)>,
    /// stop_times.txt is not grouped by trip in sequence order: times are checked in SQL.
    pub(crate) unordered: bool,
    shapes_file: bool,
    feed_info_rows: u64,
}

/// Turns one record of a file into a row, checking it.
pub(crate) type Convert =
    Box<dyn FnMut(&ByteRecord, u64, &mut Ids) -> Result<Vec<Value>, String> + Send>;

/// The converter of `file`, its columns found in `header`.
pub(crate) fn converter(file: &'static str, header: &Header) -> Result<Convert, String> {
    Ok(match file {
        "agency.txt" => agency(header)?,
        "routes.txt" => routes(header)?,
        "calendar.txt" => calendar(header)?,
        "calendar_dates.txt" => calendar_dates(header)?,
        "shapes.txt" => shapes(header)?,
        "stops.txt" => stops(header)?,
        "trips.txt" => trips(header)?,
        "stop_times.txt" => stop_times(header)?,
        "feed_info.txt" => feed_info(header)?,
        other => return Err(format!("{other}: not a file the import reads")),
    })
}

fn duplicate<const N: usize>(row: &Row<'_, N>, c: usize, id: &str) -> String {
    row.error(c, format!("{id:?} appears twice"))
}

fn agency(header: &Header) -> Result<Convert, String> {
    const F: &str = "agency.txt";
    let cols = Columns::find(
        header,
        spec::AGENCY,
        &["agency_name", "agency_url", "agency_timezone"],
    )?;
    Ok(Box::new(move |rec, line, ids| {
        let r = Row::new(F, line, rec, &cols);
        // Optional when the feed has one agency: stored as "".
        let id = r.text(0, 100)?.unwrap_or("");
        if ids.agencies.iter().any(|a| a == id) {
            return Err(if id.is_empty() {
                r.error(0, "is required when the feed has more than one agency")
            } else {
                duplicate(&r, 0, id)
            });
        }
        ids.agencies.push(id.to_string());
        Ok(vec![
            s(id),
            s(r.text(1, 255)?.ok_or_else(|| r.error(1, "is required"))?),
            s(r.text(2, 255)?.ok_or_else(|| r.error(2, "is required"))?),
            s(r.text(3, 64)?.ok_or_else(|| r.error(3, "is required"))?),
            opt_s(r.text(4, 16)?),
            opt_s(r.text(5, 64)?),
        ])
    }))
}

fn colour<const N: usize>(r: &Row<'_, N>, c: usize) -> Result<Value, String> {
    match r.opt(c)? {
        Some(v) if v.len() == 6 && v.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(s(v)),
        Some(v) => Err(r.error(c, format!("{v:?} is not a six-digit hex colour"))),
        None => Ok(Value::Null),
    }
}

fn routes(header: &Header) -> Result<Convert, String> {
    const F: &str = "routes.txt";
    let cols = Columns::find(header, spec::ROUTES, &["route_id", "route_type"])?;
    Ok(Box::new(move |rec, line, ids| {
        let r = Row::new(F, line, rec, &cols);
        let id = r.id(0)?;
        if !ids.routes.insert(id.to_string()) {
            return Err(duplicate(&r, 0, id));
        }
        let agency = match r.text(1, 100)? {
            Some(a) if ids.agencies.iter().any(|x| x == a) => a,
            Some(a) => return Err(r.error(1, format!("{a:?} is not in agency.txt"))),
            None if ids.agencies.len() == 1 => ids.agencies[0].as_str(),
            None => return Err(r.error(1, "is required when the feed has several agencies")),
        };
        let (short, long) = (r.text(2, 64)?, r.text(3, 255)?);
        if short.is_none() && long.is_none() {
            return Err(r.error(3, "or route_short_name is required"));
        }
        // Basic types 0-12, and the extended types (100-1702).
        let route_type = r.req_int(4, 0, 1702)?;
        Ok(vec![
            s(id),
            s(agency),
            opt_s(short),
            opt_s(long),
            Value::Int(route_type),
            colour(&r, 5)?,
            colour(&r, 6)?,
        ])
    }))
}

fn calendar(header: &Header) -> Result<Convert, String> {
    const F: &str = "calendar.txt";
    let cols = Columns::find(header, spec::CALENDAR, &spec::CALENDAR)?;
    Ok(Box::new(move |rec, line, ids| {
        let r = Row::new(F, line, rec, &cols);
        let id = r.id(0)?;
        if !ids.services.insert(id.to_string()) {
            return Err(duplicate(&r, 0, id));
        }
        let mut row = vec![s(id)];
        for c in 1..=7 {
            row.push(Value::Int(r.req_int(c, 0, 1)?));
        }
        let (start, end) = (r.date(8)?, r.date(9)?);
        if end < start {
            return Err(r.error(9, format!("{end} is before start_date {start}")));
        }
        row.extend([Value::Date(start), Value::Date(end)]);
        Ok(row)
    }))
}

fn calendar_dates(header: &Header) -> Result<Convert, String> {
    const F: &str = "calendar_dates.txt";
    let cols = Columns::find(header, spec::CALENDAR_DATES, &spec::CALENDAR_DATES)?;
    Ok(Box::new(move |rec, line, ids| {
        let r = Row::new(F, line, rec, &cols);
        let id = r.id(0)?;
        // A service may be defined by its dates alone (feeds without calendar.txt).
        ids.services.insert(id.to_string());
        let date = r.date(1)?;
        let kind = r.req_int(2, 1, 2)?;
        Ok(vec![s(id), Value::Date(date), Value::Int(kind)])
    }))
}

fn shapes(header: &Header) -> Result<Convert, String> {
    const F: &str = "shapes.txt";
    let cols = Columns::find(
        header,
        spec::SHAPES,
        &[
            "shape_id",
            "shape_pt_sequence",
            "shape_pt_lat",
            "shape_pt_lon",
        ],
    )?;
    Ok(Box::new(move |rec, line, ids| {
        ids.shapes_file = true;
        let r = Row::new(F, line, rec, &cols);
        let id = r.id(0)?;
        if !ids.shapes.contains(id) {
            ids.shapes.insert(id.to_string());
        }
        let seq = r.req_int(1, 0, i64::from(u32::MAX))?;
        let lat = r.number(2, -90.0, 90.0, "latitude")?;
        let lon = r.number(3, -180.0, 180.0, "longitude")?;
        let lat = lat.ok_or_else(|| r.error(2, "is required"))?;
        let lon = lon.ok_or_else(|| r.error(3, "is required"))?;
        Ok(vec![
            s(id),
            Value::Int(seq),
            Value::Float(lat),
            Value::Float(lon),
            opt_f(r.number(4, 0.0, f64::MAX, "distance")?),
        ])
    }))
}

fn stops(header: &Header) -> Result<Convert, String> {
    const F: &str = "stops.txt";
    let cols = Columns::find(header, spec::STOPS, &["stop_id"])?;
    Ok(Box::new(move |rec, line, ids| {
        let r = Row::new(F, line, rec, &cols);
        let id = r.id(0)?;
        if !ids.stops.insert(id.to_string()) {
            return Err(duplicate(&r, 0, id));
        }
        let location_type = r.int(5, 0, 4)?.unwrap_or(0);
        let lat = r.number(3, -90.0, 90.0, "latitude")?;
        let lon = r.number(4, -180.0, 180.0, "longitude")?;
        let name = r.text(2, 255)?;
        // Stops, stations and entrances must be placed and named; generic nodes and boarding
        // areas (3, 4) need not.
        if location_type <= 2 {
            if lat.is_none() {
                return Err(r.error(3, "is required"));
            }
            if lon.is_none() {
                return Err(r.error(4, "is required"));
            }
            if name.is_none() {
                return Err(r.error(2, "is required"));
            }
        }
        if let Some(parent) = r.text(6, 100)? {
            ids.parents.push((parent.to_string(), line, id.to_string()));
        }
        if location_type == 0 {
            ids.boardable.insert(id.to_string());
        }
        Ok(vec![
            s(id),
            opt_s(r.text(1, 64)?),
            opt_s(name),
            opt_f(lat),
            opt_f(lon),
            Value::Int(location_type),
            opt_s(r.text(6, 100)?),
        ])
    }))
}

fn trips(header: &Header) -> Result<Convert, String> {
    const F: &str = "trips.txt";
    let cols = Columns::find(header, spec::TRIPS, &["trip_id", "route_id", "service_id"])?;
    Ok(Box::new(move |rec, line, ids| {
        let r = Row::new(F, line, rec, &cols);
        let id = r.id(0)?;
        if !ids.trips.insert(id.to_string()) {
            return Err(duplicate(&r, 0, id));
        }
        let route = r.id(1)?;
        if !ids.routes.contains(route) {
            return Err(r.error(1, format!("{route:?} is not in routes.txt")));
        }
        if !ids.used_routes.contains(route) {
            ids.used_routes.insert(route.to_string());
        }
        let service = r.id(2)?;
        if !ids.services.contains(service) {
            return Err(r.error(
                2,
                format!("{service:?} is not in calendar.txt or calendar_dates.txt"),
            ));
        }
        if !ids.used_services.contains(service) {
            ids.used_services.insert(service.to_string());
        }
        let shape = r.text(5, 100)?;
        if let Some(sh) = shape
            && ids.shapes_file
            && !ids.shapes.contains(sh)
        {
            return Err(r.error(5, format!("{sh:?} is not in shapes.txt")));
        }
        Ok(vec![
            s(id),
            s(route),
            s(service),
            opt_s(r.text(3, 255)?),
            opt_i(r.int(4, 0, 1)?),
            opt_s(shape),
        ])
    }))
}

fn stop_times(header: &Header) -> Result<Convert, String> {
    const F: &str = "stop_times.txt";
    let cols = Columns::find(
        header,
        [
            "trip_id",
            "stop_sequence",
            "stop_id",
            "arrival_time",
            "departure_time",
        ],
        &["trip_id", "stop_sequence", "stop_id"],
    )?;
    Ok(Box::new(move |rec, line, ids| {
        let r = Row::new(F, line, rec, &cols);
        let trip = r.id(0)?;
        if !ids.trips.contains(trip) {
            return Err(r.error(0, format!("{trip:?} is not in trips.txt")));
        }
        let seq = r.req_int(1, 0, i64::from(u32::MAX))?;
        let stop = r.id(2)?;
        if !ids.boardable.contains(stop) {
            return Err(r.error(
                2,
                if ids.stops.contains(stop) {
                    format!("{stop:?} is a station, not a stop (location_type 0)")
                } else {
                    format!("{stop:?} is not in stops.txt")
                },
            ));
        }
        if !ids.used_stops.contains(stop) {
            ids.used_stops.insert(stop.to_string());
        }
        let (arrival, departure) = (r.time(3)?, r.time(4)?);
        if let (Some(a), Some(d)) = (arrival, departure)
            && d < a
        {
            return Err(r.error(
                4,
                format!("{} is before arrival_time", super::fields::format_time(d)),
            ));
        }
        check_order(ids, &r, trip, seq, arrival, departure)?;
        Ok(vec![
            s(trip),
            Value::Int(seq),
            s(stop),
            opt_i(arrival.map(i64::from)),
            opt_i(departure.map(i64::from)),
        ])
    }))
}

/// Times must not go back along a trip. Checked here when the file lists each trip's stops
/// together and in sequence (as feeds do); otherwise [`Ids::unordered`] is set and the check
/// runs in SQL after the load.
fn check_order<const N: usize>(
    ids: &mut Ids,
    r: &Row<'_, N>,
    trip: &str,
    seq: i64,
    arrival: Option<u32>,
    departure: Option<u32>,
) -> Result<(), String> {
    let same_trip = ids.previous.as_ref().is_some_and(|(t, _, _)| t == trip);
    if same_trip {
        if let Some((_, prev_seq, prev_time)) = &ids.previous {
            if seq <= *prev_seq {
                ids.unordered = true;
            } else if let (Some(p), Some(now)) = (prev_time, arrival.or(departure))
                && now < *p
            {
                let c = if arrival.is_some() { 3 } else { 4 };
                return Err(r.error(
                    c,
                    format!(
                        "{} is before the previous stop's {}",
                        super::fields::format_time(now),
                        super::fields::format_time(*p)
                    ),
                ));
            }
        }
    } else if !ids.timed_trips.insert(trip.to_string()) {
        ids.unordered = true;
    }
    let last = departure.or(arrival);
    match &mut ids.previous {
        Some((t, s, time)) if t == trip => {
            *s = seq;
            if last.is_some() {
                *time = last;
            }
        }
        _ => ids.previous = Some((trip.to_string(), seq, last)),
    }
    Ok(())
}

fn feed_info(header: &Header) -> Result<Convert, String> {
    const F: &str = "feed_info.txt";
    let cols = Columns::find(
        header,
        spec::FEED_INFO,
        &["feed_publisher_name", "feed_publisher_url", "feed_lang"],
    )?;
    Ok(Box::new(move |rec, line, ids| {
        let r = Row::new(F, line, rec, &cols);
        ids.feed_info_rows += 1;
        if ids.feed_info_rows > 1 {
            return Err(format!("{F}:{line}: the file has more than one record"));
        }
        Ok(vec![
            s(r.text(0, 255)?.ok_or_else(|| r.error(0, "is required"))?),
            s(r.text(1, 255)?.ok_or_else(|| r.error(1, "is required"))?),
            s(r.text(2, 16)?.ok_or_else(|| r.error(2, "is required"))?),
            r.opt_date(3)?.map_or(Value::Null, Value::Date),
            r.opt_date(4)?.map_or(Value::Null, Value::Date),
            opt_s(r.text(5, 255)?),
        ])
    }))
}

/// Warnings that need a whole file: after stops.txt, parent stations the feed lacks (feeds
/// cut down to a few routes keep references to stations they dropped; nothing the service
/// reads depends on them).
pub(crate) fn after_file(file: &str, ids: &mut Ids) -> Vec<String> {
    let mut warnings = Vec::new();
    if file == "stops.txt" {
        for (parent, line, stop) in std::mem::take(&mut ids.parents) {
            if !ids.stops.contains(&parent) {
                warnings.push(format!(
                    "stops.txt:{line}: parent_station {parent:?} of stop {stop:?} is not in stops.txt"
                ));
            }
        }
    }
    warnings
}

/// Warnings once every file is read: what the feed defines and nothing uses.
pub(crate) fn unused(ids: &Ids) -> HashMap<&'static str, Vec<String>> {
    let mut out = HashMap::new();
    let mut add = |file: &'static str, what: &str, ids: Vec<&String>| {
        let mut ids: Vec<String> = ids.into_iter().cloned().collect();
        ids.sort();
        if !ids.is_empty() {
            let n = ids.len();
            let sample: Vec<String> = ids.iter().take(5).cloned().collect();
            out.insert(
                file,
                vec![format!("{n} {what} unused (e.g. {})", sample.join(", "))],
            );
        }
    };
    add(
        "stops.txt",
        "stops",
        ids.boardable.difference(&ids.used_stops).collect(),
    );
    add(
        "routes.txt",
        "routes",
        ids.routes.difference(&ids.used_routes).collect(),
    );
    add(
        "trips.txt",
        "trips without stop times,",
        ids.trips.difference(&ids.timed_trips).collect(),
    );
    out
}

/// The number of warnings of `unused` for `file` (each id counts).
pub(crate) fn unused_count(ids: &Ids, file: &str) -> u64 {
    match file {
        "stops.txt" => ids.boardable.difference(&ids.used_stops).count() as u64,
        "routes.txt" => ids.routes.difference(&ids.used_routes).count() as u64,
        "trips.txt" => ids.trips.difference(&ids.timed_trips).count() as u64,
        _ => 0,
    }
}
