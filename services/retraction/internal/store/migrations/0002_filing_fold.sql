-- The row now holds pkg/filing's fold of the report's current filing, so
-- that this service reads a filing's state exactly as intake and
-- case-writer do: ncmec_state is a filing.State ('unknown' was 'pending').
UPDATE reports SET ncmec_state = 'pending' WHERE ncmec_state = 'unknown';
ALTER TABLE reports ALTER COLUMN ncmec_state SET DEFAULT 'pending';
-- Unknown until an event names it: a report's NCMEC id must never be sent
-- to the wrong environment's /retract, so none is assumed for new rows.
ALTER TABLE reports ALTER COLUMN environment SET DEFAULT '';
-- When the event that set ncmec_state happened (the fold's tie-break).
ALTER TABLE reports ADD COLUMN ncmec_state_at timestamptz;
-- Ambiguous /submits of the current filing (filing.Status.Ambiguous), and
-- whether any filing of the report had one: only then may staff retract an
-- NCMEC report this system lost track of.
ALTER TABLE reports ADD COLUMN ambiguous int NOT NULL DEFAULT 0;
ALTER TABLE reports ADD COLUMN ever_ambiguous boolean NOT NULL DEFAULT false;

-- A filing is open at NCMEC while files are uploading, too.
DROP INDEX reports_open;
CREATE INDEX reports_open ON reports (last_change_at) WHERE ncmec_state IN ('opened', 'uploading') AND retraction = 'none';

-- Retractions of NCMEC reports this system lost track of (an /submit whose
-- answer was lost; staff learnt the id from NCMEC). Independent of the
-- report's own filing and its hand-over claim.
CREATE TABLE lost_retractions (
    report_id       uuid        NOT NULL,
    ncmec_report_id bigint      NOT NULL,
    environment     text        NOT NULL,
    -- the report's filing when staff asked, carried by the events
    filing          int         NOT NULL,
    reason          text        NOT NULL,
    requested_by    text        NOT NULL,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    -- pending, retracted, failed, finished_at_ncmec
    outcome         text        NOT NULL DEFAULT 'pending',
    attempts        int         NOT NULL DEFAULT 0,
    first_tried_at  timestamptz,
    next_attempt_at timestamptz DEFAULT now(),
    last_error      text,
    PRIMARY KEY (report_id, ncmec_report_id)
);

CREATE INDEX lost_retractions_due ON lost_retractions (next_attempt_at) WHERE outcome = 'pending';
