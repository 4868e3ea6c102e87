-- A client that lost the answer to a submission sends it again with the same
-- Idempotency-Key: the report it stored the first time is the answer, not a
-- second report (and a second NCMEC report about the same incident).
-- Keys are the submitter's own: scoped to submitted_by.
ALTER TABLE reports ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX reports_idempotency_key ON reports (submitted_by, idempotency_key) WHERE idempotency_key IS NOT NULL;
