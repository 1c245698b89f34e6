-- Trips, reservations, payments, profiles, activities, routes. Money is DECIMAL; times UTC.
CREATE TABLE trips (
    trip_id VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id BIGINT UNSIGNED NOT NULL,
    mode VARCHAR(32) NOT NULL,
    status ENUM('planned', 'active', 'completed', 'cancelled') NOT NULL,
    started_at DATETIME(3) NOT NULL,
    ended_at DATETIME(3) NULL,
    distance_m DECIMAL(12, 2) NOT NULL DEFAULT 0,
    duration_s INT UNSIGNED NOT NULL DEFAULT 0,
    cost DECIMAL(10, 2) NULL,
    currency CHAR(3) NULL,
    start_lat DECIMAL(9, 6) NULL,
    start_lng DECIMAL(9, 6) NULL,
    end_lat DECIMAL(9, 6) NULL,
    end_lng DECIMAL(9, 6) NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    KEY ix_trips_user_started (user_id, started_at),
    KEY ix_trips_status (status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE reservations (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT UNSIGNED NOT NULL,
    trip_id VARCHAR(64) NULL,
    provider VARCHAR(64) NOT NULL,
    status ENUM('pending', 'confirmed', 'cancelled', 'expired') NOT NULL DEFAULT 'pending',
    reserved_for DATETIME(3) NOT NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY ix_reservations_user (user_id, reserved_for),
    KEY ix_reservations_trip (trip_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE payments (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT UNSIGNED NOT NULL,
    trip_id VARCHAR(64) NULL,
    amount DECIMAL(10, 2) NOT NULL,
    currency CHAR(3) NOT NULL,
    status ENUM('pending', 'captured', 'refunded', 'failed') NOT NULL DEFAULT 'pending',
    external_ref VARCHAR(128) NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    UNIQUE KEY uq_payments_external_ref (external_ref),
    KEY ix_payments_user (user_id, created_at),
    KEY ix_payments_trip (trip_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE user_profiles (
    user_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    home_lat DECIMAL(9, 6) NULL,
    home_lng DECIMAL(9, 6) NULL,
    preferred_modes JSON NULL,
    updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE user_activities (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT UNSIGNED NOT NULL,
    activity VARCHAR(64) NOT NULL,
    detail JSON NULL,
    occurred_at DATETIME(3) NOT NULL,
    KEY ix_user_activities_user (user_id, occurred_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE transit_routes (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT UNSIGNED NOT NULL,
    origin_lat DECIMAL(9, 6) NOT NULL,
    origin_lng DECIMAL(9, 6) NOT NULL,
    dest_lat DECIMAL(9, 6) NOT NULL,
    dest_lng DECIMAL(9, 6) NOT NULL,
    legs JSON NOT NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY ix_transit_routes_user (user_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
