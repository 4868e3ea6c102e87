-- The lease token of the worker that claimed a retraction (Due, DueLost):
-- a worker that stalled past its lease and was taken over can no longer
-- settle or reschedule it, so an outcome is recorded, and published, once.
ALTER TABLE reports ADD COLUMN lease uuid;
ALTER TABLE lost_retractions ADD COLUMN lease uuid;
