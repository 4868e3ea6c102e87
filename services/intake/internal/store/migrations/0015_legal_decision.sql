-- The legal gate (LEGAL_APPROVAL=required): a report is stored at once and
-- waits for a second person in legal before anything goes to NCMEC.
-- legal_state: 'recorded' (the submitter recorded legal's decision in the
-- report's fields: LEGAL_APPROVAL=recorded, and every report stored before
-- this migration), 'awaiting', 'approved', 'rejected'. Who decided, when and
-- why are kept beside it; the report.legal_decided event carries the same.
ALTER TABLE reports
    ADD COLUMN legal_state text NOT NULL DEFAULT 'recorded'
        CHECK (legal_state IN ('recorded', 'awaiting', 'approved', 'rejected')),
    ADD COLUMN legal_decided_by text,
    ADD COLUMN legal_decided_by_name text,
    ADD COLUMN legal_decided_at timestamptz,
    ADD COLUMN legal_reason text;

-- The attention queue's candidates (store/attention.go, mayNeedAttention,
-- word for word): a report awaiting legal is one (its filing is "pending"
-- until approval starts it); a rejected one never is.
DROP INDEX reports_attention;
CREATE INDEX reports_attention ON reports (submitted_at)
    WHERE ((ncmec_state IN ('pending', 'opened', 'uploading', 'failed', 'retracted') OR case_error IS NOT NULL) AND legal_state <> 'rejected');
