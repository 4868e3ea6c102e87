-- What case-writer knows about each report's Salesforce case: what the
-- events said (the desired state, at revision rev) and how far Salesforce
-- has been brought to it. The consumer only ever writes the desired state;
-- the sync worker brings Salesforce to it, so a Salesforce outage of any
-- length delays cases but never drops them.
CREATE TABLE cases (
    report_id         text PRIMARY KEY,
    -- The report.submitted payload (protobuf, without the data key); NULL
    -- until it arrived. No case is written before it.
    submitted         bytea,
    ncmec_state       text        NOT NULL DEFAULT 'pending',
    ncmec_report_id   bigint      NOT NULL DEFAULT 0,
    ncmec_at          timestamptz,
    ncmec_finished_at timestamptz,
    ncmec_error       text        NOT NULL DEFAULT '',
    -- Our file id -> NCMEC file id.
    ncmec_files       jsonb       NOT NULL DEFAULT '{}',
    -- Desired revision; synced_rev was written to Salesforce; failed_rev
    -- was refused by Salesforce (a validation error) and is not retried.
    rev               bigint      NOT NULL DEFAULT 0,
    synced_rev        bigint      NOT NULL DEFAULT 0,
    failed_rev        bigint      NOT NULL DEFAULT 0,
    case_id           text,
    attempts          int         NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    -- A worker holds the row while it talks to Salesforce; an expired lease
    -- (the worker died) lets another take it over.
    lease_token       uuid,
    lease_until       timestamptz,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX cases_due ON cases (next_attempt_at)
    WHERE submitted IS NOT NULL AND rev > synced_rev AND rev > failed_rev;
