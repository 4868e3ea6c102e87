-- Staff by name and e-mail: the submitter's display name and e-mail from
-- their ID token's claims at submission, beside submitted_by (the OIDC
-- subject, which stays the id). Reports stored before keep NULL and are
-- shown by their subject.
ALTER TABLE reports
    ADD COLUMN submitted_by_name text,
    ADD COLUMN submitted_by_email text,
    -- The legal decider's e-mail beside legal_decided_by_name, likewise.
    ADD COLUMN legal_decided_by_email text;
