-- GTFS feeds as versions (docs/gtfs.md#versions). Every table gains `version_id` as the first
-- column of its key: a new version is loaded beside the live one and made live by one update of
-- `feeds.live_version`, so readers never see a half-loaded feed.
-- The tables of the first migration were never written by any release (nothing imported into
-- them), so they are replaced rather than altered.
DROP TABLE IF EXISTS agency, routes, stops, trips, stop_times, calendar, calendar_dates;

CREATE TABLE feeds (
    feed VARCHAR(64) NOT NULL PRIMARY KEY,
    live_version INT UNSIGNED NULL,
    switched_at DATETIME(3) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE feed_versions (
    version_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    feed VARCHAR(64) NOT NULL,
    content_sha256 CHAR(64) NOT NULL,
    -- loading -> loaded (validated) -> synced (MongoDB and Redis copies made) -> live -> retired;
    -- or failed. Only `feeds.live_version` decides what readers see.
    status ENUM('loading', 'loaded', 'synced', 'live', 'retired', 'failed') NOT NULL,
    source VARCHAR(1024) NOT NULL,
    created_at DATETIME(3) NOT NULL,
    loaded_at DATETIME(3) NULL,
    rows_loaded BIGINT UNSIGNED NOT NULL DEFAULT 0,
    summary JSON NULL,
    error TEXT NULL,
    KEY ix_versions_feed (feed, version_id),
    KEY ix_versions_content (feed, content_sha256)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE agency (
    version_id INT UNSIGNED NOT NULL,
    agency_id VARCHAR(100) NOT NULL,
    agency_name VARCHAR(255) NOT NULL,
    agency_url VARCHAR(255) NOT NULL,
    agency_timezone VARCHAR(64) NOT NULL,
    agency_lang VARCHAR(16) NULL,
    agency_phone VARCHAR(64) NULL,
    PRIMARY KEY (version_id, agency_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE routes (
    version_id INT UNSIGNED NOT NULL,
    route_id VARCHAR(100) NOT NULL,
    agency_id VARCHAR(100) NOT NULL,
    route_short_name VARCHAR(64) NULL,
    route_long_name VARCHAR(255) NULL,
    route_type SMALLINT UNSIGNED NOT NULL,
    route_color CHAR(6) NULL,
    route_text_color CHAR(6) NULL,
    PRIMARY KEY (version_id, route_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE stops (
    version_id INT UNSIGNED NOT NULL,
    stop_id VARCHAR(100) NOT NULL,
    stop_code VARCHAR(64) NULL,
    stop_name VARCHAR(255) NULL,
    stop_lat DECIMAL(9, 6) NULL,
    stop_lon DECIMAL(9, 6) NULL,
    location_type TINYINT UNSIGNED NOT NULL DEFAULT 0,
    parent_station VARCHAR(100) NULL,
    PRIMARY KEY (version_id, stop_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE trips (
    version_id INT UNSIGNED NOT NULL,
    trip_id VARCHAR(100) NOT NULL,
    route_id VARCHAR(100) NOT NULL,
    service_id VARCHAR(100) NOT NULL,
    trip_headsign VARCHAR(255) NULL,
    direction_id TINYINT UNSIGNED NULL,
    shape_id VARCHAR(100) NULL,
    PRIMARY KEY (version_id, trip_id),
    KEY ix_trips_route (version_id, route_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- GTFS times may pass 24:00 (a service day's trips run past midnight): seconds after the
-- service day's start (noon minus 12 h, as GTFS defines it), not TIME values.
CREATE TABLE stop_times (
    version_id INT UNSIGNED NOT NULL,
    trip_id VARCHAR(100) NOT NULL,
    stop_sequence INT UNSIGNED NOT NULL,
    stop_id VARCHAR(100) NOT NULL,
    arrival_secs INT UNSIGNED NULL,
    departure_secs INT UNSIGNED NULL,
    PRIMARY KEY (version_id, trip_id, stop_sequence),
    KEY ix_stop_times_stop (version_id, stop_id, departure_secs)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE calendar (
    version_id INT UNSIGNED NOT NULL,
    service_id VARCHAR(100) NOT NULL,
    monday TINYINT UNSIGNED NOT NULL,
    tuesday TINYINT UNSIGNED NOT NULL,
    wednesday TINYINT UNSIGNED NOT NULL,
    thursday TINYINT UNSIGNED NOT NULL,
    friday TINYINT UNSIGNED NOT NULL,
    saturday TINYINT UNSIGNED NOT NULL,
    sunday TINYINT UNSIGNED NOT NULL,
    start_date DATE NOT NULL,
    end_date DATE NOT NULL,
    PRIMARY KEY (version_id, service_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE calendar_dates (
    version_id INT UNSIGNED NOT NULL,
    service_id VARCHAR(100) NOT NULL,
    date DATE NOT NULL,
    exception_type TINYINT UNSIGNED NOT NULL,
    PRIMARY KEY (version_id, service_id, date),
    KEY ix_calendar_dates_date (version_id, date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE shapes (
    version_id INT UNSIGNED NOT NULL,
    shape_id VARCHAR(100) NOT NULL,
    shape_pt_sequence INT UNSIGNED NOT NULL,
    shape_pt_lat DECIMAL(9, 6) NOT NULL,
    shape_pt_lon DECIMAL(9, 6) NOT NULL,
    shape_dist_traveled DOUBLE NULL,
    PRIMARY KEY (version_id, shape_id, shape_pt_sequence)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE feed_info (
    version_id INT UNSIGNED NOT NULL PRIMARY KEY,
    feed_publisher_name VARCHAR(255) NOT NULL,
    feed_publisher_url VARCHAR(255) NOT NULL,
    feed_lang VARCHAR(16) NOT NULL,
    feed_start_date DATE NULL,
    feed_end_date DATE NULL,
    feed_version VARCHAR(255) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
