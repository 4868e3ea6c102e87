-- A batch of entries is inserted in one statement and the head moves once,
-- to the last of them (Append). The rules stay as strict: an entry may only
-- link to the head or to the entry inserted just before it past the head
-- (seq one more, prev_hash its hash), so entries past the head are one
-- unbroken chain from it; and the head may only move forward, onto an
-- entry that exists. Nothing can be spliced in, and entries left past the
-- head by a writer that never moved it show in verify (the head is not the
-- last entry).
CREATE OR REPLACE FUNCTION append_only_next() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
    head chain_head%ROWTYPE;
    prev bytea;
BEGIN
    SELECT * INTO head FROM chain_head;
    IF NEW.seq = head.seq + 1 THEN
        prev := head.hash;
    ELSE
        SELECT hash INTO prev FROM entries WHERE seq = NEW.seq - 1 AND seq > head.seq;
    END IF;
    IF prev IS NULL OR NEW.prev_hash <> prev THEN
        RAISE EXCEPTION 'the audit log is append-only: entry % is not the next link after %', NEW.seq, head.seq;
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION chain_head_advance() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.seq <= OLD.seq OR NOT EXISTS (
        SELECT 1 FROM entries WHERE seq = NEW.seq AND hash = NEW.hash) THEN
        RAISE EXCEPTION 'the audit chain head may only advance to an entry appended after it';
    END IF;
    RETURN NEW;
END
$$;
