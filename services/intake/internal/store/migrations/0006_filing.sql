-- A report's filing is the fold of its events through pkg/filing
-- (filing.Status); these columns hold that status, so that intake keeps no
-- precedence rules of its own. ncmec_state is the filing.State (never NULL
-- now), last_error the failure or staff's reason for closing, and status
-- the API's word for ncmec_state (report.StatusOf), kept as a column for the
-- metrics and the retention queries.
ALTER TABLE reports
    ADD COLUMN filing_at           timestamptz,
    ADD COLUMN learned_from        text,
    ADD COLUMN finished_at         timestamptz,
    ADD COLUMN retraction_error    text,
    ADD COLUMN retraction_error_at timestamptz,
    ADD COLUMN ambiguous_submits   int NOT NULL DEFAULT 0,
    -- The filing whose state the Salesforce case shows (case.upserted).
    ADD COLUMN case_filing         int;

-- Existing rows: the state the old status and ncmec_state meant. A finish
-- wins over everything (the old ranking put retracted above it).
UPDATE reports SET ncmec_state = CASE
        WHEN ncmec_state = 'finished' THEN 'finished'
        WHEN status = 'submitted' THEN 'pending'
        WHEN status = 'ncmec_opened' THEN 'opened'
        ELSE status END;
UPDATE reports SET status = CASE ncmec_state
        WHEN 'pending' THEN 'submitted'
        WHEN 'opened' THEN 'ncmec_opened'
        ELSE ncmec_state END;
UPDATE reports SET case_filing = filing WHERE case_state IS NOT NULL;

ALTER TABLE reports ALTER COLUMN ncmec_state SET DEFAULT 'pending';
ALTER TABLE reports ALTER COLUMN ncmec_state SET NOT NULL;
