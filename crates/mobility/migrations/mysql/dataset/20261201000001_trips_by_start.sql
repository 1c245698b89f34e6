-- The analytics rollup groups a day's completed trips: an index over (status, started_at) turns
-- each day's GROUP BY into a range scan instead of a scan of the whole table.
CREATE INDEX ix_trips_status_started ON trips (status, started_at);
