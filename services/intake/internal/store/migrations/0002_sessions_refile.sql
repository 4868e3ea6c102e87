-- Browser sessions of signed-in staff (github.com/alexedwards/scs
-- postgresstore): only a random token lives in the browser's cookie.
CREATE TABLE sessions (
    token  text PRIMARY KEY,
    data   bytea       NOT NULL,
    expiry timestamptz NOT NULL
);

CREATE INDEX sessions_expiry_idx ON sessions (expiry);

-- NCMEC report ids of earlier filings of a report filed again after a
-- retraction: their late events go into the history but move nothing.
ALTER TABLE reports ADD COLUMN past_ncmec_report_ids bigint[] NOT NULL DEFAULT '{}';
