-- GTFS static schedules (agency, routes, stops, trips, stop_times, calendar, calendar_dates).
-- GTFS times may pass 24:00, so they are seconds after midnight, not TIME values.
CREATE TABLE agency (
    agency_id VARCHAR(64) NOT NULL PRIMARY KEY,
    agency_name VARCHAR(255) NOT NULL,
    agency_url VARCHAR(255) NOT NULL,
    agency_timezone VARCHAR(64) NOT NULL,
    agency_lang VARCHAR(16) NULL,
    agency_phone VARCHAR(64) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE routes (
    route_id VARCHAR(64) NOT NULL PRIMARY KEY,
    agency_id VARCHAR(64) NULL,
    route_short_name VARCHAR(64) NULL,
    route_long_name VARCHAR(255) NULL,
    route_type SMALLINT NOT NULL,
    route_color CHAR(6) NULL,
    route_text_color CHAR(6) NULL,
    KEY ix_routes_agency (agency_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE stops (
    stop_id VARCHAR(64) NOT NULL PRIMARY KEY,
    stop_code VARCHAR(64) NULL,
    stop_name VARCHAR(255) NOT NULL,
    stop_lat DECIMAL(9, 6) NOT NULL,
    stop_lon DECIMAL(9, 6) NOT NULL,
    -- SRID 0 works the same on MariaDB and MySQL 8; distances use ST_Distance_Sphere.
    location POINT NOT NULL,
    location_type TINYINT NOT NULL DEFAULT 0,
    parent_station VARCHAR(64) NULL,
    SPATIAL KEY sx_stops_location (location)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE trips (
    trip_id VARCHAR(64) NOT NULL PRIMARY KEY,
    route_id VARCHAR(64) NOT NULL,
    service_id VARCHAR(64) NOT NULL,
    trip_headsign VARCHAR(255) NULL,
    direction_id TINYINT NULL,
    shape_id VARCHAR(64) NULL,
    KEY ix_trips_route (route_id),
    KEY ix_trips_service (service_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE stop_times (
    trip_id VARCHAR(64) NOT NULL,
    stop_sequence INT UNSIGNED NOT NULL,
    stop_id VARCHAR(64) NOT NULL,
    arrival_secs INT UNSIGNED NULL,
    departure_secs INT UNSIGNED NULL,
    PRIMARY KEY (trip_id, stop_sequence),
    KEY ix_stop_times_stop (stop_id, departure_secs)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE calendar (
    service_id VARCHAR(64) NOT NULL PRIMARY KEY,
    monday TINYINT NOT NULL,
    tuesday TINYINT NOT NULL,
    wednesday TINYINT NOT NULL,
    thursday TINYINT NOT NULL,
    friday TINYINT NOT NULL,
    saturday TINYINT NOT NULL,
    sunday TINYINT NOT NULL,
    start_date DATE NOT NULL,
    end_date DATE NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE calendar_dates (
    service_id VARCHAR(64) NOT NULL,
    date DATE NOT NULL,
    exception_type TINYINT NOT NULL,
    PRIMARY KEY (service_id, date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
