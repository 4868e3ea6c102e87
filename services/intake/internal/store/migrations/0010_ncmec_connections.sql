-- Whether each NCMEC environment answers and accepts the reporter's
-- credentials, as the reporter's /status check last announced it
-- (ncmec.connection). intake holds no NCMEC credentials; the form and the
-- reports list warn from this table while an environment is not ok.
CREATE TABLE ncmec_connections (
    environment text        PRIMARY KEY,
    state       text        NOT NULL,
    detail      text        NOT NULL DEFAULT '',
    -- When the environment entered this state: the first check that found it.
    since       timestamptz NOT NULL,
    checked_at  timestamptz NOT NULL
);
