-- The audit log: append-only and hash-chained. Each entry stores its
-- canonical content and SHA-256(prev_hash || content); the columns beside
-- the content are copies for querying, checked against it by verify.
CREATE TABLE entries (
    seq         bigint      PRIMARY KEY CHECK (seq > 0),
    event_id    uuid        NOT NULL UNIQUE,
    type        text        NOT NULL,
    report_id   text        NOT NULL,
    actor_kind  text        NOT NULL,
    actor_id    text        NOT NULL,
    actor_name  text        NOT NULL,
    occurred_at timestamptz,
    recorded_at timestamptz NOT NULL,
    stream_seq  bigint      NOT NULL,
    content     bytea       NOT NULL,
    prev_hash   bytea       NOT NULL,
    hash        bytea       NOT NULL
);

CREATE INDEX entries_report ON entries (report_id, seq) WHERE report_id <> '';

-- The chain head: the last entry's seq and hash. Appends lock this one row,
-- so seqs are gap-free and strictly ordered however many writers there are,
-- and verify compares it with the last entry, which catches entries cut off
-- the end of the chain.
CREATE TABLE chain_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       bigint  NOT NULL,
    hash      bytea   NOT NULL
);
INSERT INTO chain_head (seq, hash) VALUES (0, decode(repeat('00', 32), 'hex'));

-- Entries are never changed or removed, whoever asks: the service's role has
-- no UPDATE, DELETE or TRUNCATE privilege, and these triggers refuse them
-- even to the owner (who would have to disable them first, which verify then
-- catches by the broken chain).
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END
$$;

CREATE TRIGGER entries_no_update_delete BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER chain_head_no_delete BEFORE DELETE ON chain_head
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER chain_head_no_truncate BEFORE TRUNCATE ON chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- An entry may only be the next link of the chain: seq one past the head,
-- prev_hash the head's hash. And the head may only move one entry forward,
-- onto an entry that exists. So even the writer role cannot splice the chain.
CREATE FUNCTION append_only_next() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
    head chain_head%ROWTYPE;
BEGIN
    SELECT * INTO head FROM chain_head;
    IF NEW.seq <> head.seq + 1 OR NEW.prev_hash <> head.hash THEN
        RAISE EXCEPTION 'the audit log is append-only: entry % is not the next link after %', NEW.seq, head.seq;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER entries_next_link BEFORE INSERT ON entries
    FOR EACH ROW EXECUTE FUNCTION append_only_next();

CREATE FUNCTION chain_head_advance() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.seq <> OLD.seq + 1 OR NOT EXISTS (
        SELECT 1 FROM entries WHERE seq = NEW.seq AND hash = NEW.hash AND prev_hash = OLD.hash) THEN
        RAISE EXCEPTION 'the audit chain head may only advance to the entry appended after it';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER chain_head_advance BEFORE UPDATE ON chain_head
    FOR EACH ROW EXECUTE FUNCTION chain_head_advance();
