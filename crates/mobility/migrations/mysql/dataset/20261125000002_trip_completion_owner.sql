-- The job that completed a trip (status 'completed'). A dead job's compensation undoes a trip only
-- when that job is not someone else's completed work.
ALTER TABLE trips ADD COLUMN job_id VARCHAR(64) NULL AFTER status;
