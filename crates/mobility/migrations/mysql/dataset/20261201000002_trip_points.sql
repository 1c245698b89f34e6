-- The points a completed trip was awarded, copied onto its row by the job that awards them (the
-- ledger stays in incentive.points_transactions): the analytics rollup sums them in its GROUP BY
-- instead of looking each trip up in another database. Rows from before this column are NULL
-- until a rollup of their day fills them from the ledger.
ALTER TABLE trips ADD COLUMN points INT NULL AFTER duration_s;
