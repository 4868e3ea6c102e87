-- When the published copies of a destroyed data key (the report.submitted
-- event of each filing) were deleted from the NATS stream; NULL while the
-- lifecycle job still owes that.
ALTER TABLE reports ADD COLUMN stream_purged_at timestamptz;

CREATE INDEX reports_stream_purge_owed ON reports (id)
    WHERE data_key_destroyed_at IS NOT NULL AND stream_purged_at IS NULL;
