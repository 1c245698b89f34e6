//! The GTFS files the import loads, in load order, and the table and columns each fills.

/// A GTFS file and the table it loads (columns after `version_id`).
#[derive(Debug)]
pub struct FileSpec {
    /// `stops.txt`.
    pub file: &'static str,
    /// `stops`.
    pub table: &'static str,
    /// The table's columns after `version_id`, in the order rows carry them.
    pub columns: &'static [&'static str],
    /// A feed without it is refused (of `calendar.txt` and `calendar_dates.txt`, one must exist).
    pub required: bool,
}

/// `agency.txt` columns read, named as the table's.
pub(crate) const AGENCY: [&str; 6] = [
    "agency_id",
    "agency_name",
    "agency_url",
    "agency_timezone",
    "agency_lang",
    "agency_phone",
];

/// `routes.txt` columns read, named as the table's.
pub(crate) const ROUTES: [&str; 7] = [
    "route_id",
    "agency_id",
    "route_short_name",
    "route_long_name",
    "route_type",
    "route_color",
    "route_text_color",
];

/// `calendar.txt` columns read, named as the table's.
pub(crate) const CALENDAR: [&str; 10] = [
    "service_id",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "start_date",
    "end_date",
];

/// `calendar_dates.txt` columns read, named as the table's.
pub(crate) const CALENDAR_DATES: [&str; 3] = ["service_id", "date", "exception_type"];

/// `shapes.txt` columns read, named as the table's.
pub(crate) const SHAPES: [&str; 5] = [
    "shape_id",
    "shape_pt_sequence",
    "shape_pt_lat",
    "shape_pt_lon",
    "shape_dist_traveled",
];

/// `stops.txt` columns read, named as the table's.
pub(crate) const STOPS: [&str; 7] = [
    "stop_id",
    "stop_code",
    "stop_name",
    "stop_lat",
    "stop_lon",
    "location_type",
    "parent_station",
];

/// `trips.txt` columns read, named as the table's.
pub(crate) const TRIPS: [&str; 6] = [
    "trip_id",
    "route_id",
    "service_id",
    "trip_headsign",
    "direction_id",
    "shape_id",
];

/// `stop_times` columns (the file's times become seconds: `arrival_time` → `arrival_secs`).
pub(crate) const STOP_TIMES: [&str; 5] = [
    "trip_id",
    "stop_sequence",
    "stop_id",
    "arrival_secs",
    "departure_secs",
];

/// `feed_info.txt` columns read, named as the table's.
pub(crate) const FEED_INFO: [&str; 6] = [
    "feed_publisher_name",
    "feed_publisher_url",
    "feed_lang",
    "feed_start_date",
    "feed_end_date",
    "feed_version",
];

/// Every file the import loads, in load order.
pub const FILES: &[FileSpec] = &[
    FileSpec {
        file: "agency.txt",
        table: "agency",
        columns: &AGENCY,
        required: true,
    },
    FileSpec {
        file: "routes.txt",
        table: "routes",
        columns: &ROUTES,
        required: true,
    },
    FileSpec {
        file: "calendar.txt",
        table: "calendar",
        columns: &CALENDAR,
        required: false,
    },
    FileSpec {
        file: "calendar_dates.txt",
        table: "calendar_dates",
        columns: &CALENDAR_DATES,
        required: false,
    },
    FileSpec {
        file: "shapes.txt",
        table: "shapes",
        columns: &SHAPES,
        required: false,
    },
    FileSpec {
        file: "stops.txt",
        table: "stops",
        columns: &STOPS,
        required: true,
    },
    FileSpec {
        file: "trips.txt",
        table: "trips",
        columns: &TRIPS,
        required: true,
    },
    FileSpec {
        file: "stop_times.txt",
        table: "stop_times",
        columns: &STOP_TIMES,
        required: true,
    },
    FileSpec {
        file: "feed_info.txt",
        table: "feed_info",
        columns: &FEED_INFO,
        required: false,
    },
];
