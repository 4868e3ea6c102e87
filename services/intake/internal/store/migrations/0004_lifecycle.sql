-- Evidence lifecycle (issue 10): retention, legal holds, destruction.

-- When the report's evidence may be deleted: NULL while it is not filed
-- (provisional: never expires), set when its NCMEC filing finishes (finish +
-- RETENTION) or it is retracted (+ RETENTION_RETRACTED), only ever extended.
ALTER TABLE reports ADD COLUMN retain_until timestamptz;
-- The wrapped data key is NULL once destroyed (expiry of every file, or a
-- law-enforcement request): no copy of the ciphertext decrypts after that.
ALTER TABLE reports ALTER COLUMN data_key DROP NOT NULL;
ALTER TABLE reports ADD COLUMN data_key_destroyed_at timestamptz;

-- locked_until is the S3 object lock retention last set on the object; the
-- lifecycle job extends it to the report's retention. A destroyed file keeps
-- its row (hashes, NCMEC file id) with destroyed_at set.
ALTER TABLE files ADD COLUMN locked_until timestamptz;
ALTER TABLE files ADD COLUMN destroyed_at timestamptz;
ALTER TABLE files ADD COLUMN destroyed_reason text;

CREATE TABLE holds (
    id          uuid PRIMARY KEY,
    report_id   uuid        NOT NULL REFERENCES reports,
    reason      text        NOT NULL,
    placed_by   text        NOT NULL,
    placed_at   timestamptz NOT NULL,
    lifted_by   text,
    lifted_at   timestamptz,
    lift_reason text
);

CREATE INDEX holds_active ON holds (report_id) WHERE lifted_at IS NULL;

-- Law-enforcement requests to destroy a report's evidence (18 U.S.C.
-- 2258B(c)): recorded by one evidence-admin, approved by another.
CREATE TABLE destruction_requests (
    id           uuid PRIMARY KEY,
    report_id    uuid        NOT NULL REFERENCES reports,
    agency       text        NOT NULL,
    reference    text        NOT NULL,
    requested_on date        NOT NULL,
    requested_by text        NOT NULL,
    recorded_at  timestamptz NOT NULL,
    approved_by  text,
    approved_at  timestamptz
);
