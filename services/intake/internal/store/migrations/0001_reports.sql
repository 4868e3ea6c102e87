-- Reports as staff submitted them, and their progress as the other services
-- report it through events.
CREATE TABLE reports (
    id                uuid PRIMARY KEY,
    submitted_at      timestamptz NOT NULL,
    submitted_by      text        NOT NULL,
    filing            int         NOT NULL DEFAULT 1,
    incident_time     timestamptz NOT NULL,
    details           jsonb       NOT NULL,
    -- The report's data key, wrapped by a master key; never the key itself.
    data_key_id       text        NOT NULL,
    data_key          bytea       NOT NULL,
    status            text        NOT NULL DEFAULT 'submitted',
    ncmec_report_id   bigint,
    ncmec_environment text,
    ncmec_state       text,
    last_error        text,
    case_id           text,
    case_state        text,
    case_error        text,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE files (
    id             uuid PRIMARY KEY,
    report_id      uuid    NOT NULL REFERENCES reports ON DELETE CASCADE,
    idx            int     NOT NULL,
    name           text    NOT NULL,
    object_key     text    NOT NULL UNIQUE,
    object_version text    NOT NULL DEFAULT '',
    size           bigint  NOT NULL,
    content_type   text    NOT NULL,
    md5            text    NOT NULL,
    sha1           text    NOT NULL,
    sha256         text    NOT NULL,
    pdq            text,
    pdq_quality    int,
    meta           jsonb   NOT NULL,
    ncmec_file_id  text,
    ncmec_md5      text,
    UNIQUE (report_id, idx)
);

CREATE INDEX files_sha256 ON files (sha256);

CREATE TABLE report_events (
    event_id    uuid PRIMARY KEY,
    report_id   uuid        NOT NULL,
    type        text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    actor       text        NOT NULL,
    summary     text        NOT NULL
);

CREATE INDEX report_events_report ON report_events (report_id, occurred_at);

-- Objects written for a submission that then failed and whose deletion
-- failed too (S3 went away mid-request): a sweeper deletes them later, so
-- nothing is left behind.
CREATE TABLE orphan_objects (
    object_key text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_error text
);
