-- The reports list's filters, search and keyset paging (store/search.go):
-- each index serves one of ReportFilter's ways to narrow or order the list,
-- so a page of the list reads about as many rows as it shows at a million
-- reports. Pages go by keyset (submitted_at, id) or (updated_at, id), never
-- OFFSET.

-- Whether a report files with NCMEC's test environment, as a column: the
-- list hides test reports by default, and a filter on an expression over
-- the JSON could use no index. It follows details (the test flag stays as
-- submitted through corrections; report.Correction).
ALTER TABLE reports ADD COLUMN test boolean
    GENERATED ALWAYS AS (coalesce((details ->> 'test')::boolean, false)) STORED;

-- Newest first by submission, and by last change (sort=changed).
CREATE INDEX reports_submitted ON reports (submitted_at, id);
CREATE INDEX reports_changed ON reports (updated_at, id);
-- Test reports are few: a partial index finds them without reading the
-- production ones (production reports come through reports_submitted).
CREATE INDEX reports_test_submitted ON reports (submitted_at, id) WHERE test;
-- status=…, submitted_by=…, each in submission order.
CREATE INDEX reports_status_submitted ON reports (status, submitted_at, id);
CREATE INDEX reports_submitter_submitted ON reports (submitted_by, submitted_at, id);

-- q: NCMEC's report id, of the filing now or of an earlier one.
CREATE INDEX reports_ncmec_report_id ON reports (ncmec_report_id) WHERE ncmec_report_id IS NOT NULL;
CREATE INDEX reports_past_ncmec_report_ids ON reports USING gin (past_ncmec_report_ids);
-- q: a file's SHA-1 (SHA-256 and MD5 are indexed since 0001 and 0008, the
-- uploader's username and e-mail since 0003, PDQ by 0008's pieces).
CREATE INDEX files_sha1 ON files (sha1);
