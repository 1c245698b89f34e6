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

/// Every file the import loads, in load order.
pub const FILES: &[FileSpec] = &[
    FileSpec {
        file: "agency.txt",
        table: "agency",
        columns: &[
            "agency_id",
            "agency_name",
            "agency_url",
            "agency_timezone",
            "agency_lang",
            "agency_phone",
        ],
        required: true,
    },
    FileSpec {
        file: "routes.txt",
        table: "routes",
        columns: &[
            "route_id",
            "agency_id",
            "route_short_name",
            "route_long_name",
            "route_type",
            "route_color",
            "route_text_color",
        ],
        required: true,
    },
    FileSpec {
        file: "calendar.txt",
        table: "calendar",
        columns: &[
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
        ],
        required: false,
    },
    FileSpec {
        file: "calendar_dates.txt",
        table: "calendar_dates",
        columns: &["service_id", "date", "exception_type"],
        required: false,
    },
    FileSpec {
        file: "shapes.txt",
        table: "shapes",
        columns: &[
            "shape_id",
            "shape_pt_sequence",
            "shape_pt_lat",
            "shape_pt_lon",
            "shape_dist_traveled",
        ],
        required: false,
    },
    FileSpec {
        file: "stops.txt",
        table: "stops",
        columns: &[
            "stop_id",
            "stop_code",
            "stop_name",
            "stop_lat",
            "stop_lon",
            "location_type",
            "parent_station",
        ],
        required: true,
    },
    FileSpec {
        file: "trips.txt",
        table: "trips",
        columns: &[
            "trip_id",
            "route_id",
            "service_id",
            "trip_headsign",
            "direction_id",
            "shape_id",
        ],
        required: true,
    },
    FileSpec {
        file: "stop_times.txt",
        table: "stop_times",
        columns: &[
            "trip_id",
            "stop_sequence",
            "stop_id",
            "arrival_secs",
            "departure_secs",
        ],
        required: true,
    },
    FileSpec {
        file: "feed_info.txt",
        table: "feed_info",
        columns: &[
            "feed_publisher_name",
            "feed_publisher_url",
            "feed_lang",
            "feed_start_date",
            "feed_end_date",
            "feed_version",
        ],
        required: false,
    },
];
