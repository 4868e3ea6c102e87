-- A case's NCMEC side is now the report's filing as pkg/filing folds it
-- (issue 15): filing generations, the NCMEC ids of earlier filings, how a
-- finish was learnt, ambiguous /submits, extra copies. It is kept as one
-- JSON document (cases.Case's NCMEC, ExtraCopiesOf and Earlier) rather than
-- a column per field: nothing queries it, and a column per field would have
-- to follow every field pkg/filing adds. The sync queries use rev and
-- submitted only.
ALTER TABLE cases ADD COLUMN ncmec jsonb NOT NULL DEFAULT '{"Status": {"Filing": 1, "State": "pending"}}';

-- What the old columns said is the first filing. (A finish the old rules
-- hid behind a retraction cannot be recovered; the next event about the
-- report corrects it.)
UPDATE cases SET ncmec = jsonb_build_object('Status', jsonb_strip_nulls(jsonb_build_object(
    'Filing', 1,
    'State', ncmec_state,
    'NCMECReportID', ncmec_report_id,
    'At', ncmec_at,
    'FinishedAt', ncmec_finished_at,
    'Error', ncmec_error,
    'LearnedFrom', CASE WHEN ncmec_state = 'finished' THEN 'receipt' ELSE '' END)));

ALTER TABLE cases DROP COLUMN ncmec_state, DROP COLUMN ncmec_report_id, DROP COLUMN ncmec_at,
    DROP COLUMN ncmec_finished_at, DROP COLUMN ncmec_error;
