-- What the retraction service knows of each report's NCMEC filing, learnt
-- from events, and the retraction it owes, if any.
CREATE TABLE reports (
    report_id       uuid PRIMARY KEY,
    filing          int         NOT NULL DEFAULT 1,
    environment     text        NOT NULL DEFAULT 'production',
    ncmec_report_id bigint,
    -- unknown (only submitted), opened, finished, failed
    ncmec_state     text        NOT NULL DEFAULT 'unknown',
    last_change_at  timestamptz NOT NULL DEFAULT now(),
    -- none, pending, retracted, failed, finished_at_ncmec
    retraction      text        NOT NULL DEFAULT 'none',
    reason          text,
    requested_by    text,
    attempts        int         NOT NULL DEFAULT 0,
    first_tried_at  timestamptz,
    next_attempt_at timestamptz,
    last_error      text
);

CREATE INDEX reports_due ON reports (next_attempt_at) WHERE retraction = 'pending';
CREATE INDEX reports_open ON reports (last_change_at) WHERE ncmec_state = 'opened' AND retraction = 'none';
