-- One row per filing of a report with NCMEC (a report filed again after a
-- retraction has filing 2, 3, ...). Every NCMEC answer is recorded here
-- before the next call, so a restarted worker resumes from the last answer.
CREATE TABLE filings (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    report_id           uuid        NOT NULL,
    filing              int         NOT NULL,
    environment         text        NOT NULL CHECK (environment IN ('production', 'test')),
    event_id            uuid        NOT NULL,  -- the report.submitted event
    submitted           bytea       NOT NULL,  -- its ReportSubmitted payload, data key removed
    -- The wrapped data key; NULL once the filing is finished, failed or
    -- retracted (DESIGN §4: the reporter drops its copy).
    key_id              text,
    key_ciphertext      bytea,
    -- pending: nothing sent; submitting: /submit may have been sent (never
    -- repeated); open: NCMEC report id known; then one of the ends.
    state               text        NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'submitting', 'open', 'finished', 'failed', 'retracted')),
    report_xml          bytea,                 -- the exact <report> sent
    submit_attempted_at timestamptz,
    submit_request_id   text,
    ncmec_report_id     bigint,
    opened_at           timestamptz,
    -- NCMEC deletes an open report 1 h after its last change: the retry
    -- window counts from here (from created_at before /submit).
    last_change_at      timestamptz NOT NULL DEFAULT now(),
    receipt_xml         text,
    finish_request_id   text,
    finished_at         timestamptz,
    ncmec_file_ids      text[],                -- as listed by the receipt
    failed_step         text,
    failed_code         int,
    failed_description  text,
    attempts            int         NOT NULL DEFAULT 0,  -- failed tries since the last progress
    last_error          text,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    lease_owner         text,
    lease_until         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (report_id, filing)
);

CREATE INDEX filings_due ON filings (next_attempt_at) WHERE state IN ('pending', 'submitting', 'open');

-- One row per evidence file of a filing.
CREATE TABLE filing_files (
    filing_id           bigint      NOT NULL REFERENCES filings (id),
    idx                 int         NOT NULL,
    file_id             uuid        NOT NULL,  -- ours
    object_key          text        NOT NULL,
    size                bigint      NOT NULL,
    md5                 text        NOT NULL,  -- ours, from intake
    upload_attempts     int         NOT NULL DEFAULT 0,
    ncmec_file_id       text,
    ncmec_md5           text,
    upload_request_id   text,
    uploaded_at         timestamptz,
    fileinfo_xml        bytea,                 -- the exact <fileDetails> sent
    fileinfo_request_id text,
    described_at        timestamptz,
    PRIMARY KEY (filing_id, idx)
);

-- Every call to NCMEC and its answer (or failure): request ids to quote to
-- NCMEC, and the evidence of what happened when.
CREATE TABLE calls (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    filing_id   bigint      NOT NULL REFERENCES filings (id),
    endpoint    text        NOT NULL,
    file_idx    int,
    outcome     text        NOT NULL,  -- ok, retryable, permanent, state
    code        int,
    request_id  text,
    response    text,                  -- the answer document, when there was one
    error       text,
    at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX calls_filing ON calls (filing_id);
