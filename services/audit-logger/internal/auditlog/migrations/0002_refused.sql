-- Events the consumer refused (events.Check: subject, type, payload or
-- publisher disagree with the ownership table) are still logged, so that
-- the log shows the forgery; this column says why it was refused, '' for
-- an ordinary entry. It copies the content's "refused" field, like the
-- other columns. Adding a column with a constant default rewrites no row,
-- so the append-only triggers are not involved.
ALTER TABLE entries ADD COLUMN refused text NOT NULL DEFAULT '';
